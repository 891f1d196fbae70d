"""Quantized recurrent layers: HGQ2's QSimpleRNN and QGRU (golden == HGQ2's predict exactly, RTL ==
golden), and QKeras's QSimpleRNN, QLSTM and QGRU against stored QKeras outputs."""

import os

import numpy as np
import pytest

import rtlgen
from conftest import check_rtl
from rtlgen.errors import UnsupportedOpError
from rtlgen.ir import Graph

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

STEPS, FEATURES = 5, 3


def _scopes():
    from hgq.config import LayerConfigScope, QuantizerConfigScope

    return (
        QuantizerConfigScope(place="all", default_q_type="kbi", overflow_mode="SAT_SYM"),
        QuantizerConfigScope(place="datalane", default_q_type="kif", overflow_mode="WRAP"),
        LayerConfigScope(enable_ebops=True, beta0=1e-5),
    )


def _hgq_rnn(kind, tmp_path, *, steps=STEPS, units=4):
    """A small HGQ2 recurrent model, trained a few steps so that every quantizer's widths move off
    their start and differ between lanes, saved as .keras."""
    keras = pytest.importorskip("keras")
    pytest.importorskip("hgq")
    from hgq.layers import QGRU, QDense, QSimpleRNN

    keras.utils.set_random_seed(3)
    a, b, c = _scopes()
    with a, b, c:
        if kind == "stack":
            # SimpleRNN (its output read back as the state) into a GRU (reset_after, own state quantizer).
            layers = [QSimpleRNN(units, return_sequences=True, name="rnn"), QGRU(units, name="gru"), QDense(3, name="d")]
        elif kind == "relu_reset_before":
            layers = [QSimpleRNN(units, activation="relu", enable_sq=True, return_sequences=True, name="rnn"),
                      QGRU(units, reset_after=False, activation="relu", return_sequences=True, name="gru")]  # fmt: skip
        else:  # tiny, for the RTL
            layers = [QSimpleRNN(units, activation="relu", return_sequences=True, name="rnn"), QGRU(units, reset_after=kind == "tiny_after", name="gru")]
        model = keras.Sequential([keras.Input((steps, FEATURES)), *layers], name=f"hgq_{kind}")
    x = np.random.default_rng(0).uniform(-2, 2, (512, steps, FEATURES)).astype(np.float32)
    y = np.random.default_rng(1).normal(size=(512, *model.output_shape[1:])).astype(np.float32)
    model.compile("adam", "mse")
    model.fit(x, y, epochs=1, batch_size=64, verbose=0)
    path = tmp_path / f"hgq_{kind}.keras"
    model.save(path)
    return model, path


@pytest.fixture(scope="module")
def hgq_model(tmp_path_factory):
    """``_hgq_rnn`` built once per module for each set of arguments (training is the slow part)."""
    cache = {}

    def make(kind, **kw):
        key = (kind, tuple(sorted(kw.items())))
        if key not in cache:
            cache[key] = _hgq_rnn(kind, tmp_path_factory.mktemp(kind), **kw)
        return cache[key]

    return make


@pytest.mark.parametrize("kind", ["stack", "relu_reset_before"])
def test_hgq_golden_equals_hgq_predict(kind, hgq_model, tmp_path):
    """2,000 sequences: the golden model's outputs equal HGQ2's predict exactly (== on float32)."""
    model, path = hgq_model(kind)
    design = rtlgen.convert(path)
    nodes = {n.name: n for n in design.graph.nodes}
    assert {"rnn_iq", "rnn", "gru_iq", "gru"} <= set(nodes)
    # The quantizers are heterogeneous: lanes of one quantizer have different types.
    gru = nodes["gru"].op
    assert len({t for t in gru.lane_types["gate"]["lanes"] + gru.lane_types["cand"]["lanes"]}) > 1
    assert gru.lane_types["gate"]["affine"] == [0.25, 0.5] and gru.reset_after == (kind == "stack")
    x = np.random.default_rng(5).uniform(-3, 3, (2000, STEPS, FEATURES)).astype(np.float32)
    ref = model.predict(x, batch_size=2000, verbose=0)
    got = design.predict(x).astype(np.float32).reshape(ref.shape)
    assert np.array_equal(got, ref), f"{int((got != ref).any(axis=tuple(range(1, ref.ndim))).sum())} sequences differ"
    assert len(np.unique(ref)) > 50  # outputs move with the input: the equality is not between constants
    # The same model in memory and as a Keras 3 .h5 file (quantizers named, not in order) reads the same.
    model.save(tmp_path / "model.h5")
    for source in (model, tmp_path / "model.h5"):
        assert np.array_equal(rtlgen.convert(source).predict(x[:100]).astype(np.float32).reshape(ref[:100].shape), ref[:100])


