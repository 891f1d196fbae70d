"""The build report: ``report.json`` contents (stable keys) per design and per layer.

Keys present in every report (``rtlgen/schemas/report.schema.json`` is the contract):
``model``, ``top``, ``io_type``, ``input``, ``output``, ``latency_cycles``, ``interval_cycles``,
``layers``, ``host_stages``, ``notes``, ``rtlgen_version``, ``parameters``. Each layer row has
``name``, ``op``, ``source``, ``inputs``, ``input``, ``output``, ``latency``, ``interval`` and
``precision``, and ``start_cycle``/``end_cycle`` (when its input is first accepted and its output
first valid on an idle design) where the network knows them; layers with weights add ``weights``,
``nonzero_weights`` and (where the op has one) ``reuse_factor``, Dense layers ``strategy`` and
``multipliers``. Optional sections: ``fifos`` (``[{name, depth, lanes, width}]``) when the network
has FIFOs, and ``synthesis`` (``{target: result}``) once ``rtlgen synth`` has run. Readers must
ignore keys they do not know.
"""

from __future__ import annotations

import numpy as np

from .fixed import type_for_range
from .ir import Dense

__all__ = ["build_report", "layer_rows", "summary_text", "SYNTH_KEYS"]

# Resource counts of a synthesis result, in the order reports show them.
SYNTH_KEYS = ("lut", "ff", "dsp", "bram", "carry", "lutram")


def _starts(design) -> list | None:
    """Cycle at which each layer's first input is accepted on an idle design, when the network
    knows it: from each layer's ``start`` (streaming networks) or the network's ``arrival`` (cycle
    each tensor is first valid, io_parallel). None otherwise: latencies of overlapping streaming
    layers do not add up, so no timeline is better than a wrong one."""
    net = design.network
    layers = [layer for _, layer in net.layers]
    if layers and all(isinstance(getattr(layer, "start", None), (int, np.integer)) for layer in layers):
        return [int(layer.start) for layer in layers]
    arrival = getattr(net, "arrival", None)
    if arrival is None:
        return None
    return [int(max(arrival.get(t, 0) for t in node.inputs)) for node in design.graph.nodes]


def _weight_type(node, src, dst) -> str | None:
    """The narrowest type holding every weight mantissa, on the grid the layer multiplies with."""
    w = getattr(node.op, "weight", None)
    if not isinstance(w, np.ndarray) or w.size == 0 or src.type is None or dst.type is None:
        return None
    # Products land on the output (or accumulator) grid plus the bits the accumulator drops.
    frac = dst.type.frac + int(getattr(node.op, "product_shift", 0) or 0) - src.type.frac
    return str(type_for_range(int(w.min()), int(w.max()), frac))


def _bias_type(node, dst) -> str | None:
    b = getattr(node.op, "bias", None)
    if not isinstance(b, np.ndarray) or b.size == 0 or dst.type is None:
        return None
    accum = getattr(node.op, "accum", None)
    frac = accum.frac if accum is not None else dst.type.frac
    return str(type_for_range(int(np.min(b)), int(np.max(b)), frac))


def layer_rows(design) -> list[dict]:
    starts = _starts(design)
    rows = []
    for i, (node, (_, layer)) in enumerate(zip(design.graph.nodes, design.network.layers)):
        src = design.graph.tensors[node.inputs[0]]
        dst = design.graph.tensors[node.outputs[0]]
        row = {
            "name": node.name,
            "op": node.kind,
            "source": node.attrs.get("source", ""),
            "inputs": list(node.inputs),
            "input": {"shape": list(src.shape), "type": str(src.type)},
            "output": {"shape": list(dst.shape), "type": str(dst.type)},
            "latency": layer.latency,
            "interval": layer.initiation_interval,
        }
        if starts is not None:
            row["start_cycle"] = starts[i]
            row["end_cycle"] = starts[i] + int(layer.latency)
        precision = {"input": str(src.type), "output": str(dst.type)}
        wtype, btype = _weight_type(node, src, dst), _bias_type(node, dst)
        if wtype:
            precision["weight"] = wtype
        if btype:
            precision["bias"] = btype
        if getattr(node.op, "accum", None) is not None:
            precision["accum"] = str(node.op.accum)
        row["precision"] = precision
        weight = getattr(node.op, "weight", None)
        if isinstance(weight, np.ndarray):
            row["weights"] = int(weight.size)
            row["nonzero_weights"] = int(np.count_nonzero(weight))
            if hasattr(node.op, "reuse_factor"):
                row["reuse_factor"] = int(node.op.reuse_factor)
        if isinstance(node.op, Dense):
            row["strategy"] = node.op.strategy
            row["multipliers"] = getattr(layer, "multipliers", int(np.count_nonzero(node.op.weight)))
        elif hasattr(layer, "multipliers") and isinstance(layer.multipliers, int):
            row["multipliers"] = layer.multipliers
        rows.append(row)
    return rows


def _parameters(design) -> int:
    n = 0
    for node in design.graph.nodes:
        for key in ("weight", "bias"):
            v = getattr(node.op, key, None)
            if isinstance(v, np.ndarray):
                n += int(v.size)
    return n


def _fifos(design) -> list | None:
    """FIFOs the network reports about itself (``Network.fifos``), as plain dicts."""
    fifos = getattr(design.network, "fifos", None)
    if fifos is None:
        return None
    out = []
    for f in fifos:
        d = dict(f) if isinstance(f, dict) else {k: getattr(f, k) for k in ("name", "depth", "lanes", "width")}
        out.append({k: (int(v) if isinstance(v, (int, np.integer)) else v) for k, v in d.items()})
    return out


