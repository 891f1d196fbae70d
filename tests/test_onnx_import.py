"""ONNX/QONNX import: the golden model equals qonnx's reference executor exactly."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import rtlgen
from conftest import execute_qonnx, shared_model
from rtlgen.errors import ModelFormatError, UnsupportedOpError
from rtlgen.examples import qonnx_mlp
from rtlgen.ir import Dense, Graph, Requant, Threshold


def _check_every_tensor(design, model, x):
    """Every tensor the golden model shares with the ONNX graph is equal, bit for bit."""
    trace = design.trace(x)
    ctxs = execute_qonnx(model, x, full=True)
    checked = set()
    for i, ctx in enumerate(ctxs):
        for name, v in trace.items():
            if name in ctx:
                checked.add(name)
                assert np.array_equal(ctx[name].reshape(-1), v[i].astype(np.float32)), (name, i)
    out = design.predict(x)
    ref = np.concatenate([c[onnx_output(model)].reshape(1, -1) for c in ctxs])
    assert np.array_equal(out.astype(np.float32), ref)
    return checked


def onnx_output(model):
    return model.graph.output[0].name


def test_jet_tagger_exact_against_qonnx(rng):
    model = qonnx_mlp((16, 64, 32, 32, 5), seed=3)
    design = rtlgen.convert(model)
    kinds = [n.kind for n in design.graph.nodes]
    assert kinds.count("Dense") == 4 and "Threshold" not in kinds  # all power-of-two: fixed-point path
    x = rng.uniform(-20, 20, (150, 16)).astype(np.float32)
    checked = _check_every_tensor(design, model, x)
    assert {"x_q", "fc0_add", "act0", "act1", "act2", "fc3_add"} <= checked


def test_tfc_exact_and_mnist_classes(rng):
    path = shared_model("qonnx-model-zoo", "TFC", "TFC_2W2A.onnx")
    model = onnx.load(path)
    design = rtlgen.convert(path)
    assert [n.kind for n in design.graph.nodes] == ["Dense", "Threshold"] * 3 + ["Dense"]
    vec = shared_model("finn", "mnist-vectors")
    x = np.load(vec / "input_4.npy")
    expected = np.load(vec / "expected_output_4.npy")
    assert np.array_equal(design.predict(x).argmax(axis=1), expected.ravel())
    x1 = np.load(vec / "input_1.npy")
    assert design.predict(x1).argmax(axis=1).tolist() == np.load(vec / "expected_output_1.npy").ravel().tolist()
    # Random images in the trained range, plus the MNIST ones: every quantized tensor exact.
    xr = np.concatenate([x, rng.uniform(0, 1, (40, 1, 28, 28)).astype(np.float32)])
    checked = _check_every_tensor(design, model, xr)
    assert len(checked) == 8  # input quant, 4 matmuls, 3 threshold activations


def _bn_model(rng, c_in=12, c_out=7, bits=3):
    """MatMul -> BatchNorm (negative gammas too) -> Quant: thresholds with decreasing channels."""
    w = rng.integers(-3, 4, (c_in, c_out)).astype(np.float32) * 0.25
    gamma = rng.normal(0, 1.0, c_out).astype(np.float32)
    gamma[0] = -abs(gamma[0]) - 0.1
    beta, mean = rng.normal(0, 1, c_out).astype(np.float32), rng.normal(0, 2, c_out).astype(np.float32)
    var = rng.uniform(0.5, 3, c_out).astype(np.float32)
    inits = [
        numpy_helper.from_array(np.float32(0.5), "s_in"),
        numpy_helper.from_array(np.float32(0), "zp"),
        numpy_helper.from_array(np.float32(4), "b_in"),
        numpy_helper.from_array(w, "w"),
        numpy_helper.from_array(gamma, "g"),
        numpy_helper.from_array(beta, "b"),
        numpy_helper.from_array(mean, "m"),
        numpy_helper.from_array(var, "v"),
        numpy_helper.from_array(np.float32(0.3), "s_out"),  # not a power of two
        numpy_helper.from_array(np.float32(bits), "b_out"),
    ]
    d = "qonnx.custom_op.general"
    nodes = [
        helper.make_node("Quant", ["x", "s_in", "zp", "b_in"], ["xq"], domain=d, signed=1, narrow=0, rounding_mode="ROUND", name="qin"),
        helper.make_node("MatMul", ["xq", "w"], ["acc"], name="mm"),
        helper.make_node("BatchNormalization", ["acc", "g", "b", "m", "v"], ["bn"], name="bn"),
        helper.make_node("Quant", ["bn", "s_out", "zp", "b_out"], ["y"], domain=d, signed=1, narrow=0, rounding_mode="ROUND", name="qout"),
    ]
    g = helper.make_graph(
        nodes, "bn_net",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c_in])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, c_out])],
        initializer=inits,
    )  # fmt: skip
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(d, 1)])
    m.ir_version = 8
    return m


def test_batchnorm_thresholds_exact(rng):
    model = _bn_model(rng)
    design = rtlgen.convert(model)
    th = [n for n in design.graph.nodes if isinstance(n.op, Threshold)]
    assert len(th) == 1 and not th[0].op.increasing[0]
    assert design.output_tensor.scale == pytest.approx(0.3)
    x = rng.uniform(-5, 5, (300, 12)).astype(np.float32)
    _check_every_tensor(design, model, x)


def test_graph_json_round_trip():
    design = rtlgen.convert(qonnx_mlp((8, 6, 3), seed=1))
    g2 = Graph.from_json(design.graph.to_json())
    g2.verify()
    assert g2.to_json() == design.graph.to_json()
    m = design.random_inputs(50)
    assert np.array_equal(rtlgen.Design(g2).predict_int(m), design.predict_int(m))


def test_rounding_modes_map_to_fixed_types(rng):
    modes = [("ROUND", "RND_CONV"), ("FLOOR", "TRN"), ("DOWN", "TRN_ZERO"), ("HALF_UP", "RND_INF"), ("HALF_DOWN", "RND_ZERO"), ("CEIL", None)]
    for mode, fixed_mode in modes:
        model = qonnx_mlp((6, 5, 3), seed=2)
        for n in model.graph.node:
            if n.op_type == "Quant":
                for a in n.attribute:
                    if a.name == "rounding_mode":
                        a.s = mode.encode()
        design = rtlgen.convert(model)
        req = [n.op for n in design.graph.nodes if isinstance(n.op, Requant)]
        if fixed_mode is None:  # no ap_fixed equivalent: exact thresholds instead
            assert not req and any(isinstance(n.op, Threshold) for n in design.graph.nodes)
        else:
            assert req and all(r.type.rounding == fixed_mode for r in req)
        x = rng.uniform(-8, 8, (80, 6)).astype(np.float32)
        _check_every_tensor(design, model, x)


def test_float_onnx_model_uses_config_precision(rng):
    w1 = rng.normal(0, 0.5, (10, 8)).astype(np.float32)
    b1 = rng.normal(0, 0.1, 8).astype(np.float32)
    w2 = rng.normal(0, 0.5, (8, 4)).astype(np.float32)
    inits = [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"))]
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], name="fc1"),
        helper.make_node("Relu", ["h"], ["hr"], name="relu1"),
        helper.make_node("MatMul", ["hr", "w2"], ["y"], name="fc2"),
    ]
    g = helper.make_graph(nodes, "float_net", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 10])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], initializer=inits)  # fmt: skip
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    design = rtlgen.convert(model, {"Model": {"Precision": "fixed<16,6>"}})
    assert design.input_tensor.type == rtlgen.FixedType.parse("fixed<16,6>")
    x = rng.uniform(-1, 1, (200, 10)).astype(np.float32)
    ref = x @ w1 + b1
    ref = np.maximum(ref, 0) @ w2
    # Float reference: 16-bit types with 10 fractional bits keep the error near 2**-10 per operation.
    assert np.max(np.abs(design.predict(x) - ref)) < 0.05


def _output_bound(design):
    assert design.graph.error_bound is not None, design.graph.notes
    return design.graph.error_bound


def test_reported_error_bound_holds_over_the_input_range(rng):
    """Float weights, biases, inputs and results rounded by the configuration: the build's bound on
    the output error holds on inputs spread over the whole input type, and is not vacuous."""
    w1 = rng.normal(0, 0.5, (6, 5)).astype(np.float32)
    b1 = rng.normal(0, 0.3, 5).astype(np.float32)
    w2 = rng.normal(0, 0.5, (5, 3)).astype(np.float32)
    inits = [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"))]
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], name="fc1"),
        helper.make_node("Relu", ["h"], ["hr"], name="relu1"),
        helper.make_node("MatMul", ["hr", "w2"], ["y"], name="fc2"),
    ]
    g = helper.make_graph(nodes, "float_net", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], initializer=inits)  # fmt: skip
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    # Inputs within [-2, 2): no value can overflow fixed<12,5>, so the bound's condition holds everywhere.
    cfg = {"Model": {"Precision": "fixed<12,5>"}, "LayerName": {"x": {"Precision": "fixed<8,2>"}}}
    design = rtlgen.convert(model, cfg)
    bound = _output_bound(design)
    x = rng.uniform(-2, 2, (5000, 6))
    ref = np.maximum(x @ w1.astype(np.float64) + b1, 0) @ w2.astype(np.float64)  # exact real arithmetic
    err = np.max(np.abs(design.predict(x) - ref))
    assert err <= bound < 8 * err


def test_quantized_model_reports_exactness():
    design = rtlgen.convert(qonnx_mlp((4, 3, 2), seed=0))
    assert _output_bound(design) == 0


def test_dense_weights_are_integers_and_bias_folded():
    design = rtlgen.convert(qonnx_mlp((4, 3, 2), seed=0))
    dense = [n.op for n in design.graph.nodes if isinstance(n.op, Dense)]
    assert all(d.weight.dtype == np.int64 and d.bias is not None for d in dense)


# -- errors ---------------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(ModelFormatError, match=r"^model file '.*nope\.onnx' does not exist$"):
        rtlgen.convert(tmp_path / "nope.onnx")


def test_not_onnx(tmp_path):
    p = tmp_path / "garbage.onnx"
    p.write_bytes(b"this is not a protobuf \xff\xfe" * 10)
    with pytest.raises(ModelFormatError, match=r"is not a readable ONNX model|is not an ONNX model"):
        rtlgen.convert(p)


def test_unsupported_op_names_node():
    model = qonnx_mlp((4, 3, 2), seed=0)
    for n in model.graph.node:
        if n.op_type == "Relu":
            n.op_type = "Cosh"
            break
    with pytest.raises(UnsupportedOpError, match=r"^node 'relu0' \(Cosh\): operation 'Cosh' is not supported; supported are Sigmoid, Tanh"):
        rtlgen.convert(model)


def test_softmax_built_or_skipped():
    model = qonnx_mlp((4, 3, 2), seed=0)
    out = model.graph.output[0]
    model.graph.node.append(helper.make_node("Softmax", [out.name], ["prob"], name="softmax", axis=-1))
    out.name = "prob"
    design = rtlgen.convert(model)
    assert design.graph.nodes[-1].kind == "Softmax"
    x = np.random.default_rng(0).uniform(-8, 8, (200, 4)).astype(np.float32)
    probs = design.predict(x)
    assert np.all(np.abs(probs.sum(axis=1) - 1) < 0.01)
    skipped = rtlgen.convert(model, skip_softmax=True)
    assert any("Softmax" in n for n in skipped.graph.notes)
    assert np.array_equal(skipped.predict(x).argmax(axis=1), probs.argmax(axis=1))


def _binary_trunc_model(rng, with_trunc):
    """Bipolar weights and activations (XNOR-style), optionally a Trunc on the last accumulator."""
    d = "qonnx.custom_op.general"
    w1 = rng.normal(0, 1, (10, 8)).astype(np.float32)
    w2 = rng.normal(0, 1, (8, 3)).astype(np.float32)
    c = lambda a, n: numpy_helper.from_array(np.asarray(a, dtype=np.float32), n)  # noqa: E731
    inits = [c(w1, "w1"), c(w2, "w2"), c(1.0, "one"), c(0.0, "zero"), c(0.5, "half"), c(4.0, "b4"), c(10.0, "b10")]
    nodes = [
        helper.make_node("BipolarQuant", ["x", "one"], ["xq"], domain=d, name="qin"),
        helper.make_node("BipolarQuant", ["w1", "one"], ["w1q"], domain=d, name="qw1"),
        helper.make_node("MatMul", ["xq", "w1q"], ["a1"], name="mm1"),
        helper.make_node("Add", ["a1", "half"], ["a1b"], name="bias1"),
        helper.make_node("BipolarQuant", ["a1b", "one"], ["h"], domain=d, name="act1"),
        helper.make_node("BipolarQuant", ["w2", "one"], ["w2q"], domain=d, name="qw2"),
        helper.make_node("MatMul", ["h", "w2q"], ["a2"], name="mm2"),
    ]
    out = "a2"
    if with_trunc:
        nodes.append(
            helper.make_node("Trunc", ["a2", "one", "zero", "b10", "b4", "b4"], ["t"], domain=d, name="trunc",
                             rounding_mode="FLOOR", signed=1, narrow=0)  # fmt: skip
        )
        out = "t"
    g = helper.make_graph(nodes, "bnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 10])],
                          [helper.make_tensor_value_info(out, TensorProto.FLOAT, [1, 3])], initializer=inits)  # fmt: skip
    # qonnx opset 2: Trunc's output grid is its output_scale input.
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(d, 2)])
    m.ir_version = 8
    return m


@pytest.mark.parametrize("with_trunc", [False, True])
def test_bipolar_and_trunc_exact(rng, with_trunc):
    model = _binary_trunc_model(rng, with_trunc)
    design = rtlgen.convert(model)
    th = [n.op for n in design.graph.nodes if isinstance(n.op, Threshold)]
    assert th and th[0].step == 2 and th[0].base == -1  # bipolar: -1 or +1
    x = rng.normal(0, 1, (200, 10)).astype(np.float32)
    _check_every_tensor(design, model, x)


@pytest.mark.parametrize("out_scale, out_bias, levels", [(2.0, -2.0, 3), (2.0, -1.0, 1), (0.5, 0.25, 3)], ids=["whole", "bipolar", "quarter"])
def test_finn_multithreshold(rng, out_scale, out_bias, levels):
    """A FINN-style MultiThreshold after an integer MatMul: exact, with its output scale and bias
    (any affine output: the bipolar +-1 encoding of FINN's flow is out_scale 2, out_bias -1)."""
    d = "qonnx.custom_op.general"
    w = rng.integers(-2, 3, (8, 5)).astype(np.float32)
    thr = np.sort(rng.integers(-6, 7, (5, levels)), axis=1).astype(np.float32) + 0.5
    inits = [
        numpy_helper.from_array(np.float32(1), "s"), numpy_helper.from_array(np.float32(0), "z"),
        numpy_helper.from_array(np.float32(3), "b"), numpy_helper.from_array(w, "w"), numpy_helper.from_array(thr, "t"),
    ]  # fmt: skip
    nodes = [
        helper.make_node("Quant", ["x", "s", "z", "b"], ["xq"], domain=d, signed=1, narrow=0, rounding_mode="ROUND", name="qin"),
        helper.make_node("MatMul", ["xq", "w"], ["acc"], name="mm"),
        helper.make_node("MultiThreshold", ["acc", "t"], ["y"], domain=d, name="mt", out_scale=out_scale, out_bias=out_bias),
    ]
    g = helper.make_graph(nodes, "finn_mt", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])], initializer=inits)  # fmt: skip
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(d, 1)])
    model.ir_version = 8
    design = rtlgen.convert(model)
    assert [n.kind for n in design.graph.nodes] == ["Dense", "Threshold"]
    x = rng.uniform(-5, 5, (300, 8)).astype(np.float32)
    _check_every_tensor(design, model, x)


