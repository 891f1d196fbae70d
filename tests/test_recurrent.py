"""Recurrent layers (SimpleRNN, LSTM, GRU): golden model against Keras within the printed bound,
the IR's JSON round trip, the two schedules, and RTL == golden under random stalls."""

import os

import numpy as np
import pytest

import rtlgen
from conftest import check_rtl, shared_model
from rtlgen.errors import UnsupportedOpError
from rtlgen.ir import Graph
from rtlgen.plan.recurrent import cell_latency

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

STEPS, FEATURES, UNITS = 5, 3, 4
# Inputs of the tests are in [-1, 1): an input type of that range keeps the bounds tight.
CONFIG = {"Model": {"Precision": "fixed<16,6>"}, "LayerType": {"InputLayer": {"Precision": {"result": "fixed<16,1>"}}}}
KINDS = ["lstm", "lstm_hard_sigmoid", "gru", "gru_reset_before", "simple_rnn"]


def _keras_model(kind, seed=0, steps=STEPS, return_sequences=None):
    keras = pytest.importorskip("keras")
    layer = {
        "lstm": lambda: keras.layers.LSTM(UNITS, return_sequences=True if return_sequences is None else return_sequences),
        "lstm_hard_sigmoid": lambda: keras.layers.LSTM(UNITS, recurrent_activation="hard_sigmoid"),
        "gru": lambda: keras.layers.GRU(UNITS, reset_after=True),
        "gru_reset_before": lambda: keras.layers.GRU(UNITS, reset_after=False, return_sequences=True),
        "simple_rnn": lambda: keras.layers.SimpleRNN(UNITS),
        "lstm_relu": lambda: keras.layers.LSTM(UNITS, activation="relu"),
    }[kind]()
    model = keras.Sequential([keras.Input((steps, FEATURES)), layer])
    rng = np.random.default_rng(seed)
    model.set_weights([rng.uniform(-0.6, 0.6, w.shape).astype("float32") for w in model.get_weights()])
    return model


@pytest.mark.parametrize("kind", KINDS)
def test_golden_within_printed_bound_of_keras(kind):
    """Float SimpleRNN/LSTM/GRU (both reset_after values, hard_sigmoid as a clipped affine): the
    golden model stays within the bound the build prints, against Keras' float predict."""
    model = _keras_model(kind)
    design = rtlgen.convert(model, CONFIG)
    bound = design.graph.error_bound
    assert bound is not None and np.isfinite(bound)
    assert any("worst-case error" in n and n.startswith("output") for n in design.graph.notes)
    x = np.random.default_rng(1).uniform(-1, 1, (300, STEPS, FEATURES)).astype("float32")
    ref = model.predict(x, verbose=0).reshape(len(x), -1)
    err = np.abs(design.predict(x) - ref).max()
    # The tables and weights are coarse enough that the error is not trivially zero.
    assert 0 < err <= bound


def _config(precision, input_type, **layer):
    layer = {"Precision": layer} if layer else {}
    return {"Model": {"Precision": precision}, "LayerType": {"InputLayer": {"Precision": {"result": input_type}}, "LSTM": layer, "GRU": layer}}


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_wider_model_precision_is_more_accurate(kind):
    """A wider model-wide precision reaches the cell's tables: their outputs take its grid and
    their inputs the window where sigmoid and tanh change, so the error against Keras falls (with
    the tables over the whole accumulator and a fixed fixed<18,8> it grew tenfold)."""
    model = _keras_model(kind)
    x = np.random.default_rng(1).uniform(-1, 1, (300, STEPS, FEATURES)).astype("float32")
    ref = model.predict(x, verbose=0).reshape(len(x), -1)
    err = {}
    for precision, input_type in (("fixed<16,6>", "fixed<16,1>"), ("fixed<24,10>", "fixed<24,1>")):
        design = rtlgen.convert(model, _config(precision, input_type))
        err[precision] = np.abs(design.predict(x) - ref).max()
        assert err[precision] <= design.graph.error_bound
    assert err["fixed<24,10>"] < err["fixed<16,6>"] and err["fixed<24,10>"] < 0.01, err


