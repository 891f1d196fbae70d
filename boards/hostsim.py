"""Check a board package on this computer, without Vivado, Vitis or a board.

    python -m rtlgen.boards.hostsim OUT/boards/<board> [--c] [--pynq] [--tcl] [--stall random]

* :func:`run_c`: ``sw/main.c`` built with the host ``gcc`` against stand-ins of the Xilinx headers
  whose DMA calls drive a Verilator model of the package's ``ip/hdl/`` (see
  :mod:`rtlgen.sim.hostsim`); returns what the program printed on its "UART" and the figures in it.
* :func:`pynq_network`: the package's PYNQ driver (``driver/rtlgen_net.py``) on a stand-in ``pynq``
  backed by the same model; the board's ``ip_dict`` is taken from what ``project.tcl`` builds.
* :func:`tcl_dry_run`: ``project.tcl`` under ``tclsh`` with every Vivado command replaced by a
  procedure that records its arguments (and answers the few queries the flow makes), on a copy of
  the package; returns the recorded calls.

Each builds the model once per package in a work directory (default ``<package>/host_build``).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["TclRun", "ip_dict_from_tcl", "model", "pynq_network", "run_c", "tcl_dry_run", "tcl_list"]


def _pkg(pkg) -> tuple[Path, dict]:
    p = Path(pkg).resolve()
    f = p / "package.json"
    if not f.is_file():
        raise FileNotFoundError(f"{p} is not an rtlgen board package (no package.json)")
    return p, json.loads(f.read_text())


def _work(pkg: Path, work) -> Path:
    w = Path(work).resolve() if work is not None else pkg / "host_build"
    w.mkdir(parents=True, exist_ok=True)
    return w


def model(pkg, work=None) -> Path:
    """``libaxisim.so`` of the package's IP (``ip/hdl/*.v``), built once per work directory."""
    from rtlgen.sim.hostsim import build_model

    p, pl = _pkg(pkg)
    w = _work(p, work)
    hdl = [p / "ip" / "hdl" / f"{pl['toplevel']}.v", p / "ip" / "hdl" / f"{pl['top']}.v"]
    return build_model(hdl, pl["toplevel"], w / "model", in_beat_bytes=pl["ip_in_width"] // 8, out_beat_bytes=pl["ip_out_width"] // 8)


# -- bare metal --------------------------------------------------------------------------------------

_RESULT = re.compile(r"rtlgen: mismatches: (\d+) of (\d+) samples \((\d+) transfer")
_CYCLES = re.compile(r"cycles per sample: (\d+)\.(\d+)")


def run_c(pkg, *, stall: str = "none", seed: int = 0, fault: str = "none", work=None, defines=(), timeout: float = 600,
          sw=None, mm2s_dump=None) -> dict:
    """Build ``sw/main.c`` for the host and run it on the model; returns ``{"returncode", "uart",
    "stderr", "mismatches", "samples", "transfers", "cycles_per_sample", "passed"}``.

    ``sw``: another directory with ``main.c`` and the headers (default the package's ``sw/``);
    ``mm2s_dump``: a file that receives every byte the DMA sends."""
    import os

    from rtlgen.sim.hostsim import compile_c
    from rtlgen.sim.hostsim import run_c as _run

    p, pl = _pkg(pkg)
    w = _work(p, work)
    lib = model(p, w)
    sw = Path(sw).resolve() if sw is not None else p / "sw"
    tag = "_".join(["main", sw.name, *[re.sub(r"\W", "", d) for d in defines]])
    exe = compile_c([sw / "main.c"], [sw], lib, w / f"{tag}.host", defines=defines)
    env = dict(os.environ)
    if mm2s_dump is not None:
        Path(mm2s_dump).unlink(missing_ok=True)
        env["RTLGEN_MM2S_DUMP"] = str(mm2s_dump)
    proc = _run(exe, stall=stall, seed=seed, fault=fault, timeout=timeout, env=env)
    m = _RESULT.search(proc.stdout)
    c = _CYCLES.search(proc.stdout)
    return {
        "returncode": proc.returncode,
        "uart": proc.stdout,
        "stderr": proc.stderr,
        "mismatches": int(m.group(1)) if m else None,
        "samples": int(m.group(2)) if m else None,
        "transfers": int(m.group(3)) if m else None,
        "cycles_per_sample": float(f"{c.group(1)}.{c.group(2)}") if c else None,
        "passed": proc.returncode == 0 and "rtlgen: PASS" in proc.stdout,
    }


# -- Tcl ---------------------------------------------------------------------------------------------


def tcl_list(s: str) -> list[str]:
    """The words of a Tcl list (braces and double quotes group; enough for recorded arguments)."""
    words, i, n = [], 0, len(s)
    while i < n:
        while i < n and s[i].isspace():
            i += 1
        if i >= n:
            break
        if s[i] == "{":
            depth, j = 1, i + 1
            while j < n and depth:
                depth += {"{": 1, "}": -1}.get(s[j], 0)
                j += 1
            words.append(s[i + 1 : j - 1])
            i = j
        elif s[i] == '"':
            j = s.index('"', i + 1)
            words.append(s[i + 1 : j])
            i = j + 1
        else:
            j = i
            while j < n and not s[j].isspace():
                j += 1
            words.append(s[i:j])
            i = j
    return words


@dataclass
class TclRun:
    """A dry run of ``project.tcl``: exit status, output, the recorded Vivado calls (each a list of
    words) and the package copy it ran in."""

    returncode: int
    stdout: str
    stderr: str
    calls: list = field(default_factory=list)
    root: Path | None = None

    def find(self, command: str) -> list[list[str]]:
        return [c for c in self.calls if c and c[0] == command]

    def cell_properties(self, cell: str) -> dict:
        """Every ``set_property -dict {...} <cell>`` and ``set_property KEY VALUE <cell>`` merged."""
        props = {}
        for c in self.find("set_property"):
            if c[1] == "-dict" and c[-1] == cell:
                kv = tcl_list(c[2])
                props.update(zip(kv[0::2], kv[1::2]))
            elif len(c) == 4 and c[-1] == cell:
                props[c[1]] = c[2]
        return props

    def cells(self) -> dict:
        """``{cell name: vlnv}`` of every ``create_bd_cell``."""
        out = {}
        for c in self.find("create_bd_cell"):
            vlnv = c[c.index("-vlnv") + 1] if "-vlnv" in c else ""
            out[c[-1]] = vlnv
        return out


_HARNESS = r"""
set ::rtlgen_log [open [lindex $argv 0] w]
set ::rtlgen_cfg [lindex $argv 1]
set script [lindex $argv 2]
set argv [lrange $argv 3 end]
set argc [llength $argv]
proc rtlgen_cfg {key} { return [dict get $::rtlgen_cfg $key] }
proc rec {args} {
    puts $::rtlgen_log [join [lmap a $args {string map [list "\n" " "] $a}] "\x1f"]
    flush $::rtlgen_log
}
proc unknown {args} { rec {*}$args; return "" }
foreach cmd {get_bd_pins get_bd_intf_pins get_bd_ports get_bd_intf_ports get_bd_addr_spaces get_bd_addr_segs get_runs get_files get_bd_cells} {
    proc $cmd {args} { return [concat {*}$args] }
}
proc create_bd_cell {args} { rec create_bd_cell {*}$args; return [lindex $args end] }
proc create_bd_port {args} { rec create_bd_port {*}$args; return [lindex $args end] }
proc create_bd_intf_port {args} { rec create_bd_intf_port {*}$args; return [lindex $args end] }
proc current_project {args} { return rtlgen_project }
proc current_fileset {args} { return sources_1 }
proc version {args} { return 2023.2 }
proc get_board_parts {args} {
    rec get_board_parts {*}$args
    return [rtlgen_cfg board_parts]
}
proc get_ipdefs {args} {
    rec get_ipdefs {*}$args
    if {[rtlgen_cfg ip_found]} { return [lindex $args end] }
    return ""
}
proc make_wrapper {args} {
    rec make_wrapper {*}$args
    return [file join [rtlgen_cfg root] vivado system_wrapper.v]
}
proc get_property {name obj} {
    rec get_property $name $obj
    switch -glob -- $name {
        CONFIG.TDATA_NUM_BYTES {
            if {[string match */s_axis $obj]} { return [rtlgen_cfg ip_in_bytes] }
            return [rtlgen_cfg ip_out_bytes]
        }
        DIRECTORY { return [file join [rtlgen_cfg root] vivado runs $obj] }
        STATUS {
            if {$obj eq "synth_1"} { return [rtlgen_cfg synth_status] }
            return [rtlgen_cfg impl_status]
        }
        STATS.WNS { return [rtlgen_cfg wns] }
        default { return "" }
    }
}
proc wait_on_run {args} {
    rec wait_on_run {*}$args
    if {[rtlgen_cfg bitstream]} {
        set root [rtlgen_cfg root]
        file mkdir [file join $root vivado runs impl_1]
        close [open [file join $root vivado runs impl_1 system_wrapper.bit] w]
        set hw [file join $root vivado [rtlgen_cfg project].gen sources_1 bd system hw_handoff]
        file mkdir $hw
        close [open [file join $hw system.hwh] w]
    }
}
proc write_hw_platform {args} {
    rec write_hw_platform {*}$args
    close [open [lindex $args end] w]
}
source $script
"""


def tcl_dry_run(pkg, args=(), *, board_files: bool = True, bitstream: bool = True, ip_found: bool = True,
                ip_widths=None, wns: str = "0.250", work=None, tclsh: str | None = None) -> TclRun:
    """Run ``project.tcl`` of a copy of the package under ``tclsh`` with Vivado stubbed out.

    ``board_files``: whether ``get_board_parts`` finds the board part; ``bitstream``: whether the
    implementation run leaves a ``.bit`` (and ``.hwh``); ``ip_found``: whether the IP catalog has
    the network's IP; ``ip_widths``: ``(s_axis bits, m_axis bits)`` the IP cell reports (default:
    the package's own); ``wns``: the worst negative slack reported."""
    p, pl = _pkg(pkg)
    exe = tclsh or shutil.which("tclsh")
    if exe is None:
        raise FileNotFoundError("tclsh not found (apt-get install tcl)")
    w = _work(p, work)
    root = w / "tcl_run"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    for name in ("project.tcl", "constraints.xdc"):
        if (p / name).is_file():
            shutil.copyfile(p / name, root / name)
    shutil.copytree(p / "ip", root / "ip")
    iw, ow = ip_widths or (pl["ip_in_width"], pl["ip_out_width"])
    bp = pl["board_part"] or ""
    cfg = {
        "root": str(root),
        "project": pl["project"],
        "board_parts": bp if (board_files and bp) else "",
        "ip_found": int(ip_found),
        "ip_in_bytes": iw // 8,
        "ip_out_bytes": ow // 8,
        "bitstream": int(bitstream),
        "synth_status": "synth_design Complete!",
        "impl_status": "write_bitstream Complete!" if bitstream else "route_design ERROR",
        "wns": wns,
    }
    harness = root / "harness.tcl"
    harness.write_text(_HARNESS)
    log = root / "calls.log"
    cfg_tcl = " ".join(f"{k} {{{v}}}" for k, v in cfg.items())
    proc = subprocess.run([exe, str(harness), str(log), cfg_tcl, str(root / "project.tcl"), *map(str, args)],
                          capture_output=True, text=True, timeout=120, cwd=root)  # fmt: skip
    calls = [ln.split("\x1f") for ln in log.read_text().splitlines()] if log.is_file() else []
    return TclRun(proc.returncode, proc.stdout, proc.stderr, calls, root)


def ip_dict_from_tcl(run: TclRun) -> dict:
    """The ``ip_dict`` PYNQ would read from the ``.hwh`` of the design ``run`` describes: each cell
    with its VLNV and, for the AXI DMA, the parameters the flow set (upper-cased, as in a .hwh)."""
    out = {}
    for cell, vlnv in run.cells().items():
        params = {k.removeprefix("CONFIG.").upper(): v for k, v in run.cell_properties(cell).items()}
        t = vlnv if vlnv.count(":") == 3 else f"{vlnv}:7.1" if vlnv.endswith("axi_dma") else vlnv
        out[cell] = {"type": t, "parameters": params, "fullpath": cell}
    return out


# -- PYNQ --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def pynq_network(pkg, *, stall: str = "none", seed: int = 0, work=None, ip_dict=None, fault: str = "none", timeout=None, batch=None):
    """The package's ``Network`` on the stand-in ``pynq``, backed by the model (a context manager).

    ``ip_dict``: the board's IP blocks (default: :func:`ip_dict_from_tcl` of a dry run of
    ``project.tcl``). Fake ``deploy/<name>.bit``/``.hwh`` are made in the work directory."""
    from rtlgen.sim.hostsim import PYNQ_STANDIN, AxiSim

    p, pl = _pkg(pkg)
    w = _work(p, work)
    lib = model(p, w)
    if ip_dict is None:
        ip_dict = ip_dict_from_tcl(tcl_dry_run(p, work=w))
    deploy = w / "deploy"
    deploy.mkdir(exist_ok=True)
    bit = deploy / f"{pl['overlay']}.bit"
    for f in (bit, bit.with_suffix(".hwh")):
        f.write_bytes(b"")
    sim = AxiSim(lib, in_beat_bytes=pl["ip_in_width"] // 8, out_beat_bytes=pl["ip_out_width"] // 8, stall=stall, seed=seed)
    sim.set_fault(fault)
    saved_path = list(sys.path)
    saved_mods = {k: v for k, v in sys.modules.items() if k == "pynq" or k.startswith("pynq.") or k == "rtlgen_net"}
    for k in saved_mods:
        del sys.modules[k]
    sys.path[:0] = [str(PYNQ_STANDIN), str(p / "driver")]
    try:
        pynq = importlib.import_module("pynq")
        if not getattr(pynq, "STANDIN", False):
            raise RuntimeError(f"the real pynq was imported ({pynq.__file__}), not the stand-in")
        pynq.attach(bit, sim=sim, ip_dict=ip_dict, dma=pl["dma"]["name"], clock_mhz=pl["clock_mhz"])
        drv = importlib.import_module("rtlgen_net")
        net = drv.Network(bit, timeout=timeout, batch=batch)
        net.sim = sim
        yield net
    finally:
        sys.path[:] = saved_path
        for k in [k for k in sys.modules if k == "pynq" or k.startswith("pynq.") or k == "rtlgen_net"]:
            del sys.modules[k]
        sys.modules.update(saved_mods)
        sim.close()


# -- command line ------------------------------------------------------------------------------------


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("package", help="a board package, OUT/boards/<board>")
    ap.add_argument("--c", action="store_true", help="run sw/main.c on the model")
    ap.add_argument("--pynq", action="store_true", help="run driver/ (validate) on the stand-in pynq")
    ap.add_argument("--tcl", action="store_true", help="dry-run project.tcl under tclsh")
    ap.add_argument("--stall", choices=("none", "random"), default="random")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", help="work directory (default <package>/host_build)")
    args = ap.parse_args(argv)
    p, pl = _pkg(args.package)
    every = not (args.c or args.pynq or args.tcl)
    ok = True
    if args.tcl or every:
        r = tcl_dry_run(p, work=args.work)
        dma = r.cell_properties("axi_dma_0")
        print(f"project.tcl: exit {r.returncode}, {len(r.calls)} Vivado calls; AXI DMA MM2S "
              f"{dma.get('CONFIG.c_m_axis_mm2s_tdata_width')} / S2MM {dma.get('CONFIG.c_s_axis_s2mm_tdata_width')} bits")
        ok &= r.returncode == 0
    if args.c or every:
        r = run_c(p, stall=args.stall, seed=args.seed, work=args.work)
        sys.stdout.write(r["uart"])
        sys.stderr.write(r["stderr"])
        ok &= r["passed"]
    if (args.pynq or every) and pl["pynq"]:
        with pynq_network(p, stall=args.stall, seed=args.seed, work=args.work, timeout=600) as net:
            ok &= net.validate()["passed"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