def test_zoo_jet_tagger_float_input_takes_the_configured_type(tmp_path):
    """A float input straight into a quantized MatMul (QONNX zoo jet tagger converted from QKeras):
    the input takes the configured type (default fixed<16,6>, said in the build output); on inputs
    of that type the golden model equals qonnx's executor on the logits."""
    import onnx
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx

    from conftest import check_rtl

    path = shared_model("qonnx-model-zoo", "JetTagging", "qkeras_jettagging.onnx")
    design = rtlgen.convert(path, skip_softmax=True)
    assert any("takes the configured input type fixed<16,6>" in n for n in design.graph.notes)
    assert str(design.input_tensor.type) == "fixed<16,6>"
    x = np.random.default_rng(0).uniform(-4, 4, (100, 16)).astype(np.float32)
    xq = design.input_tensor.type.to_float(design.quantize_input(x)).astype(np.float32)
    model = ModelWrapper(onnx.load(path))
    iname = model.graph.input[0].name
    ref = np.concatenate([execute_onnx(model, {iname: xq[i : i + 1]}, return_full_exec_context=True)["Add_3_out0"] for i in range(len(x))])
    assert np.array_equal(design.predict(x), ref)
    # Another input type from the configuration, by the input's name.
    narrow = rtlgen.convert(path, {"LayerName": {"global_in": {"Precision": "fixed<10,4>"}}}, skip_softmax=True)
    assert str(narrow.input_tensor.type) == "fixed<10,4>"
    check_rtl(design, x[:100], work_dir=tmp_path)


