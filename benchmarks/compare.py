"""rtlgen against its peers on the same models, in one run, as one table.

    python benchmarks/compare.py                 # all four jet taggers, synthesis included
    python benchmarks/compare.py --models hgq --no-synth
    python benchmarks/compare.py --scaling       # build and Yosys time and memory vs. MLP size

The peers are not project dependencies: on first use this script creates ``benchmarks/.venv``
(``python -m venv --system-site-packages``, so it sees the system's TensorFlow, Keras 3 and HGQ2),
installs da4ml 0.6.0 there (and hls4ml 1.3.0 if the system has no hls4ml), and re-runs itself with
that interpreter. rtlgen itself is used from the system installation. The QKeras model needs Keras 2:
it is trained, predicted and emulated by hls4ml in ``benchmarks/.venv-qkeras`` (``qkeras_peer.py``).

What is compared, per model:

* rtlgen and da4ml (distributed arithmetic, Verilog straight from the HGQ2 model): LUT, FF and DSP
  from the same Yosys ``synth_xilinx`` flow (:func:`rtlgen.synth.synthesize`), the latency in clock
  cycles (registers from input to output) at the same number of cycles, the path delay Yosys' ``sta``
  estimates, and whether each output equals HGQ2's predict bit for bit.
* hls4ml (Vitis backend, io_parallel, reuse 1: one DSP product per weight): its C++ emulation build
  (``compile()``) and ``predict`` on the same samples, against rtlgen's golden ``predict``.
* rtlgen's own ``rtlgen build`` (model to Verilog, IP and testbench, in a fresh process, with its
  peak memory), Yosys time, and the Verilator RTL simulation of 1,000 vectors against the golden model.
* ``--scaling``: QONNX 6-bit MLPs from 1k to 100k parameters: build time and peak memory, and Yosys'
  time and peak memory for each (``--yosys-timeout`` bounds a run).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv"
# pyosys: the native Yosys, for the scaling designs past the WebAssembly build's 4 GB.
PEERS = {"da4ml": "da4ml==0.6.0", "hls4ml": "hls4ml==1.3.0", "pyosys": "pyosys==0.70"}
# QKeras needs Keras 2: its model and hls4ml's emulation of it run in a second environment.
QKERAS_VENV = HERE / ".venv-qkeras"
QKERAS_PINS = ["tensorflow-cpu==2.14.1", "qkeras==0.9.0", "tensorflow-model-optimization==0.7.5", "pyparsing", "h5py", "hls4ml==1.3.0"]


def ensure_peer_env():
    """Re-run inside benchmarks/.venv with the peers installed there (never in the project)."""
    if Path(sys.prefix).resolve() == VENV.resolve():
        return
    py = VENV / "bin" / "python"
    if not py.exists():
        print(f"creating {VENV} for the peers (system site packages visible)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(VENV)], check=True)
    for mod, req in PEERS.items():
        probe = subprocess.run([str(py), "-c", f"import {mod}"], capture_output=True)
        if probe.returncode:
            print(f"installing {req} into {VENV}", flush=True)
            subprocess.run([str(py), "-m", "pip", "install", "-q", req], check=True)
    os.execv(str(py), [str(py), str(Path(__file__).resolve()), *sys.argv[1:]])


def cached(store: Path, key: str, fn):
    """``fn()``'s result, kept in ``store`` (JSON) so a re-run skips steps that already ran."""
    data = json.loads(store.read_text()) if store.exists() else {}
    if key not in data:
        data[key] = fn()
        store.write_text(json.dumps(data, indent=1))
    return data[key]


def timed(fn, *a, **kw):
    t = time.perf_counter()
    out = fn(*a, **kw)
    return out, time.perf_counter() - t


def best_time(fn, x, repeat: int = 2):
    """``fn(x)`` after a warm-up on a few samples; the best of ``repeat`` runs as (result, wall
    seconds, CPU seconds). CPU time is shown because the machine may be shared."""
    fn(x[:100])
    best = None
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        out = fn(x)
        w, c = time.perf_counter() - w, time.process_time() - c
        if best is None or w < best[1]:
            best = (out, w, c)
    return best


