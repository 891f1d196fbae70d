"""Board packages for Xilinx boards: Zynq-7000 and Zynq UltraScale+ (PS + AXI DMA, PYNQ or bare
metal) and Artix-7 with a MicroBlaze (AXI DMA, UART Lite, AXI timer, bare metal).

``write(pkg_dir, board, design, build_dir)`` fills ``OUT/boards/<board>/`` (see
:data:`PACKAGE_FILES`); ``check(board, design)`` refuses, before anything is written, a design
that cannot go on the board. Everything is derived from one :func:`plan`: the AXI DMA's stream
widths from the IP's ``s_axis``/``m_axis`` widths (the numbers ``component.xml`` carries), padded
to the powers of two the DMA takes, and the same plan writes the Vivado Tcl, the PYNQ driver's
``network.json`` and the C program's ``rtlgen_net.h``, so they cannot disagree.

The network goes on the board as ``<top>_axis_dma`` (``ip/``): the AXI4-Stream top level in batch
TLAST mode (one output packet per input packet, i.e. per DMA transfer) with its buses padded to
the DMA widths. Its cocotb regression is ``tb/`` (``pytest OUT/boards/<board>/tb``).
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np

from rtlgen.errors import RtlgenError

__all__ = ["PACKAGE_FILES", "check", "plan", "write"]

TEMPLATES = Path(__file__).resolve().parent / "templates"

#: What a package holds (``driver/`` only on boards with a PYNQ image).
PACKAGE_FILES = {
    "README.md": "the steps from bitstream to a validated run, in order",
    "package.json": "the plan: part, IP, DMA widths, addresses, clock (machine-readable)",
    "project.tcl": "Vivado batch flow: project, block design, bitstream, .xsa, deploy/",
    "build.sh": "runs project.tcl in Vivado (vivado must be on PATH)",
    "constraints.xdc": "pins of the clock, reset and UART (MicroBlaze boards)",
    "ip/": "the network as the Vivado IP <top>_axis_dma (batch TLAST, DMA-width buses)",
    "tb/": "cocotb regression of ip/ in batch mode (pytest tb)",
    "driver/": "PYNQ driver: rtlgen_net.py (Network), tdata.py, network.json, vectors.npz, run.py",
    "sw/": "bare-metal C: main.c, rtlgen_net.h, rtlgen_vectors.h, Makefile, Vitis/xsct scripts",
}

DMA_LENGTH_WIDTH = 26  # the AXI DMA's largest buffer length register: transfers up to 64 MB - 1
DMA_MAX_WIDTH = 1024
MAX_CLOCK_MHZ = {"ps7": 250.0, "zynq_us": 333.0, "microblaze": 200.0}
# Rough resources of what the block design adds around the network (DMA with its FIFOs,
# SmartConnects, reset; MicroBlaze, UART Lite, timer), for the fit check. Estimates.
_OVERHEAD = {
    "ps7": {"lut": 4500, "ff": 6500, "dsp": 0, "bram": 4},
    "zynq_us": {"lut": 5000, "ff": 7000, "dsp": 0, "bram": 4},
    "microblaze": {"lut": 6500, "ff": 8500, "dsp": 0, "bram": 4},
}
_CPU = {"ps7": "ps7_cortexa9_0", "zynq_us": "psu_cortexa53_0", "microblaze": "microblaze_0"}
_NO_BOARD_NOTE = {
    "ps7": (
        "Without the board preset the PS keeps Vivado's defaults: fine under PYNQ, whose boot image "
        "configures the PS (DDR, clocks), but a bare-metal FSBL made from this .xsa will not set up "
        "the board's DDR. Install the board files for bare metal (see README.md)."
    ),
    "zynq_us": (
        "Without the board preset the PS keeps Vivado's defaults: fine under PYNQ, whose boot image "
        "configures the PS (DDR, clocks), but a bare-metal FSBL/PMU firmware made from this .xsa will "
        "not set up the board's DDR. Install the board files for bare metal (see README.md)."
    ),
    "microblaze": (
        "Nothing is lost: the design uses only on-chip memory and constrains its clock, reset and "
        "UART pins itself (constraints.xdc)."
    ),
}


def _fail(msg: str):
    raise RtlgenError(msg)


def _fmt_num(v: float) -> str:
    return f"{v:g}"


# -- the plan ----------------------------------------------------------------------------------------


def _report(design) -> dict | None:
    build_dir = getattr(design, "build_dir", None)
    if build_dir is None:
        return None
    p = Path(build_dir) / "report.json"
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text())
    except ValueError:
        return None


def _check_build_dir(design) -> None:
    """An existing build must have its AXI4-Stream top (older builds and partial copies do not)."""
    build_dir = getattr(design, "build_dir", None)
    if build_dir is None:
        return
    top = f"{design.top_name}_axis"
    missing = [rel for rel in (f"rtl/{top}.v", "ip/component.xml") if not (Path(build_dir) / rel).is_file()]
    if missing:
        _fail(
            f"build {str(build_dir)!r} has no AXI4-Stream top level ({', '.join(missing)} missing): a board "
            f"package needs one; rebuild with 'rtlgen build' (this rtlgen writes rtl/{top}.v and ip/)"
        )


def _fit(board, design) -> None:
    """Refuse a design that cannot fit the board's part, by the Yosys estimate in report.json."""
    report = _report(design)
    synth = (report or {}).get("synthesis") or {}
    entry = synth.get(board.target)
    if not isinstance(entry, dict):
        entry = next((v for k, v in synth.items() if k in ("xc7", "xcup") and isinstance(v, dict)), None)
    if not entry:
        return
    part = board.resources()
    extra = dict(_OVERHEAD[board.processor])
    if board.processor == "microblaze":
        # Block RAM of the MicroBlaze's local memory and the DMA buffers: 4 KB per RAMB36.
        extra["bram"] += math.ceil(board.local_memory_kb / 4) + math.ceil(board.buffer_kb / 4)
    used = {
        "lut": int(entry.get("lut") or 0) + int(entry.get("lutram") or 0),
        "ff": int(entry.get("ff") or 0),
        "dsp": int(entry.get("dsp") or 0),
        "bram": float(entry.get("bram") or 0),
    }
    names = {"lut": "LUTs", "ff": "flip-flops", "dsp": "DSPs", "bram": "block RAMs (36 Kb)"}
    over = []
    for k in ("lut", "ff", "dsp", "bram"):
        need = used[k] + extra[k]
        have = getattr(part, k)
        if need > have:
            over.append(f"{_fmt_num(need)} {names[k]} ({_fmt_num(used[k])} for the network + ~{extra[k]} for the DMA system; the part has {_fmt_num(have)})")
    if over:
        src = entry.get("part") or part.name
        _fail(
            f"design {design.top_name!r} does not fit the {part.name} of {board.name}: it needs {'; '.join(over)} "
            f"(Yosys estimate in report.json for {src}); choose a larger board (rtlgen boards), a larger "
            f"ReuseFactor or IOType: io_stream"
        )


