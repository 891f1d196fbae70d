"""The hardware assessment: one table from the trained model to the board.

For a build and a data set, :func:`assess` runs every stage on the same samples and compares them:
the source framework (when its model is given), the golden model, the RTL in simulation, and a
board over its UART bridge (``target="uart"``). Each stage gets its accuracy (with labels) and its
agreement with the golden model (bit-exact samples for RTL and board; same top class and largest
difference for the framework, which computes in floats). The table adds latency in cycles and in
ns at the clock the design runs at, throughput, and resources with the utilisation of the part,
taken from what ``rtlgen synth`` and the board build measured. The result goes into
``report.json`` (``assessment``) and ``report.html``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import numpy as np

from .errors import RtlgenError

__all__ = ["assess", "format_table", "AssessError", "TARGETS"]

log = logging.getLogger(__name__)

TARGETS = ("sim", "uart", "uart-sim")


class AssessError(RtlgenError):
    """The assessment cannot run as asked (data, labels, target)."""


def _classes(y: np.ndarray) -> np.ndarray:
    return np.argmax(y, axis=1) if y.shape[1] > 1 else (y[:, 0] > 0.5).astype(np.int64)


def _labels(labels, n: int, n_out: int) -> np.ndarray | None:
    if labels is None:
        return None
    lab = np.asarray(labels)
    if len(lab) != n:
        raise AssessError(f"labels have {len(lab)} entries but the data has {n} samples; give one label per sample")
    if lab.ndim == 2 and lab.shape[1] == n_out and n_out > 1:
        return np.argmax(lab, axis=1)
    lab = lab.reshape(n, -1)
    if lab.shape[1] != 1:
        raise AssessError(f"labels must be class indices (N,) or one-hot (N, {n_out}), not shape {np.asarray(labels).shape}")
    if not np.all(np.asarray(lab) == np.round(lab)):
        raise AssessError("labels must be class indices (integers) or one-hot rows")
    return lab[:, 0].astype(np.int64)


def _framework_outputs(model, x: np.ndarray) -> tuple[np.ndarray, str]:
    """The source model's own outputs for float inputs ``x``: onnxruntime when it can run the
    model, else qonnx's executor (QONNX custom ops); Keras files through Keras."""
    import onnx

    if not isinstance(model, onnx.ModelProto):
        path = os.fspath(model)
        if path.lower().endswith((".keras", ".h5", ".hdf5")):
            import keras

            try:  # HGQ2 registers its layers with Keras on import; a model of them needs it loaded
                import hgq  # noqa: F401
            except ImportError:
                pass
            m = keras.models.load_model(path, compile=False)
            return np.asarray(m.predict(x, verbose=0)).reshape(len(x), -1), "keras"
        model = onnx.load(path)
    try:
        import onnxruntime as ort

        sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        iname = sess.get_inputs()[0].name
        shape = [d if isinstance(d, int) else 1 for d in sess.get_inputs()[0].shape]
        outs = [sess.run(None, {iname: x[i : i + 1].reshape(shape).astype(np.float32)})[0] for i in range(len(x))]
        return np.concatenate([o.reshape(1, -1) for o in outs]), "onnxruntime"
    except Exception:  # custom QONNX ops: the reference executor
        log.debug("onnxruntime cannot run the model; using qonnx", exc_info=True)
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.infer_shapes import InferShapes

    mw = ModelWrapper(model).transform(InferShapes())
    iname, oname = mw.graph.input[0].name, mw.graph.output[0].name
    ishape = mw.get_tensor_shape(iname)
    outs = [execute_onnx(mw, {iname: x[i : i + 1].reshape(ishape).astype(np.float32)})[oname] for i in range(len(x))]
    return np.concatenate([o.reshape(1, -1) for o in outs]), "qonnx"


def _rtl_sim(design, m: np.ndarray, work: Path, simulator: str) -> dict:
    from .sim.runner import SimulationError, run, write_testbench

    tb = work / "tb"
    meta = design.tb_meta()
    rtl = work / "rtl"
    rtl.mkdir(parents=True, exist_ok=True)
    (rtl / f"{design.top_name}.v").write_text(design.verilog)
    write_testbench(tb, m, design.predict_int(m), meta)
    try:
        return run(tb, simulator=simulator)
    except SimulationError as e:
        raise AssessError(f"RTL simulation failed: {e}") from None


