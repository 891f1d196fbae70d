"""rtlgen against alkaid 0.8.2 (da4ml's successor) on HGQ2 jet taggers, and rtlgen's own speed.

    python benchmarks/alkaid.py                          # the da4ml paper's JSC models + synthetic taggers
    python benchmarks/alkaid.py --models openml --levels 3
    python benchmarks/alkaid.py --no-synth               # exactness and latencies only

alkaid is not a project dependency: it goes into its own environment (``--venv``, default
``benchmarks/.venv-alkaid``, created with ``--system-site-packages`` plus a path file that makes the
calling interpreter's packages visible, so rtlgen, HGQ2 and Keras are the ones in use), and this
script re-runs itself there.

Per model and rtlgen ``AdderLevels``: rtlgen's latency L in cycles (input to output registers);
alkaid ``--n-stages`` chosen so its Verilog has the same L (an input register, one register
between stages, an output register: ``n_stages + 1``); then for both the same Yosys flow
(:func:`rtlgen.synth.synthesize`, ``synth_xilinx`` for ``--target``): LUT, FF, DSP and Yosys' ``sta``
path delay, and the ratio rtlgen/alkaid. Exactness: rtlgen's golden model == HGQ2's predict on
``--samples`` inputs, rtlgen's RTL == golden (Verilator, ``--vectors`` vectors), and alkaid's own
simulation of its IR against the Keras model (its ``mismatches.json``).

Speed, per model (at the first ``--levels``): golden ``predict`` on ``--speed-samples`` inputs against
hls4ml's ``predict`` (Vitis, io_parallel, its C++ emulation) on the same inputs, best of two after a
warm-up; ``rtlgen build`` in a fresh process (wall, CPU and peak memory); the generated regression's
vectors/s in Verilator on ``--sim-vectors`` vectors. And ``rtlgen build`` of a float
16x200x200x200x200x200x5 network at ``fixed<16,6>`` (hls4ml's arithmetic: products rounded one by one).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

HERE = Path(__file__).resolve().parent
ALKAID = "alkaid==0.8.2"
JSC = Path(os.environ.get("RTLGEN_SHARED_MODELS", HERE.parent.parent / "shared" / "models")) / "da4ml-ae" / "jsc"
PAPER = {"openml": JSC / "jsc_openml_75.86.h5", "cernbox": JSC / "jsc_cernbox_75.16.keras"}
SYNTHETIC = ("hgq", "uniform6", "pruned")


def ensure_env(venv: Path):
    """Re-run inside ``venv`` with alkaid installed there (never in the project's environment)."""
    if Path(sys.prefix).resolve() == venv.resolve():
        return
    py = venv / "bin" / "python"
    if not py.exists():
        print(f"creating {venv} for alkaid", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
        site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
        here = sysconfig.get_paths()["purelib"]
        Path(site, "calling-env.pth").write_text(f"import site; site.addsitedir({here!r})\n")
    if subprocess.run([str(py), "-c", "import alkaid"], capture_output=True).returncode:
        print(f"installing {ALKAID} into {venv}", flush=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", ALKAID], check=True)
    os.execv(str(py), [str(py), str(Path(__file__).resolve()), *sys.argv[1:]])


def cached(store: Path, key: str, fn):
    data = json.loads(store.read_text()) if store.exists() else {}
    if key not in data:
        data[key] = fn()
        store.write_text(json.dumps(data, indent=1))
    return data[key]


def model_path(name: str, work: Path, epochs: int) -> Path:
    if name in PAPER:
        return PAPER[name]
    import models

    path = work / name / f"jet_{name}.keras"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        print(f"[{name}] training on synthetic data", flush=True)
        models.train(name, path, epochs=epochs)
    return path


def alkaid_rtl(path: Path, stages: int, out: Path) -> dict:
    """alkaid's Verilog for ``path`` in ``stages`` pipeline stages; its files and its own check."""
    exe = Path(sys.prefix) / "bin" / "alkaid"
    if not (out / "src" / "model.v").exists():
        proc = subprocess.run([str(exe), "convert", str(path), str(out), "--n-stages", str(stages), "-n", "10000"],
                              capture_output=True, text=True)  # fmt: skip
        if proc.returncode:
            raise RuntimeError(f"alkaid failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    top = (out / "src" / "model.v").read_text()
    # Registers of the top: the input register, one per stage boundary, the output register.
    regs = len(re.findall(r"^\s*(?:output\s+)?reg\b", top, flags=re.M))
    files = sorted(p for p in (out / "src").rglob("*.v") if p.name != "model_wrapper.v")
    mism = json.loads((out / "mismatches.json").read_text()) if (out / "mismatches.json").exists() else {}
    return {"files": files, "cycles": regs, "exact": mism.get("n_mismatch") == 0 if mism else None}


def bench(name: str, levels: int, args, work: Path) -> dict:
    import keras
    import numpy as np

    import rtlgen

    path = model_path(name, work, args.epochs)
    mdir = work / name / f"levels{levels}"
    mdir.mkdir(parents=True, exist_ok=True)
    design = rtlgen.convert(str(path), {"Model": {"AdderLevels": levels}})
    model = keras.models.load_model(path, compile=False)
    rng = np.random.default_rng(0)
    x = (np.round(rng.uniform(-4, 4, (args.samples, 16)) * 256) / 256).astype(np.float32)
    ref = np.asarray(model.predict(x, batch_size=16384, verbose=0)).reshape(len(x), -1)
    res = {"model": name, "levels": levels, "cycles": design.latency}
    res["golden_exact"] = bool(np.array_equal(design.predict(x).astype(np.float32), ref.astype(np.float32)))
    if levels == first_levels(args):
        res.update(speed(name, path, design, model, args, mdir))
    # Keyed by the stage count: a planner change may change rtlgen's latency, and so alkaid's.
    alk = alkaid_rtl(path, design.latency - 1, mdir / f"alkaid{design.latency - 1}")
    res["alkaid_cycles"], res["alkaid_exact"] = alk["cycles"], alk["exact"]
    if not args.no_sim:
        sim = cached(mdir / "cache.json", f"sim-{rtlgen_key(design)}-{args.vectors}", lambda: design.simulate(x[: args.vectors], work_dir=mdir / "sim"))
        res["rtl_exact"] = bool(sim["passed"] and sim["mismatches"] == 0)
    if not args.no_synth:
        from rtlgen.synth import synthesize

        keys = ("lut", "ff", "dsp", "carry", "path_delay_ns", "yosys_seconds")
        r = cached(mdir / "cache.json", f"synth-rtlgen-{args.target}-{rtlgen_key(design)}",
                   lambda: {k: v for k, v in design.synthesize(target=args.target, work_dir=mdir / "synth_rtlgen").items() if k in keys})  # fmt: skip
        res.update({f"rtlgen_{k}": r[k] for k in keys})
        r = cached(mdir / "cache.json", f"synth-alkaid-{args.target}-{design.latency - 1}",
                   lambda: {k: v for k, v in synthesize(alk["files"], "model", target=args.target, workdir=mdir / "synth_alkaid").items() if k in keys})  # fmt: skip
        res.update({f"alkaid_{k}": r[k] for k in keys})
    print(json.dumps(res), flush=True)
    return res


def first_levels(args) -> int:
    return int(args.levels.split(",")[0])


def speed(name, path, design, model, args, mdir) -> dict:
    """Golden predict and hls4ml's predict on ``--speed-samples`` inputs, ``rtlgen build`` in a fresh
    process, and the RTL regression's own vectors/s on ``--sim-vectors`` vectors."""
    import numpy as np
    from compare import best_time, hls4ml_run, run_build, yaml_config

    x = (np.round(np.random.default_rng(1).uniform(-4, 4, (args.speed_samples, 16)) * 256) / 256).astype(np.float32)
    out = {}
    y, wall, cpu = best_time(design.predict, x)
    out.update(golden_per_s=len(x) / wall, golden_cpu_s=cpu, golden_wall_s=wall)
    if not args.no_hls4ml:
        h = hls4ml_run(model, x, mdir)
        out.update(hls4ml_per_s=len(x) / h["predict_s"], hls4ml_cpu_s=h["predict_cpu_s"],
                   hls4ml_exact=bool(np.array_equal(np.asarray(h["y"]).reshape(y.shape).astype(np.float32), y.astype(np.float32))))  # fmt: skip
    b = run_build(path, mdir / "build", yaml_config(mdir / "cfg.yml", first_levels(args)))
    out.update(build_s=b["build_s"], build_cpu_s=b["build_cpu_s"], build_mb=b["peak_mb"])
    if not args.no_sim:
        m = design.random_inputs(args.sim_vectors)
        r = design.simulate(design.input_tensor.type.to_float(m) * design.input_tensor.scale, work_dir=mdir / "simspeed")
        out.update(sim_per_s=r["vectors_per_second"], sim_random_exact=bool(r["passed"] and r["mismatches"] == 0))
    print(f"[{name}] speed: " + json.dumps(out), flush=True)
    return out


def dense_float(work: Path) -> dict:
    """``rtlgen build`` of a float 16x200x200x200x200x200x5 Keras network at ``fixed<16,6>``."""
    import keras
    from compare import run_build

    path = work / "dense200x5.keras"
    if not path.exists():
        keras.utils.set_random_seed(0)
        inp = keras.Input((16,))
        h = inp
        for k in range(5):
            h = keras.layers.Dense(200, activation="relu", name=f"fc{k}")(h)
        keras.Model(inp, keras.layers.Dense(5, name="out")(h)).save(path)
    params = int(keras.models.load_model(path).count_params())
    cfg = work / "dense200x5.yml"
    cfg.write_text("Model:\n  Precision: fixed<16,6>\n")
    # --force: the size guard refuses a network this far beyond any part; only the build is timed.
    b = run_build(path, work / "dense200x5_build", cfg, "--force")
    return {"params": params, **b}


def rtlgen_key(design) -> str:
    """A digest of rtlgen's Verilog: a changed planner invalidates the cached synthesis."""
    import hashlib

    return hashlib.sha1(design.verilog.encode()).hexdigest()[:12]


def fmt(v, spec="{}"):
    return "-" if v is None else spec.format(v)


def print_speed(rows: list[dict], dense: dict | None):
    print("\n== Speed (wall; CPU seconds beside: the machine may be shared) ==")
    print(f"{'model':9} {'golden/s':>10} {'CPU s':>6} {'hls4ml/s':>9} {'ratio':>6} {'build s':>8} {'CPU s':>6} {'peak MB':>7} {'RTL sim vec/s':>13}")
    for r in rows:
        if "golden_per_s" not in r:
            continue
        ratio = r["golden_per_s"] / r["hls4ml_per_s"] if r.get("hls4ml_per_s") else None
        print(f"{r['model']:9} {r['golden_per_s']:>10,.0f} {r['golden_cpu_s']:>6.3f} {fmt(r.get('hls4ml_per_s'), '{:,.0f}'):>9} "
              f"{fmt(ratio, '{:.0f}x'):>6} {r['build_s']:>8.2f} {r['build_cpu_s']:>6.2f} {r['build_mb']:>7.0f} {fmt(r.get('sim_per_s'), '{:,.0f}'):>13}")  # fmt: skip
    if dense:
        print(f"float dense 16x200x200x200x200x200x5 ({dense['params']:,} parameters, fixed<16,6>): build {dense['build_s']:.1f} s "
              f"({dense['build_cpu_s']:.1f} s CPU), peak {dense['peak_mb']:.0f} MB")  # fmt: skip


def print_table(rows: list[dict]):
    print("\n== rtlgen vs alkaid 0.8.2 (Yosys synth_xilinx, same latency) ==")
    print(f"{'model':9} {'lv':>2} {'cyc':>3} {'LUT rtlgen':>10} {'alkaid':>7} {'ratio':>6} {'FF rtlgen':>9} {'alkaid':>7} "
          f"{'DSP':>5} {'delay ns':>9} {'alkaid':>7} {'golden==HGQ2':>12} {'RTL==golden':>11} {'alkaid==Keras':>13}")  # fmt: skip
    for r in rows:
        ratio = r["rtlgen_lut"] / r["alkaid_lut"] if r.get("alkaid_lut") else None
        print(f"{r['model']:9} {r['levels']:>2} {r['cycles']:>3} {fmt(r.get('rtlgen_lut')):>10} {fmt(r.get('alkaid_lut')):>7} "
              f"{fmt(ratio, '{:.2f}'):>6} {fmt(r.get('rtlgen_ff')):>9} {fmt(r.get('alkaid_ff')):>7} "
              f"{fmt(r.get('rtlgen_dsp'))}/{fmt(r.get('alkaid_dsp')):<3} {fmt(r.get('rtlgen_path_delay_ns'), '{:.2f}'):>9} "
              f"{fmt(r.get('alkaid_path_delay_ns'), '{:.2f}'):>7} {fmt(r['golden_exact']):>12} {fmt(r.get('rtl_exact')):>11} "
              f"{fmt(r['alkaid_exact']):>13}")  # fmt: skip


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="openml,cernbox," + ",".join(SYNTHETIC))
    ap.add_argument("--levels", default="3", help="comma-separated rtlgen AdderLevels")
    ap.add_argument("--target", default="xcup", choices=("xc7", "xcup"))
    ap.add_argument("--samples", type=int, default=20000, help="inputs for golden == HGQ2")
    ap.add_argument("--vectors", type=int, default=1000, help="vectors for RTL == golden")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--work", default=str(HERE / "work" / "alkaid"))
    ap.add_argument("--venv", default=str(HERE / ".venv-alkaid"))
    ap.add_argument("--speed-samples", type=int, default=100_000, help="inputs for the predict timings")
    ap.add_argument("--sim-vectors", type=int, default=20_000, help="vectors for the RTL simulation speed")
    ap.add_argument("--no-hls4ml", action="store_true")
    ap.add_argument("--no-dense", action="store_true", help="skip the float 200-wide network's build")
    ap.add_argument("--no-synth", action="store_true")
    ap.add_argument("--no-sim", action="store_true")
    args = ap.parse_args(argv)
    ensure_env(Path(args.venv))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import hgq  # noqa: F401 - registers HGQ2's layers with Keras before a saved model loads

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(HERE))
    rows = [bench(m, int(lv), args, work) for m in args.models.split(",") if m for lv in args.levels.split(",")]
    dense = None if args.no_dense else dense_float(work)
    (work / "results.json").write_text(json.dumps({"models": rows, "dense": dense}, indent=1))
    print_table(rows)
    print_speed(rows, dense)


if __name__ == "__main__":
    main()
