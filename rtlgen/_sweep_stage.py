"""One stage of one sweep point, run in its own process: ``python -m rtlgen._sweep_stage``.

``--parent PID STAGE ARGS...`` where STAGE is ``build`` or ``synth`` (the ``rtlgen`` command of
that name with ARGS), ``accuracy`` or ``sim`` (below; they write their results as JSON). Exit
status 2 with an ``error: ...`` line means a user error, which would fail the same way again.

The process dies with the worker that started it: on Linux the kernel sends it SIGTERM when the
worker goes, and it then kills its whole process group (a running Yosys included), so a retry on
another worker never races an orphan writing into the same point directory.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

from .errors import RtlgenError

PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    if os.getpgrp() != os.getpid():  # only a group leader of its own may take its group down
        return

    def stop(*_):
        os.killpg(0, signal.SIGKILL)

    signal.signal(signal.SIGTERM, stop)
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM))
    if os.getppid() != parent:  # the worker died before prctl took effect
        stop()


def _load(path: str, what: str):
    import numpy as np

    try:
        a = np.load(path)
    except Exception as e:  # np.load raises many kinds (OSError, ValueError, EOFError, UnpicklingError)
        raise RtlgenError(f"{what} file {path!r} cannot be read as a .npy array ({type(e).__name__}: {e})") from None
    if not isinstance(a, np.ndarray) or a.ndim < 1 or a.dtype.kind not in "fiub":
        raise RtlgenError(f"{what} file {path!r} must hold one numeric array with the batch first")
    return a


def accuracy(build: str, data: str, labels: str, limit: int | None = None) -> dict:
    """Fraction of samples whose golden-model argmax equals the label (class indices or one-hot)."""
    import numpy as np

    from .design import load_design

    x, y = _load(data, "data"), _load(labels, "labels")
    if limit:
        x, y = x[:limit], y[:limit]
    if len(x) != len(y):
        raise RtlgenError(f"data file {data!r} has {len(x)} samples but labels file {labels!r} has {len(y)}")
    design = load_design(build)
    pred = np.asarray(design.predict(x)).reshape(len(x), -1)
    n_out = pred.shape[1]
    if y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1):
        truth = y.reshape(-1)
        if truth.dtype.kind == "f" and not np.all(truth == np.round(truth)):
            raise RtlgenError(f"labels file {labels!r} must hold class indices or one-hot rows, not fractional values")
        truth = truth.astype(np.int64)
        if truth.min() < 0 or truth.max() >= n_out:
            raise RtlgenError(
                f"labels file {labels!r} holds class {int(truth.max() if truth.max() >= n_out else truth.min())} "
                f"but the network has {n_out} outputs (classes 0 to {n_out - 1})"
            )
    elif y.ndim == 2 and y.shape[1] == n_out:
        truth = y.argmax(1)
    else:
        raise RtlgenError(
            f"labels file {labels!r} has shape {y.shape}; expected ({len(x)},) class indices or ({len(x)}, {n_out}) one-hot rows"
        )
    return {"accuracy": float(np.mean(pred.argmax(1) == truth)), "samples": int(len(x))}


def simulate(build: str, vectors: int, simulator: str, work: str) -> dict:
    """The build's Verilog against its golden model on random input vectors."""
    from .design import load_design
    from .sim.runner import SimulationError

    try:
        res = load_design(build).simulate(n_random=vectors, simulator=simulator, work_dir=work)
    except SimulationError as e:
        raise RtlgenError(str(e)) from None
    keys = ("mismatches", "n_vectors", "latency_measured", "interval_measured", "latency_expected", "interval_expected")
    out = {k: res.get(k) for k in keys}
    out["passed"] = bool(res.get("passed", res["mismatches"] == 0))
    out["failures"] = [str(f) for f in res.get("failures", [])]
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m rtlgen._sweep_stage")
    p.add_argument("--parent", type=int, default=0)
    p.add_argument("stage", choices=["build", "synth", "accuracy", "sim"])
    p.add_argument("rest", nargs=argparse.REMAINDER)
    args = p.parse_args(argv)
    if args.parent:
        _die_with_parent(args.parent)
    if args.stage in ("build", "synth"):
        from .cli import main as cli_main

        return cli_main([args.stage, *args.rest])
    q = argparse.ArgumentParser(prog=f"python -m rtlgen._sweep_stage {args.stage}")
    q.add_argument("build")
    q.add_argument("--json", required=True)
    if args.stage == "accuracy":
        q.add_argument("--data", required=True)
        q.add_argument("--labels", required=True)
        q.add_argument("--limit", type=int)
    else:
        q.add_argument("--vectors", type=int, default=1000)
        q.add_argument("--simulator", default="verilator")
        q.add_argument("--work", required=True)
    a = q.parse_args(args.rest)
    try:
        if args.stage == "accuracy":
            res = accuracy(a.build, a.data, a.labels, a.limit)
        else:
            res = simulate(a.build, a.vectors, a.simulator, a.work)
    except RtlgenError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    tmp = Path(a.json + ".tmp")
    tmp.write_text(json.dumps(res) + "\n")
    tmp.replace(a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
