"""Results of a sweep: the Pareto front, the best point per objective, CSV/JSON tables and a page."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)

# Objective -> +1 to minimize, -1 to maximize. Interval is the throughput a design trades for area.
OBJECTIVES = {"lut": 1, "ff": 1, "dsp": 1, "bram": 1, "latency": 1, "interval": 1, "accuracy": -1}
TITLES = {"lut": "LUT", "ff": "FF", "dsp": "DSP", "bram": "BRAM", "latency": "latency (cycles)",
          "interval": "interval (cycles)", "accuracy": "accuracy"}  # fmt: skip
METRICS = ("latency", "interval", "accuracy", "sim_mismatches", "lut", "ff", "dsp", "bram", "carry", "path_delay_ns")


def objectives(records: list) -> list[str]:
    """The objectives every successful point has a value for."""
    ok = [r for r in records if r["status"] == "ok"]
    return [k for k in OBJECTIVES if ok and all(r.get(k) is not None for r in ok)]


def _dominates(a: dict, b: dict, keys) -> bool:
    worse = any(OBJECTIVES[k] * a[k] > OBJECTIVES[k] * b[k] for k in keys)
    better = any(OBJECTIVES[k] * a[k] < OBJECTIVES[k] * b[k] for k in keys)
    return better and not worse


def pareto(records: list, keys=None) -> list[str]:
    """Names of the successful points no other point beats on every objective (ties all stay)."""
    keys = objectives(records) if keys is None else keys
    ok = [r for r in records if r["status"] == "ok"]
    if not keys:
        return [r["point"] for r in ok]
    return [r["point"] for r in ok if not any(_dominates(o, r, keys) for o in ok if o is not r)]


def best(records: list) -> dict:
    """Per objective, the name of the best successful point (ties broken by the other objectives in order)."""
    keys = objectives(records)
    ok = [r for r in records if r["status"] == "ok"]
    out = {}
    for k in keys:
        order = [k] + [o for o in keys if o != k]
        out[k] = min(ok, key=lambda r: tuple(OBJECTIVES[o] * r[o] for o in order))["point"]
    return out


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() else f"{v:.4f}" if abs(v) < 1 else f"{v:g}"
    return str(v)


def _param_names(records: list) -> list[str]:
    names = []
    for r in records:
        for k in r.get("params", {}):
            if k not in names:
                names.append(k)
    return names


def table(records: list, names=None, keys=None) -> list[list[str]]:
    """Rows (header first) of the points named (default: all), with parameters and metrics."""
    params = _param_names(records)
    keys = [k for k in METRICS if any(r.get(k) is not None for r in records)] if keys is None else keys
    rows = [[*params, *(TITLES.get(k, k).split(" (")[0] for k in keys)]]
    for r in records:
        if names is None or r["point"] in names:
            rows.append([_fmt(r.get("params", {}).get(p)) for p in params] + [_fmt(r.get(k)) for k in keys])
    return rows


def format_rows(rows: list, indent: str = "  ") -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "".join(indent + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() + "\n" for r in rows)


def write_results(out: Path, records: list, *, stages=()) -> None:
    """``results.csv``, ``results.json`` and ``report.html`` in ``out`` (each replaced whole)."""
    front = set(pareto(records))
    params = _param_names(records)
    header = ["point", "status", *params, *METRICS, "pareto", "attempt", "seconds", "error", "command", "dir"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for r in records:
        seconds = round(sum((r.get("seconds") or {}).values()), 2)
        w.writerow([r["point"], r["status"], *(r.get("params", {}).get(p, "") for p in params),
                    *("" if r.get(k) is None else r[k] for k in METRICS), "yes" if r["point"] in front else "no",
                    r.get("attempt", ""), seconds, r.get("error") or "", r.get("command", ""), r.get("dir", "")])  # fmt: skip
    _replace(out / "results.csv", buf.getvalue())
    doc = {
        "objectives": objectives(records), "pareto": [r["point"] for r in records if r["point"] in front],
        "best": best(records), "stages": list(stages),
        "points": [{**r, "pareto": r["point"] in front} for r in records],
    }  # fmt: skip
    _replace(out / "results.json", json.dumps(doc, indent=2, sort_keys=True) + "\n")
    _replace(out / "report.html", page(records, stages=stages))


def _replace(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _plot(records: list, front: set) -> str | None:
    """A PNG (base64) of each resource against latency and accuracy, Pareto points highlighted."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    keys = objectives(records)
    ys = [k for k in ("lut", "ff", "dsp") if k in keys]
    xs = [k for k in ("latency", "accuracy") if k in keys]
    pairs = [(x, y) for y in ys for x in xs] or ([("latency", "accuracy")] if {"latency", "accuracy"} <= set(keys) else [])
    if not pairs:
        return None
    ok = [r for r in records if r["status"] == "ok"]
    cols = len(xs) if ys else 1
    rows = -(-len(pairs) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.6 * rows), squeeze=False)
    for ax, (x, y) in zip(axes.flat, pairs):
        other = [r for r in ok if r["point"] not in front]
        on = [r for r in ok if r["point"] in front]
        ax.scatter([r[x] for r in other], [r[y] for r in other], c="0.65", s=22, label="other points")
        ax.scatter([r[x] for r in on], [r[y] for r in on], c="C3", s=30, label="Pareto front (all objectives)")
        # This pair's own front, as a staircase.
        names2 = set(pareto(ok, [x, y]))
        pts = sorted((r for r in ok if r["point"] in names2), key=lambda r: (r[x], OBJECTIVES[y] * r[y]))
        if len(pts) > 1:  # each step holds the best y reachable at that x or better
            where = "post" if OBJECTIVES[x] > 0 else "pre"
            ax.step([r[x] for r in pts], [r[y] for r in pts], where=where, c="C3", lw=0.8, alpha=0.6)
        ax.set_xlabel(TITLES[x])
        ax.set_ylabel(TITLES[y])
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(pairs):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _html_table(rows: list, marks=None) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = ""
    for i, r in enumerate(rows[1:]):
        cls = ' class="front"' if marks and marks[i] else ""
        body += f"<tr{cls}>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>\n"
    return f"<table><tr>{head}</tr>\n{body}</table>"