@pytest.mark.parametrize("group, cout", [(2, 6), (4, 8), (1, 3)], ids=["grouped", "depthwise-multiplier-2", "plain"])
def test_grouped_convolutions_against_onnxruntime(tmp_path, group, cout):
    """group between 1 and the channel count, and depthwise with a channel multiplier."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(group)
    w = rng.normal(0, 0.5, (cout, 4 // group, 3, 3)).astype(np.float32)
    b = rng.normal(0, 0.2, cout).astype(np.float32)
    node = helper.make_node("Conv", ["x", "W", "B"], ["y"], name="gconv", group=group, pads=[1, 1, 1, 1], kernel_shape=[3, 3])
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4, 5, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", cout, 5, 5])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")],
    )  # fmt: skip
    path = tmp_path / "g.onnx"
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString())
    design = rtlgen.convert(path, {"Model": {"Precision": "fixed<18,8>"}})
    (conv,) = [n.op for n in design.graph.nodes if n.kind == "Conv"]
    assert conv.depthwise == (group == 4)
    if group == 2:  # the two halves never see each other's channels
        assert not conv.weight[:, :, 2:, :3].any() and not conv.weight[:, :, :2, 3:].any()
    x = rng.uniform(-2, 2, (200, 4, 5, 5)).astype(np.float32)
    ref = ort.InferenceSession(str(path)).run(None, {"x": x})[0].reshape(200, -1)
    assert np.abs(design.predict(x) - ref).max() <= design.graph.error_bound


def _brevitas_style_model(rng, batch):
    """Brevitas's default float scaling, exported as QONNX: an 8-bit input quantizer and 4-bit
    per-output-channel weights, all with scales that are not powers of two, a float bias, ReLU and
    4-bit activations, and an 8-bit output quantizer."""
    d = "qonnx.custom_op.general"
    f = np.float32
    w1, w2 = rng.normal(0, 0.4, (16, 12)).astype(f), rng.normal(0, 0.4, (12, 5)).astype(f)
    s1 = (np.abs(w1).max(axis=0, keepdims=True) / 7).astype(f)
    s2 = (np.abs(w2).max(axis=0, keepdims=True) / 7).astype(f)
    c = {
        "s_in": f(0.0371), "b8": f(8), "b4": f(4), "z": f(0), "w1": w1, "s1": s1, "w2": w2, "s2": s2,
        "bias1": rng.normal(0, 0.3, 12).astype(f), "s_act": f(0.0937), "s_out": f(0.0513),
    }  # fmt: skip
    nodes = [
        helper.make_node("Quant", ["x", "s_in", "z", "b8"], ["xq"], domain=d, signed=1, narrow=0, rounding_mode="ROUND", name="qin"),
        helper.make_node("Quant", ["w1", "s1", "z", "b4"], ["w1q"], domain=d, signed=1, narrow=1, rounding_mode="ROUND", name="qw1"),
        helper.make_node("MatMul", ["xq", "w1q"], ["h"], name="fc1"),
        helper.make_node("Add", ["h", "bias1"], ["hb"], name="fc1_bias"),
        helper.make_node("Relu", ["hb"], ["hr"], name="relu1"),
        helper.make_node("Quant", ["hr", "s_act", "z", "b4"], ["a1"], domain=d, signed=0, narrow=0, rounding_mode="ROUND", name="qa1"),
        helper.make_node("Quant", ["w2", "s2", "z", "b4"], ["w2q"], domain=d, signed=1, narrow=1, rounding_mode="ROUND", name="qw2"),
        helper.make_node("MatMul", ["a1", "w2q"], ["o"], name="fc2"),
        helper.make_node("Quant", ["o", "s_out", "z", "b8"], ["y"], domain=d, signed=1, narrow=0, rounding_mode="ROUND", name="qout"),
    ]
    g = helper.make_graph(nodes, "brevitas_float_scales", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 5])],
                          initializer=[numpy_helper.from_array(np.asarray(v), k) for k, v in c.items()])  # fmt: skip
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(d, 1)])
    model.ir_version = 8
    return model


def test_non_power_of_two_scales_exact_against_qonnx(tmp_path):
    """Per-channel weight scales and an input scale that are not powers of two: exact integer
    sums and thresholds; golden == qonnx's executor on 10,000 random inputs, RTL == golden."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx

    from conftest import check_rtl

    n = 10_000
    design = rtlgen.convert(_brevitas_style_model(np.random.default_rng(7), 1))
    assert [k.kind for k in design.graph.nodes] == ["Dense", "Threshold", "Dense", "Threshold"]
    x = np.random.default_rng(8).uniform(-6, 6, (n, 16)).astype(np.float32)
    from qonnx.transformation.infer_shapes import InferShapes

    ref = execute_onnx(ModelWrapper(_brevitas_style_model(np.random.default_rng(7), n)).transform(InferShapes()), {"x": x})["y"]
    assert np.array_equal(design.predict(x).astype(np.float32), ref)
    check_rtl(design, x[:200], work_dir=tmp_path)