def run_build(model_path: Path, out: Path, config: Path | None, *extra: str) -> dict:
    """``rtlgen build`` in a fresh process (``extra``: more command-line arguments): wall time and
    peak resident memory."""
    code = (
        "import resource, sys, time\n"
        "t = time.perf_counter()\n"
        "from rtlgen.cli import main\n"
        "rc = main(sys.argv[1:])\n"
        "u = resource.getrusage(resource.RUSAGE_SELF)\n"
        # VmHWM, not ru_maxrss: Linux carries the spawning process's peak (here the benchmark's,
        # with TensorFlow loaded) into a child's ru_maxrss across fork and exec.
        "hwm = [ln.split()[1] for ln in open('/proc/self/status') if ln.startswith('VmHWM:')]\n"
        "print('BUILD', time.perf_counter() - t, hwm[0] if hwm else u.ru_maxrss, u.ru_utime + u.ru_stime, rc, file=sys.stderr)\n"
    )
    args = [sys.executable, "-c", code, "build", str(model_path), "-o", str(out)]
    if config:
        args += ["--config", str(config)]
    args += list(extra)
    t = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True)
    wall = time.perf_counter() - t
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("BUILD")]
    if proc.returncode or not line:
        raise RuntimeError(f"rtlgen build failed:\n{proc.stdout}\n{proc.stderr}")
    _, inner, rss, cpu, _ = line[-1].split()
    # CPU seconds beside wall time: on a shared machine the wall clock includes waiting for a core.
    return {"build_s": wall, "build_inner_s": float(inner), "build_cpu_s": float(cpu), "peak_mb": int(rss) / 1024}


