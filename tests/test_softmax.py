"""Softmax: hardware against the golden model, golden against float softmax within ``max_error``,
and argmax agreement on a trained classifier's quantized logits."""

import itertools
import os

import numpy as np
import pytest
from amaranth.hdl import Fragment
from streams import run_layer

from rtlgen import golden
from rtlgen.fixed import FixedType
from rtlgen.ir import Graph, Node, Tensor
from rtlgen.ir.ops.softmax import (
    Softmax,
    _adversarial,
    float_softmax,
    make_softmax,
    measure_max_error,
)
from rtlgen.layers import Network, hardware

FIXED_16_6 = FixedType.parse("fixed<16,6>")


def _tensors(op):
    return Tensor("x", (op.n,), op.src_type), Tensor("y", (op.n,), op.out_type)


def _inputs(op, rng, count=60):
    """Bucket edges, near ties, clamped tails, extremes, and random vectors in a narrow range
    (where softmax is not one-hot)."""
    t = op.src_type
    adv = _adversarial(op, rng, count)
    centre = rng.integers(t.min_mantissa, t.max_mantissa + 1, (count, 1))
    spread = max(1, int(4 / float(t.lsb)))  # about +-4 in real value
    narrow = np.clip(centre + rng.integers(-spread, spread + 1, (count, op.n)), t.min_mantissa, t.max_mantissa)
    return np.concatenate([adv, narrow])


# -- construction ---------------------------------------------------------------------------------


def test_parameters_are_validated():
    with pytest.raises(ValueError, match="exp table size must be a power of two, not 1000"):
        make_softmax(FIXED_16_6, 10, exp_table_size=1000)
    with pytest.raises(ValueError, match="inverse table size must be a power of two, not 0"):
        make_softmax(FIXED_16_6, 10, inv_table_size=0)
    with pytest.raises(ValueError, match="softmax implementation must be one of stable, latency, argmax, not 'legacy'"):
        make_softmax(FIXED_16_6, 10, implementation="legacy")
    with pytest.raises(ValueError, match="cannot represent 1.0"):
        make_softmax(FIXED_16_6, 10, implementation="argmax", out_type="ufixed<16,0>")  # 1.0 wraps to 0
    with pytest.raises(ValueError, match="softmax length must be a positive integer, not 0"):
        make_softmax(FIXED_16_6, 0)
    with pytest.raises(ValueError, match="build the op with make_softmax"):
        Softmax(FIXED_16_6, "ufixed<16,0,RND,SAT>", 4, exp_table_t="ufixed<18,1>", inv_table_t="ufixed<18,0>")
    op = make_softmax(FIXED_16_6, 4)
    x, y = _tensors(op)
    with pytest.raises(ValueError, match="built for fixed<16,6> -> ufixed<16,0,RND,SAT>, not fixed<16,5>"):
        hardware(op, [Tensor("x", (4,), FixedType(16, 5))], y)
    with pytest.raises(ValueError, match="built for 4 lanes, not 5 -> 5"):
        op.golden(np.zeros((1, 5), dtype=np.int64), Tensor("x", (5,), op.src_type), Tensor("y", (5,), op.out_type))


def test_tables_and_hls4ml_vocabulary():
    op = make_softmax(FIXED_16_6, 10, exp_table_size=512, inv_table_size=256, exp_table_t="ufixed<16,1,RND,SAT>")
    assert len(op.exp_table) == 512 and len(op.inv_table) == 256
    assert op.exp_table_t == FixedType.parse("ufixed<16,1,RND,SAT>")
    assert op.inv_table_t == FixedType.parse("ufixed<18,0,RND,SAT>")
    # The maximum lane alone reads exp(0) = 1.0; the exp table is non-increasing.
    assert op.exp_table[0] == 1 << op.exp_table_t.frac
    assert np.all(np.diff(op.exp_table) <= 0)
    assert op.exp_base == 1 - (1 << op.exp_shift)
    lat = make_softmax(FIXED_16_6, 10, implementation="latency")
    assert lat.exp_table_t == FixedType.parse("fixed<18,8,RND,SAT>")  # hls4ml's default
    assert np.all(np.diff(lat.exp_table) >= 0)


