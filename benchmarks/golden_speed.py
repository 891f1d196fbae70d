"""The golden model's predict against hls4ml's, on the jet taggers.

    python benchmarks/golden_speed.py                    # 100,000 samples, every core
    python benchmarks/golden_speed.py --samples 20000 --no-hls4ml

Per model: rtlgen's ``Design.predict`` on ``--samples`` inputs (uniform in [-4, 4] on a 2**-8 grid,
as benchmarks/alkaid.py uses), best of ``--repeat`` runs after a warm-up, wall and CPU seconds, with
mantissas carried in float32 where that is exact (the default) and on integers only
(``golden.run(..., floats=False)``): both must give the same outputs. Then hls4ml's ``predict``
(Vitis backend, io_parallel, its compiled C++ emulation) on the same inputs for the Keras models,
and the ratio. Models: the da4ml paper's two JSC taggers (HGQ2, ``../shared/models/da4ml-ae/jsc``)
when present, and rtlgen's bundled QONNX jet tagger (``rtlgen build --example jet-tagger``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
JSC = Path(os.environ.get("RTLGEN_SHARED_MODELS", HERE.parent.parent / "shared" / "models")) / "da4ml-ae" / "jsc"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-hls4ml", action="store_true", help="skip hls4ml's predict")
    args = ap.parse_args()

    import numpy as np
    from compare import best_time, hls4ml_run

    import rtlgen
    from rtlgen import golden
    from rtlgen.examples import example_model

    models = {"example jet-tagger (QONNX)": example_model("jet-tagger")}
    for name in ("jsc_openml_75.86.h5", "jsc_cernbox_75.16.keras"):
        if (JSC / name).exists():
            models[f"{name} (HGQ2)"] = JSC / name
    x = (np.round(np.random.default_rng(1).uniform(-4, 4, (args.samples, 16)) * 256) / 256).astype(np.float32)
    print(f"{args.samples:,} samples, {len(os.sched_getaffinity(0))} cores, load {os.getloadavg()[0]:.1f}", flush=True)
    rows = []
    for name, model in models.items():
        design = rtlgen.convert(model)
        y, wall, cpu = best_time(design.predict, x, args.repeat)
        row = {"model": name, "per_s": len(x) / wall, "cpu_s": cpu, "wall_s": wall}
        m = design.quantize_input(x)
        _, iwall, _ = best_time(lambda a, g=design.graph: golden.run(g, a, floats=False), m, args.repeat)
        _, fwall, _ = best_time(lambda a, g=design.graph: golden.run(g, a), m, args.repeat)
        same = np.array_equal(golden.run(design.graph, m), golden.run(design.graph, m, floats=False))
        row.update(int_only_per_s=len(x) / iwall, floats_per_s=len(x) / fwall, same=same)
        if not args.no_hls4ml and isinstance(model, Path):
            import hgq  # noqa: F401 - registers HGQ2's layers with Keras before a saved model loads
            import keras

            with tempfile.TemporaryDirectory() as tmp:
                h = hls4ml_run(keras.models.load_model(model, compile=False), x, Path(tmp))
            row.update(hls4ml_per_s=len(x) / h["predict_s"],
                       hls4ml_exact=bool(np.array_equal(np.asarray(h["y"]).reshape(y.shape).astype(np.float32), y.astype(np.float32))))  # fmt: skip
        rows.append(row)
        print(row, flush=True)
    print()
    print(f"{'model':34} {'predict/s':>11} {'ints only/s':>12} {'floats/s':>10} {'same':>5} {'hls4ml/s':>10} {'ratio':>7} {'hls4ml==':>8}")
    for r in rows:
        h = r.get("hls4ml_per_s")
        print(f"{r['model']:34} {r['per_s']:11,.0f} {r['int_only_per_s']:12,.0f} {r['floats_per_s']:10,.0f} {str(r['same']):>5} "
              f"{h or 0:10,.0f} {(r['per_s'] / h if h else 0):6.0f}x {str(r.get('hls4ml_exact', '-')):>8}")  # fmt: skip
    return 0 if all(r["same"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
