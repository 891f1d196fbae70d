import os
from pathlib import Path

import numpy as np
import pytest

SHARED_MODELS = Path(__file__).resolve().parents[2] / "shared" / "models"
MODELS = Path(os.environ.get("RTLGEN_MODELS", SHARED_MODELS))


def shared_model(*parts) -> Path:
    """A published model from ../shared/models, or a skip when the folder is absent."""
    path = MODELS.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"published model {'/'.join(parts)} not available (../shared/models is absent)")
    return path


def execute_qonnx(model, x, *, full=False):
    """The qonnx reference executor, one sample at a time (the models pin batch size 1)."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.infer_shapes import InferShapes

    mw = ModelWrapper(model).transform(InferShapes())
    iname = mw.graph.input[0].name
    oname = mw.graph.output[0].name
    ishape = mw.get_tensor_shape(iname)
    outs = []
    for i in range(len(x)):
        ctx = execute_onnx(mw, {iname: x[i : i + 1].reshape(ishape).astype(np.float32)}, return_full_exec_context=full)
        outs.append(ctx if full else ctx[oname])
    return outs if full else np.concatenate([o.reshape(1, -1) for o in outs])


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def check_rtl(design, x=None, *, work_dir, n_random=1000, stall="random", seed=0, simulator="verilator"):
    """Simulate the design's Verilog on ``x`` (or ``n_random`` random vectors) against its golden
    model and require every output equal and the measured latency and interval equal to the
    reported ones. Skips when the simulator is not installed. Returns the testbench's results."""
    from rtlgen.sim.runner import available_simulators

    if simulator not in available_simulators():
        pytest.skip(f"{simulator} is not available")
    res = design.simulate(x, n_random=n_random, stall=stall, seed=seed, simulator=simulator, work_dir=work_dir)
    n = n_random if x is None else len(x)
    assert res["passed"] and res["mismatches"] == 0 and res["n_vectors"] == n, (
        res.get("error"), res.get("failures"), res.get("first_mismatches"),
    )  # fmt: skip
    assert res["latency_measured"] == design.latency and res["interval_measured"] == design.initiation_interval
    return res
