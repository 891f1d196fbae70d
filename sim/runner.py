"""Write and run the generated cocotb testbench (``OUT/tb``) of an rtlgen design.

The testbench is standalone (``pytest OUT/tb`` works without rtlgen); :func:`run` executes
its ``test_runner.py`` in a subprocess, so simulator crashes, environment changes and
timeouts stay out of the calling process.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .vectors import META_FILE, VECTORS_FILE, write_vectors

TEMPLATES = Path(__file__).resolve().parent / "templates"
TEMPLATE_FILES = ("test_design.py", "test_runner.py")
STALL_PATTERNS = ("none", "random")


class SimulationError(RuntimeError):
    """The simulator is unavailable, the build failed, or the simulation did not complete."""


@functools.lru_cache(maxsize=1)
def _tb_runner():
    # The testbench's own runner module holds the simulator checks; loading it (instead of
    # duplicating them) keeps `rtlgen sim` and `pytest OUT/tb` in agreement.
    spec = importlib.util.spec_from_file_location("_rtlgen_tb_runner", TEMPLATES / "test_runner.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def available_simulators() -> list[str]:
    """Names of the supported simulators (``verilator``, ``icarus``) usable on this machine."""
    return _tb_runner().available_simulators()


def check_simulator(simulator: str) -> None:
    """Raise SimulationError unless ``simulator`` is usable on this machine."""
    mod = _tb_runner()
    try:
        mod.check_simulator(simulator)
    except mod.SimulationError as e:
        raise SimulationError(str(e)) from None


def write_testbench(tb_dir, x: np.ndarray, y: np.ndarray, meta: Mapping) -> Path:
    """Create ``tb_dir`` with vectors, meta.json and the cocotb test/runner; return its path.

    ``meta["verilog_sources"]`` are paths relative to ``tb_dir``. See vectors.write_vectors.
    """
    tb = Path(tb_dir)
    write_vectors(tb, x, y, meta)
    for name in TEMPLATE_FILES:
        shutil.copyfile(TEMPLATES / name, tb / name)
    return tb


def _error_line(log: Path) -> str | None:
    prefix = _tb_runner().ERROR_PREFIX
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return None
    for ln in reversed(lines):
        if ln.startswith(prefix):
            return ln[len(prefix) :].strip()
    return None


def run(
    tb_dir,
    *,
    simulator: str = "verilator",
    stall: str = "none",
    seed: int = 0,
    build_dir=None,
    timeout: float | None = None,
) -> dict:
    """Build and simulate the testbench in ``tb_dir``; return its results.json as a dict.

    A design that simulates but fails (mismatches, wrong latency/interval, hang) is
    reported in the dict (``passed`` False, ``mismatches``, ``first_mismatches``,
    ``failures``), not raised. SimulationError is raised when the simulator is
    unavailable, the build fails, the run crashes or exceeds ``timeout`` seconds.
    ``build_dir`` defaults to ``tb_dir/sim_build/<simulator>``; all artifacts, the log
    (``run.log``) and results.json go there.
    """
    tb = Path(tb_dir).resolve()
    missing = [f for f in (META_FILE, VECTORS_FILE, *TEMPLATE_FILES) if not (tb / f).is_file()]
    if missing:
        raise SimulationError(f"{tb} is not a testbench directory (missing {', '.join(missing)})")
    return run_script(tb, "test_runner.py", simulator, stall, seed, build_dir, simulator, timeout, "")


def run_script(tb: Path, script: str, simulator, stall, seed, build_dir, build_name, timeout, what: str) -> dict:
    """Run the regression ``script`` of testbench ``tb`` in a subprocess (its own session, so a
    timeout stops the simulator too); return its results. ``what`` names the run in errors."""
    if stall not in STALL_PATTERNS:
        raise SimulationError(f"unknown stall pattern {stall!r} (choose from {', '.join(STALL_PATTERNS)})")
    check_simulator(simulator)
    bdir = Path(build_dir).resolve() if build_dir is not None else tb / "sim_build" / build_name
    bdir.mkdir(parents=True, exist_ok=True)
    results = bdir / "results.json"
    log = bdir / "run.log"
    with contextlib.suppress(FileNotFoundError):
        results.unlink()
    cmd = [
        sys.executable,
        str(tb / script),
        *("--sim", simulator, "--stall", stall, "--seed", str(int(seed))),
        *("--build-dir", str(bdir), "--results", str(results)),
    ]
    env = dict(os.environ)
    # Inside pytest, cocotb's runner would otherwise switch to its pytest mode (sys.exit on failure).
    env.pop("PYTEST_CURRENT_TEST", None)
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=bdir, start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise SimulationError(f"{simulator} {what}simulation timed out after {timeout}s (see {log})") from None
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
    if not results.is_file():
        msg = _error_line(log) or f"{simulator} {what}run failed with exit code {rc}"
        raise SimulationError(f"{msg} (see {log})" if "(see " not in msg else msg)
    res = json.loads(results.read_text())
    res["log"] = str(log)
    return res