def test_table_types_follow_the_accumulator():
    """The activation outputs default to the accumulator's grid (hls4ml's cell casts them into
    accum_t); the tables cover sigmoid's [-8, 8) and tanh's [-4, 4) in 1,024 entries whatever
    the accumulator's range; a ``table`` type set in the configuration is kept."""
    from rtlgen.fixed import FixedType
    from rtlgen.ir.ops.recurrent import activation_op

    model = _keras_model("lstm")
    for accum in ("fixed<16,6>", "fixed<24,10>", "fixed<32,12>"):
        op = rtlgen.convert(model, _config(accum, "fixed<16,1>")).graph.nodes[0].op
        t = FixedType.parse(accum)
        assert op.accum == op.table == op.cell == op.state == t
        for spec, lo in ((op.recurrent_activation, -8), (op.activation, -4), (op.cell_activation, -4)):
            lut = activation_op(spec)
            step = 2.0 ** (lut.shift - t.frac)
            assert (len(lut.table), lut.offset * step, len(lut.table) * step) == (1024, lo, -2 * lo), (accum, spec["function"])
    op = rtlgen.convert(model, _config("fixed<24,10>", "fixed<16,1>", table="fixed<18,8>")).graph.nodes[0].op
    assert op.table == FixedType(18, 8) and op.accum == FixedType(24, 10)
    # At least one integer bit, so that sigmoid and tanh reach +-1.
    assert rtlgen.convert(model, _config("fixed<8,0>", "fixed<8,0>")).graph.nodes[0].op.table == FixedType(9, 1)


def test_hard_sigmoid_is_exact_affine_not_table():
    """Keras 3's hard_sigmoid is computed as relu6(x + 3) / 6 with its slope quantized, not a table."""
    model = _keras_model("lstm_hard_sigmoid")
    node = rtlgen.convert(model, CONFIG).graph.nodes[0]
    spec = node.op.recurrent_activation
    assert spec["kind"] == "pwl" and spec["lower"] == 0.0 and spec["upper"] == 1.0
    assert spec["slope_hi"] == pytest.approx(1 / 6)


def test_graph_json_round_trip_keeps_golden():
    design = rtlgen.convert(_keras_model("gru_reset_before"), CONFIG)
    g2 = Graph.from_json(design.graph.to_json())
    m = design.random_inputs(50, seed=3)
    assert np.array_equal(rtlgen.Design(g2).predict_int(m), design.predict_int(m))


def test_schedules_from_reuse_factor_and_strategy():
    model = _keras_model("lstm", return_sequences=False)
    unrolled = rtlgen.convert(model, CONFIG)
    reused = rtlgen.convert(model, {**CONFIG, "LayerType": {**CONFIG["LayerType"], "LSTM": {"ReuseFactor": 2}}})
    resource = rtlgen.convert(model, {**CONFIG, "LayerType": {**CONFIG["LayerType"], "LSTM": {"Strategy": "Resource"}}})
    assert unrolled.graph.nodes[0].op.schedule == "unrolled"
    assert reused.graph.nodes[0].op.schedule == "reused" and resource.graph.nodes[0].op.schedule == "reused"
    # The cell is pipelined: every step takes the cell's cycles, more on shared multipliers.
    node = unrolled.graph.nodes[0]
    t_in = unrolled.graph.tensors[node.inputs[0]].type
    cycles, shared = cell_latency(node.op, t_in), cell_latency(reused.graph.nodes[0].op, t_in)
    assert 2 < cycles < shared == cell_latency(resource.graph.nodes[0].op, t_in) + 1
    assert (unrolled.latency, unrolled.initiation_interval) == (STEPS * cycles, 1)
    assert (reused.latency, reused.initiation_interval) == (STEPS * shared + 1, STEPS * shared)
    assert (resource.latency, resource.initiation_interval) == (STEPS * cycles + 1, STEPS * cycles)
    note = next(n for n in reused.graph.notes if "schedule" in n)
    assert f"LSTM over {STEPS} steps, reused schedule; unrolled ({STEPS} cells): 60 multipliers, latency {STEPS * cycles}, interval 1" in note
    m = unrolled.random_inputs(20)
    assert np.array_equal(unrolled.predict_int(m), reused.predict_int(m))