def run_synth(model_path: Path, work: Path, timeout: float | None) -> dict:
    """Yosys ``synth_xilinx`` (xc7) of the model's Verilog in a fresh process, so the peak memory of
    its child (Yosys) is read on its own. A run past ``timeout`` seconds is reported as such."""
    code = (
        "import json, resource, sys\n"
        "import rtlgen\n"
        "from rtlgen.synth import synthesize\n"
        "d = rtlgen.convert(sys.argv[1]); w = __import__('pathlib').Path(sys.argv[2]); w.mkdir(parents=True, exist_ok=True)\n"
        "(w / 'top.v').write_text(d.verilog)\n"
        "t = None if sys.argv[3] == 'none' else float(sys.argv[3])\n"
        "r = synthesize([w / 'top.v'], d.top_name, target='xc7', workdir=w, timeout=t)\n"
        # An upper bound: the child's ru_maxrss includes this process's memory when it was spawned.
        "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"
        "from rtlgen.synth import yosys_backend\n"
        "print('SYNTH', json.dumps({'lut': r['lut'], 'ff': r['ff'], 'dsp': r['dsp'], 'yosys_s': r['yosys_seconds'], 'yosys_mb': peak, 'yosys': yosys_backend()}))\n"
    )
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, str(model_path), str(work), "none" if timeout is None else str(timeout)],
                          capture_output=True, text=True)  # fmt: skip
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("SYNTH ")]
    if proc.returncode or not line:
        timed_out = "timed out" in proc.stderr or "exceeded" in proc.stderr
        if timeout is not None and timed_out:
            return {"yosys_s": time.perf_counter() - t, "yosys_mb": None, "timed_out": True}
        raise RuntimeError(f"synthesis failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return json.loads(line[-1][len("SYNTH ") :])


def yaml_config(path: Path, levels: int) -> Path:
    path.write_text(f"Model:\n  AdderLevels: {levels}\n")
    return path


# -- da4ml ------------------------------------------------------------------------------------------


def da4ml_trace(model):
    from da4ml.converter import trace_model
    from da4ml.trace import HWConfig, comb_trace

    inp, out = trace_model(model, HWConfig(1, -1, -1), {"hard_dc": 2}, False)
    return comb_trace(inp, out)


def da4ml_latencies(comb, out: Path) -> dict[int, int]:
    """``{latency_cutoff: cycles}`` of da4ml's Verilog (input register + one per stage)."""
    from da4ml.codegen import RTLModel

    lat = {}
    for cut in range(1, 40):
        probe = RTLModel(comb, "model", out / f"probe{cut}", flavor="verilog", latency_cutoff=cut)
        lat[cut] = len(probe._pipe.solutions) + 1
        if lat[cut] <= 2:
            break
    return lat


def da4ml_rtl(comb, cut: int, out: Path):
    """da4ml Verilog at ``latency_cutoff`` ``cut``."""
    from da4ml.codegen import RTLModel

    rm = RTLModel(comb, "model", out / "da4ml", flavor="verilog", latency_cutoff=cut)
    _, gen_s = timed(rm.write)
    src = out / "da4ml" / "src"
    files = sorted(src.rglob("*.v"))
    if not any((src / "memfiles").glob("*")):
        # The lookup-table module is only used with table files; unused, it does not even parse.
        files = [f for f in files if f.name != "lookup_table.v"]
    return {"cutoff": cut, "cycles": len(rm._pipe.solutions) + 1, "files": files, "gen_s": gen_s}


def matched_levels(path: Path, levels: int, da_lat: dict[int, int]) -> tuple[int, int]:
    """rtlgen's ``AdderLevels`` nearest to ``levels`` whose latency da4ml also has at some
    cutoff, and that cutoff, so both are compared at the same number of cycles (else ``levels``
    and da4ml's nearest latency)."""
    import rtlgen

    for lv in sorted(range(1, 9), key=lambda v: (abs(v - levels), v)):
        cycles = rtlgen.convert(str(path), {"Model": {"AdderLevels": lv}}).latency
        cuts = [c for c, n in da_lat.items() if n == cycles]
        if cuts:
            return lv, max(cuts)
    cycles = rtlgen.convert(str(path), {"Model": {"AdderLevels": levels}}).latency
    return levels, min(da_lat, key=lambda c: (abs(da_lat[c] - cycles), -c))


# -- hls4ml ----------------------------------------------------------------------------------------


def hls4ml_run(model, x, out: Path) -> dict:
    import hls4ml

    cfg = hls4ml.utils.config_from_keras_model(model, granularity="name", backend="Vitis")
    t = time.perf_counter()
    hm = hls4ml.converters.convert_from_keras_model(
        model, hls_config=cfg, output_dir=str(out / "hls4ml"), backend="Vitis", io_type="io_parallel"
    )
    hm.compile()
    build_s = time.perf_counter() - t
    y, predict_s, predict_cpu = best_time(hm.predict, x)
    return {"build_s": build_s, "predict_s": predict_s, "predict_cpu_s": predict_cpu, "y": y}


# -- one model -------------------------------------------------------------------------------------


def bench_model(kind: str, args, work: Path) -> dict:
    import hgq  # noqa: F401 - registers HGQ2's layers with Keras before a saved model loads
    import keras
    import models
    import numpy as np

    import rtlgen

    mdir = work / kind
    mdir.mkdir(parents=True, exist_ok=True)
    path = mdir / f"jet_{kind}.keras"
    if not path.exists():
        print(f"[{kind}] training on synthetic data", flush=True)
        models.train(kind, path, epochs=args.epochs)
    model = keras.models.load_model(path, compile=False)
    x = models.test_inputs(args.samples)
    ref, hgq_s = timed(lambda: model.predict(x, batch_size=16384, verbose=0))
    res = {"model": kind, "samples": len(x), "hgq_predict_s": hgq_s}

    # The same number of cycles for rtlgen and da4ml: AdderLevels near --levels that da4ml can match.
    comb, trace_s = timed(da4ml_trace, model)
    levels, cut = matched_levels(path, args.levels, da4ml_latencies(comb, mdir))
    res["rtlgen_adder_levels"] = levels

    # rtlgen: golden model and build
    cfg = {"Model": {"AdderLevels": levels}}
    design, convert_s = timed(rtlgen.convert, str(path), cfg)
    y, golden_s, golden_cpu = best_time(design.predict, x)
    res.update(rtlgen_convert_s=convert_s, rtlgen_predict_s=golden_s, rtlgen_predict_cpu_s=golden_cpu, rtlgen_exact=bool(np.array_equal(y.astype(np.float32), ref)))
    res["rtlgen_cycles"] = design.latency
    res["weights_nonzero"] = int(sum(np.count_nonzero(n.op.weight) for n in design.graph.nodes if n.kind == "Dense"))
    res.update({f"rtlgen_{k}": v for k, v in run_build(path, mdir / "rtlgen_build", yaml_config(mdir / "cfg.yml", levels)).items()})
    print(f"[{kind}] rtlgen: build {res['rtlgen_build_s']:.2f} s ({res['rtlgen_build_cpu_s']:.2f} s CPU), golden == HGQ2: {res['rtlgen_exact']}", flush=True)
    if not args.no_sim:
        from rtlgen.sim.runner import available_simulators

        if "verilator" in available_simulators():

            def simulate():
                sim, sim_s = timed(design.simulate, x[:1000], work_dir=mdir / "sim")
                return {"rtlgen_sim_s": sim_s, "rtlgen_rtl_exact": bool(sim["passed"] and sim["mismatches"] == 0)}

            res.update(cached(mdir / "cache.json", f"sim-{levels}", simulate))
            print(f"[{kind}] rtlgen RTL (Verilator, 1000 vectors): {'== golden' if res['rtlgen_rtl_exact'] else 'MISMATCH'} in {res['rtlgen_sim_s']:.1f} s", flush=True)

    # da4ml: same HGQ2 model, same number of cycles
    yd = comb.predict(x).reshape(ref.shape).astype(np.float32)
    da = da4ml_rtl(comb, cut, mdir)
    res.update(da4ml_trace_s=trace_s, da4ml_gen_s=da["gen_s"], da4ml_cycles=da["cycles"], da4ml_exact=bool(np.array_equal(yd, ref)))
    print(f"[{kind}] da4ml: {da['cycles']} cycles (cutoff {da['cutoff']}), == HGQ2: {res['da4ml_exact']}", flush=True)

    # hls4ml: emulation build and predict
    if not args.no_hls4ml and shutil.which("g++"):
        h = hls4ml_run(model, x, mdir)
        yh = np.asarray(h["y"]).reshape(ref.shape).astype(np.float32)
        res.update(hls4ml_build_s=h["build_s"], hls4ml_predict_s=h["predict_s"], hls4ml_predict_cpu_s=h["predict_cpu_s"],
                   hls4ml_exact=bool(np.array_equal(yh, ref)))  # fmt: skip
        print(f"[{kind}] hls4ml: compile {h['build_s']:.1f} s, predict {h['predict_s']:.2f} s", flush=True)

    if not args.no_synth:
        from rtlgen.synth import synthesize

        r = cached(mdir / "cache.json", f"synth-rtlgen-{levels}",
                   lambda: design.synthesize(target="xc7", work_dir=mdir / "synth_rtlgen"))  # fmt: skip
        res.update({f"rtlgen_{k}": r[k] for k in ("lut", "ff", "dsp", "path_delay_ns", "yosys_seconds")})
        print(f"[{kind}] rtlgen synth: LUT {r['lut']} FF {r['ff']} DSP {r['dsp']} ({r['yosys_seconds']:.0f} s)", flush=True)
        r = cached(mdir / "cache.json", f"synth-da4ml-{da['cycles']}",
                   lambda: synthesize(da["files"], "model", target="xc7", workdir=mdir / "synth_da4ml"))  # fmt: skip
        res.update({f"da4ml_{k}": r[k] for k in ("lut", "ff", "dsp", "path_delay_ns", "yosys_seconds")})
        print(f"[{kind}] da4ml synth: LUT {r['lut']} FF {r['ff']} DSP {r['dsp']} ({r['yosys_seconds']:.0f} s)", flush=True)
    return res


def qkeras_python() -> Path:
    py = QKERAS_VENV / "bin" / "python"
    if not py.exists():
        print(f"creating {QKERAS_VENV} (Keras 2, QKeras, hls4ml) for the QKeras model", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(QKERAS_VENV)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", *QKERAS_PINS], check=True)
    return py


def bench_qkeras(args, work: Path) -> dict:
    """The QKeras 6-bit jet tagger: QKeras and hls4ml in their Keras 2 environment
    (:mod:`qkeras_peer`), rtlgen here from the saved .h5. da4ml 0.6 only traces Keras 3 (HGQ2)
    models; the ``uniform6`` model is the same arithmetic for it."""
    import numpy as np

    import rtlgen

    mdir = work / "qkeras"
    proc = subprocess.run([str(qkeras_python()), str(HERE / "qkeras_peer.py"), str(mdir), str(args.samples), str(args.epochs)])
    if proc.returncode:
        raise RuntimeError("the QKeras environment failed (see above)")
    ref = np.load(mdir / "qkeras_out.npz")
    x, y_ref = ref["x"], ref["y"]
    peer = json.loads((mdir / "qkeras_peer.json").read_text())
    path = mdir / "jet_qkeras.h5"
    res = {"model": "qkeras", "samples": len(x), "hgq_predict_s": None}
    cfg = {"Model": {"AdderLevels": args.levels}}
    design, convert_s = timed(rtlgen.convert, str(path), cfg)
    y, golden_s, golden_cpu = best_time(design.predict, x)
    res.update(rtlgen_convert_s=convert_s, rtlgen_predict_s=golden_s, rtlgen_predict_cpu_s=golden_cpu,
               rtlgen_exact=bool(np.array_equal(y.astype(np.float32), y_ref)), rtlgen_cycles=design.latency)  # fmt: skip
    res.update({f"rtlgen_{k}": v for k, v in run_build(path, mdir / "rtlgen_build", yaml_config(mdir / "cfg.yml", args.levels)).items()})
    res.update(peer)
    print(f"[qkeras] rtlgen: build {res['rtlgen_build_s']:.2f} s ({res['rtlgen_build_cpu_s']:.2f} s CPU), golden == QKeras: {res['rtlgen_exact']}", flush=True)
    if not args.no_sim:
        from rtlgen.sim.runner import available_simulators

        if "verilator" in available_simulators():
            sim, sim_s = timed(design.simulate, x[:1000], work_dir=mdir / "sim")
            res.update(rtlgen_sim_s=sim_s, rtlgen_rtl_exact=bool(sim["passed"] and sim["mismatches"] == 0))
    if not args.no_synth:
        r = cached(mdir / "cache.json", f"synth-rtlgen-{args.levels}",
                   lambda: design.synthesize(target="xc7", work_dir=mdir / "synth_rtlgen"))  # fmt: skip
        res.update({f"rtlgen_{k}": r[k] for k in ("lut", "ff", "dsp", "path_delay_ns", "yosys_seconds")})
        print(f"[qkeras] rtlgen synth: LUT {r['lut']} FF {r['ff']} DSP {r['dsp']} ({r['yosys_seconds']:.0f} s)", flush=True)
    return res


# -- scaling ---------------------------------------------------------------------------------------

SCALING = [(16, 32, 16, 5), (16, 64, 32, 32, 5), (32, 128, 64, 10), (64, 256, 128, 10), (128, 384, 128, 10)]


def bench_scaling(args, work: Path) -> list[dict]:
    import onnx

    from rtlgen.examples import qonnx_mlp

    rows = []
    for sizes in SCALING:
        params = int(sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:])))
        d = work / "scaling" / "-".join(map(str, sizes))
        d.mkdir(parents=True, exist_ok=True)
        path = d / "mlp.onnx"
        onnx.save(qonnx_mlp(sizes, name="mlp"), path)
        row = {"sizes": "-".join(map(str, sizes)), "params": params}
        row.update(run_build(path, d / "build", None))
        print(f"[scaling] {row['sizes']} ({params} parameters): build {row['build_s']:.1f} s "
              f"({row['build_cpu_s']:.1f} s CPU), peak {row['peak_mb']:.0f} MB", flush=True)  # fmt: skip
        if not args.no_synth and params <= args.scaling_synth_max:
            row.update(cached(d / "cache.json", "synth", lambda p=path, w=d: run_synth(p, w / "synth", args.yosys_timeout)))
            print(f"[scaling] {row['sizes']}: LUT {fmt(row.get('lut'))} FF {fmt(row.get('ff'))} "
                  f"Yosys {fmt(row['yosys_s'], '{:.0f}')} s, peak {fmt(row['yosys_mb'], '{:.0f}')} MB", flush=True)  # fmt: skip
        rows.append(row)
    return rows


