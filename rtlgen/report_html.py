"""``report.html``: the build report as one self-contained page that opens offline.

Everything is inline: the style sheet and the plots (SVG drawn by matplotlib, with fixed hash salt
and no date, so the same report gives the same bytes). Without matplotlib the page still has every
table, with bars drawn in CSS, and says how to get the plots.
"""

from __future__ import annotations

import html
import io
from pathlib import Path

from .report import SYNTH_KEYS, fmax_of

__all__ = ["render_html", "write_html", "plots_available"]

_LABELS = {"lut": "LUT", "ff": "FF", "dsp": "DSP", "bram": "BRAM", "carry": "carry", "lutram": "LUTRAM"}
_COLORS = {"lut": "#4c72b0", "ff": "#55a868", "dsp": "#c44e52", "bram": "#8172b2", "carry": "#ccb974", "lutram": "#64b5cd"}
MISSING_PLOTS = "plots need matplotlib: pip install 'rtlgen[report]'"

_CSS = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:18px 32px}
header h1{margin:0;font-size:22px} header p{margin:4px 0 0;color:#b8c0cc;font-size:13px}
main{padding:8px 32px 40px;max-width:1600px}
section{background:#fff;border:1px solid #dde1e7;border-radius:6px;padding:14px 18px;margin:16px 0}
h2{font-size:17px;margin:0 0 10px} h3{font-size:15px;margin:14px 0 6px}
.cards{display:flex;flex-wrap:wrap;gap:10px}
.card{border:1px solid #dde1e7;border-radius:6px;padding:8px 14px;min-width:120px;background:#fafbfc}
.card .v{font-size:20px;font-weight:600} .card .k{font-size:12px;color:#5b6472}
table{border-collapse:collapse;font-size:12.5px;margin:4px 0}
th,td{border-bottom:1px solid #e6e9ee;padding:4px 9px;text-align:left;white-space:nowrap}
th{background:#f0f2f5;font-weight:600} td.n{text-align:right;font-variant-numeric:tabular-nums}
.bar{display:inline-block;height:9px;background:#4c72b0;border-radius:2px;vertical-align:middle;margin-right:6px}
.note{color:#5b6472;font-size:13px} .warn{color:#a33;font-size:13px}
.plot svg{max-width:100%;height:auto} .scroll{overflow-x:auto}
code{background:#f0f2f5;padding:1px 4px;border-radius:3px}
"""


def plots_available() -> bool:
    # Found, not imported: a build draws its plots without matplotlib (synthesis plots import it).
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


def _e(v) -> str:
    return html.escape("" if v is None else str(v))


def format_number(v) -> str:
    """A table cell: thousands separators, at most two decimals, ``-`` for a missing value."""
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.2f}".rstrip("0").rstrip(".") if not v.is_integer() else f"{int(v):,}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _num(v) -> str:
    return html.escape(format_number(v))


def _shape(s) -> str:
    return "×".join(str(d) for d in (s or []))


def _table(head: list[str], rows: list[list[str]], numeric: set[int] = frozenset()) -> str:
    out = ['<div class="scroll"><table><thead><tr>' + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr></thead><tbody>"]
    for r in rows:
        out.append(
            "<tr>" + "".join(f'<td class="n">{c}</td>' if i in numeric else f"<td>{c}</td>" for i, c in enumerate(r)) + "</tr>"
        )
    out.append("</tbody></table></div>")
    return "".join(out)


def _bar(value, peak, color="#4c72b0") -> str:
    if not value or not peak:
        return ""
    width = max(1, round(120 * float(value) / float(peak)))
    return f'<span class="bar" style="width:{width}px;background:{color}"></span>'


# -- plots --------------------------------------------------------------------------------------------


def _svg(fig) -> str:
    import matplotlib

    buf = io.StringIO()
    # Fixed ids and no date: the same report gives the same bytes.
    with matplotlib.rc_context({"svg.hashsalt": "rtlgen", "svg.fonttype": "path"}):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    return text[text.index("<svg") :]


def _figure(w, h, cols=1, **kw):
    """A figure outside pyplot's global state (no backend is selected or changed)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h))
    return fig, fig.subplots(1, cols, **kw)


def _bar_chart(labels: list[str], rows: list[list[tuple]], total: float, title: str, xlabel: str, legend=()) -> str:
    """A horizontal bar chart as plain SVG (what a build draws: no matplotlib, which takes longer to
    import than the rest of a small build). ``rows[i]``: per label, ``(start, length, color)``
    bars (``length`` 0: a tick) stacked in the row; ``legend``: ``(name, color)`` pairs."""
    left, width, row_h, top = 8 + 6.2 * max((len(s) for s in labels), default=1), 560.0, 22, 30
    height = top + row_h * max(len(labels), 1) + 40
    total = total or 1
    x = lambda v: left + width * v / total  # noqa: E731
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 20:.0f}" height="{height}" '
           f'font-family="sans-serif" font-size="11">',
           f'<text x="{left + width / 2:.1f}" y="16" text-anchor="middle" font-size="12">{_e(title)}</text>']  # fmt: skip
    step = next(v for v in (m * 10**e for e in range(30) for m in (1, 2, 5)) if total / v <= 10)  # at most 11 ticks
    axis_y = top + row_h * max(len(labels), 1)
    for t in range(0, int(total) + 1, step):
        out.append(f'<line x1="{x(t):.1f}" y1="{top}" x2="{x(t):.1f}" y2="{axis_y}" stroke="#ddd"/>'
                   f'<text x="{x(t):.1f}" y="{axis_y + 14}" text-anchor="middle">{t:,}</text>')  # fmt: skip
    out.append(f'<text x="{left + width / 2:.1f}" y="{axis_y + 32}" text-anchor="middle">{_e(xlabel)}</text>')
    for i, (label, bars) in enumerate(zip(labels, rows)):
        y = top + row_h * i
        out.append(f'<text x="{left - 6:.1f}" y="{y + row_h / 2 + 4:.1f}" text-anchor="end">{_e(label)}</text>')
        n = max(len(bars), 1)
        for k, (start, length, color) in enumerate(bars):
            h = (row_h - 6) / n
            y0 = y + 3 + k * h
            if length > 0:
                out.append(f'<rect x="{x(start):.1f}" y="{y0:.1f}" width="{max(x(start + length) - x(start), 1):.1f}" height="{h:.1f}" fill="{color}"/>')
            else:
                out.append(f'<line x1="{x(start):.1f}" y1="{y0:.1f}" x2="{x(start):.1f}" y2="{y0 + h:.1f}" stroke="{color}" stroke-width="2"/>')
    for k, (name, color) in enumerate(legend):
        lx = left + width - 150
        out.append(f'<rect x="{lx}" y="{top + 4 + 16 * k}" width="10" height="10" fill="{color}"/>'
                   f'<text x="{lx + 14}" y="{top + 13 + 16 * k}">{_e(name)}</text>')  # fmt: skip
    out.append("</svg>")
    return "".join(out)


def timeline_svg(report: dict, fmax_mhz: float | None = None, estimated: bool = False) -> str:
    """Each layer as a bar from the cycle its input is valid to the cycle its output is."""
    layers = [lay for lay in report.get("layers", []) if "start_cycle" in lay]
    total = max([report.get("latency_cycles") or 0] + [lay["end_cycle"] for lay in layers]) or 1
    rows = []
    for lay in layers:
        start, lat = lay["start_cycle"], lay["end_cycle"] - lay["start_cycle"]
        rows.append([(start, lat, "#4c72b0")] if lat > 0 else [(start, 0, "#c44e52")])
    interval = report.get("interval_cycles")
    title = f"latency {report.get('latency_cycles')} cycles, a new input every {interval} cycle(s)"
    if fmax_mhz:
        title += f"; {1000.0 * total / fmax_mhz:.1f} ns at {'~' if estimated else ''}{fmax_mhz:g} MHz{' (estimate)' if estimated else ''}"
    labels = [f"{lay['name']} ({lay['op']})" for lay in layers]
    return _bar_chart(labels, rows, total, title, "clock cycle (bars: registered stages; ticks: combinational layers)")


def resources_svg(result: dict, layer_names: list[str]) -> str:
    """Per-layer resource counts of one synthesis result, one panel per resource kind used."""
    from matplotlib.ticker import MaxNLocator

    per = result.get("layers") or {}
    names = [n for n in layer_names if n in per] + sorted(n for n in per if n not in layer_names)
    keys = [k for k in SYNTH_KEYS if any((per[n].get(k) or 0) > 0 for n in names)] or ["lut"]
    fig, axes = _figure(2.2 + 2.4 * len(keys), 0.9 + 0.26 * max(len(names), 1), len(keys), sharey=True, squeeze=False)
    for ax, k in zip(axes[0], keys):
        vals = [per[n].get(k) or 0 for n in names]
        ax.barh(range(len(names)), vals, color=_COLORS[k])
        ax.set_title(_LABELS[k], fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        ax.tick_params(axis="x", labelsize=7)
        ax.xaxis.set_major_locator(MaxNLocator(3, integer=True))
        peak = max(vals) if vals else 0
        for i, v in enumerate(vals):
            if v:
                ax.text(v + peak * 0.02, i, f"{v:g}", va="center", fontsize=7)
        ax.set_xlim(0, peak * 1.25 if peak else 1)
    axes[0][0].set_yticks(range(len(names)))
    axes[0][0].set_yticklabels(names, fontsize=8)
    axes[0][0].invert_yaxis()
    return _svg(fig)


def utilisation_svg(result: dict) -> str:
    given = result.get("utilisation") or {}
    util = {k: given[k] for k in SYNTH_KEYS if given.get(k) is not None}
    fig, ax = _figure(6, 0.6 + 0.35 * max(len(util), 1))
    keys = list(util)
    vals = [util[k] for k in keys]
    ax.barh(range(len(keys)), [min(v, 100) for v in vals], color=[_COLORS.get(k, "#4c72b0") for k in keys])
    ax.barh(range(len(keys)), [100] * len(keys), color="none", edgecolor="#999")
    for i, v in enumerate(vals):
        ax.text(min(v, 100) + 1, i, f"{v:g} %", va="center", fontsize=8, color="#a33" if v > 100 else "#222")
    ax.set_yticks(range(len(keys)))
    ax.set_yticklabels([_LABELS.get(k, k) for k in keys], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 115)
    ax.set_xlabel(f"% of {result.get('part', 'the part')}", fontsize=8)
    return _svg(fig)


def weights_svg(report: dict) -> str:
    """Weights and multipliers per layer: a picture of where the arithmetic is, before synthesis."""
    rows = [lay for lay in report.get("layers", []) if lay.get("weights")]
    bars = [[(0, r["weights"], "#4c72b0"), (0, r.get("nonzero_weights", 0), "#55a868")] for r in rows]
    labels = [f"{r['name']} (R={r.get('reuse_factor', 1)})" for r in rows]
    total = max((r["weights"] for r in rows), default=1)
    return _bar_chart(labels, bars, total, "weights per layer", "weights", legend=(("weights", "#4c72b0"), ("nonzero weights", "#55a868")))


# -- the page -----------------------------------------------------------------------------------------


def _summary(report: dict, fmax: float | None, estimated: bool = False) -> str:
    tin, tout = report.get("input", {}), report.get("output", {})
    cards = [
        ("latency", f"{report.get('latency_cycles')} cycles"),
        ("initiation interval", f"{report.get('interval_cycles')} cycle(s)"),
    ]
    if fmax:
        label = f"latency at {fmax:g} MHz" + (" (logic-delay estimate)" if estimated else " (placed and routed)")
        cards.append((label, f"{1000.0 * (report.get('latency_cycles') or 0) / fmax:.1f} ns"))
    cards += [
        ("interface", report.get("io_type", "")),
        ("parameters", _num(report.get("parameters"))),
        ("layers", str(len(report.get("layers", [])))),
        ("input", f"{tin.get('type')} ×{_shape(tin.get('shape'))}"),
        ("output", f"{tout.get('type')} ×{_shape(tout.get('shape'))}"),
    ]
    out = ['<div class="cards">']
    for k, v in cards:
        out.append(f'<div class="card"><div class="v">{_e(v)}</div><div class="k">{_e(k)}</div></div>')
    out.append("</div>")
    host = report.get("host_stages") or {}
    if host.get("pre") or host.get("post"):
        out.append(f'<p class="note">On the host: before the hardware {_e(host.get("pre") or "nothing")}; after it {_e(host.get("post") or "nothing")}.</p>')
    for note in report.get("notes", []):
        out.append(f'<p class="note">note: {_e(note)}</p>')
    return "".join(out)


def _layers(report: dict, targets: list[str]) -> str:
    synth = report.get("synthesis") or {}
    layers = report.get("layers", [])
    has_accum = any(lay.get("precision", {}).get("accum") for lay in layers)
    peak_w = max([lay.get("weights", 0) for lay in layers] + [0])
    head = ["layer", "op", "output", "weight"] + (["accum"] if has_accum else []) + ["reuse", "latency", "interval", "cycles", "weights"]
    first_num = head.index("reuse")
    for t in targets:
        head += [f"{t} LUT", f"{t} FF", f"{t} DSP"]
    rows = []
    for lay in layers:
        p = lay.get("precision", {})
        out = lay.get("output", {})
        row = [
            f"<b>{_e(lay.get('name'))}</b>",
            _e(lay.get("op")) + (f' <span class="note">({_e(lay["source"])})</span>' if lay.get("source") else ""),
            f"{_e(out.get('type'))} ×{_shape(out.get('shape'))}",
            _e(p.get("weight", "")),
        ]
        if has_accum:
            row.append(_e(p.get("accum", "")))
        row += [
            _num(lay.get("reuse_factor")) if "reuse_factor" in lay else "",
            _num(lay.get("latency")),
            _num(lay.get("interval")),
            f"{lay['start_cycle']}–{lay['end_cycle']}" if "start_cycle" in lay else "",
            (_bar(lay.get("weights"), peak_w) + _num(lay.get("weights"))) if lay.get("weights") else "",
        ]
        for t in targets:
            res = synth[t].get("layers", {}).get(lay.get("name"), {})
            row += [_num(res.get("lut")), _num(res.get("ff")), _num(res.get("dsp"))]
        rows.append(row)
    numeric = set(range(first_num, first_num + 3)) | set(range(len(head) - 3 * len(targets), len(head)))
    tin = report.get("input", {})
    lead = f'<p class="note">Network input {_e(tin.get("name"))}: {_e(tin.get("type"))} ×{_shape(tin.get("shape"))}. "weight": the narrowest type holding the layer\'s weights; "cycles": when its input and output are valid on an idle design.</p>'
    return lead + _table(head, rows, numeric)


def _synthesis(report: dict, target: str, result: dict, with_plots: bool) -> str:
    out = [f"<h3>{_e(target)}{' — ' + _e(result.get('part')) if result.get('part') else ''}</h3>"]
    avail = result.get("available") or {}
    util = result.get("utilisation") or {}
    keys = [k for k in SYNTH_KEYS if k in result]
    rows = [["used"] + [_num(result.get(k)) for k in keys]]
    if avail:
        rows.append(["available"] + [_num(avail.get(k)) if k in avail else "" for k in keys])
    if util:
        rows.append(["utilisation"] + [f"{util[k]:g} %" if util.get(k) is not None else "" for k in keys])
    out.append(_table([""] + [_LABELS[k] for k in keys], rows, set(range(1, len(keys) + 1))))
    if result.get("path_delay_ns"):
        est = result.get("fmax_estimate_mhz")
        out.append(
            f"<p>Path delay <b>{result['path_delay_ns']:.2f} ns</b>"
            + (f" (≈ {est:g} MHz)" if est else "")
            + ' <span class="note">— an estimate from Yosys\' timing model: logic delays only, no routing, so a real '
            "design closes at a lower clock.</span></p>"
        )
    pnr = result.get("pnr") or {}
    if pnr:
        if pnr.get("fmax_mhz"):
            used = pnr.get("used", {})
            lcs = used.get("ICESTORM_LC")
            out.append(
                f"<p>Place and route ({_e(pnr.get('tool'))}, {_e(pnr.get('part'))}): <b>Fmax {pnr['fmax_mhz']:g} MHz</b>"
                + (f", {lcs:,} of {pnr.get('available', {}).get('ICESTORM_LC', 0):,} logic cells" if lcs else "")
                + (f' <span class="note">(inside a serial I/O shell of {result["shell_bits"]} register bits)</span>' if result.get("shell_bits") else "")
                + "</p>"
            )
        elif pnr.get("reason"):
            out.append(f'<p class="warn">Place and route ({_e(pnr.get("part"))}): {_e(pnr["reason"])}</p>')
    for note in result.get("notes", []) or []:
        out.append(f'<p class="note">{_e(note)}</p>')
    per = result.get("layers") or {}
    if per:
        names = [lay.get("name") for lay in report.get("layers", [])]
        order = [n for n in names if n in per] + sorted(n for n in per if n not in names)
        pk = [k for k in SYNTH_KEYS if any((per[n].get(k) or 0) for n in order)] or ["lut"]
        peaks = {k: max((per[n].get(k) or 0) for n in order) for k in pk}
        rows = []
        for n in order:
            rows.append([_e(n)] + [_bar(per[n].get(k), peaks[k], _COLORS[k]) + _num(per[n].get(k)) for k in pk])
        if result.get("toplevel") and any(result["toplevel"].get(k) for k in pk):
            rows.append(["<i>top level</i>"] + [_num(result["toplevel"].get(k)) for k in pk])
        out.append(_table(["instance"] + [_LABELS[k] for k in pk], rows, set(range(1, len(pk) + 1))))
        if with_plots:
            out.append('<div class="plot">' + resources_svg(result, names) + "</div>")
    if with_plots and util:
        out.append('<div class="plot">' + utilisation_svg(result) + "</div>")
    secs = result.get("yosys_seconds")
    if secs is not None:
        out.append(f'<p class="note">Yosys {secs:.1f} s' + (f", nextpnr {pnr['seconds']:.1f} s" if pnr.get("seconds") else "") + ".</p>")
    return "".join(out)


def render_html(report: dict, *, plots: bool | None = None) -> str:
    """The page for ``report`` (a ``report.json`` dict). ``plots=None`` draws them when matplotlib
    is installed."""
    with_plots = plots_available() if plots is None else plots
    if with_plots and not plots_available():
        raise ImportError(MISSING_PLOTS)
    synth = {t: r for t, r in (report.get("synthesis") or {}).items() if isinstance(r, dict)}
    targets = [t for t, r in synth.items() if r.get("layers")]
    # A placed-and-routed Fmax beats a logic-only estimate.
    best, estimated = None, True
    for r in synth.values():
        f, _ = fmax_of(r)
        routed = bool((r.get("pnr") or {}).get("fmax_mhz"))
        if f and (best is None or (routed and estimated)):
            best, estimated = f, not routed
    title = f"{report.get('model', '')} — rtlgen report"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_e(title)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<header><h1>{_e(report.get('model'))}</h1><p>top module <code style=\"background:#2c3444;color:#fff\">{_e(report.get('top'))}</code>"
        f" · rtlgen {_e(report.get('rtlgen_version', ''))}</p></header><main>",
        f"<section><h2>Summary</h2>{_summary(report, best, estimated)}</section>",
    ]
    if not with_plots:
        parts.append(f'<section><p class="warn">{_e(MISSING_PLOTS)}</p></section>')
    parts.append(f"<section><h2>Layers</h2>{_layers(report, targets)}</section>")
    if with_plots and any("start_cycle" in lay for lay in report.get("layers", [])):
        parts.append(f'<section><h2>Latency timeline</h2><div class="plot">{timeline_svg(report, best, estimated)}</div></section>')
    if with_plots and any(lay.get("weights") for lay in report.get("layers", [])):
        parts.append(f'<section><h2>Weights</h2><div class="plot">{weights_svg(report)}</div></section>')
    fifos = report.get("fifos") or []
    if fifos:
        rows = [[_e(f.get("name")), _num(f.get("depth")), _num(f.get("lanes")), _num(f.get("width")),
                 _num((f.get("depth") or 0) * (f.get("lanes") or 0) * (f.get("width") or 0))] for f in fifos]  # fmt: skip
        parts.append(f"<section><h2>FIFOs</h2>{_table(['name', 'depth', 'lanes', 'width', 'bits'], rows, {1, 2, 3, 4})}</section>")
    if synth:
        body = "".join(_synthesis(report, t, r, with_plots) for t, r in synth.items())
        parts.append(f"<section><h2>Synthesis</h2>{body}</section>")
    else:
        parts.append('<section><h2>Synthesis</h2><p class="note">Not run yet: <code>rtlgen synth OUT --target xc7|xcup|ice40</code> adds resources per layer, utilisation and timing here.</p></section>')
    for board, entry in (report.get("boards") or {}).items():
        if isinstance(entry, dict) and entry.get("summary"):
            items = "".join(f"<li>{_e(line)}</li>" for line in entry["summary"])
            parts.append(f"<section><h2>Board {_e(board)}</h2><ul>{items}</ul></section>")
    if report.get("assessment"):
        from .assess import html_section

        parts.append(html_section(report["assessment"]))
    parts.append("</main></body></html>\n")
    return "\n".join(parts)


def write_html(report: dict, path) -> Path:
    """Write ``report.html`` for ``report``; plots are included when matplotlib is installed."""
    path = Path(path)
    path.write_text(render_html(report), encoding="utf-8")
    return path