def test_products_on_adder_graphs_at_reuse_1_and_shared_multipliers_above():
    """The cell's products: one adder graph over ``[x, h]`` for every gate when unrolled, shared
    multipliers in the reused schedule above reuse factor 1; the exact pre-activations either way."""
    from rtlgen.layers._recurrent import RecurrentLayer
    from rtlgen.plan.recurrent import cell_graphs

    model = _keras_model("lstm", return_sequences=False)
    cfg = {**CONFIG, "LayerType": {**CONFIG["LayerType"], "LSTM": {"ReuseFactor": 3}}}
    node = rtlgen.convert(model, cfg).graph.nodes[0]
    op, t_in = node.op, rtlgen.convert(model, CONFIG).graph.tensors[node.inputs[0]].type
    (cg,) = cell_graphs(op, t_in)
    assert cg.weight.shape == (FEATURES + UNITS, 4 * UNITS)
    rng = np.random.default_rng(0)
    x = rng.integers(t_in.min_mantissa, t_in.max_mantissa + 1, (50, FEATURES))
    h = rng.integers(op.state.min_mantissa, op.state.max_mantissa + 1, (50, UNITS))
    want = np.concatenate([op._pre(x, t_in.frac, h, k)[0] << (cg.frac - op._pre(x, t_in.frac, h, k)[1]) for k in range(4)], axis=1)
    assert np.array_equal(cg.graph.evaluate(np.concatenate([x, h], axis=1)), want)
    # (3 + 4) inputs on 3 cycles of 3 inputs, 16 outputs each: 48 shared multipliers, 4 cycles.
    assert cg.reuse(3) == (3, 16, 3) and cg.stages(3) == 4
    reused = RecurrentLayer(op, t_in, STEPS * FEATURES, op.state, UNITS)
    assert reused.cell_latency == 4 + 3 and reused.initiation_interval == STEPS * 7
    assert reused.multipliers == 48 + 3 * UNITS and reused.adders == 0
    op.schedule, op.reuse_factor = "unrolled", 1
    unrolled = RecurrentLayer(op, t_in, STEPS * FEATURES, op.state, UNITS)
    assert unrolled.multipliers == STEPS * 3 * UNITS and unrolled.adders == STEPS * cg.graph.n_adders > 0


def test_verilog_writes_each_table_and_graph_once():
    """The cell is one text module instantiated at every step; in it the adder graph and every
    lookup of a table instantiate one text module each."""
    import re

    design = rtlgen.convert(_keras_model("lstm", steps=2, return_sequences=False), CONFIG)
    mods = re.findall(r"^module (\S+)\(", design.verilog, flags=re.M)
    assert sum("__adder_graph" in n for n in mods) == 1
    (cell,) = [n for n in mods if "__rnn_cell" in n]
    assert len(re.findall(rf"^  {cell} cell\d+\(", design.verilog, flags=re.M)) == 2
    op = design.graph.nodes[0].op
    tables = {tuple(a["table"]) for a in (op.activation, op.recurrent_activation, op.cell_activation)}
    assert sum("__table" in n for n in mods) == len(tables) >= 2
    assert len(re.findall(r"^  \S+__table\d+ t\d+\(", design.verilog, flags=re.M)) == 5 * UNITS  # 4 gates and the cell


# Narrow types whose casts wrap, saturate (symmetric too) and round in each mode.
NARROW = {"accum": "fixed<7,1>", "state": "fixed<7,0,RND_CONV,SAT>", "cell": "fixed<7,0,RND,SAT_SYM>", "table": "fixed<8,1,RND_ZERO>",
          "result": "fixed<6,0,RND_INF,SAT_ZERO>"}  # fmt: skip


@pytest.mark.parametrize("kind", KINDS + ["lstm_relu", "lstm narrow", "gru narrow", "gru_reset_before narrow", "lstm clamp", "gru clamp"])
def test_unrolled_text_form_is_bit_exact(kind, tmp_path):
    """The unrolled schedule as the network's Verilog writes it (one cell module instantiated at
    every step, its tables, adder graphs, casts and the chain around it) equals the golden model
    under random stalls, with the reported latency and interval."""
    from streams import run_text_form

    from rtlgen.ir.ops.recurrent import activation_op
    from rtlgen.layers import hardware

    kind, *variant = kind.split()
    layer = {"Precision": NARROW} if variant == ["narrow"] else {}
    cfg = {**CONFIG, "LayerType": {**CONFIG["LayerType"], "LSTM": layer, "GRU": layer}}
    model = _keras_model(kind, steps=3)
    if variant == ["clamp"]:  # pre-activations past the tables' windows on both sides
        model.set_weights([8 * w for w in model.get_weights()])
    design = rtlgen.convert(model, cfg)
    (node,) = [n for n in design.graph.nodes if n.kind in ("LSTM", "GRU", "SimpleRNN")]
    src, dst = (design.graph.tensors[t] for t in (node.inputs[0], node.outputs[0]))
    rng = np.random.default_rng(5)
    # Inputs over the whole input type: the casts saturate and the tables clamp their indices.
    xs = rng.integers(src.type.min_mantissa, src.type.max_mantissa + 1, (80, src.size))
    if variant == ["clamp"]:
        op = node.op
        lut = activation_op(op.recurrent_activation)
        first = (op._z(xs[:, : op.n_in], src.type.frac, np.zeros((len(xs), op.units), dtype=np.int64), 0) >> lut.shift) - lut.offset
        assert (first < 0).any() and (first >= len(lut.table)).any()
    ref = node.op.golden(xs, src, dst)
    text = run_text_form(hardware(node.op, [src], dst), xs, ref, tmp_path, seed=3)
    assert text.count("top__rnn_cell") == 1 + 3  # written once, instantiated at every step