def test_graph_json_round_trip_and_network():
    op = make_softmax(FIXED_16_6, 5)
    g = Graph("sm")
    for t in _tensors(op):
        g.add_tensor(t)
    g.inputs, g.outputs = ["x"], ["y"]
    g.add_node(Node("softmax", op, ["x"], ["y"]))
    g.verify()
    g2 = Graph.from_json(g.to_json())
    op2 = g2.nodes[0].op
    assert isinstance(op2, Softmax) and op2.max_error == op.max_error and op2.exp_shift == op.exp_shift
    xs = _inputs(op, np.random.default_rng(0), 20)
    assert np.array_equal(golden.run(g2, xs), op.compute(xs))
    net = Network(g2)
    assert net.latency == 6  # n = 5: one comparator and one adder stage
    Fragment.get(net, None)


# -- hardware against golden ----------------------------------------------------------------------

HW_CASES = [
    ("stable", "fixed<16,6>", 10, {}),
    ("stable", "fixed<8,3>", 5, {"exp_table_size": 32, "inv_table_size": 16}),
    ("stable", "ufixed<6,3>", 3, {"exp_table_size": 16, "inv_table_size": 8, "out_type": "ufixed<8,0,TRN,SAT>"}),
    ("stable", "fixed<10,4>", 1, {}),
    ("stable", "fixed<12,5,RND,SAT>", 7, {"exp_table_t": "ufixed<12,1,RND,SAT>", "inv_table_t": "ufixed<10,0,RND,SAT>"}),
    ("latency", "fixed<16,6>", 10, {}),
    ("latency", "fixed<8,3>", 4, {"exp_table_size": 64, "out_type": "fixed<12,2,RND_CONV,SAT>"}),
    ("argmax", "fixed<16,6>", 10, {}),
    ("argmax", "ufixed<5,5>", 6, {"out_type": "ufixed<8,1>"}),
]


@pytest.mark.parametrize("impl, src, n, kw", HW_CASES, ids=[f"{c[0]}-{c[1]}-n{c[2]}" for c in HW_CASES])
def test_hardware_matches_golden(impl, src, n, kw):
    op = make_softmax(FixedType.parse(src), n, implementation=impl, **kw)
    src, dst = _tensors(op)
    dut = hardware(op, [src], dst)
    xs = _inputs(op, np.random.default_rng(n))
    ref = op.compute(xs)
    outs, t_in, t_out = run_layer(dut, xs)
    assert np.array_equal(outs, ref)
    # Back to back: one vector per cycle, and the first result after exactly ``latency`` cycles.
    assert set(np.diff(t_in).tolist()) == {dut.initiation_interval} == {1}
    assert t_out[0] - t_in[0] == dut.latency


@pytest.mark.parametrize("impl", ["stable", "latency", "argmax"])
def test_hardware_under_random_stalls(impl):
    op = make_softmax(FIXED_16_6, 6, implementation=impl, exp_table_size=256, inv_table_size=128)
    src, dst = _tensors(op)
    dut = hardware(op, [src], dst)
    xs = _inputs(op, np.random.default_rng(5), 40)
    rs = np.random.default_rng(11)
    ready, valid = rs.random(10_000) < 0.6, rs.random(10_000) < 0.7
    outs, _, _ = run_layer(dut, xs, ready=lambda c: ready[c], valid=lambda c: valid[c])
    assert np.array_equal(outs, op.compute(xs))


@pytest.mark.parametrize(
    "n, levels, cycles",
    [(10, 3, {"stable": 8, "latency": 6, "argmax": 2}), (1, 3, {"stable": 6, "latency": 5, "argmax": 1}),
     (64, 2, {"stable": 10, "latency": 7, "argmax": 3}), (10, 1, {"stable": 12, "latency": 8, "argmax": 4})],
)  # fmt: skip
def test_latency_in_cycles(n, levels, cycles):
    for impl, want in cycles.items():
        op = make_softmax(FIXED_16_6, n, implementation=impl, exp_table_size=64, inv_table_size=64)
        op.tree_levels = levels
        src, dst = _tensors(op)
        dut = hardware(op, [src], dst)
        assert (dut.latency, dut.initiation_interval) == (want, 1)
        Fragment.get(dut, None)