def plan(board, design, build_dir=None) -> dict:
    """Everything the package is made of: geometry, DMA widths, addresses, names, sizes. Raises
    RtlgenError when the design cannot go on ``board`` (see :func:`check`)."""
    from rtlgen.ipxact import axis_geometry, axis_name
    from rtlgen.layers._axis import dma_width

    if board.vendor != "xilinx" or board.processor not in _CPU:
        _fail(f"board {board.name!r} has no Xilinx processor system; its package is not made here")
    try:
        g0 = axis_geometry(design, "axis")
    except (ValueError, AttributeError) as e:
        _fail(f"design {design.top_name!r} has no AXI4-Stream top level for a board: {e}")
    for side, port, what in (("in", "s_axis", "input"), ("out", "m_axis", "output")):
        bits = g0[f"{side}_tdata_width"]
        if dma_width(bits) > DMA_MAX_WIDTH:
            _fail(
                f"design {design.top_name!r}: {port} carries {bits} bits per beat ({g0[f'{side}_lanes']} lanes of "
                f"{g0[f'{side}_type']} in {g0[f'{side}_bytes']} byte(s) each), but the AXI DMA takes at most "
                f"{DMA_MAX_WIDTH}-bit streams; build with IOType: io_stream (one position per beat) or narrower "
                f"{what} types"
            )
    g = axis_geometry(design, "dma")
    top = design.top_name
    p = board.processor
    mm = board.memory_map
    max_bytes = (1 << DMA_LENGTH_WIDTH) - 1
    in_sample = g["in_beats"] * g["in_beat_bytes"]
    out_sample = g["out_beats"] * g["out_beat_bytes"]
    mm2s, s2mm = g["in_tdata_width"], g["out_tdata_width"]
    res = {
        "board": board.name,
        "title": board.title,
        "part": board.part_number,
        "device": board.part,
        "board_part": board.board_part,
        "processor": p,
        "cpu": _CPU[p],
        "pynq": bool(board.pynq),
        "clock_mhz": float(board.clock_mhz),
        "network": design.graph.name,
        "top": top,
        "toplevel": axis_name(design, "dma"),
        "ip_vlnv": f"rtlgen:nn:{axis_name(design, 'dma')}:1.0",
        "ip_cell": "nn_0",
        "overlay": top,
        "project": f"{top}_{board.name.replace('-', '_')}",
        "bd_name": "system",
        "latency": int(design.latency),
        "interval": int(design.initiation_interval),
        # The IP's stream widths (component.xml) before and after padding to DMA widths.
        "net_in_width": g0["in_tdata_width"],
        "net_out_width": g0["out_tdata_width"],
        "ip_in_width": mm2s,
        "ip_out_width": s2mm,
        "dma": {
            "name": "axi_dma_0",
            "mm2s_width": mm2s,
            "s2mm_width": s2mm,
            "mm2s_mm_width": max(32, mm2s),
            "s2mm_mm_width": max(32, s2mm),
            "length_width": DMA_LENGTH_WIDTH,
            "max_bytes": max_bytes,
            "addr_width": 64 if p == "zynq_us" else 32,
            "base": mm["dma"],
        },
        "layout": {k: g[k] for k in g if k.startswith(("in_", "out_")) and not k.endswith(("_type", "_tdata_width", "_lanes_width"))},
        "types": {"in": g["in_type"], "out": g["out_type"]},
        "in_sample_bytes": in_sample,
        "out_sample_bytes": out_sample,
    }
    if p == "microblaze":
        pins = board.pins
        if not pins:
            _fail(f"board {board.name!r} has no pin table (clock, reset, UART) in the catalog")
        buf_bytes = board.buffer_kb * 1024
        # In and out buffers share the block RAM: the output buffer starts at an aligned offset.
        per = in_sample + out_sample
        batch = max(1, (buf_bytes - 64) // per)
        out_off = -(-batch * in_sample // 64) * 64
        while out_off + batch * out_sample > buf_bytes and batch > 1:
            batch -= 1
            out_off = -(-batch * in_sample // 64) * 64
        if out_off + batch * out_sample > buf_bytes:
            _fail(f"design {top!r}: one sample ({in_sample} + {out_sample} bytes) does not fit the {board.buffer_kb} KB DMA buffer memory of {board.name}")
        res.update(
            batch=int(batch), out_buf_offset=int(out_off), buffer_base=mm["ddr"], buffer_bytes=buf_bytes,
            uart_base=mm["uart"], timer_base=mm["timer"], local_memory_kb=board.local_memory_kb,
            pins=pins, uart_baud=board.uart_baud, xdc="constraints.xdc",
        )  # fmt: skip
    else:
        res.update(batch=None, xdc="")
    return res


def check(board, design) -> None:
    """Raise RtlgenError (one line) unless ``design`` can go on ``board``: an AXI4-Stream top
    level exists (for an existing build: ``rtl/<top>_axis.v`` and ``ip/``), both streams fit the
    AXI DMA (at most 1024 bits), and the Yosys estimate in ``report.json``, when there is one,
    fits the part with the DMA system around it."""
    _check_build_dir(design)
    plan(board, design)
    _fit(board, design)


# -- vectors ---------------------------------------------------------------------------------------


def _vectors(design, build_dir) -> tuple[np.ndarray, np.ndarray]:
    """The build's AXI test vectors (tb/axis_vectors.npz), or 1000 fresh ones."""
    if build_dir is not None:
        f = Path(build_dir) / "tb" / "axis_vectors.npz"
        if f.is_file():
            with np.load(f, allow_pickle=False) as z:
                return z["x"], z["y"]
    x = design.random_inputs(1000, 0)
    return x, design.predict_int(x)


def _cbits(width: int) -> int:
    """Bits of the smallest C integer type holding a ``width``-bit mantissa."""
    return next(b for b in (8, 16, 32, 64) if width <= b) if width <= 64 else 64


def _ctype(width: int, signed: bool) -> str:
    return f"{'' if signed else 'u'}int{_cbits(width)}_t"


# -- Tcl ---------------------------------------------------------------------------------------------


def _tcl_word(v) -> str:
    s = str(v)
    if s and all(c.isalnum() or c in "._:-/" for c in s):
        return s
    return "{" + s + "}"


def project_tcl(pl: dict) -> str:
    d = pl["dma"]
    settings = [
        ("board_name", pl["board"], "catalog name"),
        ("part", pl["part"], ""),
        ("board_part", pl["board_part"] or "", "used when its board files are installed"),
        ("processor", pl["processor"], "ps7 | zynq_us | microblaze"),
        ("clock_mhz", _fmt_num(pl["clock_mhz"]), "PL clock of the network and the DMA (-clock MHZ)"),
        ("max_clock_mhz", _fmt_num(MAX_CLOCK_MHZ[pl["processor"]]), ""),
        ("project_name", pl["project"], ""),
        ("bd_name", pl["bd_name"], ""),
        ("overlay_name", pl["overlay"], "deploy/<name>.bit, .hwh, .xsa"),
        ("ip_vlnv", pl["ip_vlnv"], "ip/component.xml"),
        ("net_in_width", pl["net_in_width"], "s_axis of the network (OUT/ip/component.xml)"),
        ("net_out_width", pl["net_out_width"], "m_axis of the network"),
        ("ip_in_width", pl["ip_in_width"], "s_axis of ip/: the network's, padded to a DMA width"),
        ("ip_out_width", pl["ip_out_width"], "m_axis of ip/"),
        ("mm2s_width", d["mm2s_width"], "AXI DMA MM2S stream = ip_in_width"),
        ("s2mm_width", d["s2mm_width"], "AXI DMA S2MM stream = ip_out_width"),
        ("mm2s_mm_width", d["mm2s_mm_width"], "memory-mapped side (at least the stream width)"),
        ("s2mm_mm_width", d["s2mm_mm_width"], ""),
        ("dma_length_width", d["length_width"], f"transfers up to {d['max_bytes']} bytes"),
        ("dma_addr_width", d["addr_width"], ""),
        ("dma_base", f"0x{d['base']:08X}", "AXI DMA registers (rtlgen_net.h RTLGEN_DMA_BASE)"),
        ("xdc", pl["xdc"], ""),
        ("no_board_note", _NO_BOARD_NOTE[pl["processor"]], ""),
    ]
    if pl["processor"] == "microblaze":
        settings += [
            ("sys_clock_mhz", _fmt_num(pl["pins"]["clock_mhz"]), "the board's oscillator"),
            ("reset_polarity", pl["pins"]["reset_polarity"], ""),
            ("local_memory_kb", pl["local_memory_kb"], "MicroBlaze local memory (code and data)"),
            ("uart_baud", pl["uart_baud"], ""),
            ("uart_base", f"0x{pl['uart_base']:08X}", ""),
            ("timer_base", f"0x{pl['timer_base']:08X}", ""),
            ("buffer_base", f"0x{pl['buffer_base']:08X}", "block RAM for the DMA buffers"),
            ("buffer_range", f"{pl['buffer_bytes'] // 1024}K", ""),
        ]
    lines = [
        f"# project.tcl: {pl['network']} on {pl['title']} ({pl['board']}), Vivado batch flow (generated by rtlgen).",
        "#",
        "#   ./build.sh   or   vivado -mode batch -source project.tcl [-tclargs ...]",
        "#",
        "# See README.md. The settings below are this build's; the flow after them is the same for every package.",
        "set here [file dirname [file normalize [info script]]]",
    ]
    width = max(len(k) for k, _, _ in settings)
    for k, v, note in settings:
        line = f"set {k.ljust(width)} {_tcl_word(v)}"
        lines.append(line + (f"  ;# {note}" if note else ""))
    return "\n".join(lines) + "\n" + (TEMPLATES / "project.tcl").read_text()


def build_sh(pl: dict) -> str:
    return f"""\
#!/bin/sh
# Build the bitstream, .hwh and .xsa of {pl['network']} on {pl['board']} into deploy/ (generated by rtlgen).
#   ./build.sh [-jobs N] [-clock MHZ] [-no-board-part] [-bd-only]
# Needs Vivado on PATH (source <Vivado install>/settings64.sh). The log: vivado/vivado.log.
set -eu
cd "$(dirname "$0")"
if ! command -v vivado >/dev/null 2>&1; then
    echo "build.sh: vivado is not on PATH; run 'source <Vivado install>/settings64.sh' first" >&2
    exit 2
fi
mkdir -p vivado
exec vivado -mode batch -nojournal -log vivado/vivado.log -source project.tcl -tclargs "$@"
"""


def constraints_xdc(pl: dict) -> str:
    pins = pl["pins"]
    clk, ck_std = pins["clock"]
    period = 1000.0 / pins["clock_mhz"]
    lines = [
        f"# Pins of {pl['title']} ({pl['board']}) used by the rtlgen design (generated; from the board's master XDC).",
        f"set_property -dict {{PACKAGE_PIN {clk} IOSTANDARD {ck_std}}} [get_ports sys_clock]",
        f"create_clock -period {period:.3f} -name sys_clock [get_ports sys_clock]",
    ]
    for port, key in (("reset", "reset"), ("uart_rxd", "uart_rxd"), ("uart_txd", "uart_txd")):
        pin, std = pins[key]
        lines.append(f"set_property -dict {{PACKAGE_PIN {pin} IOSTANDARD {std}}} [get_ports {port}]")
    lines.append("set_property CFGBVS VCCO [current_design]")
    lines.append("set_property CONFIG_VOLTAGE 3.3 [current_design]")
    return "\n".join(lines) + "\n"


# -- C -----------------------------------------------------------------------------------------------


def _c_header(pl: dict, n_vectors: int, batch: int) -> str:
    lay = pl["layout"]
    in_t = _ctype(lay["in_width"], lay["in_signed"])
    out_t = _ctype(lay["out_width"], lay["out_signed"])
    per = max(pl["interval"], lay["in_beats"], lay["out_beats"])
    mb = pl["processor"] == "microblaze"
    d = pl["dma"]
    lines = [
        f"/* rtlgen_net.h: {pl['network']} on {pl['board']} (generated by rtlgen; do not edit).",
        " * Stream layout (the tdata rule of docs/axi-stream.md, the same Layout as driver/tdata.py),",
        " * board addresses and clocks (those project.tcl assigns). */",
        "#ifndef RTLGEN_NET_H",
        "#define RTLGEN_NET_H",
        "#include <stdint.h>",
        "",
        f'#define RTLGEN_NET_NAME "{pl["top"]}"',
        f'#define RTLGEN_BOARD_NAME "{pl["board"]}"',
        f"#define RTLGEN_MICROBLAZE {1 if mb else 0}",
        f"#define RTLGEN_ZYNQMP {1 if pl['processor'] == 'zynq_us' else 0}",
        f"#define RTLGEN_PL_CLOCK_HZ {int(round(pl['clock_mhz'] * 1e6))}u",
        f"#define RTLGEN_DMA_BASE 0x{d['base']:08X}u",
        f"#define RTLGEN_DMA_MAX_BYTES {d['max_bytes']}u",
        f"#define RTLGEN_DMA_ALIGN {max(d['mm2s_mm_width'], d['s2mm_mm_width']) // 8}u  /* no realignment engine: buffers aligned to the memory-mapped width */",
    ]
    if mb:
        lines += [
            f"#define RTLGEN_TIMER_BASE 0x{pl['timer_base']:08X}u",
            f"#define RTLGEN_UART_BASE 0x{pl['uart_base']:08X}u",
            "#ifndef RTLGEN_BUF_BASE",
            f"#define RTLGEN_BUF_BASE 0x{pl['buffer_base']:08X}u  /* block RAM of the DMA buffers */",
            "#endif",
            f"#define RTLGEN_BUF_BYTES {pl['buffer_bytes']}u",
            f"#define RTLGEN_OUT_BUF_OFFSET {pl['out_buf_offset']}u",
        ]
    for side, what in (("in", "input (s_axis)"), ("out", "output (m_axis)")):
        s = side.upper()
        lines += [
            "",
            f"/* {what}: {lay[f'{side}_lanes']} lanes of {pl['types'][side]} per beat, {lay[f'{side}_bytes']} byte(s) per lane, "
            f"{lay[f'{side}_beats']} beat(s) per sample, {lay[f'{side}_beat_bytes']}-byte beats */",
            f"#define RTLGEN_{s}_LANES {lay[f'{side}_lanes']}u",
            f"#define RTLGEN_{s}_BEATS {lay[f'{side}_beats']}u",
            f"#define RTLGEN_{s}_WIDTH {lay[f'{side}_width']}",
            f"#define RTLGEN_{s}_SIGNED {1 if lay[f'{side}_signed'] else 0}",
            f"#define RTLGEN_{s}_LANE_BYTES {lay[f'{side}_bytes']}u",
            f"#define RTLGEN_{s}_BEAT_BYTES {lay[f'{side}_beat_bytes']}u",
            f"#define RTLGEN_{s}_ELEMENTS (RTLGEN_{s}_LANES * RTLGEN_{s}_BEATS)",
            f"#define RTLGEN_{s}_SAMPLE_BYTES (RTLGEN_{s}_BEATS * RTLGEN_{s}_BEAT_BYTES)",
        ]
    lines += [
        "",
        f"typedef {in_t} rtlgen_in_t;",
        f"typedef {out_t} rtlgen_out_t;",
        f"#define RTLGEN_LATENCY {pl['latency']}u",
        f"#define RTLGEN_INTERVAL {pl['interval']}u",
        f"#define RTLGEN_N_VECTORS {n_vectors}u",
        f"#define RTLGEN_BATCH {batch}u  /* samples per DMA transfer */",
        "/* A transfer of n samples that takes longer is stuck (no TLAST): the program says so and stops. */",
        f"#define RTLGEN_TIMEOUT_CYCLES(n) (100000u + 100u * (uint64_t)(n) * {per}u + 10u * RTLGEN_LATENCY)",
        "#endif",
    ]
    return "\n".join(lines) + "\n"


def _c_array(name: str, ctype: str, a: np.ndarray) -> str:
    rows = []
    for r in a:
        rows.append("    {" + ", ".join(str(int(v)) for v in r) + "},")
    return f"static const {ctype} {name}[{len(a)}][{a.shape[1]}] = {{\n" + "\n".join(rows) + "\n};\n"


def _c_vectors(pl: dict, x: np.ndarray, y: np.ndarray) -> str:
    return (
        f"/* rtlgen_vectors.h: {len(x)} test vectors of {pl['network']} (input mantissas, expected output\n"
        " * mantissas; element order b * LANES + k), the build's own (generated by rtlgen). */\n"
        "#ifndef RTLGEN_VECTORS_H\n#define RTLGEN_VECTORS_H\n#include \"rtlgen_net.h\"\n"
        + _c_array("rtlgen_x", "rtlgen_in_t", x)
        + _c_array("rtlgen_y", "rtlgen_out_t", y)
        + "#endif\n"
    )


def _makefile(pl: dict) -> str:
    cross = {"ps7": "arm-none-eabi-gcc", "zynq_us": "aarch64-none-elf-gcc", "microblaze": "mb-gcc"}[pl["processor"]]
    flags = {
        "ps7": "-mcpu=cortex-a9 -mfpu=vfpv3 -mfloat-abi=hard",
        "zynq_us": "-mcpu=cortex-a53",
        "microblaze": "-mlittle-endian -mxl-soft-mul",
    }[pl["processor"]]
    return f"""\
# Bare-metal build of main.c for {pl['board']} ({pl['cpu']}) (generated by rtlgen).
#
#   make vitis        Vitis 2023.2 or later: platform + application from ../deploy/{pl['overlay']}.xsa
#   make xsct         older Vitis/SDK (xsct): the same
#   make elf BSP=DIR  cross-compile against an existing BSP (DIR/include, DIR/lib, DIR/lscript.ld)
#   make run          program the board over JTAG and start the program (xsct run_jtag.tcl)
#   make host         run main.c on this computer against the network's RTL (needs rtlgen: Verilator,
#                     stand-in Xilinx headers); the same check rtlgen's tests make
XSA ?= ../deploy/{pl['overlay']}.xsa
CC = {cross}
CFLAGS = {flags} -O2 -Wall
BSP ?=

.PHONY: vitis xsct elf run host clean
vitis:
\tvitis -s vitis_build.py $(XSA)
xsct:
\txsct xsct_build.tcl $(XSA)
elf:
\t@test -n "$(BSP)" || (echo "make elf BSP=<bsp directory with include/, lib/ and lscript.ld>" >&2; exit 2)
\t$(CC) $(CFLAGS) -I$(BSP)/include -I. main.c -L$(BSP)/lib -Wl,-T,$(BSP)/lscript.ld \\
\t\t-Wl,--start-group,-lxil,-lgcc,-lc,--end-group -o rtlgen_app.elf
run:
\txsct run_jtag.tcl
host:
\tpython3 -m rtlgen.boards.hostsim ..
clean:
\trm -rf vitis_ws xsct_ws rtlgen_app.elf host_build
"""


def _vitis_py(pl: dict) -> str:
    return f'''\
"""Vitis (2023.2 or later) build of main.c for {pl['board']} (generated by rtlgen).

    vitis -s vitis_build.py [../deploy/{pl['overlay']}.xsa]

Creates the workspace vitis_ws/ with a platform (standalone on {pl['cpu']}) from the .xsa and the
application rtlgen_app from main.c, rtlgen_net.h and rtlgen_vectors.h, and builds both. The ELF:
vitis_ws/rtlgen_app/build/rtlgen_app.elf (run it with run_jtag.tcl, see README.md).
"""
import os
import sys

import vitis

here = os.path.dirname(os.path.abspath(__file__))
xsa = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "deploy", "{pl['overlay']}.xsa"))
if not os.path.isfile(xsa):
    sys.exit(f"vitis_build.py: {{xsa}} not found: run ../build.sh first")
ws = os.path.join(here, "vitis_ws")
client = vitis.create_client()
client.set_workspace(path=ws)
domain = "standalone_{pl['cpu']}"
try:
    platform = client.create_platform_component(name="rtlgen_platform", hw_design=xsa, os="standalone",
                                                cpu="{pl['cpu']}", domain_name=domain)
except TypeError:  # 2023.2 calls the .xsa argument hw
    platform = client.create_platform_component(name="rtlgen_platform", hw=xsa, os="standalone",
                                                cpu="{pl['cpu']}", domain_name=domain)
platform.build()
xpfm = os.path.join(ws, "rtlgen_platform", "export", "rtlgen_platform", "rtlgen_platform.xpfm")
app = client.create_app_component(name="rtlgen_app", platform=xpfm, domain=domain, template="empty_application")
app.import_files(from_loc=here, files=["main.c", "rtlgen_net.h", "rtlgen_vectors.h"], dest_dir_in_cmp="src")
app.build()
print("vitis_build.py: built", os.path.join(ws, "rtlgen_app", "build", "rtlgen_app.elf"))
vitis.dispose()
'''


def _xsct_build(pl: dict) -> str:
    return f"""\
# xsct (Vitis 2019.2 to 2023.1, or SDK) build of main.c for {pl['board']} (generated by rtlgen).
#   xsct xsct_build.tcl [../deploy/{pl['overlay']}.xsa]
# The ELF: xsct_ws/rtlgen_app/Debug/rtlgen_app.elf
set here [file dirname [file normalize [info script]]]
set xsa [file normalize [file join $here .. deploy {pl['overlay']}.xsa]]
if {{$argc >= 1}} {{ set xsa [file normalize [lindex $argv 0]] }}
if {{![file exists $xsa]}} {{
    puts stderr "xsct_build.tcl: $xsa not found: run ../build.sh first"
    exit 1
}}
setws [file join $here xsct_ws]
app create -name rtlgen_app -hw $xsa -proc {pl['cpu']} -os standalone -template {{Empty Application}}
importsources -name rtlgen_app -path [file join $here main.c]
importsources -name rtlgen_app -path [file join $here rtlgen_net.h]
importsources -name rtlgen_app -path [file join $here rtlgen_vectors.h]
app build -name rtlgen_app
puts "xsct_build.tcl: built [file join $here xsct_ws rtlgen_app Debug rtlgen_app.elf]"
"""


def _run_jtag(pl: dict) -> str:
    p = pl["processor"]
    if p == "ps7":
        body = """\
targets -set -nocase -filter {name =~ "APU*"}
rst -system
after 1000
fpga -file $bit
targets -set -nocase -filter {name =~ "APU*"}
loadhw -hw $xsa -regs
source $init
ps7_init
ps7_post_config
targets -set -nocase -filter {name =~ "*A9*#0"}
dow $elf
con"""
        init = "ps7_init.tcl"
    elif p == "zynq_us":
        body = """\
targets -set -nocase -filter {name =~ "*PSU*"}
rst -system
after 1000
fpga -file $bit
targets -set -nocase -filter {name =~ "APU*"}
loadhw -hw $xsa -regs
source $init
psu_init
after 1000
psu_ps_pl_isolation_removal
psu_ps_pl_reset_config
targets -set -nocase -filter {name =~ "*A53*#0"}
rst -processor
dow $elf
con"""
        init = "psu_init.tcl"
    else:
        body = """\
fpga -file $bit
targets -set -nocase -filter {name =~ "*MicroBlaze*#0"}
rst -processor
dow $elf
con"""
        init = ""
    return f"""\
# Program {pl['board']} over JTAG and start rtlgen_app (generated by rtlgen). Open a serial terminal
# on the board's USB-UART at {pl.get('uart_baud', 115200)} baud first; then:   xsct run_jtag.tcl [app.elf]
set here [file dirname [file normalize [info script]]]
set bit [file join $here .. deploy {pl['overlay']}.bit]
set xsa [file join $here .. deploy {pl['overlay']}.xsa]
set elf ""
foreach f [list [file join $here vitis_ws rtlgen_app build rtlgen_app.elf] [file join $here xsct_ws rtlgen_app Debug rtlgen_app.elf]] {{
    if {{[file exists $f]}} {{ set elf $f; break }}
}}
if {{$argc >= 1}} {{ set elf [file normalize [lindex $argv 0]] }}
if {{$elf eq ""}} {{
    puts stderr "run_jtag.tcl: no rtlgen_app.elf: build it first (make vitis or make xsct)"
    exit 1
}}
set init [lindex [glob -nocomplain [file join $here vitis_ws rtlgen_platform * {init}] [file join $here xsct_ws * {init}] [file join $here xsct_ws * * {init}]] 0]
connect
{body}
puts "run_jtag.tcl: running $elf; results on the UART"
"""


# -- driver ------------------------------------------------------------------------------------------


def _type_dict(t) -> dict:
    return {"text": str(t), "width": t.width, "frac": t.frac, "signed": bool(t.signed), "rounding": t.rounding, "overflow": t.overflow}


def _driver_quantize():
    """The driver's own ``quantize``, loaded from the template (to compare with rtlgen's)."""
    import importlib.util
    import sys

    name = "rtlgen_boards_driver_template"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, TEMPLATES / "driver" / "rtlgen_net.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name].quantize


def _pre_is_plain_quantizer(design) -> bool:
    """True when the host input stage is only the input quantizer: the driver then quantizes with
    numpy (no qonnx on the board). Checked on values at and around every rounding tie of the type."""
    pre = design.graph.pre
    if pre is None:
        return True
    import onnx

    m = onnx.load_from_string(pre.onnx_bytes)
    if [n.op_type for n in m.graph.node] != ["Quant"]:
        return False
    t = design.input_tensor
    lo, hi = t.type.min_mantissa, t.type.max_mantissa
    k = np.arange(2 * lo - 8, 2 * hi + 9, dtype=np.float64)
    vals = np.concatenate([k / 2, k / 2 + 0.25, k / 2 - 1e-9, k / 2 + 1e-9])
    vals = np.ldexp(vals, -t.type.frac) * t.scale
    rng = np.random.default_rng(0)
    vals = np.concatenate([vals, rng.uniform(vals.min() * 2, vals.max() * 2, 4096)]).astype(np.float32)
    n = t.size
    # A Quant node is element-wise: samples of n values in any layout test it.
    vals = np.resize(vals, (len(vals) + n - 1) // n * n).reshape(-1, n)
    want = design.quantize_input(vals)
    x = vals.astype(np.float64)
    if design.graph.input_order is not None:
        x = x[:, design.graph.input_order]
    got = _driver_quantize()(x / t.scale, _type_dict(t.type))
    return bool(np.array_equal(got, want))


def _network_json(pl: dict, design, n_vectors: int) -> dict:
    tin, tout = design.input_tensor, design.output_tensor
    g = design.graph
    host = {"pre": None, "post": None}
    if g.pre is not None and not _pre_is_plain_quantizer(design):
        host["pre"] = "pre.onnx"
    if g.post is not None:
        host["post"] = "post.onnx"
    return {
        "name": pl["top"],
        "board": pl["board"],
        "overlay": pl["overlay"],
        "ip_vlnv": pl["ip_vlnv"],
        "ip_cell": pl["ip_cell"],
        "dma": {k: pl["dma"][k] for k in ("name", "mm2s_width", "s2mm_width", "length_width", "max_bytes", "base")},
        "layout": pl["layout"],
        "input": {"shape": list(tin.shape), "type": _type_dict(tin.type), "scale": float(tin.scale),
                  "order": None if g.input_order is None else [int(i) for i in g.input_order]},
        "output": {"shape": list(tout.shape), "type": _type_dict(tout.type), "scale": float(tout.scale),
                   "order": None if g.output_order is None else [int(i) for i in g.output_order]},
        "host": host,
        "latency": pl["latency"],
        "interval": pl["interval"],
        "clock_mhz": pl["clock_mhz"],
        "vectors": "vectors.npz",
        "n_vectors": n_vectors,
    }  # fmt: skip


# -- README ------------------------------------------------------------------------------------------


def _readme(pl: dict, n_vectors: int, files: list[str]) -> str:
    from . import _readme as r

    return r.render(pl, n_vectors, files, PACKAGE_FILES, _NO_BOARD_NOTE[pl["processor"]])


# -- the package -------------------------------------------------------------------------------------


def write(pkg_dir, board, design, build_dir) -> None:
    """Fill the new, empty ``pkg_dir`` with the package of ``design`` for ``board``."""
    from rtlgen.ipxact import axis_meta, write_ip
    from rtlgen.sim.axis import TDATA_SOURCE, write_axis_testbench
    from rtlgen.sim.vectors import _write_npz

    pkg = Path(pkg_dir)
    pl = plan(board, design, build_dir)
    x, y = _vectors(design, build_dir)
    top, name = pl["top"], pl["toplevel"]

    write_ip(design, pkg / "ip", variant="dma")
    write_axis_testbench(
        pkg / "tb", x, y, axis_meta(design, [f"../ip/hdl/{name}.v", f"../ip/hdl/{top}.v"], variant="dma")
    )
    (pkg / "project.tcl").write_text(project_tcl(pl))
    (pkg / "build.sh").write_text(build_sh(pl))
    (pkg / "build.sh").chmod(0o755)
    if pl["processor"] == "microblaze":
        (pkg / "constraints.xdc").write_text(constraints_xdc(pl))

    # Bare metal: all vectors in DDR on a Zynq; on a MicroBlaze as many as half its local memory holds.
    lay = pl["layout"]
    per_vec = x.shape[1] * _cbits(lay["in_width"]) // 8 + y.shape[1] * _cbits(lay["out_width"]) // 8
    n_c = len(x)
    if pl["processor"] == "microblaze":
        n_c = max(1, min(n_c, (pl["local_memory_kb"] * 1024 // 2) // per_vec))
        batch = min(pl["batch"], n_c)
    else:
        batch = max(1, min(n_c, pl["dma"]["max_bytes"] // max(pl["in_sample_bytes"], pl["out_sample_bytes"])))
    sw = pkg / "sw"
    shutil.copytree(TEMPLATES / "sw", sw)
    (sw / "rtlgen_net.h").write_text(_c_header(pl, n_c, batch))
    (sw / "rtlgen_vectors.h").write_text(_c_vectors(pl, x[:n_c], y[:n_c]))
    (sw / "Makefile").write_text(_makefile(pl))
    (sw / "vitis_build.py").write_text(_vitis_py(pl))
    (sw / "xsct_build.tcl").write_text(_xsct_build(pl))
    (sw / "run_jtag.tcl").write_text(_run_jtag(pl))
    pl["sw"] = {"n_vectors": n_c, "batch": batch}

    if pl["pynq"]:
        drv = pkg / "driver"
        shutil.copytree(TEMPLATES / "driver", drv)
        shutil.copyfile(TDATA_SOURCE, drv / "tdata.py")
        net = _network_json(pl, design, len(x))
        for key in ("pre", "post"):
            if net["host"][key]:
                (drv / net["host"][key]).write_bytes(getattr(design.graph, key).onnx_bytes)
        (drv / "network.json").write_text(json.dumps(net, indent=2) + "\n")
        _write_npz(drv / "vectors.npz", {"x": x, "y": y})
        pl["driver"] = {"n_vectors": len(x), "host": net["host"]}

    files = sorted(p.name + ("/" if p.is_dir() else "") for p in pkg.iterdir())
    (pkg / "package.json").write_text(json.dumps(pl, indent=2, sort_keys=True) + "\n")
    (pkg / "README.md").write_text(_readme(pl, len(x), files + ["README.md", "package.json"]))
