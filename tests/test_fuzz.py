"""Property-based fuzzing: random quantized networks, random types and settings, random inputs.

Each example is a QONNX network drawn by hypothesis: 1 to 3 dense layers of random widths, random
weight, activation and input bit widths (2 to 8), every QONNX rounding mode on every quantizer,
narrow or full ranges, random reuse factors and both interfaces. The golden model must equal
qonnx's reference executor on every output (exactly: every value is a small dyadic number that
float32 holds exactly), on random inputs that include the input type's extremes and values far
beyond them (saturation). A slice of the examples also runs the RTL in Verilator under random
input gaps and output backpressure against the golden model.

The default suite runs a seeded, short slice; ``pytest -m slow tests/test_fuzz.py`` the long run.
"""

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

import rtlgen
from conftest import check_rtl, execute_qonnx
from rtlgen.examples import qonnx_mlp
from rtlgen.passes import valid_reuse_factors

MODES = ["ROUND", "HALF_EVEN", "FLOOR", "CEIL", "DOWN", "HALF_UP", "HALF_DOWN"]
TOTALS = {"networks": 0, "vectors": 0, "rtl_networks": 0, "rtl_vectors": 0}


@st.composite
def networks(draw):
    depth = draw(st.integers(1, 3))
    sizes = tuple(draw(st.integers(1, 12)) for _ in range(depth + 1))
    model = qonnx_mlp(
        sizes,
        weight_bits=draw(st.integers(2, 8)),
        act_bits=draw(st.integers(2, 8)),
        input_bits=draw(st.integers(2, 8)),
        seed=draw(st.integers(0, 2**16)),
        name="fuzz",
        relu_before_quant=draw(st.booleans()),
    )
    for node in model.graph.node:
        if node.op_type == "Quant":
            for a in node.attribute:
                if a.name == "rounding_mode":
                    a.s = draw(st.sampled_from(MODES)).encode()
                elif a.name == "narrow":
                    a.i = int(draw(st.booleans()))
    # A reuse factor per layer from the exact ones (hls4ml's ResourceStrategy beyond 1).
    names = {}
    for li, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        r = draw(st.sampled_from(valid_reuse_factors(a, b)))
        names[f"fc{li}"] = {"ReuseFactor": r, "Strategy": "Resource" if r > 1 else "Latency"}
    cfg = {"IOType": draw(st.sampled_from(["io_parallel", "io_stream"])), "LayerName": names}
    return model, sizes, cfg


def _inputs(n_in, bits, n, rng):
    """Random inputs around the input quantizer's range (scale 2**-3), its extremes, beyond it."""
    top = 2.0 ** (bits - 1) * 2.0**-3
    edges = np.array([-top, top - 2.0**-3, 0.0, -4 * top, 4 * top, 2.0**-4, -(2.0**-4)])
    x = rng.uniform(-2 * top, 2 * top, (n, n_in))
    x[: len(edges)] = edges[:, None][: min(n, len(edges))]
    # Half-way points between steps: where the rounding modes differ.
    x[len(edges) :: 3] = np.round(x[len(edges) :: 3] * 8) / 8 + 2.0**-4
    return x.astype(np.float32)


def _qonnx_batch(model, x):
    """qonnx's reference executor on the whole batch at once (the batch dimension freed)."""
    import copy

    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.infer_shapes import InferShapes

    m = copy.deepcopy(model)
    m.graph.input[0].type.tensor_type.shape.dim[0].dim_value = len(x)
    m.graph.output[0].type.tensor_type.shape.dim[0].dim_value = len(x)
    mw = ModelWrapper(m).transform(InferShapes())
    return execute_onnx(mw, {mw.graph.input[0].name: x})[mw.graph.output[0].name].reshape(len(x), -1)


def _check(model, sizes, cfg, n_vectors, rtl, tmp_path, rng):
    design = rtlgen.convert(model, cfg)
    x = _inputs(sizes[0], design.input_tensor.type.width, n_vectors, rng)
    got = design.predict(x)
    ref = execute_qonnx(model, x[:8]) if len(x) <= 64 else None
    batch = _qonnx_batch(model, x)
    if ref is not None:  # the batched run agrees with the per-sample executor the other tests use
        assert np.array_equal(batch[:8], ref)
    ref = batch
    assert np.array_equal(got, ref), (cfg, sizes, np.argwhere(got != ref)[:5])
    TOTALS["networks"] += 1
    TOTALS["vectors"] += len(x)
    if rtl:
        res = check_rtl(design, x[:200], work_dir=tmp_path, stall="random", seed=int(rng.integers(1 << 30)))
        TOTALS["rtl_networks"] += 1
        TOTALS["rtl_vectors"] += res["n_vectors"]


@seed(19)
@settings(max_examples=12, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(net=networks())
def test_golden_equals_qonnx(net, tmp_path_factory):
    model, sizes, cfg = net
    _check(model, sizes, cfg, 64, False, None, np.random.default_rng(len(sizes)))


@seed(20)
@settings(max_examples=1, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(net=networks())
def test_rtl_equals_golden_under_stalls(net, tmp_path_factory):
    model, sizes, cfg = net
    _check(model, sizes, cfg, 64, True, tmp_path_factory.mktemp("fuzz"), np.random.default_rng(1))


@pytest.mark.slow
def test_long_fuzz_run(tmp_path_factory):
    """The long run: ``RTLGEN_FUZZ_NETWORKS`` networks (default 250), 4,096 vectors each against
    qonnx, every 25th also in RTL under random stalls; prints the totals."""
    n = int(os.environ.get("RTLGEN_FUZZ_NETWORKS", "250"))
    for k in TOTALS:
        TOTALS[k] = 0

    @seed(2026)
    @settings(max_examples=n, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(net=networks())
    def run(net):
        model, sizes, cfg = net
        k = TOTALS["networks"]
        _check(model, sizes, cfg, 4096, k % 25 == 0, tmp_path_factory.mktemp("fuzz") if k % 25 == 0 else None,
               np.random.default_rng(k))  # fmt: skip

    run()
    print(f"fuzz totals: {TOTALS}")
    assert TOTALS["networks"] >= n and TOTALS["vectors"] >= 1_000_000