def _clock(report: dict, board_entry: dict | None) -> tuple[float | None, str]:
    """The clock the latency is counted at, and where it comes from."""
    if board_entry:
        f, clk = board_entry.get("fmax_mhz"), board_entry["clock_mhz"]
        if f and f < clk:
            return f, f"{board_entry['board']} Fmax (below its {clk:g} MHz clock)"
        return clk, f"{board_entry['board']} clock" + (f", Fmax {f:g} MHz" if f else "")
    best, where = None, ""
    for target, r in (report.get("synthesis") or {}).items():
        pnr = (r.get("pnr") or {}).get("fmax_mhz")
        if pnr:
            return pnr, f"{target} Fmax after place and route on {(r.get('pnr') or {}).get('part')}"
        if r.get("fmax_estimate_mhz") and best is None:
            best, where = r["fmax_estimate_mhz"], f"{target} Yosys path-delay estimate, no routing"
    return best, where


def _resources(report: dict, board_entry: dict | None, board) -> dict | None:
    """Resources and utilisation: the board's placed design, else the latest ``rtlgen synth``."""
    keys = ("lut", "ff", "dsp", "bram", "carry")
    if board_entry and board is not None:
        part = board.resources()
        used = board_entry.get("used") or {}
        if used:
            counts = {"lc": used.get("ICESTORM_LC", 0), "dsp": used.get("ICESTORM_DSP", 0), "bram": used.get("ICESTORM_RAM", 0)}
            src = f"{board.name}: network and UART bridge placed and routed (nextpnr); LC = logic cells"
        elif board_entry.get("estimate"):
            counts = {k: board_entry["estimate"]["total"][k] for k in keys}
            src = f"{board.name}: network and UART bridge, Yosys estimate"
        else:
            return None
        avail = {"lc": part.lut, "lut": part.lut, "ff": part.ff, "dsp": part.dsp, "bram": part.bram, "carry": part.carry}
        util = {k: round(100.0 * v / avail[k], 2) if avail.get(k) else None for k, v in counts.items()}
        return {"source": src, "part": part.name, "used": counts, "available": {k: avail[k] for k in counts}, "utilisation": util}
    synth = report.get("synthesis") or {}
    if not synth:
        return None
    target, r = list(synth.items())[-1]
    return {
        "source": f"rtlgen synth --target {target} (Yosys)", "part": r.get("part"),
        "used": {k: r.get(k) for k in keys}, "available": r.get("available"), "utilisation": r.get("utilisation"),
    }  # fmt: skip