def test_unsupported_settings_name_the_layer():
    keras = pytest.importorskip("keras")
    model = keras.Sequential([keras.Input((3, 2)), keras.layers.LSTM(2, go_backwards=True, name="rev")])
    with pytest.raises(UnsupportedOpError, match=r"rev.*go_backwards=True is not supported; set go_backwards=False"):
        rtlgen.convert(model)
    model = keras.Sequential([keras.Input((3, 2)), keras.layers.SimpleRNN(2, activation="gelu", name="odd")])
    with pytest.raises(UnsupportedOpError, match=r"odd.*activation 'gelu' is not supported in recurrent layers"):
        rtlgen.convert(model)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["lstm", "gru", "gru_reset_before", "simple_rnn", "lstm_hard_sigmoid"])
@pytest.mark.parametrize("reuse", [1, 2])
def test_rtl_equals_golden_both_schedules(kind, reuse, tmp_path):
    model = _keras_model(kind, steps=3)
    cfg = {**CONFIG, "LayerType": {**CONFIG["LayerType"], "LSTM": {"ReuseFactor": reuse}, "GRU": {"ReuseFactor": reuse},
                                   "SimpleRNN": {"ReuseFactor": reuse}}}  # fmt: skip
    check_rtl(rtlgen.convert(model, cfg), n_random=300, work_dir=tmp_path)


@pytest.mark.slow
def test_rtl_io_stream(tmp_path):
    model = _keras_model("lstm", steps=3)
    check_rtl(rtlgen.convert(model, {**CONFIG, "IOType": "io_stream"}), n_random=200, work_dir=tmp_path)


# -- the published hls4ml LSTM and GRU models ---------------------------------------------------


def _published(kind):
    """The published float model and a Keras 3 replica of it (weights from the same file) whose
    last Dense gives logits, the golden model's output with the softmax skipped."""
    import json

    import h5py

    keras = pytest.importorskip("keras")
    path = shared_model("hls4ml-history", "keras", f"KERAS_{kind}_model.json")
    weights = h5py.File(str(path).replace(".json", "_weights.h5"))["model_weights"]
    layers = json.loads(path.read_text())["config"]["layers"]
    ks = [keras.Input(tuple(layers[0]["config"]["batch_input_shape"][1:]))]
    for layer in layers[1:]:
        c, cls = layer["config"], layer["class_name"]
        if cls in ("LSTM", "GRU"):
            kw = {"reset_after": False} if cls == "GRU" else {}
            ks.append(getattr(keras.layers, cls)(c["units"], activation=c["activation"], name=c["name"],
                      recurrent_activation=c["recurrent_activation"], return_sequences=c["return_sequences"], **kw))  # fmt: skip
        elif cls == "Dense":
            act = "linear" if c["activation"] == "softmax" else c["activation"]
            ks.append(keras.layers.Dense(c["units"], activation=act, name=c["name"]))
        elif cls == "Flatten":
            ks.append(keras.layers.Flatten())
    model = keras.Sequential(ks)
    for layer in model.layers:
        if layer.name in weights and layer.name in weights[layer.name]:
            g = weights[layer.name][layer.name]
            keys = ["kernel:0", "recurrent_kernel:0", "bias:0"] if "recurrent_kernel:0" in g else ["kernel:0", "bias:0"]
            layer.set_weights([np.array(g[k]) for k in keys])
    return path, model


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_published_models_golden_against_keras(kind):
    path, model = _published(kind)
    design = rtlgen.convert(path, skip_softmax=True)
    x = np.random.default_rng(1).uniform(-1, 1, (1000, 20, 6)).astype("float32")
    err = np.abs(design.predict(x) - model.predict(x, verbose=0)).max(axis=1)
    # The printed bound holds; with relu recurrences over the whole input type it is very loose,
    # so the typical error is checked too (hls4ml's emulation at the same precision: LSTM median
    # 0.36, GRU median 3.8 on these inputs).
    assert err.max() <= design.graph.error_bound
    assert np.median(err) < 0.6, np.median(err)