# -- accuracy -------------------------------------------------------------------------------------

BOUND_CASES = [
    ("stable", "fixed<16,6>", 10, {}),
    ("stable", "fixed<16,6>", 2, {}),
    ("stable", "fixed<16,6>", 32, {}),
    ("stable", "fixed<8,3>", 10, {}),
    ("stable", "fixed<16,6>", 10, {"exp_table_size": 256, "inv_table_size": 256}),
    ("stable", "fixed<16,6>", 10, {"exp_table_t": "ufixed<10,1,RND,SAT>", "out_type": "ufixed<8,0,RND,SAT>"}),
    ("latency", "fixed<16,6>", 10, {}),
    ("latency", "fixed<8,2>", 10, {"exp_table_t": "ufixed<18,3,RND,SAT>"}),
    ("argmax", "fixed<16,6>", 10, {}),
]


@pytest.mark.parametrize("impl, src, n, kw", BOUND_CASES, ids=[f"{c[0]}-{c[1]}-n{c[2]}-{i}" for i, c in enumerate(BOUND_CASES)])
def test_error_within_bound_random_and_adversarial(impl, src, n, kw):
    op = make_softmax(FixedType.parse(src), n, implementation=impl, **kw)
    t = op.src_type
    rng = np.random.default_rng(42)
    # Uniform inputs, and inputs within a few units of each other (mostly not one-hot).
    xs = rng.integers(t.min_mantissa, t.max_mantissa + 1, (50_000, n))
    xs = np.concatenate([xs, _inputs(op, rng, 25_000)])
    err = np.abs(op.out_type.to_float(op.compute(xs)) - float_softmax(t.to_float(xs)))
    assert err.max() <= op.max_error
    seen = measure_max_error(op, samples=20_000, seed=1, climb=50)
    assert seen["adversarial"] <= op.max_error
    if impl == "stable" and not kw:
        # The bound is not loose: the search gets within a factor of 2 of it.
        assert seen["adversarial"] >= op.max_error / 2


@pytest.mark.parametrize("src", ["fixed<5,2>", "ufixed<5,3>", "fixed<6,1>"])
@pytest.mark.parametrize("impl", ["stable", "latency", "argmax"])
def test_error_within_bound_exhaustively(src, impl):
    """Every input vector of a small type, with small tables and narrow table types."""
    t = FixedType.parse(src)
    xs = np.array(list(itertools.product(range(t.min_mantissa, t.max_mantissa + 1), repeat=3)))
    p = float_softmax(t.to_float(xs))
    for kw in [
        {},
        {"exp_table_t": "ufixed<8,1,RND,SAT>", "inv_table_t": "ufixed<6,0,RND,SAT>", "exp_table_size": 8,
         "inv_table_size": 4, "out_type": "ufixed<8,0,RND,SAT>"},
        {"exp_table_t": "ufixed<10,1,RND,SAT>", "inv_table_t": "ufixed<10,0,RND,SAT>", "exp_table_size": 16,
         "inv_table_size": 16, "out_type": "fixed<10,2,TRN,SAT>"},
    ]:  # fmt: skip
        op = make_softmax(t, 3, implementation=impl, **kw)
        err = np.abs(op.out_type.to_float(op.compute(xs)) - p).max()
        assert err <= op.max_error, kw


def test_stable_keeps_the_argmax_of_its_input():
    """Only the maximum lane reads exp(0), so the first maximum of x is the first maximum of the
    output, however close the runner-up (and exact ties stay ties, resolved to the lowest lane)."""
    rng = np.random.default_rng(3)
    for n in (2, 5, 10, 32):
        op = make_softmax(FIXED_16_6, n)
        t = op.src_type
        top = rng.integers(t.min_mantissa + 200, t.max_mantissa + 1, (20_000, 1))
        xs = top - rng.integers(0, 3 << op.exp_shift, (20_000, n))  # many near and exact ties
        assert np.array_equal(np.argmax(op.compute(xs), axis=1), np.argmax(xs, axis=1))


