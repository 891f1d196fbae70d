"""The ``rtlgen`` command line: build, sim, synth, report, profile, trace, config, boards, deploy,
assess, sweep, workflow.

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
    cpu0 = _cpu_s()
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
    if args.vectors < 1:
        raise RtlgenError(f"--vectors must be a positive integer, not {args.vectors}")
    design = convert(model, cfg, skip_softmax=args.skip_softmax, dump_dir=args.dump_ir, strict=args.strict)
    out = design.write(args.output, n_vectors=args.vectors, boards=[args.board] if args.board else [], force=args.force)
    report = design.report()
    # Design.write may already have written it.
    _write_html(out, report, only_if_missing=True)
    tin, tout = report["input"], report["output"]
    print(f"rtlgen build: {source} -> {out}")
    print(f"  input  {tin['name']}: {tin['type']} x{tin['shape'][0]}")
    _print_layers(report)
    print(f"  output {tout['name']}: {tout['type']} x{tout['shape'][0]}")
    for note in report["notes"]:
        print(f"  note: {note}")
    print(f"  latency {design.latency} cycles, initiation interval {design.initiation_interval} cycle(s)")
    print(f"  wrote rtl/{design.top_name}.v, tb/ ({args.vectors} vectors), report.json, report.html, config.yml, graph.json")
    if args.board:
        print(f"  board package: boards/{args.board.lower()}/ (see its README.md)")
        _print_board_summary(out, args.board.lower())
    print(f"  built in {time.perf_counter() - t0:.1f} s ({_cpu_s() - cpu0:.1f} s CPU), peak memory {_peak_mb():.0f} MB")
    return 0


def _cpu_s() -> float:
    """CPU seconds of this process and of its children that have ended (adder-graph planning and
    the Verilog conversion run in forked processes)."""
    import resource

    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + c.ru_utime + c.ru_stime


def _peak_mb() -> float:
    """This process's peak resident memory in MB (VmHWM where Linux has it: ``ru_maxrss`` carries a
    parent's peak into a child across fork and exec)."""
    try:
        with open("/proc/self/status") as f:
            return next(int(ln.split()[1]) for ln in f if ln.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        import resource

        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return rss / (1024 * 1024 if sys.platform == "darwin" else 1024)


def cmd_deploy(args) -> int:
    from .boards import deploy

    out = Path(args.out)
    if not (out / "graph.json").is_file():
        raise RtlgenError(f"{str(out)!r} is not an rtlgen build directory (no graph.json); run rtlgen build first")
    pkg = deploy(out, args.board)
    print(f"rtlgen deploy: {out} -> {pkg} (see {pkg / 'README.md'})")
    _print_board_summary(out, pkg.name)
    return 0


def _print_board_summary(out: Path, board: str) -> None:
    """The lines a board backend left in report.json (bitstream, Fmax against the board clock)."""
    try:
        entry = json.loads((out / "report.json").read_text()).get("boards", {}).get(board, {})
    except (OSError, json.JSONDecodeError):
        return
    for line in entry.get("summary", []):
        print(f"  {line}")


def _load_vectors(design, path: str):
    import numpy as np

    try:
        x = np.load(path)
    except (OSError, ValueError) as e:
        raise RtlgenError(f"vectors file {path!r} cannot be read as a .npy array ({e})") from None
    t = design.input_tensor
    where = f"vectors file {path!r}"
    if x.dtype.kind not in "iuf" or x.ndim < 1 or len(x) == 0:
        raise RtlgenError(
            f"{where} holds {x.dtype} values of shape {x.shape}; expected numbers of shape "
            f"(N, {', '.join(map(str, t.shape))}) with N >= 1"
        )
    if int(np.prod(x.shape[1:])) != t.size:
        raise RtlgenError(f"{where} has shape {x.shape}; expected (N, {', '.join(map(str, t.shape))}) for input {t.name!r}")
    x = x.reshape(len(x), -1)
    if x.dtype.kind in "iu":
        lo, hi = t.type.min_mantissa, t.type.max_mantissa
        bad = (x < lo) | (x > hi)
        if bad.any():
            raise RtlgenError(
                f"{where}: {int(bad.sum())} integer values lie outside the input mantissas of {t.type} "
                f"([{lo}, {hi}]), first in sample {int(np.argmax(bad.any(axis=1)))}; give mantissas in range or float inputs"
            )
        return x.astype(np.int64)
    bad = ~np.isfinite(x)
    if bad.any():
        n = int(bad.sum())
        raise RtlgenError(
            f"{where}: {n} value{'s are' if n > 1 else ' is'} not finite (NaN or infinity), first in sample "
            f"{int(np.argmax(bad.any(axis=1)))}; give finite network inputs"
        )
    return design.quantize_input(x)


def cmd_sim(args) -> int:
    from .design import load_design
    from .sim.runner import SimulationError, run, write_testbench

    design = load_design(args.out)
    out = Path(args.out)
    tb = out / "tb"
    if args.random is not None and args.random < 1:
        raise RtlgenError(f"--random must be a positive integer, not {args.random}")
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


class _Progress:
    """Live one-line status of a long step on a terminal (rich), silent otherwise."""

    def __init__(self, enabled: bool = True):
        self.status = None
        self.console = None
        self.last = None
        self.plain = False
        if not enabled or not sys.stderr.isatty():
            return
        try:
            from rich.console import Console
        except ImportError:
            print("  (live progress needs rich: pip install 'rtlgen[report]')", file=sys.stderr)
            self.plain = True
            return
        self.console = Console(stderr=True)

    def __enter__(self):
        if self.console is not None:
            self.status = self.console.status("starting")
            self.status.__enter__()
        return self

    def __exit__(self, *exc):
        if self.status is not None:
            self.status.__exit__(*exc)
        return False

    def __call__(self, text: str) -> None:
        if self.status is not None:
            self.status.update(text)
        elif self.plain:
            step = text.rsplit(" (", 1)[0]
            if step != self.last:
                self.last = step
                print(f"  {step}", file=sys.stderr)


def _write_html(out: Path, report: dict, *, only_if_missing: bool = False) -> None:
    """Write OUT/report.html (saying so when it cannot have plots)."""
    from .report_html import MISSING_PLOTS, plots_available, write_html

    path = out / "report.html"
    if only_if_missing and path.exists():
        return
    write_html(report, path)
    if not plots_available():
        print(f"  note: report.html has tables but no plots: {MISSING_PLOTS}")


def _compare_io(design, res: dict, args, work: Path) -> dict:
    """Synthesize the same network with the other interface and print both side by side."""
    from .synth import SynthesisError

    other_io = "io_parallel" if design.config.io_type == "io_stream" else "io_stream"
    other = design.with_io_type(other_io)
    print(f"  synthesizing the {other_io} variant for comparison ...")
    try:
        r2 = other.synthesize(target=args.target, work_dir=work / other_io, dsp=not args.no_dsp)
    except SynthesisError as e:
        raise RtlgenError(str(e)) from None
    keys = ("lut", "ff", "dsp", "bram", "carry")
    table = {
        design.config.io_type: {**{k: res.get(k) for k in keys}, "latency": design.latency, "interval": design.initiation_interval},
        other_io: {**{k: r2.get(k) for k in keys}, "latency": other.latency, "interval": other.initiation_interval},
    }
    rows = [("", *(k.upper() for k in keys), "latency", "interval")]
    rows += [(io, *(_fmt_count(v[k]) for k in keys), str(v["latency"]), str(v["interval"])) for io, v in table.items()]
    _print_rows(rows)
    return table


def _fmt_count(v) -> str:
    return "-" if v is None else f"{v:,.0f}" if isinstance(v, (int, float)) else str(v)


def _resource_rows(report: dict, res: dict) -> list[tuple]:
    keys = ("lut", "ff", "dsp", "bram", "carry")
    rows = [("", *(k.upper() for k in keys))]
    per = res.get("layers", {})
    names = [lay["name"] for lay in report.get("layers", [])]
    for name in [n for n in names if n in per] + sorted(n for n in per if n not in names):
        rows.append((name, *(_num(per[name].get(k)) for k in keys)))
    if any(res.get("toplevel", {}).get(k) for k in keys):
        rows.append(("(top level)", *(_num(res["toplevel"].get(k)) for k in keys)))
    rows.append(("total", *(_num(res.get(k)) for k in keys)))
    if res.get("available"):
        rows.append((res.get("part", "available"), *(_num(res["available"].get(k)) for k in keys)))
        util = res.get("utilisation", {})
        rows.append(("utilisation", *(f"{util[k]:g}%" if util.get(k) is not None else "-" for k in keys)))
    return rows


def _num(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return f"{v:g}" if isinstance(v, float) else str(v)


def _print_rows(rows: list[tuple], indent: str = "  ") -> None:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print(indent + "  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip())


def cmd_synth(args) -> int:
    from .design import load_design
    from .synth import SynthesisError, find_part, place_and_route, synthesize_layers

    design = load_design(args.out)
    out = Path(args.out)
    try:
        part = find_part(args.target, args.part)
    except ValueError as e:
        raise RtlgenError(str(e)) from None
    work = out / "synth" / args.target
    work.mkdir(parents=True, exist_ok=True)
    src = out / "rtl" / f"{design.top_name}.v"
    if not src.exists():
        src = work / f"{design.top_name}.v"
        src.write_text(design.verilog)
    pnr = args.target == "ice40" and not args.no_pnr
    report_path = out / "report.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else design.report()
    print(f"rtlgen synth: {design.top_name} for {args.target} ({part.name}) with Yosys" + (" and nextpnr" if pnr else ""))
    t0 = time.perf_counter()
    try:
        with _Progress() as progress:
            res = synthesize_layers(
                [src], design.top_name, target=args.target, workdir=work, dsp=not args.no_dsp, part=part.name,
                netlist=pnr, progress=progress,
            )  # fmt: skip
            if pnr:
                res["pnr"] = _place_and_route(res, part, work, args.seed, progress, place_and_route, report)
    except SynthesisError as e:
        raise RtlgenError(str(e)) from None
    _print_rows(_resource_rows(report, res))
    for note in res.get("notes", []):
        print(f"  note: {note}")
    if res.get("path_delay_ns"):
        print(
            f"  path delay estimate: {res['path_delay_ns']:.2f} ns (~{res['fmax_estimate_mhz']:g} MHz; Yosys' timing "
            f"model, logic delays only, no routing: an estimate, not a timing sign-off)"
        )
    elif args.target != "ice40":
        print("  path delay estimate: none (Yosys has no timing model for some cells of this netlist)")
    p = res.get("pnr")
    if p:
        if p.get("fmax_mhz"):
            lc = p.get("used", {}).get("ICESTORM_LC")
            print(
                f"  place and route on {p['part']}: Fmax {p['fmax_mhz']:g} MHz"
                + (f", {lc} of {p['available'].get('ICESTORM_LC')} logic cells" if lc else "")
                + f" (nextpnr, seed {p['seed']}; a serial I/O shell of {res.get('shell_bits')} register bits holds the ports)"
            )
            print(f"  latency {report.get('latency_cycles')} cycles = {1000.0 * (report.get('latency_cycles') or 0) / p['fmax_mhz']:.1f} ns at Fmax")
        else:
            print(f"  place and route on {p['part']}: {p.get('reason')}")
    print(f"  yosys: {res.get('yosys_seconds', 0):.1f} s" + (f", nextpnr: {p['seconds']:.1f} s" if p and p.get("seconds") else "") + f", total {time.perf_counter() - t0:.1f} s")
    entry = {k: v for k, v in res.items() if k not in ("log", "netlist")}
    if args.compare_io:
        entry["compare_io"] = _compare_io(design, res, args, work)
    report.setdefault("synthesis", {})[args.target] = entry
    report_path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    _write_html(out, report)
    print(f"  written to {report_path} and {out / 'report.html'}")
    return 0


def _place_and_route(res: dict, part, work: Path, seed: int, progress, place_and_route, report: dict) -> dict:
    """nextpnr on the synthesized netlist, unless the counts already show it cannot fit."""
    need = {"LUT4s": res["lut"], "flip-flops": res["ff"] + (res.get("shell_bits") or 0)}
    over = [f"{n} {what}" for what, n in need.items() if n > part.lut]
    if res.get("dsp", 0) > part.dsp:
        over.append(f"{res['dsp']} DSPs ({part.dsp} available)")
    if res.get("bram", 0) > part.bram:
        over.append(f"{res['bram']:g} block RAMs ({part.bram:g} available)")
    if not over:
        pnr = place_and_route(work / res["netlist"], part=part.name, workdir=work, seed=seed, progress=progress)
        if not pnr["fits"]:
            # The counts fit but nextpnr's packing does not (flip-flops that take a cell alone).
            pnr["reason"] = f"does not fit: {pnr['reason']}; {_fit_advice(res, part, report)}"
        return pnr
    return {
        "tool": "nextpnr-ice40", "part": part.name, "fits": False, "fmax_mhz": None, "seconds": 0.0, "seed": seed,
        "reason": f"does not fit: needs {' and '.join(over)}; the {part.name} has {part.lut} logic cells; {_fit_advice(res, part, report)}",
    }  # fmt: skip


def _fit_advice(res: dict, part, report: dict) -> str:
    """What to change when the design does not fit ``part``."""
    from .synth import PARTS

    # What the reuse factor can shrink: layers with weights. The rest stays whatever the factor.
    layers = {lay["name"]: lay for lay in report.get("layers", [])}
    fixed = sum(r["lut"] for name, r in res.get("layers", {}).items() if "weights" not in layers.get(name, {}))
    fixed += res.get("toplevel", {}).get("lut", 0)
    weighted = [lay for lay in layers.values() if lay.get("weights")]
    at_max = weighted and all(lay.get("reuse_factor") == lay["weights"] for lay in weighted)
    larger = [p.name for p in PARTS.values() if p.target == part.target and p.lut > part.lut]
    bigger = "pick a larger part" if larger else f"no larger {part.target} part exists: use a larger FPGA family"
    advice = "raise the reuse factor" + (" or pick a larger part" if larger else "")
    if at_max:
        advice = f"every layer with weights already uses one multiplier (its largest reuse factor): {bigger}"
        if fixed:
            advice += f"; the layers without weights need {fixed} LUT4s of it"
    elif fixed > part.lut:
        advice = f"the layers without weights alone need {fixed} LUT4s, which no reuse factor changes: {bigger}"
    elif fixed:
        advice += f" (layers without weights need {fixed} LUT4s whatever the reuse factor)"
    return advice


def cmd_report(args) -> int:
    from .report import summary_text

    out = Path(args.out)
    path = out / "report.json"
    if not path.exists():
        raise RtlgenError(f"{str(out)!r} has no report.json; run 'rtlgen build' first")
    try:
        report = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise RtlgenError(f"{str(path)!r} is not valid JSON ({e})") from None
    sys.stdout.write(summary_text(report))
    if args.html:
        _write_html(out, report)
        print(f"  wrote {out / 'report.html'}")
    return 0


def _load_data(path: str):
    import numpy as np

    if not Path(path).exists():
        raise RtlgenError(f"data file {path!r} does not exist")
    try:
        x = np.load(path)
    except Exception as e:  # np.load raises many kinds (OSError, ValueError, EOFError, UnpicklingError)
        raise RtlgenError(f"data file {path!r} cannot be read as a .npy array ({type(e).__name__}: {e})") from None
    if not isinstance(x, np.ndarray):
        raise RtlgenError(f"data file {path!r} holds several arrays; give one .npy array of network inputs")
    if x.dtype.kind not in "fiu" or x.ndim < 1:
        raise RtlgenError(f"data file {path!r} must hold numbers with the batch first, not {x.dtype} {x.shape}")
    return x.astype(np.float64) if x.dtype.kind != "f" else x


def cmd_profile(args) -> int:
    import yaml

    from .profiling import numerical, suggest

    x = _load_data(args.data)
    if args.limit:
        x = x[: args.limit]
    from .config import load_config

    cfg = load_config(args.config)
    prof = numerical(args.model, cfg, x, skip_softmax=args.skip_softmax, margin=args.margin)
    print(f"rtlgen profile: {args.model} on {len(x)} samples of {args.data}")
    sys.stdout.write(prof.table())
    print(f"  {prof.overflows} overflowing values" + (f" at {sum(1 for s in prof.sites if s.overflows)} casts" if prof.overflows else ""))
    for s in prof.unconfigurable():
        print(f"  note: {s.layer}: the model's own quantizer {s.type} clips {s.overflows} values; retrain or change the model to widen it")
    if args.plot:
        prof.plot(args.plot)
        print(f"  plot written to {args.plot}")
    if args.json:
        Path(args.json).write_text(json.dumps(prof.to_dict(), indent=2) + "\n")
        print(f"  profile written to {args.json}")
    if args.apply:
        new, rounds = suggest(args.model, cfg, x, skip_softmax=args.skip_softmax, margin=args.margin)
        Path(args.apply).write_text(yaml.safe_dump(new, sort_keys=True))
        last = rounds[-1]
        print(f"  suggested configuration written to {args.apply} ({len(rounds) - 1} round(s) of widening)")
        print(f"  with it: {last.overflows} overflowing values" + (" (the rest are in the model's own quantizers)" if last.overflows else ""))
    elif prof.suggestion():
        print("  add --apply NEW.yml to write a configuration with the suggested types")
    return 0


def cmd_trace(args) -> int:
    import numpy as np

    from .design import convert, load_design
    from .profiling import trace

    x = _load_data(args.data)
    if args.limit:
        x = x[: args.limit]
    model = None
    if Path(args.model).is_dir():
        design = load_design(args.model)
        model = args.framework_model
    else:
        design = convert(args.model, args.config, skip_softmax=args.skip_softmax)
        model = args.framework_model or args.model
    tr = trace(design, x, None if args.no_framework else model)
    print(f"rtlgen trace: {design.graph.name} on {len(x)} samples of {args.data}")
    if tr.framework:
        print(f"  golden model against {tr.framework_name} ({len(tr.framework)} of {len(tr.golden)} tensors matched):")
        sys.stdout.write(tr.summary())
    else:
        print(f"  golden model only ({tr.reason or 'no framework'}); {len(tr.golden)} tensors:")
        for name, v in tr.golden.items():
            t = design.graph.tensors[name]
            print(f"  {name:<24} {str(t.type):<28} [{float(np.min(v)):.4g}, {float(np.max(v)):.4g}]")
    if args.output:
        arrays = {f"golden/{k}": v for k, v in tr.golden.items()}
        arrays.update({f"framework/{k}": v for k, v in tr.framework.items()})
        np.savez_compressed(args.output, **arrays)
        print(f"  written to {args.output}")
    return 0


def cmd_assess(args) -> int:
    import numpy as np

    from .assess import assess, format_table

    out = Path(args.out)
    if not (out / "graph.json").is_file():
        raise RtlgenError(f"{str(out)!r} is not an rtlgen build directory (no graph.json); run rtlgen build first")
    x = _load_data(args.data)  # checks the file; floats
    raw = np.load(args.data)
    if raw.dtype.kind in "iu":
        x = raw  # integer input mantissas go to the hardware as they are
    labels = None
    if args.labels:
        if not Path(args.labels).exists():
            raise RtlgenError(f"labels file {args.labels!r} does not exist")
        labels = np.load(args.labels)
    if args.limit:
        x = x[: args.limit]
        labels = None if labels is None else labels[: args.limit]
    target, port = args.target[0], None
    if target not in ("sim", "uart", "uart-sim"):
        raise RtlgenError(f"--target must be 'sim', 'uart PORT' or 'uart-sim', not {target!r}")
    if target == "uart":
        if len(args.target) != 2:
            raise RtlgenError("--target uart needs the serial port: --target uart /dev/ttyUSB1")
        port = args.target[1]
    elif len(args.target) != 1:
        raise RtlgenError(f"--target {target} takes no argument, not {' '.join(args.target[1:])!r}")
    model = args.model
    if args.example:
        from .examples import example_model

        model = example_model(args.example)
    print(f"rtlgen assess: {out} on {len(x)} samples of {args.data} (target {' '.join(args.target)})")
    a = assess(out, x, labels, target=target, port=port, board=args.board, model=model, simulator=args.simulator,
               simulate=not args.no_sim)  # fmt: skip
    for line in format_table(a):
        print(f"  {line}")
    print(f"  written to {out / 'report.json'} and {out / 'report.html'}")
    bad = [r for r in a["rows"] if r.get("mismatches")]
    return 1 if bad else 0


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


def cmd_boards(args) -> int:
    from rtlgen.boards import BOARDS

    rows = [("board", "part", "processor", "clock", "title")]
    for b in BOARDS.values():
        rows.append((b.name, b.part_number, b.processor or "none (UART bridge)", f"{b.clock_mhz:g} MHz", b.title))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return 0


def cmd_sweep(args) -> int:
    from .sweep import run, summary

    if args.example:
        if len(args.paths) != 1:
            raise RtlgenError("with --example NAME give only the spec: rtlgen sweep --example jet-tagger SPEC.yml -o OUT")
        from .examples import example_model

        model, spec = example_model(args.example), args.paths[0]
    elif len(args.paths) != 2:
        raise RtlgenError("give a model file and a sweep spec: rtlgen sweep MODEL SPEC.yml -o OUT (or --example NAME SPEC.yml)")
    else:
        model, spec = args.paths
    if args.workers is not None and args.workers < 1:
        raise RtlgenError(f"--workers must be a positive integer, not {args.workers}")
    try:
        import distributed  # noqa: F401  (configures its loggers on import; quiet them unless --debug)
    except ImportError:
        raise RtlgenError("rtlgen sweep needs Dask distributed: pip install 'rtlgen[sweep]'") from None

    logging.getLogger("distributed").setLevel(logging.DEBUG if args.debug else logging.WARNING)
    # Without a live progress bar, each finished point (and the dashboard link) is a log line.
    logging.getLogger("rtlgen.sweep").setLevel(logging.DEBUG if args.debug else logging.INFO)
    print(f"rtlgen sweep: {args.example or model} with {spec} -> {args.output} (scheduler: {args.scheduler or 'local'})")
    res = run(
        model, spec, out=args.output, resume=args.resume or args.retry_failed, retry_failed=args.retry_failed,
        data=args.data, labels=args.labels, scheduler=args.scheduler, workers=args.workers,
        progress=False if args.no_progress else None,
    )  # fmt: skip
    sys.stdout.write(summary(res))
    return 0


def cmd_workflow(args) -> int:
    try:
        from .workflow import run
    except ImportError as e:
        raise RtlgenError(f"rtlgen workflow needs TensorFlow, Keras 3 and HGQ2 ({e.name} is missing): pip install 'rtlgen[keras]'") from None
    out = args.output or str(Path("workflow-out") / Path(args.spec).resolve().parent.name)
    run(args.spec, out, restart=args.restart, progress=False if args.no_progress else None)
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
    b.add_argument("--board", help="also write a board package to OUT/boards/BOARD/ (rtlgen boards lists them)")
    b.add_argument("--strict", action="store_true", help="refuse float weights or biases outside their configured types")
    b.add_argument("--force", action="store_true", help="build a design the size estimate says is far beyond every part")
    b.set_defaults(func=cmd_build)

    d = sub.add_parser("deploy", help="write a board package for an existing build")
    d.add_argument("out", help="build directory")
    d.add_argument("--board", required=True, help="board name (rtlgen boards lists them)")
    d.set_defaults(func=cmd_deploy)

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

    y = sub.add_parser("synth", help="synthesize a build with Yosys: resources per layer, utilisation, timing")
    y.add_argument("out", help="build directory")
    y.add_argument("--target", default="xc7", choices=["xc7", "xcup", "ice40"])
    y.add_argument("--part", help="device for utilisation (and place and route on iCE40), e.g. xc7a35t, xcvu9p, hx8k")
    y.add_argument("--no-dsp", action="store_true", help="map multipliers to LUTs instead of DSPs")
    y.add_argument("--no-pnr", action="store_true", help="iCE40: skip place and route with nextpnr")
    y.add_argument("--seed", type=int, default=1, help="nextpnr placement seed (default 1)")
    y.add_argument("--compare-io", action="store_true", help="also synthesize the other IOType (io_stream/io_parallel) and print both side by side")
    y.set_defaults(func=cmd_synth)

    r = sub.add_parser("report", help="print the report of a build")
    r.add_argument("out", help="build directory")
    r.add_argument("--html", action="store_true", help="also rewrite report.html")
    r.set_defaults(func=cmd_report)

    pr = sub.add_parser("profile", help="weight and activation ranges against the chosen types; suggested types")
    pr.add_argument("model", help="model file")
    pr.add_argument("--data", required=True, help=".npy of float network inputs, batch first")
    pr.add_argument("--config", help="hls4ml-style YAML configuration")
    pr.add_argument("--skip-softmax", action="store_true")
    pr.add_argument("--plot", help="write the box plots to this file (.png, .svg or .pdf)")
    pr.add_argument("--json", help="write the profile as JSON")
    pr.add_argument("--apply", metavar="NEW_YML", help="write the configuration with the suggested types")
    pr.add_argument("--margin", type=int, default=0, help="spare integer bits in suggested types (default 0)")
    pr.add_argument("--limit", type=int, help="use only the first N samples")
    pr.set_defaults(func=cmd_profile)

    a = sub.add_parser("assess", help="accuracy, agreement, latency, throughput and resources: framework, golden, RTL, board")
    a.add_argument("out", help="build directory")
    a.add_argument("--data", required=True, help=".npy of network inputs, batch first (floats, or integer input mantissas)")
    a.add_argument("--labels", help=".npy of class indices (N,) or one-hot rows (N, classes)")
    a.add_argument("--target", nargs="+", default=["sim"], metavar="sim|uart PORT|uart-sim",
                   help="sim (default): the RTL in a simulator; uart PORT: also the board over its UART bridge; "
                        "uart-sim: also the board top with its UART bridge in simulation, driven by the host client")  # fmt: skip
    a.add_argument("--board", help="board package to use (default: the build's only UART board package)")
    a.add_argument("--model", help="the source model file, for the framework row")
    a.add_argument("--example", help="the bundled example the build was made from (its model is the source)")
    a.add_argument("--simulator", default="verilator", choices=["verilator", "icarus"])
    a.add_argument("--limit", type=int, help="use only the first N samples")
    a.add_argument("--no-sim", action="store_true", help="leave out the RTL simulation (with --target uart: the board alone)")
    a.set_defaults(func=cmd_assess)

    bl = sub.add_parser("boards", help="list the boards a build can be deployed to")
    bl.set_defaults(func=cmd_boards)

    t = sub.add_parser("trace", help="every layer's output: golden model against the framework")
    t.add_argument("model", help="model file, or a build directory (golden model only unless --framework-model)")
    t.add_argument("--data", required=True, help=".npy of float network inputs, batch first")
    t.add_argument("--config", help="hls4ml-style YAML configuration")
    t.add_argument("--skip-softmax", action="store_true")
    t.add_argument("--framework-model", help="the model to run in its framework (default: MODEL)")
    t.add_argument("--no-framework", action="store_true", help="trace the golden model only")
    t.add_argument("--limit", type=int, help="use only the first N samples")
    t.add_argument("-o", "--output", help="write every traced tensor to this .npz")
    t.set_defaults(func=cmd_trace)

    w = sub.add_parser("sweep", help="build, check and synthesize every combination of a sweep spec on Dask")
    w.add_argument("paths", nargs="+", metavar="MODEL SPEC.yml", help="model file and sweep spec (only the spec with --example)")
    w.add_argument("--example", help="sweep a bundled example model instead (jet-tagger)")
    w.add_argument("-o", "--output", required=True, help="output directory (points, results, report.html)")
    w.add_argument("--scheduler", help="local (default), slurm, htcondor, or a Dask scheduler address")
    w.add_argument("--workers", type=int, help="workers (local) or worker processes to request (slurm, htcondor)")
    w.add_argument("--resume", action="store_true", help="continue a sweep in OUTPUT: run only points not yet recorded")
    w.add_argument("--retry-failed", action="store_true", help="resume, and also rerun the points recorded as failed")
    w.add_argument("--data", help=".npy of network inputs for the accuracy stage")
    w.add_argument("--labels", help=".npy of class indices (or one-hot rows) for --data")
    w.add_argument("--no-progress", action="store_true", help="no live progress bar")
    w.set_defaults(func=cmd_sweep)

    wf = sub.add_parser("workflow", help="teacher, distilled student, pruning, QAT, build, synthesis and assessment from a spec")
    wf.add_argument("spec", help="workflow spec (YAML)")
    wf.add_argument("-o", "--output", help="output directory (default: workflow-out/<the spec's folder name>)")
    wf.add_argument("--restart", metavar="STAGE", help="run again from this stage: data, teacher, student, baseline, prune, quantize, build, synth, assess")
    wf.add_argument("--no-progress", action="store_true", help="no progress bars")
    wf.set_defaults(func=cmd_workflow)
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