def assess(
    build_dir, x, labels=None, *, target: str = "sim", port=None, board: str | None = None, model=None,
    simulator: str = "verilator", timeout: float = 5.0, simulate: bool = True,
) -> dict:  # fmt: skip
    """Assess the build in ``build_dir`` on inputs ``x`` (floats, or integer input mantissas) and
    return the ``assessment`` dict that is also written into its ``report.json``.

    ``target``: ``"sim"`` (the RTL in a simulator), ``"uart"`` (the board on serial ``port``,
    a device or a pyserial URL, through ``boards/<board>/``) or ``"uart-sim"`` (the complete
    board top with its UART bridge in simulation, driven by the host client; a few clock cycles
    per bit). ``model``:
    the source model (path or ``onnx.ModelProto``) for the framework row. ``simulate=False``
    leaves out the RTL simulation (a board-only run).
    """
    from .design import load_design

    if target not in TARGETS:
        raise AssessError(f"target must be one of {', '.join(TARGETS)}, not {target!r}")
    out = Path(build_dir)
    design = load_design(out)
    report_path = out / "report.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else design.report()
    x = np.asarray(x)
    if x.ndim < 1 or len(x) == 0:
        raise AssessError("the data holds no samples; give an array with the batch first")
    n = len(x)
    tin = design.input_tensor
    if int(np.prod(x.shape[1:])) != tin.size:
        raise AssessError(f"each sample must have {tin.size} values (the network's input), not {int(np.prod(x.shape[1:]))} (data shape {x.shape})")
    integer = x.dtype.kind in "iu"
    m = x.reshape(n, -1).astype(np.int64) if integer else design.quantize_input(x)
    t0 = time.perf_counter()
    gold_int = design.predict_int(m)
    gold = design.predict(x) if not integer else design.output_tensor.type.to_float(gold_int)
    gold = np.asarray(gold).reshape(n, -1)
    n_out = gold.shape[1]
    lab = _labels(labels, n, n_out)
    golden_classes = _classes(gold)

    def acc(cls):
        return None if lab is None else float(np.mean(cls == lab))

    rows = []
    if model is not None and not integer:
        fw, how = _framework_outputs(model, x)
        if fw.shape != gold.shape:
            raise AssessError(f"the source model gives outputs of shape {fw.shape[1:]}, the build {gold.shape[1:]}: is it the model this build was made from?")
        rows.append({
            "stage": f"source model ({how})", "accuracy": acc(_classes(fw)),
            "agreement": float(np.mean(_classes(fw) == golden_classes)), "agreement_kind": "same class as golden",
            "max_abs_diff": float(np.max(np.abs(fw - gold))),
        })  # fmt: skip
    rows.append({"stage": "golden model", "accuracy": acc(golden_classes), "agreement": 1.0, "agreement_kind": "reference",
                 "seconds": round(time.perf_counter() - t0, 3)})  # fmt: skip

    if simulate:
        sim = _rtl_sim(design, m, out / "assess", simulator)
        bad = int(sim["mismatches"])
        rows.append({
            "stage": f"RTL ({simulator})", "accuracy": acc(golden_classes) if bad == 0 else None,
            "agreement": (n - bad) / n, "agreement_kind": "bit-exact samples", "mismatches": bad,
            "latency_measured": sim.get("latency_measured"), "interval_measured": sim.get("interval_measured"),
            "vectors_per_second": sim.get("vectors_per_second"),
        })  # fmt: skip

    boards = report.get("boards") or {}
    if board is None and target == "sim" and len(boards) == 1:
        board = next(iter(boards))  # the build's one board: its clock and resources
    if board is None and target == "uart":
        ice = [name for name in boards if (out / "boards" / name / "uart.json").exists()]
        if len(ice) != 1:
            raise AssessError(
                "name the board with --board (this build has " + (f"packages for {', '.join(ice)}" if ice else "no UART board package; run rtlgen deploy OUT --board icebreaker") + ")"
            )
        board = ice[0]
    board_obj = None
    board_entry = None
    if board is not None:
        from .boards import get_board

        board_obj = get_board(board)
        board_entry = boards.get(board_obj.name)
        if board_entry is None and target == "uart":
            raise AssessError(f"this build has no package for board {board_obj.name!r}; run rtlgen deploy {out} --board {board_obj.name}")
    def board_row(stage, outs, extra):
        exact = np.all(outs == gold_int, axis=1)
        # The golden model's classes where the board agrees bit for bit; elsewhere the board's
        # own mantissas through the output type.
        cls = np.where(exact, golden_classes, _classes(design.output_tensor.type.to_float(outs).reshape(n, -1)))
        rows.append({
            "stage": stage, "accuracy": acc(cls), "agreement": float(np.mean(exact)),
            "agreement_kind": "bit-exact samples", "mismatches": int(np.sum(~exact)), **extra,
        })  # fmt: skip

    if target == "uart":
        if port is None:
            raise AssessError("--target uart needs the serial port, e.g. --target uart /dev/ttyUSB1")
        from .boards.uart import Client, Link, open_port

        link = Link.load(out / "boards" / board_obj.name / "uart.json")
        client = Client(open_port(port, link), link, timeout=timeout)
        outs = client.run(m)
        st = client.stats
        board_row(f"board {board_obj.name} ({port})", outs, {
            "samples_per_second": round(n / st.seconds, 1) if st.seconds else None, "rejected": len(st.rejected), "retries": st.retries,
        })  # fmt: skip
    elif target == "uart-sim":
        from .boards import uart_sim

        res = uart_sim.run(design, m, out / "assess" / "uart-sim", board=board_obj.name if board_obj else "icebreaker")
        board_row("board top, simulated (UART bridge, host client)", res["outputs"], {
            "rejected": len(res["stats"]["rejected"]), "retries": res["stats"]["retries"],
        })  # fmt: skip

    clock, clock_src = _clock(report, board_entry)
    lat, ii = int(design.latency), int(design.initiation_interval)
    timing = {"latency_cycles": lat, "interval_cycles": ii, "clock_mhz": clock, "clock_source": clock_src,
              "latency_ns": round(1000.0 * lat / clock, 2) if clock else None,
              "samples_per_second": round(1e6 * clock / ii, 1) if clock else None}  # fmt: skip
    if board_entry and board_entry.get("fmax_mhz") and clock != board_entry["fmax_mhz"]:
        timing["fmax_mhz"] = board_entry["fmax_mhz"]
        timing["latency_ns_at_fmax"] = round(1000.0 * lat / board_entry["fmax_mhz"], 2)
    if board_entry and board_entry.get("baud"):
        from .boards.uart import Link

        link = Link.load(out / "boards" / board_obj.name / "uart.json")
        per = max(link.frame_in, link.frame_out) * 10 / link.baud
        timing["uart_samples_per_second"] = round(1 / per, 1)
        timing["uart_frame_bytes"] = [link.frame_in, link.frame_out]
    result = {
        "samples": n, "data": "integer input mantissas" if integer else "float inputs", "labels": lab is not None,
        "target": target, "board": board_obj.name if board_obj else None, "rows": rows, "timing": timing,
        "resources": _resources(report, board_entry, board_obj),
    }  # fmt: skip
    report["assessment"] = result
    if report_path.exists():
        report_path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
        from .report_html import write_html

        write_html(report, out / "report.html")
    return result