# -- argmax agreement on a trained classifier -----------------------------------------------------


def _train_blobs_classifier(keras, rng, separation):
    """A 16-32-5 MLP on 5 overlapping gaussian blobs in 16 dimensions; returns test logits and labels."""
    centres = rng.normal(0.0, 1.0, (5, 16)) * separation

    def blobs(m):
        y = rng.integers(0, 5, m)
        return (centres[y] + rng.normal(0.0, 1.0, (m, 16))).astype(np.float32), y

    x_train, y_train = blobs(4000)
    x_test, y_test = blobs(50_000)
    model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(5)])
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(x_train, y_train, epochs=10, batch_size=128, verbose=0)
    return model.predict(x_test, batch_size=4096, verbose=0).astype(np.float64), y_test


def test_argmax_agreement_on_trained_mlp_logits():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    logits, labels = _train_blobs_classifier(keras, rng, separation=0.5)
    assert np.abs(logits).max() < 32  # fixed<16,6> holds them without wrapping
    q = FIXED_16_6.quantize(logits)
    want = np.argmax(float_softmax(logits), axis=1)
    want_q = np.argmax(float_softmax(FIXED_16_6.to_float(q)), axis=1)
    agreement = {}
    for impl in ("stable", "latency", "argmax"):
        op = make_softmax(FIXED_16_6, 5, implementation=impl)
        got = np.argmax(op.compute(q), axis=1)
        agreement[impl] = (float(np.mean(got == want)), float(np.mean(got == want_q)))
    print(f"accuracy {np.mean(want == labels):.4f}; argmax agreement (float logits, quantized logits): {agreement}")
    assert agreement["stable"][0] >= 0.999
    assert agreement["stable"][1] == 1.0  # the guarantee of test_stable_keeps_the_argmax_of_its_input


def _onnx_softmax_model(tmp_path):
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(3).normal(0, 0.5, (4, 5)).astype(np.float32), "W")
    nodes = [helper.make_node("Gemm", ["x", "W"], ["h"], name="fc"), helper.make_node("Softmax", ["h"], ["y"], name="sm", axis=1)]
    graph = helper.make_graph(
        nodes, "sm", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 5])], [w],
    )  # fmt: skip
    path = tmp_path / "sm.onnx"
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString())
    return path


@pytest.mark.parametrize(
    "config, implementation",
    [
        ({"LayerName": {"sm": {"Strategy": "Stable"}}}, "stable"),
        ({"LayerName": {"sm": {"Strategy": "latency"}}}, "latency"),
        ({"LayerType": {"Softmax": {"Strategy": "Argmax"}}}, "argmax"),
        ({"LayerName": {"sm": {"Implementation": "LATENCY"}}}, "latency"),
        ({"Model": {"Implementation": "argmax"}}, "argmax"),
        ({"Model": {"Strategy": "Argmax"}}, "argmax"),
        # A model-wide Latency/Resource strategy is about the dense layers: softmax stays stable.
        ({"Model": {"Strategy": "Latency"}}, "stable"),
        ({"Model": {"Strategy": "Resource", "ReuseFactor": 2}}, "stable"),
        ({}, "stable"),
    ],
)
def test_softmax_strategy_spellings_at_every_granularity(tmp_path, config, implementation):
    import rtlgen

    design = rtlgen.convert(_onnx_softmax_model(tmp_path), config)
    (sm,) = [n.op for n in design.graph.nodes if n.kind == "Softmax"]
    assert sm.implementation == implementation
    dense = next(n.op for n in design.graph.nodes if n.kind == "Dense")
    assert dense.strategy in ("latency", "resource")


def test_softmax_unknown_implementation_is_refused():
    import rtlgen
    from rtlgen.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^configuration key 'LayerName.sm.Implementation' must be one of Stable, Latency, Argmax \(softmax variants\), not 'legacy'$"):
        rtlgen.load_config({"LayerName": {"sm": {"Implementation": "legacy"}}})