def test_hgq_every_quantizer_counts(hgq_model):
    """Each of the GRU's quantizers changes the result when it is dropped (widened), so the
    exact equality above checks all of them."""
    from rtlgen.fixed import FixedType

    model, path = hgq_model("stack")
    design = rtlgen.convert(path)
    x = design.random_inputs(300, seed=1)
    base = design.predict_int(x)
    gru = next(n for n in design.graph.nodes if n.name == "gru").op
    for point in ("state", "gate", "reset", "cand"):
        saved = gru.lane_types[point]["lanes"]
        gru.lane_types[point]["lanes"] = [None if t is None else str(FixedType(40, 20, True)) for t in saved]
        changed = not np.array_equal(design.predict_int(x), base)
        gru.lane_types[point]["lanes"] = saved
        assert changed, point


def test_hgq_graph_json_round_trip(hgq_model):
    _, path = hgq_model("relu_reset_before")
    design = rtlgen.convert(path)
    g2 = Graph.from_json(design.graph.to_json())
    m = design.random_inputs(100, seed=3)
    assert np.array_equal(rtlgen.Design(g2).predict_int(m), design.predict_int(m))


def test_hgq_unsupported_activation_is_one_line(tmp_path):
    keras = pytest.importorskip("keras")
    pytest.importorskip("hgq")
    from hgq.layers import QSimpleRNN

    a, b, c = _scopes()
    with a, b, c:
        model = keras.Sequential([keras.Input((3, 2)), QSimpleRNN(2, activation="tanh", name="odd")])
    with pytest.raises(UnsupportedOpError) as e:
        rtlgen.convert(model)
    assert str(e.value) == (
        "node 'odd' (QSimpleRNN): activation 'tanh' is not supported: HGQ2 computes it in float between its "
        "quantizers; use 'linear' (the quantizers saturate) or 'relu'"
    )


@pytest.mark.slow
@pytest.mark.parametrize("kind, reuse", [("tiny_after", 1), ("tiny_before", 3)])
def test_hgq_rtl_equals_golden(kind, reuse, tmp_path):
    _, path = _hgq_rnn(kind, tmp_path, steps=3, units=2)
    cfg = {"LayerType": {"GRU": {"ReuseFactor": reuse}, "SimpleRNN": {"ReuseFactor": reuse}}}
    design = rtlgen.convert(path, cfg)
    x = np.random.default_rng(6).uniform(-3, 3, (300, 3, FEATURES)).astype(np.float32)
    check_rtl(design, x, work_dir=tmp_path / "sim")


# -- QKeras (references stored by scripts/make_qkeras_recurrent_references.py) -------------------

QKERAS = os.path.join(os.path.dirname(__file__), "data", "qkeras")


def _qkeras_refs():
    path = os.path.join(QKERAS, "qkeras_recurrent.npz")
    # The references are part of the repository: a missing file is a failure, not a skip.
    assert os.path.exists(path), "QKeras recurrent references missing (scripts/make_qkeras_recurrent_references.py)"
    return np.load(path)