@pytest.mark.slow
@pytest.mark.heavy
@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("reuse", [1, 20])
def test_published_models_rtl(kind, reuse, tmp_path):
    path = shared_model("hls4ml-history", "keras", f"KERAS_{kind}_model.json")
    cfg = {"LayerType": {"LSTM": {"ReuseFactor": reuse}, "GRU": {"ReuseFactor": reuse}}}
    check_rtl(rtlgen.convert(path, cfg, skip_softmax=True), n_random=200, work_dir=tmp_path)


# -- ONNX LSTM / GRU / RNN as PyTorch exports them ------------------------------------------------


def _torch_style_onnx(op_type, *, hidden=UNITS, steps=STEPS, features=FEATURES, last_state=False, linear_before_reset=1, seed=0):
    """The graph ``torch.onnx.export`` writes for ``nn.LSTM/GRU/RNN(batch_first=True)`` on a
    (1, steps, features) input: Transpose (1, 0, 2), the recurrent node with W, R, B and zero
    initial states as initializers (gates iofc / zrh), then Squeeze(axis 1) and Transpose back
    for the sequence, or Squeeze(axis 0) of ``Y_h`` for the last state."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    g = {"LSTM": 4, "GRU": 3, "RNN": 1}[op_type]
    rng = np.random.default_rng(seed)
    inits = {
        "W": rng.uniform(-0.6, 0.6, (1, g * hidden, features)), "R": rng.uniform(-0.6, 0.6, (1, g * hidden, hidden)),
        "B": rng.uniform(-0.3, 0.3, (1, 2 * g * hidden)), "h0": np.zeros((1, 1, hidden)), "c0": np.zeros((1, 1, hidden)),
        "ax1": np.array([1]), "ax0": np.array([0]),
    }  # fmt: skip
    inits = [numpy_helper.from_array(v.astype(np.int64 if k.startswith("ax") else np.float32), k) for k, v in inits.items()]
    ins = ["xt", "W", "R", "B", "", "h0"] + (["c0"] if op_type == "LSTM" else [])
    attrs = {"hidden_size": hidden}
    if op_type == "GRU":
        attrs["linear_before_reset"] = linear_before_reset
    outs = ["Y", "Y_h"] + (["Y_c"] if op_type == "LSTM" else [])
    nodes = [helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0, 2], name="transpose_in"),
             helper.make_node(op_type, ins, outs, name=op_type.lower(), **attrs)]  # fmt: skip
    if last_state:
        nodes.append(helper.make_node("Squeeze", ["Y_h", "ax0"], ["out"], name="squeeze"))
        oshape = [1, hidden]
    else:
        nodes += [helper.make_node("Squeeze", ["Y", "ax1"], ["ys"], name="squeeze"),
                  helper.make_node("Transpose", ["ys"], ["out"], perm=[1, 0, 2], name="transpose_out")]  # fmt: skip
        oshape = [1, steps, hidden]
    graph = helper.make_graph(
        nodes, "torch_rnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, steps, features])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, oshape)], initializer=inits,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


@pytest.mark.parametrize(
    "op_type, kw",
    [("LSTM", {}), ("LSTM", {"last_state": True}), ("GRU", {"linear_before_reset": 1}), ("GRU", {"linear_before_reset": 0}), ("RNN", {})],
)
def test_onnx_torch_export_within_bound_of_onnxruntime(op_type, kw):
    import onnxruntime as ort

    model = _torch_style_onnx(op_type, **kw)
    design = rtlgen.convert(model, {"Model": {"Precision": "fixed<16,6>"}, "LayerName": {"x": {"Precision": {"result": "fixed<16,1>"}}}})
    node = next(n for n in design.graph.nodes if n.kind in ("LSTM", "GRU", "SimpleRNN"))
    assert node.op.return_sequences == (not kw.get("last_state", False))
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(2).uniform(-1, 1, (100, 1, STEPS, FEATURES)).astype("float32")
    ref = np.concatenate([sess.run(None, {"x": xi})[0].reshape(1, -1) for xi in x])
    err = np.abs(design.predict(x[:, 0]) - ref).max()
    assert 0 < err <= design.graph.error_bound


def test_onnx_matches_keras_arithmetic_for_the_same_weights():
    """The same weights as an ONNX LSTM (gates iofc) and as the IR from Keras' layout give the same
    golden integers: the gate reordering is exact."""
    from rtlgen.importers._recurrent import _keras_gates

    w = np.arange(4 * 2 * 3).reshape(4 * 2, 3)
    k = _keras_gates(w, "LSTM", 2)
    # Keras' i, f, c, o are ONNX's blocks 0, 2, 3, 1.
    assert np.array_equal(k[:, 2:4], w[4:6].T) and np.array_equal(k[:, 6:8], w[2:4].T)