def test_old_export_with_initializers_listed_as_inputs(tmp_path):
    """Opset-9 exports list every initializer (a batch norm's running statistics) as a graph input:
    inputs with an initializer are constants, so the network still has one input."""
    import onnxruntime as ort

    rng = np.random.default_rng(9)
    arr = {"W": rng.normal(0, 0.5, (3, 2, 3, 3)), "B": rng.normal(0, 0.1, 3), "g": rng.uniform(0.5, 1.5, 3),
           "b": rng.normal(0, 0.1, 3), "m": rng.normal(0, 0.1, 3), "v": rng.uniform(0.5, 2, 3)}  # fmt: skip
    arr = {k: v.astype(np.float32) for k, v in arr.items()}
    nodes = [
        helper.make_node("Conv", ["x", "W", "B"], ["c"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "g", "b", "m", "v"], ["n"], name="bn", epsilon=1e-5),
        helper.make_node("Relu", ["n"], ["y"], name="relu"),
    ]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 5, 5])]
    inputs += [helper.make_tensor_value_info(k, TensorProto.FLOAT, list(a.shape)) for k, a in arr.items()]
    g = helper.make_graph(nodes, "old", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 5, 5])],
                          [numpy_helper.from_array(a, k) for k, a in arr.items()])  # fmt: skip
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 9)])
    model.ir_version = 4
    path = tmp_path / "old.onnx"
    path.write_bytes(model.SerializeToString())
    design = rtlgen.convert(path, {"Model": {"Precision": "fixed<18,8>"}})
    assert [n.kind for n in design.graph.nodes] == ["Conv", "Relu", "Requant"]
    x = rng.uniform(-2, 2, (50, 2, 5, 5)).astype(np.float32)
    sess = ort.InferenceSession(str(path))
    ref = np.concatenate([sess.run(None, {"x": x[i : i + 1]})[0].reshape(1, -1) for i in range(len(x))])
    assert np.abs(design.predict(x) - ref).max() <= design.graph.error_bound


