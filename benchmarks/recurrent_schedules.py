"""A 20-step LSTM(16): both schedules' costs, Verilog size and Yosys resources.

    python benchmarks/recurrent_schedules.py                      # both schedules, synthesis included
    python benchmarks/recurrent_schedules.py --no-synth
    python benchmarks/recurrent_schedules.py --schedules reused --dsp
    python benchmarks/recurrent_schedules.py --schedules reused --reuse 1   # reused cell on adder graphs
    python benchmarks/recurrent_schedules.py --steps 2 --schedules unrolled   # the same cell over 2 steps

The LSTM is the recurrent layer of hls4ml's published ``KERAS_lstm_model`` (20 steps of 6 features,
16 units, relu activation, sigmoid gates), read from ``../shared/models`` and written as a model of
that one layer (``return_sequences=False``), so the figures are the recurrent layer's alone. Default
precision ``fixed<16,6>``; ``--dsp`` lets Yosys map multiplies to DSP48s (default: LUTs only).
The unrolled schedule is reuse factor 1 (adder graphs); the reused one takes ``--reuse`` (default
20: shared multipliers; 1 gives the reused schedule on adder graphs, ``Strategy: Resource``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "models" / "hls4ml-history" / "keras"


def lstm_only(out: Path, steps: int = 20) -> Path:
    """The published model's LSTM layer alone, as Keras JSON + weights (over its first ``steps``
    time steps: the same cell)."""
    cfg = json.loads((SHARED / "KERAS_lstm_model.json").read_text())
    layers = cfg["config"]["layers"]
    shape = layers[0]["config"]["batch_input_shape"]
    layers[0]["config"]["batch_input_shape"] = [shape[0], steps, *shape[2:]]
    lstm = next(layer for layer in layers if layer["class_name"] == "LSTM")
    lstm = {**lstm, "config": {**lstm["config"], "return_sequences": False}}
    cfg["config"]["layers"] = [layers[0], lstm]
    if "output_layers" in cfg["config"]:
        cfg["config"]["output_layers"] = [[lstm["config"]["name"], 0, 0]]
    path = out / "lstm20x16.json"
    path.write_text(json.dumps(cfg))
    name = lstm["config"]["name"]
    with h5py.File(SHARED / "KERAS_lstm_model_weights.h5") as src, h5py.File(out / "lstm20x16_weights.h5", "w") as dst:
        src.copy(src["model_weights"], dst, "model_weights")
        dst["model_weights"].attrs["layer_names"] = np.array([name.encode()])
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--schedules", nargs="+", default=["reused", "unrolled"], choices=["reused", "unrolled"])
    ap.add_argument("--no-synth", action="store_true")
    ap.add_argument("--dsp", action="store_true")
    ap.add_argument("--reuse", type=int, default=20, help="reuse factor of the reused schedule")
    ap.add_argument("--steps", type=int, default=20, help="time steps (the published model has 20)")
    ap.add_argument("--work", default=None, help="keep the Verilog and Yosys logs here")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    import rtlgen

    if not SHARED.exists():
        print(f"the published models are not at {SHARED}")
        return 1
    work = Path(args.work or tempfile.mkdtemp(prefix="rtlgen-rnn-"))
    work.mkdir(parents=True, exist_ok=True)
    model = lstm_only(work, args.steps)
    for schedule in args.schedules:
        lstm = {"ReuseFactor": 1, "Strategy": "Resource"} if schedule == "reused" and args.reuse == 1 else {"ReuseFactor": args.reuse if schedule == "reused" else 1}
        cfg = {"Model": {"Precision": "fixed<16,6>"}, "LayerType": {"LSTM": lstm}}
        t = time.time()
        design = rtlgen.convert(model, cfg)
        t_convert = time.time() - t
        if schedule == args.schedules[0]:
            print(next(n for n in design.graph.notes if "schedule" in n))
        t = time.time()
        verilog = design.verilog
        t_verilog = time.time() - t
        layer = next(lay for _, lay in design.network.layers if hasattr(lay, "cell_latency"))
        print(f"{schedule}: cell {layer.cell_latency} cycles, {layer.multipliers} multipliers, {layer.adders} adders; "
              f"latency {design.latency}, interval {design.initiation_interval}, "
              f"Verilog {len(verilog) // 1000} kB (convert {t_convert:.1f} s, Verilog {t_verilog:.1f} s)")  # fmt: skip
        if args.no_synth:
            continue
        t = time.time()
        res = design.synthesize(target="xc7", work_dir=work / schedule, dsp=args.dsp)
        keep = {k: res.get(k) for k in ("lut", "ff", "dsp", "bram", "carry", "path_delay_ns") if k in res}
        print(f"{schedule}: Yosys xc7{' (DSP)' if args.dsp else ' (no DSP)'} {keep or res} in {time.time() - t:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