@pytest.mark.parametrize("kind, cls", [("rnn", "SimpleRNN"), ("lstm", "LSTM"), ("gru", "GRU"), ("gru_after", "GRU")])
def test_qkeras_golden_equals_stored_predict(kind, cls):
    """2,000 sequences: golden == QKeras's predict exactly (QSimpleRNN with every step's output,
    QLSTM and QGRU with QKeras's default hard_sigmoid recurrent activation, the GRU with both
    reset_after values)."""
    refs = _qkeras_refs()
    x = refs["x"].astype(np.float32) * 2.0**-3
    ref = refs[f"y/{kind}"].astype(np.float64) * 2.0 ** -int(refs[f"y_frac/{kind}"])
    design = rtlgen.convert(os.path.join(QKERAS, f"qkeras_{kind}.h5"))
    node = design.graph.nodes[-1]
    assert node.kind == cls and node.attrs["source"] == f"QKeras Q{cls}"
    if cls != "SimpleRNN":
        assert node.op.recurrent_activation["slope_hi"] == 0.5  # QKeras's hard_sigmoid, not Keras's 0.2
    assert node.op.reset_after == (kind != "gru")
    got = design.predict(x).reshape(ref.shape)
    assert len(x) == 2000 and np.array_equal(got, ref), f"{int((got != ref).reshape(len(x), -1).any(axis=1).sum())} sequences differ"
    assert len(np.unique(ref)) > 100


def test_qkeras_missing_state_quantizer_is_one_line(tmp_path):
    """A QLSTM without state_quantizer keeps float32 states: refused in one line."""
    import json
    import shutil

    import h5py

    _qkeras_refs()
    path = tmp_path / "lstm.h5"
    shutil.copy(os.path.join(QKERAS, "qkeras_lstm.h5"), path)
    with h5py.File(path, "r+") as f:
        cfg = json.loads(f.attrs["model_config"])
        cfg["config"]["layers"][-1]["config"]["state_quantizer"] = None
        f.attrs["model_config"] = json.dumps(cfg)
    with pytest.raises(UnsupportedOpError) as e:
        rtlgen.convert(path)
    assert str(e.value) == (
        "node 'lstm' (QLSTM): state_quantizer is None: QKeras keeps the states in float32 and they leave every "
        "fixed-point grid; set one"
    )


# -- the cells' hardware in Amaranth's simulator (fast; the Verilog runs in the slow test) --------


def _check_cells(design, x, schedule):
    """Every recurrent node's hardware in Amaranth's simulator against its golden model, on the
    node's own inputs (the golden outputs of the nodes before it)."""
    from streams import run_layer

    from rtlgen.layers._recurrent import RecurrentLayer

    g = design.graph
    m = design.quantize_input(x)
    checked = []
    for node in g.nodes:
        src, dst = g.tensors[node.inputs[0]], g.tensors[node.outputs[0]]
        if node.kind in ("SimpleRNN", "LSTM", "GRU"):
            node.op.schedule = schedule
            outs, _, _ = run_layer(RecurrentLayer(node.op, src.type, src.size, dst.type, dst.size), m)
            assert np.array_equal(outs, node.op.golden(m, src, dst)), node.name
            checked.append(node.kind)
        m = node.op.golden(m, src, dst)
    return checked


@pytest.mark.parametrize("schedule", ["unrolled", "reused"])
@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru", "gru_after"])
def test_qkeras_cell_hardware_equals_golden(kind, schedule):
    refs = _qkeras_refs()
    design = rtlgen.convert(os.path.join(QKERAS, f"qkeras_{kind}.h5"))
    assert len(_check_cells(design, refs["x"][:60].astype(np.float32) * 2.0**-3, schedule)) == 1


@pytest.mark.parametrize("schedule", ["unrolled", "reused"])
@pytest.mark.parametrize("kind", ["tiny_after", "tiny_before"])
def test_hgq_cell_hardware_equals_golden(kind, schedule, hgq_model):
    _, path = hgq_model(kind, steps=3, units=2)
    design = rtlgen.convert(path)
    x = np.random.default_rng(7).uniform(-3, 3, (60, 3, FEATURES)).astype(np.float32)
    assert _check_cells(design, x, schedule) == ["SimpleRNN", "GRU"]