def _brevitas_style_cnn(rng, batch, *, one_d=False):
    """A Brevitas-style QONNX CNN with default float scaling: an 8-bit input quantizer, 4-bit
    convolution weights with per-output-channel scales (then a per-tensor one) that are not powers of
    two, float biases, ReLU, 4-bit activations, max pooling and a dense 8-bit output."""
    d = "qonnx.custom_op.general"
    f = np.float32
    k = (3,) if one_d else (3, 3)
    sp = (6,) if one_d else (4, 4)
    w1 = rng.normal(0, 0.4, (4, 2, *k)).astype(f)
    w2 = rng.normal(0, 0.4, (3, 4, *k)).astype(f)
    flat = 3 * int(np.prod([s // 2 for s in sp]))
    w3 = rng.normal(0, 0.3, (flat, 5)).astype(f)
    ones = (1,) * len(k)
    c = {
        "s_in": f(0.0371), "b8": f(8), "b4": f(4), "z": f(0),
        "w1": w1, "s1": (np.abs(w1).reshape(4, -1).max(axis=1) / 7).astype(f).reshape(4, 1, *ones),
        "w2": w2, "s2": f(np.abs(w2).max() / 7.3),
        "w3": w3, "s3": (np.abs(w3).max(axis=0, keepdims=True) / 7).astype(f),
        "bias1": rng.normal(0, 0.3, 4).astype(f), "bias2": rng.normal(0, 0.3, 3).astype(f),
        "s_a1": f(0.0937), "s_a2": f(0.1211), "s_out": f(0.0513), "shape": np.array([-1, flat], dtype=np.int64),
    }  # fmt: skip
    conv = {"kernel_shape": list(k), "pads": [1, 1] * len(k)}
    pool = {"kernel_shape": [2] * len(k), "strides": [2] * len(k)}
    q = lambda i, o, s, b, sign, narrow=0: helper.make_node(  # noqa: E731
        "Quant", [i, s, "z", b], [o], domain=d, signed=sign, narrow=narrow, rounding_mode="ROUND", name="q_" + o)
    nodes = [
        q("x", "xq", "s_in", "b8", 1),
        q("w1", "w1q", "s1", "b4", 1, 1),
        helper.make_node("Conv", ["xq", "w1q", "bias1"], ["c1"], name="conv1", **conv),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        q("r1", "a1", "s_a1", "b4", 0),
        q("w2", "w2q", "s2", "b4", 1, 1),
        helper.make_node("Conv", ["a1", "w2q", "bias2"], ["c2"], name="conv2", **conv),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        q("r2", "a2", "s_a2", "b4", 0),
        helper.make_node("MaxPool", ["a2"], ["p2"], name="pool2", **pool),
        helper.make_node("Reshape", ["p2", "shape"], ["fl"], name="flatten"),
        q("w3", "w3q", "s3", "b4", 1, 1),
        helper.make_node("MatMul", ["fl", "w3q"], ["o"], name="fc"),
        q("o", "y", "s_out", "b8", 1),
    ]
    g = helper.make_graph(nodes, "brevitas_cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 2, *sp])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 5])],
                          initializer=[numpy_helper.from_array(np.asarray(v), k_) for k_, v in c.items()])  # fmt: skip
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(d, 1)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize("one_d", [False, True], ids=["conv2d", "conv1d"])
def test_conv_non_power_of_two_scales_exact_against_qonnx(tmp_path, one_d):
    """Convolutions with per-channel and per-tensor weight scales that are not powers of two after an
    input scale that is not one either: integer sums, then exact thresholds. golden == qonnx's
    executor on 2,000 random inputs (RTL == golden: the slow test below)."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.infer_shapes import InferShapes

    n = 2_000
    design = rtlgen.convert(_brevitas_style_cnn(np.random.default_rng(11), 1, one_d=one_d))
    kinds = [k.kind for k in design.graph.nodes]
    assert kinds.count("Threshold") == 3 and kinds.count("Conv") == 2, kinds
    shape = (n, 2, 6) if one_d else (n, 2, 4, 4)
    x = np.random.default_rng(12).uniform(-5, 5, shape).astype(np.float32)
    model = ModelWrapper(_brevitas_style_cnn(np.random.default_rng(11), n, one_d=one_d)).transform(InferShapes())
    ref = execute_onnx(model, {"x": x})["y"]
    got = design.predict(x).astype(np.float32)
    assert np.array_equal(got, ref), np.abs(got - ref).max()


@pytest.mark.slow
def test_conv_non_power_of_two_scales_rtl(tmp_path):
    """RTL == golden for the convolutions with thresholds after them (a large io_parallel design)."""
    from conftest import check_rtl

    design = rtlgen.convert(_brevitas_style_cnn(np.random.default_rng(11), 1))
    x = np.random.default_rng(12).uniform(-5, 5, (100, 2, 4, 4)).astype(np.float32)
    check_rtl(design, x, work_dir=tmp_path)


def _kws_style_mlp(rng, batch, n_in=98, hidden=(32, 32, 32), n_out=12):
    """The shape of the QONNX zoo's keyword-spotting MLP (Brevitas default scaling): an 8-bit input
    quantizer, per-channel and per-tensor 3-bit weight scales, BatchNormalization and 3-bit unsigned
    activations after every hidden layer, and a float output scale; no scale is a power of two."""
    d = "qonnx.custom_op.general"
    f = np.float32
    dims = (n_in, *hidden)
    c = {"s_in": f(0.02713), "b8": f(8), "b3": f(3), "z": f(0)}
    nodes = [helper.make_node("Quant", ["x", "s_in", "z", "b8"], ["a0"], domain=d, signed=1, narrow=0, rounding_mode="ROUND", name="qin")]
    for i, (a, b) in enumerate(zip(dims, (*hidden, n_out))):
        w = rng.normal(0, 1 / np.sqrt(a), (a, b)).astype(f)
        per_channel = i % 2 == 0
        c[f"w{i}"] = w
        c[f"s{i}"] = (np.abs(w).max(axis=0, keepdims=True) / 3 if per_channel else np.array(np.abs(w).max() / 3.1)).astype(f)
        nodes += [
            helper.make_node("Quant", [f"w{i}", f"s{i}", "z", "b3"], [f"w{i}q"], domain=d, signed=1, narrow=1, rounding_mode="ROUND", name=f"qw{i}"),
            helper.make_node("MatMul", [f"a{i}", f"w{i}q"], [f"m{i}"], name=f"fc{i}"),
        ]
        if i == len(hidden):
            c["s_out"] = f(0.07919)
            nodes.append(helper.make_node("Mul", [f"m{i}", "s_out"], ["y"], name="out_scale"))
            break
        c.update({f"g{i}": rng.uniform(0.5, 1.5, b).astype(f), f"be{i}": rng.normal(0, 0.3, b).astype(f),
                  f"mu{i}": rng.normal(0, 0.5, b).astype(f), f"var{i}": rng.uniform(0.5, 2, b).astype(f),
                  f"sa{i}": f(0.2317 + 0.01 * i)})  # fmt: skip
        nodes += [
            helper.make_node("BatchNormalization", [f"m{i}", f"g{i}", f"be{i}", f"mu{i}", f"var{i}"], [f"n{i}"], name=f"bn{i}", epsilon=1e-4),
            helper.make_node("Relu", [f"n{i}"], [f"r{i}"], name=f"relu{i}"),
            helper.make_node("Quant", [f"r{i}", f"sa{i}", "z", "b3"], [f"a{i + 1}"], domain=d, signed=0, narrow=0, rounding_mode="ROUND", name=f"qa{i}"),
        ]
    g = helper.make_graph(nodes, "kws_mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, n_in])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, n_out])],
                          initializer=[numpy_helper.from_array(np.asarray(v), k) for k, v in c.items()])  # fmt: skip
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(d, 1)])
    model.ir_version = 8
    return model


def test_kws_style_mlp_exact_against_qonnx():
    """Brevitas-scaled MLP with batch norms between integer sums and 3-bit quantizers: every hidden
    activation is exact thresholds; the float output scale stays on the host. On 5,000 inputs every
    quantized activation equals qonnx's executor exactly; the float output (no quantizer after it)
    agrees to float32 rounding, because the executor sums the last layer's scaled products in
    float32 where rtlgen sums integers exactly."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.infer_shapes import InferShapes

    n = 5_000
    design = rtlgen.convert(_kws_style_mlp(np.random.default_rng(21), 1))
    assert [k.kind for k in design.graph.nodes] == ["Dense", "Threshold"] * 3 + ["Dense"]
    x = np.random.default_rng(22).uniform(-3.5, 3.5, (n, 98)).astype(np.float32)
    model = ModelWrapper(_kws_style_mlp(np.random.default_rng(21), n)).transform(InferShapes())
    ctx = execute_onnx(model, {"x": x}, return_full_exec_context=True)
    trace = design.trace(x)
    for name in ("a0", "a1", "a2", "a3"):
        assert np.array_equal(trace[name].astype(np.float32), ctx[name]), name
    ref = ctx["y"]
    assert np.abs(design.predict(x) - ref).max() <= 1e-5 * np.abs(ref).max()