def _pct(v) -> str:
    return "-" if v is None else f"{100.0 * v:.2f} %"


def table_rows(a: dict) -> list[tuple[str, ...]]:
    rows = [("stage", "accuracy", "agreement with golden", "max |diff|")]
    for r in a["rows"]:
        if r["agreement_kind"] == "bit-exact samples":
            agree = f"{round(r['agreement'] * a['samples'])} of {a['samples']} bit-exact"
        elif r["agreement_kind"] == "reference":
            agree = "(reference)"
        else:
            agree = f"{_pct(r['agreement'])} same class"
        diff = f"{r['max_abs_diff']:.4g}" if "max_abs_diff" in r else ("0" if r["agreement"] == 1.0 else "-")
        rows.append((r["stage"], _pct(r["accuracy"]), agree, diff))
    return rows


def format_table(a: dict) -> list[str]:
    """The assessment as text lines (what ``rtlgen assess`` prints)."""
    lines = []
    rows = table_rows(a)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip())
    t = a["timing"]
    if t["clock_mhz"]:
        lines.append(f"latency     {t['latency_cycles']} cycles = {t['latency_ns']:g} ns at {t['clock_mhz']:g} MHz ({t['clock_source']})"
                     + (f"; {t['latency_ns_at_fmax']:g} ns at Fmax" if t.get("latency_ns_at_fmax") else ""))
        lines.append(f"throughput  one sample per {t['interval_cycles']} cycle(s) = {t['samples_per_second']:,.0f} samples/s at {t['clock_mhz']:g} MHz")
    else:
        lines.append(f"latency     {t['latency_cycles']} cycles (no clock measured yet: run rtlgen synth or build for a board)")
        lines.append(f"throughput  one sample per {t['interval_cycles']} cycle(s)")
    rtl = next((r for r in a["rows"] if r["stage"].startswith("RTL")), None)
    if rtl:
        lines.append(f"measured    latency {rtl['latency_measured']} cycles, interval {rtl['interval_measured']} cycle(s) in simulation")
    if t.get("uart_samples_per_second"):
        lines.append(f"UART link   {t['uart_samples_per_second']:,.0f} samples/s at most ({t['uart_frame_bytes'][0]}-byte requests, {t['uart_frame_bytes'][1]}-byte replies)")
    for r in a["rows"]:
        if r.get("samples_per_second"):
            lines.append(f"board       {r['samples_per_second']:,.0f} samples/s measured, {r['rejected']} frame(s) rejected and resent")
    res = a.get("resources")
    if res:
        keys = [k for k in ("lc", "lut", "ff", "dsp", "bram", "carry") if res["used"].get(k) is not None]
        util = res.get("utilisation") or {}
        parts = [f"{k.upper()} {res['used'][k]:g}" + (f" ({util[k]:g} %)" if util.get(k) is not None else "") for k in keys]
        lines.append(f"resources   {', '.join(parts)} of the {res['part']} [{res['source']}]")
    else:
        lines.append("resources   not measured yet: run rtlgen synth OUT --target xc7|xcup|ice40")
    return lines


def html_section(a: dict) -> str:
    """The assessment as an HTML section for ``report.html``."""
    from html import escape

    rows = table_rows(a)
    head = "".join(f"<th>{escape(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in r) + "</tr>" for r in rows[1:])
    notes = "".join(f"<li>{escape(line)}</li>" for line in format_table(a)[len(rows):])
    what = f"{a['samples']} samples ({a['data']}), target {a['target']}" + (f", board {a['board']}" if a.get("board") else "")
    return f"<section><h2>Assessment</h2><p>{escape(what)}</p><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table><ul>{notes}</ul></section>"