def build_report(design) -> dict:
    from . import __version__

    tin, tout = design.input_tensor, design.output_tensor
    report = {
        "model": design.graph.name,
        "top": design.top_name,
        "rtlgen_version": __version__,
        "io_type": design.config.io_type,
        "input": {
            "name": tin.name,
            "shape": list(tin.shape),
            "type": str(tin.type),
            "scale": tin.scale,
        },
        "output": {
            "name": tout.name,
            "shape": list(tout.shape),
            "type": str(tout.type),
            "scale": tout.scale,
        },
        "latency_cycles": design.latency,
        "interval_cycles": design.initiation_interval,
        "parameters": _parameters(design),
        "layers": design.layer_report(),
        "host_stages": {
            "pre": design.graph.pre.description if design.graph.pre else None,
            "post": design.graph.post.description if design.graph.post else None,
        },
        "notes": list(design.graph.notes),
    }
    fifos = _fifos(design)
    if fifos is not None:
        report["fifos"] = fifos
    return report


# -- the terminal summary --------------------------------------------------------------------------


def _table(rows: list[tuple], indent: str = "  ") -> list[str]:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    return [indent + "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def fmax_of(result: dict) -> tuple[float | None, str]:
    """The best clock figure a synthesis result holds and what it is: placed-and-routed Fmax
    (iCE40), or the estimate from Yosys' logic delays (Xilinx)."""
    pnr = result.get("pnr") or {}
    if pnr.get("fmax_mhz"):
        return pnr["fmax_mhz"], f"Fmax after place and route ({pnr.get('tool', 'nextpnr')}, {pnr.get('part', '')})"
    if result.get("fmax_estimate_mhz"):
        return result["fmax_estimate_mhz"], "estimate from Yosys' timing model (logic delays only, no routing)"
    return None, ""


def summary_text(report: dict) -> str:
    """What ``rtlgen report OUT`` prints: the model, every layer, FIFOs and synthesis results."""
    lines = [f"{report.get('model', '?')} (top module {report.get('top', '?')}, {report.get('io_type', 'io_parallel')})"]
    tin, tout = report.get("input", {}), report.get("output", {})
    lines.append(f"  input  {tin.get('name')}: {tin.get('type')} x{'x'.join(map(str, tin.get('shape', [])))}")
    lines.append(f"  output {tout.get('name')}: {tout.get('type')} x{'x'.join(map(str, tout.get('shape', [])))}")
    synth = report.get("synthesis") or {}
    targets = [t for t, r in synth.items() if isinstance(r, dict) and r.get("layers")]
    head = ["layer", "op", "output", "reuse", "latency", "interval", "cycles"]
    for t in targets:
        head += [f"{t} LUT", f"{t} FF", f"{t} DSP"]
    rows = [tuple(head)]
    for layer in report.get("layers", []):
        out = layer.get("output", {})
        row = [
            layer.get("name"),
            layer.get("op"),
            f"{out.get('type')} x{'x'.join(map(str, out.get('shape', [])))}",
            _fmt(layer.get("reuse_factor", "")) if "reuse_factor" in layer else "",
            _fmt(layer.get("latency")),
            _fmt(layer.get("interval")),
            f"{layer['start_cycle']}-{layer['end_cycle']}" if "start_cycle" in layer else "",
        ]
        for t in targets:
            res = synth[t]["layers"].get(layer.get("name"), {})
            row += [_fmt(res.get("lut")), _fmt(res.get("ff")), _fmt(res.get("dsp"))]
        rows.append(tuple(row))
    for t in targets:  # FIFOs, forks and other instances that are not layers
        names = {lay.get("name") for lay in report.get("layers", [])}
        for inst in synth[t]["layers"]:
            if inst not in names and not any(r[0] == inst for r in rows):
                row = [inst, "", "", "", "", "", ""]
                for t2 in targets:
                    r2 = synth[t2]["layers"].get(inst, {})
                    row += [_fmt(r2.get("lut")), _fmt(r2.get("ff")), _fmt(r2.get("dsp"))]
                rows.append(tuple(row))
    lines += _table(rows)
    lines.append(
        f"  latency {report.get('latency_cycles')} cycles, initiation interval {report.get('interval_cycles')} cycle(s)"
        + (f", {report['parameters']} parameters" if "parameters" in report else "")
    )
    fifos = report.get("fifos") or []
    if fifos:
        lines.append("  FIFOs:")
        lines += _table(
            [("name", "depth", "lanes", "width")]
            + [(f.get("name"), _fmt(f.get("depth")), _fmt(f.get("lanes")), _fmt(f.get("width"))) for f in fifos],
            "    ",
        )
    for t, res in synth.items():
        if not isinstance(res, dict):
            continue
        part = res.get("part")
        counts = ", ".join(f"{_fmt(res.get(k))} {k.upper()}" for k in SYNTH_KEYS[:5])
        lines.append(f"  synthesis {t}{f' ({part})' if part else ''}: {counts}")
        util = res.get("utilisation")
        if util:
            lines.append("    utilisation: " + ", ".join(f"{k.upper()} {util[k]:g}%" for k in SYNTH_KEYS if util.get(k) is not None))
        fmax, what = fmax_of(res)
        if res.get("path_delay_ns"):
            lines.append(f"    path delay {res['path_delay_ns']:.2f} ns: {what}")
        elif fmax:
            lines.append(f"    Fmax {fmax:g} MHz: {what}")
        pnr = res.get("pnr") or {}
        if pnr and not pnr.get("fmax_mhz") and pnr.get("reason"):
            lines.append(f"    place and route: {pnr['reason']}")
        if fmax and report.get("latency_cycles") is not None:
            lines.append(f"    latency {1000.0 * report['latency_cycles'] / fmax:.1f} ns at {fmax:g} MHz")
    for note in report.get("notes", []):
        lines.append(f"  note: {note}")
    return "\n".join(lines) + "\n"