def page(records: list, *, stages=()) -> str:
    """A self-contained HTML page: Pareto front plots and table, best point per objective with the
    command that rebuilds it, every point, and the errors of the failed ones."""
    front = set(pareto(records))
    ok = [r for r in records if r["status"] == "ok"]
    failed = [r for r in records if r["status"] != "ok"]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>rtlgen sweep</title><style>"
        "body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:left}tr.front td{background:#fde8e6}"
        "code{font-size:12px;word-break:break-all}</style></head><body>",
        "<h1>rtlgen sweep</h1>",
        f"<p>{len(records)} points ({', '.join(stages) or 'build'}): {len(ok)} succeeded, {len(failed)} failed; "
        f"{len(front)} on the Pareto front of {', '.join(TITLES[k] for k in objectives(records)) or 'nothing'} "
        "(resources, latency and interval lower, accuracy higher is better).</p>",
    ]
    b = best(records)
    if b:
        by_name = {r["point"]: r for r in records}
        rows = "".join(
            f"<tr><td>{html.escape(TITLES[k])}</td><td>{html.escape(_fmt(by_name[n][k]))}</td><td>{html.escape(n)}</td>"
            f"<td><code>{html.escape(by_name[n].get('command', ''))}</code></td></tr>\n"
            for k, n in b.items()
        )
        parts.append("<h2>Best point per objective</h2><table><tr><th>objective</th><th>value</th><th>point</th>"
                     f"<th>command that rebuilds it</th></tr>\n{rows}</table>")  # fmt: skip
    img = _plot(records, front)
    if img:
        parts.append(f"<h2>Pareto front</h2><img alt='Pareto front' src='data:image/png;base64,{img}'>")
    elif ok:
        parts.append("<p>(no plot: it needs matplotlib, pip install 'rtlgen[report]', and two objectives to plot)</p>")
    if ok:
        parts.append("<h2>Points on the Pareto front</h2>" + _html_table(table(records, front)))
        rows = table(ok)
        parts.append("<h2>All successful points</h2><p>Pareto points are shaded.</p>"
                     + _html_table(rows, [r["point"] in front for r in ok]))  # fmt: skip
    if failed:
        rows = "".join(f"<tr><td>{html.escape(r['point'])}</td><td>{html.escape(r.get('error') or '')}</td></tr>\n" for r in failed)
        parts.append(f"<h2>Failed points</h2><table><tr><th>point</th><th>error</th></tr>\n{rows}</table>")
    parts.append("</body></html>\n")
    return "\n".join(parts)
