"""The ``rtlgen`` command line: build, sim, synth.

User errors print one ``error: ...`` line and exit with status 2 (no traceback unless ``--debug``);
a simulation with mismatches exits with status 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from .errors import RtlgenError

__all__ = ["main"]


def _print_layers(report: dict) -> None:
    rows = [("layer", "op", "output", "reuse", "latency", "interval")]
    for layer in report["layers"]:
        rows.append(
            (
                layer["name"],
                layer["op"],
                f"{layer['output']['type']} x{layer['output']['shape'][0]}",
                str(layer.get("reuse_factor", "")),
                str(layer["latency"]),
                str(layer["interval"]),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


def cmd_build(args) -> int:
    from .config import load_config
    from .design import convert

    t0 = time.perf_counter()
    if (args.model is None) == (args.example is None):
        raise RtlgenError("give either a model file or --example NAME (for example: --example jet-tagger)")
    cfg = load_config(args.config)
    if args.reuse is not None:
        if args.reuse < 1:
            raise RtlgenError(f"--reuse must be a positive integer, not {args.reuse}")
        cfg.model["ReuseFactor"] = args.reuse
    if args.example is not None:
        from .examples import example_model

        model = example_model(args.example)
        source = f"example {args.example}"
    else:
        model = args.model
        source = args.model
    design = convert(model, cfg, skip_softmax=args.skip_softmax, dump_dir=args.dump_ir)
    out = design.write(args.output, n_vectors=args.vectors)
    report = design.report()
    tin, tout = report["input"], report["output"]
    print(f"rtlgen build: {source} -> {out}")
    print(f"  input  {tin['name']}: {tin['type']} x{tin['shape'][0]}")
    _print_layers(report)
    print(f"  output {tout['name']}: {tout['type']} x{tout['shape'][0]}")
    for note in report["notes"]:
        print(f"  note: {note}")
    print(f"  latency {design.latency} cycles, initiation interval {design.initiation_interval} cycle(s)")
    print(f"  wrote rtl/{design.top_name}.v, tb/ ({args.vectors} vectors), report.json, config.yml, graph.json")
    print(f"  built in {time.perf_counter() - t0:.1f} s")
    return 0


def _load_vectors(design, path: str):
    import numpy as np

    try:
        x = np.load(path)
    except (OSError, ValueError) as e:
        raise RtlgenError(f"vectors file {path!r} cannot be read as a .npy array ({e})") from None
    if x.dtype.kind in "iu":
        return x.reshape(x.shape[0], -1).astype(np.int64)
    return design.quantize_input(x)


def cmd_sim(args) -> int:
    from .design import load_design
    from .sim.runner import SimulationError, run, write_testbench

    design = load_design(args.out)
    out = Path(args.out)
    tb = out / "tb"
    if args.vectors is not None:
        m = _load_vectors(design, args.vectors)
    else:
        m = design.random_inputs(args.random if args.random is not None else 1000, args.seed)
    write_testbench(tb, m, design.predict_int(m), design.tb_meta())
    print(f"rtlgen sim: {len(m)} vectors on {args.simulator} (stall pattern: {args.stall})")
    try:
        res = run(tb, simulator=args.simulator, stall=args.stall, seed=args.seed)
    except SimulationError as e:
        raise RtlgenError(str(e)) from None
    print(f"  mismatches: {res['mismatches']} of {res['n_vectors']} vectors")
    for mm in res.get("first_mismatches", [])[:5]:
        print(
            f"    {mm.get('phase', '')} sample {mm['sample']} lane {mm['lane']}: "
            f"expected {mm['expected']}, got {mm['got']}"
        )
    print(f"  latency:  measured {res.get('latency_measured')} cycles, reported {res.get('latency_expected')}")
    print(f"  interval: measured {res.get('interval_measured')} cycles, reported {res.get('interval_expected')}")
    if "vectors_per_second" in res:
        print(f"  {res['vectors_per_second']:.0f} vectors/s")
    for f in res.get("failures", []):
        print(f"  FAIL: {f}")
    ok = res.get("passed", res["mismatches"] == 0)
    print("  PASS" if ok else "  FAIL")
    return 0 if ok else 1


def cmd_synth(args) -> int:
    from .design import load_design
    from .synth import SynthesisError

    design = load_design(args.out)
    out = Path(args.out)
    print(f"rtlgen synth: {design.top_name} for {args.target} (Yosys)")
    try:
        res = design.synthesize(target=args.target, work_dir=out / "synth" / args.target, dsp=not args.no_dsp)
    except SynthesisError as e:
        raise RtlgenError(str(e)) from None
    for key in ("lut", "ff", "dsp", "bram", "carry"):
        print(f"  {key.upper():<6}{res.get(key)}")
    if res.get("path_delay_ns") is not None:
        print(f"  path delay estimate: {res['path_delay_ns']:.2f} ns")
    print(f"  yosys: {res.get('yosys_seconds', 0):.1f} s")
    report_path = out / "report.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    report.setdefault("synthesis", {})[args.target] = {k: v for k, v in res.items() if k != "log"}
    report_path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    print(f"  written to {report_path}")
    return 0


def cmd_config(args) -> int:
    from .config import generate, load_config
    from .design import convert

    cfg = load_config(None)
    if args.precision:
        cfg.model["Precision"] = args.precision
        cfg._validate()
    design = convert(args.model, cfg, skip_softmax=args.skip_softmax, reuse_check=False)
    sys.stdout.write(generate(design, granularity=args.granularity, precision=args.precision, reuse=args.reuse))
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rtlgen", description="Quantized neural networks to bit-exact Verilog.")
    p.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    b = sub.add_parser("build", help="convert a model into Verilog, a testbench and a report")
    b.add_argument("model", nargs="?", help="ONNX/QONNX model file")
    b.add_argument("--example", help="build a bundled example model instead (jet-tagger)")
    b.add_argument("-o", "--output", required=True, help="output directory")
    b.add_argument("--config", help="hls4ml-style YAML configuration")
    b.add_argument("--reuse", type=int, help="model-wide reuse factor (overrides the config's Model.ReuseFactor)")
    b.add_argument("--skip-softmax", action="store_true", help="build up to the logits of a final Softmax")
    b.add_argument("--vectors", type=int, default=1000, help="random test vectors written to tb/ (default 1000)")
    b.add_argument("--dump-ir", metavar="DIR", help="write the IR graph as JSON after every pass")
    b.set_defaults(func=cmd_build)

    s = sub.add_parser("sim", help="simulate a build against its golden model")
    s.add_argument("out", help="build directory")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--vectors", help=".npy of float network inputs (or integer input mantissas)")
    g.add_argument("--random", type=int, help="this many random input vectors (default 1000)")
    s.add_argument("--simulator", default="verilator", choices=["verilator", "icarus"])
    s.add_argument("--stall", default="none", choices=["none", "random"], help="input gaps and output backpressure")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=cmd_sim)

    c = sub.add_parser("config", help="print a complete, commented configuration for a model")
    c.add_argument("model", help="model file")
    c.add_argument("--granularity", default="name", choices=["model", "type", "name"])
    c.add_argument("--precision", help="default precision, e.g. fixed<16,6>")
    c.add_argument("--reuse", type=int, help="reuse factor (per layer: the largest valid one not above it)")
    c.add_argument("--skip-softmax", action="store_true")
    c.set_defaults(func=cmd_config)

    y = sub.add_parser("synth", help="synthesize a build with Yosys and report resources")
    y.add_argument("out", help="build directory")
    y.add_argument("--target", default="xc7", choices=["xc7", "xcup", "ice40"])
    y.add_argument("--no-dsp", action="store_true", help="map multipliers to LUTs instead of DSPs")
    y.set_defaults(func=cmd_synth)
    return p


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except RtlgenError as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