# -- report ----------------------------------------------------------------------------------------


def fmt(v, spec="{:.2f}"):
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, float):
        return spec.format(v)
    return str(v)


def ratio(a, b):
    return f"{a / b:.2f}x" if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else "-"


def print_tables(results: list[dict], scaling: list[dict]):
    if results:
        print("\n== Synthesis: Yosys synth_xilinx (xc7), same flow for both ==")
        print(f"{'model':10} {'tool':7} {'LUT':>8} {'FF':>7} {'DSP':>4} {'cycles':>6} {'delay ns':>8} {'Yosys s':>8} {'== HGQ2':>7}  LUT ratio")
        for r in results:
            for tool in ("rtlgen", "da4ml"):
                print(
                    f"{r['model']:10} {tool:7} {fmt(r.get(f'{tool}_lut')):>8} {fmt(r.get(f'{tool}_ff')):>7} "
                    f"{fmt(r.get(f'{tool}_dsp')):>4} {fmt(r.get(f'{tool}_cycles')):>6} {fmt(r.get(f'{tool}_path_delay_ns')):>8} "
                    f"{fmt(r.get(f'{tool}_yosys_seconds'), '{:.0f}'):>8} {fmt(r.get(f'{tool}_exact')):>7}  "
                    + (ratio(r.get("rtlgen_lut"), r.get("da4ml_lut")) + " (rtlgen/da4ml)" if tool == "rtlgen" else "")
                )
        levels = ", ".join(f"{r['model']} {r['rtlgen_adder_levels']}" for r in results if "rtlgen_adder_levels" in r)
        if levels:
            print(f"  rtlgen AdderLevels chosen so both tools have the same cycles: {levels}")
        print("  (qkeras: da4ml 0.6 traces Keras 3 models only; uniform6 is the same arithmetic in HGQ2 for it; '== HGQ2' means == QKeras)")
        print(f"\n== Speed on {results[0]['samples']:,} samples (wall seconds; predict: best of 2 after a warm-up) ==")
        print(f"{'model':10} {'HGQ2':>7} {'rtlgen golden':>13} {'hls4ml predict':>14} {'speed-up':>8} {'hls4ml compile':>14} "
              f"{'rtlgen build':>12} {'CPU':>6} {'peak MB':>7} {'da4ml trace+gen':>15} {'RTL sim 1k':>10} {'RTL==golden':>11}")  # fmt: skip
        for r in results:
            print(
                f"{r['model']:10} {fmt(r['hgq_predict_s']):>7} {fmt(r['rtlgen_predict_s'], '{:.3f}'):>13} "
                f"{fmt(r.get('hls4ml_predict_s')):>14} {ratio(r.get('hls4ml_predict_s'), r['rtlgen_predict_s']):>8} "
                f"{fmt(r.get('hls4ml_build_s'), '{:.1f}'):>14} {fmt(r['rtlgen_build_s']):>12} {fmt(r['rtlgen_build_cpu_s']):>6} "
                f"{fmt(r['rtlgen_peak_mb'], '{:.0f}'):>7} "
                f"{fmt(r['da4ml_trace_s'] + r['da4ml_gen_s'] if 'da4ml_trace_s' in r else None):>15} {fmt(r.get('rtlgen_sim_s'), '{:.1f}'):>10} "
                f"{fmt(r.get('rtlgen_rtl_exact')):>11}"
            )
        for r in results:
            if "hls4ml_exact" in r:
                print(
                    f"  {r['model']}: predict CPU seconds: rtlgen golden {fmt(r['rtlgen_predict_cpu_s'], '{:.3f}')}, "
                    f"hls4ml {fmt(r['hls4ml_predict_cpu_s'])} ({ratio(r['hls4ml_predict_cpu_s'], r['rtlgen_predict_cpu_s'])}); "
                    f"hls4ml predict == {'QKeras' if r['model'] == 'qkeras' else 'HGQ2'}: {fmt(r['hls4ml_exact'])}"
                )
    if scaling:
        print("\n== rtlgen build cost against model size (QONNX 6-bit MLPs) ==")
        print(f"{'sizes':20} {'params':>7} {'build s':>8} {'CPU s':>7} {'peak MB':>8} {'LUT':>8} {'FF':>7} {'Yosys s':>8} {'Yosys MB':>8} {'Yosys':>7}")
        for r in scaling:
            ys = fmt(r.get("yosys_s"), "{:.0f}")
            ys = f">{ys}" if r.get("timed_out") else ys
            print(f"{r['sizes']:20} {r['params']:>7} {fmt(r['build_s']):>8} {fmt(r['build_cpu_s']):>7} {fmt(r['peak_mb'], '{:.0f}'):>8} "
                  f"{fmt(r.get('lut')):>8} {fmt(r.get('ff')):>7} {ys:>8} {fmt(r.get('yosys_mb'), '{:.0f}'):>8} {r.get('yosys', '-'):>7}")  # fmt: skip


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="hgq,uniform6,pruned,qkeras", help="comma-separated: hgq, uniform6, pruned, qkeras")
    ap.add_argument("--samples", type=int, default=100_000, help="samples for the predict timings")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--levels", type=int, default=3, help="rtlgen AdderLevels (adder levels per pipeline stage)")
    ap.add_argument("--work", default=str(HERE / "work"), help="where models, builds and logs go")
    ap.add_argument("--no-synth", action="store_true", help="skip Yosys (minutes per model)")
    ap.add_argument("--no-sim", action="store_true", help="skip the Verilator RTL simulation")
    ap.add_argument("--no-hls4ml", action="store_true")
    ap.add_argument("--scaling", action="store_true", help="also measure builds of MLPs from 1k to 100k parameters")
    ap.add_argument("--scaling-only", action="store_true")
    ap.add_argument("--scaling-synth-max", type=int, default=200_000, help="synthesize scaling MLPs up to this many parameters")
    ap.add_argument("--yosys-timeout", type=float, default=None, help="give up a scaling synthesis after this many seconds")
    args = ap.parse_args(argv)
    ensure_peer_env()
    sys.path.insert(0, str(HERE))
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    results, scaling = [], []
    if not args.scaling_only:
        for kind in [k for k in args.models.split(",") if k]:
            results.append(bench_qkeras(args, work) if kind == "qkeras" else bench_model(kind, args, work))
            (work / "results.json").write_text(json.dumps({"models": results}, indent=1))
    if args.scaling or args.scaling_only:
        scaling = bench_scaling(args, work)
    (work / "results.json").write_text(json.dumps({"models": results, "scaling": scaling}, indent=1))
    print_tables(results, scaling)


if __name__ == "__main__":
    main()
