"""Write and run the AXI4-Stream regression (``tb/test_axis.py``) of a packaged top level.

The regression drives ``s_axis`` with cocotbext-axi's ``AxiStreamSource`` and reads ``m_axis``
with ``AxiStreamSink`` under random ``tvalid`` gaps and ``tready`` back-pressure, and compares
every output sample with the expected vectors (see ``templates/test_axis.py``). It lives beside
the valid/ready regression in ``OUT/tb``, shares its runner helpers (``test_runner.py``), and
``pytest OUT/tb`` runs both. :func:`run_axis` executes it in a subprocess, as
:func:`rtlgen.sim.runner.run` does for the other one.

Files: ``axis.json`` (geometry, see :data:`REQUIRED_AXIS_META`) and ``axis_vectors.npz``:
``x`` of shape (N, in_beats * in_lanes) and ``y`` of shape (N, out_beats * out_lanes), one row
per sample, element ``b * lanes + k`` being lane ``k`` of beat ``b``; ``tdata.py``, the one
module that packs and unpacks beats (:mod:`rtlgen.sim.tdata`, copied verbatim: the board
packages' drivers use the same file). Optional keys of ``axis.json``: ``tlast`` (``"sample"``,
the default, or ``"batch"``) and ``in_beat_bytes``/``out_beat_bytes`` (bus width in bytes when
the beats are padded beyond their lanes).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .runner import TEMPLATES, SimulationError, run_script
from .vectors import _write_npz, check_pair

__all__ = [
    "AXIS_META_FILE",
    "AXIS_TEMPLATE_FILES",
    "AXIS_VECTORS_FILE",
    "REQUIRED_AXIS_META",
    "read_axis_vectors",
    "run_axis",
    "write_axis_testbench",
]

AXIS_META_FILE = "axis.json"
AXIS_VECTORS_FILE = "axis_vectors.npz"
# test_axis.py imports the simulator checks and build helpers of test_runner.py.
AXIS_TEMPLATE_FILES = ("test_axis.py", "test_runner.py")
#: The tdata packing module, copied into every AXI testbench (and board driver) verbatim.
TDATA_SOURCE = Path(__file__).resolve().parent / "tdata.py"
TLAST_MODES = ("sample", "batch")
STALL_PATTERNS = ("none", "random")

#: Keys of ``axis.json``. ``latency`` (clock edges from the first input beat of a sample to its
#: first output beat on an idle design) and ``cycles_per_sample`` (at full throughput) may be
#: null: then they are measured and reported but not checked.
REQUIRED_AXIS_META = (
    "toplevel",
    "verilog_sources",
    "in_lanes",
    "in_beats",
    "in_width",
    "in_signed",
    "in_bytes",
    "out_lanes",
    "out_beats",
    "out_width",
    "out_signed",
    "out_bytes",
    "latency",
    "cycles_per_sample",
)


def _validate(meta: Mapping) -> dict:
    missing = [k for k in REQUIRED_AXIS_META if k not in meta]
    if missing:
        raise ValueError(f"axis meta is missing keys: {', '.join(missing)}")
    m = dict(meta)
    for side in ("in", "out"):
        for k in ("lanes", "beats", "width", "bytes"):
            m[f"{side}_{k}"] = int(m[f"{side}_{k}"])
            if m[f"{side}_{k}"] < 1:
                raise ValueError(f"axis meta: {side}_{k} must be >= 1")
        m[f"{side}_signed"] = bool(m[f"{side}_signed"])
        if 8 * m[f"{side}_bytes"] < m[f"{side}_width"] or m[f"{side}_bytes"] > 8:
            raise ValueError(
                f"axis meta: {side}_bytes={m[f'{side}_bytes']} cannot hold "
                f"{m[f'{side}_width']}-bit lanes (1 to 8 bytes)"
            )
    for k in ("latency", "cycles_per_sample"):
        m[k] = None if m[k] is None else int(m[k])
    m["tlast"] = str(m.get("tlast") or "sample")
    if m["tlast"] not in TLAST_MODES:
        raise ValueError(f"axis meta: tlast must be one of {', '.join(TLAST_MODES)}, not {m['tlast']!r}")
    for side in ("in", "out"):
        natural = m[f"{side}_lanes"] * m[f"{side}_bytes"]
        bb = int(m.get(f"{side}_beat_bytes") or natural)
        if bb < natural:
            raise ValueError(f"axis meta: {side}_beat_bytes={bb} is narrower than {natural} bytes of lanes")
        m[f"{side}_beat_bytes"] = bb
    srcs = m["verilog_sources"]
    if isinstance(srcs, str) or not srcs:
        raise ValueError("axis meta: verilog_sources must be a non-empty list of paths")
    m["verilog_sources"] = [str(s) for s in srcs]
    return m


def write_axis_testbench(tb_dir, x: np.ndarray, y: np.ndarray, meta: Mapping) -> Path:
    """Create/complete ``tb_dir`` with the AXI regression, its vectors and ``axis.json``.

    ``x``: (N, in_beats*in_lanes) input mantissas, ``y``: (N, out_beats*out_lanes) expected
    output mantissas; ``meta["verilog_sources"]`` are relative to ``tb_dir``.
    """
    m = _validate(meta)
    x, y = check_pair(x, y, m, flatten=True)
    tb = Path(tb_dir)
    tb.mkdir(parents=True, exist_ok=True)
    _write_npz(tb / AXIS_VECTORS_FILE, {"x": x, "y": y})
    (tb / AXIS_META_FILE).write_text(json.dumps(m, sort_keys=True, indent=2) + "\n")
    for name in AXIS_TEMPLATE_FILES:
        shutil.copyfile(TEMPLATES / name, tb / name)
    shutil.copyfile(TDATA_SOURCE, tb / "tdata.py")
    return tb


def read_axis_vectors(tb_dir) -> tuple[np.ndarray, np.ndarray, dict]:
    """``(x, y, meta)`` as written by :func:`write_axis_testbench`."""
    tb = Path(tb_dir)
    meta = json.loads((tb / AXIS_META_FILE).read_text())
    with np.load(tb / AXIS_VECTORS_FILE, allow_pickle=False) as f:
        return f["x"], f["y"], meta


def run_axis(
    tb_dir,
    *,
    simulator: str = "verilator",
    stall: str = "random",
    seed: int = 0,
    build_dir=None,
    timeout: float | None = None,
) -> dict:
    """Build and simulate the AXI regression in ``tb_dir``; return its results as a dict.

    A design that simulates but fails (mismatching, lost, duplicated or extra samples, a wrong
    ``tlast``, an AXI handshake rule broken, latency or throughput off) is reported in the dict
    (``passed`` False, ``failures``), not raised. SimulationError is raised when the simulator
    or cocotbext-axi is unavailable, the build fails, the run crashes or exceeds ``timeout``
    seconds. ``build_dir`` defaults to ``tb_dir/sim_build/<simulator>_axis``.
    """
    tb = Path(tb_dir).resolve()
    missing = [f for f in (AXIS_META_FILE, AXIS_VECTORS_FILE, *AXIS_TEMPLATE_FILES, "tdata.py") if not (tb / f).is_file()]
    if missing:
        raise SimulationError(f"{tb} has no AXI testbench (missing {', '.join(missing)})")
    return run_script(tb, "test_axis.py", simulator, stall, seed, build_dir, f"{simulator}_axis", timeout, "AXI ")
