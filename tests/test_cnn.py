"""Convolutional networks in io_parallel form: Keras and QKeras CNNs, golden vs framework and RTL."""

import os

import numpy as np
import pytest

import rtlgen
from conftest import check_rtl
from rtlgen.fixed import FixedType
from rtlgen.layers import hardware

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
AUTO = {"Precision": {"accum": "auto", "result": "auto"}}


def _sim(design, x, tmp_path, stall="random"):
    return check_rtl(design, x, work_dir=tmp_path, stall=stall)


def test_keras_cnn_layers(tmp_path):
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(1)
    L = keras.layers
    model = keras.Sequential(
        [
            keras.Input((8, 8, 2)),
            L.Conv2D(4, 3, padding="same", activation="relu", name="c1"),
            L.MaxPooling2D(2, name="p1"),
            L.Conv2D(6, 3, name="c2", activation="relu"),
            L.ZeroPadding2D(1, name="zp"),
            L.AveragePooling2D(2, name="ap"),
            L.UpSampling2D(2, name="up"),
            L.Cropping2D(((1, 1), (0, 2)), name="crop"),
            L.DepthwiseConv2D(2, depth_multiplier=2, name="dw"),
            L.Flatten(name="fl"),
            L.Dense(5, name="fc"),
        ],
        name="cnn",
    )
    x = np.random.default_rng(0).uniform(-2, 2, (300, 8, 8, 2)).astype(np.float32)
    design = rtlgen.convert(model, {"Model": {"Precision": "fixed<18,8>"}, "LayerType": {"Conv": AUTO, "Dense": AUTO}})
    # Against float Keras: 18-bit types with 10 fractional bits, errors of a few 2**-10 per layer.
    assert np.max(np.abs(design.predict(x) - model.predict(x, verbose=0))) < 0.05
    _sim(design, x[:200], tmp_path)


def test_keras_conv1d_and_global_pooling(tmp_path):
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(2)
    L = keras.layers
    model = keras.Sequential(
        [keras.Input((16, 3)), L.Conv1D(4, 3, strides=2, padding="same", activation="relu", name="c"),
         L.MaxPooling1D(2, name="p"), L.GlobalAveragePooling1D(name="g"), L.Dense(2, name="d")]
    )  # fmt: skip
    x = np.random.default_rng(1).uniform(-2, 2, (200, 16, 3)).astype(np.float32)
    design = rtlgen.convert(model, {"Model": {"Precision": "fixed<18,8>"}, "LayerType": {"Conv": AUTO, "Dense": AUTO}})
    assert np.max(np.abs(design.predict(x) - model.predict(x, verbose=0))) < 0.05
    _sim(design, x[:100], tmp_path, stall="none")


def _reported_errors(design):
    """Each inexact average's own worst-case error, in graph order."""
    return [n.attrs["error"] for n in design.graph.nodes if "error" in n.attrs]


def test_keras_non_power_of_two_average_pooling(tmp_path):
    """Averages over 9 values (padded edges over 6 or 4) and a global average over 5 steps."""
    keras = pytest.importorskip("keras")
    L = keras.layers
    model = keras.Sequential(
        [keras.Input((6, 6, 2)), L.AveragePooling2D(3, name="avg3"), L.UpSampling2D(3, name="up"),
         L.AveragePooling2D(3, strides=2, padding="same", name="avgs"), L.Reshape((9, 2), name="rs"),
         L.AveragePooling1D(3, strides=2, name="a1"), L.Cropping1D((0, 1), name="cr"), L.ZeroPadding1D((0, 2), name="zp"),
         L.GlobalAveragePooling1D(name="gap")]
    )  # fmt: skip
    design = rtlgen.convert(model, {"Model": {"Precision": "fixed<16,6>"}})
    kinds = {n.name: n.op.recip_frac for n in design.graph.nodes if n.kind == "Pool"}
    assert all(kinds[k] is not None for k in ("avg3", "avgs", "a1", "gap"))
    errors = _reported_errors(design)
    assert len(errors) == 4 and max(errors) < 2 * 2.0**-10  # TRN into 10 fractional bits, a reciprocal within 1/8 step
    # Inputs on the input grid, so the reported errors are the whole difference (plus Keras's float32 rounding).
    x = np.random.default_rng(0).uniform(-4, 4, (300, 6, 6, 2))
    x = design.input_tensor.type.to_float(design.quantize_input(x)).reshape(x.shape).astype(np.float32)
    assert np.max(np.abs(design.predict(x) - model.predict(x, verbose=0))) <= sum(errors) + 1e-5
    _sim(design, x[:150], tmp_path)


def test_average_pooling_error_is_exact_worst_case():
    """The reported error is attained: an exhaustive check of one 3x3 window on a 6-bit input."""
    from rtlgen.ir import Tensor
    from rtlgen.ir.ops.spatial import Pool

    tin, tout = FixedType(6, 3, True), FixedType(8, 3, True, "RND")
    op = Pool("avg", (3, 3), (3, 3), in_shape=(3, 3, 1), recip_frac=12)
    sums = np.arange(9 * tin.min_mantissa, 9 * tin.max_mantissa + 1)
    x = np.zeros((len(sums), 9), dtype=np.int64)
    for k in range(9):  # spread each sum over the window, every lane within the type
        x[:, k] = np.clip(sums - x.sum(axis=1), tin.min_mantissa, tin.max_mantissa)
    assert np.array_equal(x.sum(axis=1), sums)
    y = op.golden(x, Tensor("x", (3, 3, 1), tin), Tensor("y", (1, 1, 1), tout))[:, 0]
    measured = np.max(np.abs(tout.to_float(y) - tin.to_float(sums) / 9))
    err, overflows = op.average_error(tin, tout, tin.min_mantissa, tin.max_mantissa)
    assert not overflows and abs(err - measured) < 1e-12


def _onnx_avgpool(count_include_pad, quantized=False):
    from onnx import TensorProto, helper, numpy_helper

    d = "qonnx.custom_op.general"
    nodes = [helper.make_node("AveragePool", ["xq" if quantized else "x"], ["p"], name="pool", kernel_shape=[3, 3], strides=[2, 2],
                              pads=[1, 1, 1, 1], count_include_pad=count_include_pad),
             helper.make_node("GlobalAveragePool", ["p"], ["y"], name="gap")]  # fmt: skip
    inits = []
    if quantized:
        nodes.insert(0, helper.make_node("Quant", ["x", "s", "z", "b"], ["xq"], domain=d, signed=1, narrow=0, rounding_mode="ROUND", name="qin"))
        inits = [numpy_helper.from_array(np.float32(v), n) for v, n in ((0.25, "s"), (0.0, "z"), (6.0, "b"))]
    g = helper.make_graph(nodes, "avgpool", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 5, 5])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 1, 1])], initializer=inits)  # fmt: skip
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)] + ([helper.make_opsetid(d, 1)] if quantized else []))
    m.ir_version = 8
    return m


@pytest.mark.parametrize("count_include_pad", [0, 1])
def test_onnx_non_power_of_two_average_pooling(tmp_path, count_include_pad):
    import onnxruntime as ort

    model = _onnx_avgpool(count_include_pad)
    design = rtlgen.convert(model, {"Model": {"Precision": "fixed<16,6>"}})
    errors = _reported_errors(design)
    assert len(errors) == 2  # the 3x3 pool (4, 6 or 9 values per window) and the global one over 9
    x = np.random.default_rng(count_include_pad).uniform(-4, 4, (300, 2, 5, 5))
    x = design.input_tensor.type.to_float(design.quantize_input(x))[:, np.argsort(design.graph.input_order)].reshape(x.shape).astype(np.float32)
    sess = ort.InferenceSession(model.SerializeToString())
    ref = np.concatenate([sess.run(None, {"x": x[i : i + 1]})[0].reshape(1, -1) for i in range(len(x))])
    # Inputs on the grid: the reported errors bound the difference (plus onnxruntime's float32 rounding).
    assert np.max(np.abs(design.predict(x).reshape(ref.shape) - ref)) <= sum(errors) + 1e-5
    if count_include_pad:
        _sim(design, x[:100], tmp_path, stall="none")


@pytest.mark.parametrize("op", ["AveragePool", "MaxPool"])
def test_pool_window_all_padding_refused(op):
    """Pads as large as the window leave windows with no input value (ONNX leaves them
    undefined): one message naming the node, not a division by zero."""
    from onnx import TensorProto, helper

    n = helper.make_node(op, ["x"], ["y"], name="pool", kernel_shape=[2, 2], strides=[2, 2], pads=[2, 2, 2, 2])
    g = helper.make_graph([n], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])  # fmt: skip
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    with pytest.raises(rtlgen.UnsupportedOpError, match=rf"^node 'pool' \({op}\): padding .* leaves a 2x2 window with no input value"):
        rtlgen.convert(m)


def test_onnx_quantized_non_power_of_two_average_refused():
    with pytest.raises(rtlgen.UnsupportedOpError, match=r"^node 'pool' \(AveragePool\): average pooling over 9 values in a quantized model"):
        rtlgen.convert(_onnx_avgpool(0, quantized=True))


def _onnx_cnn(rng):
    from onnx import TensorProto, helper, numpy_helper

    w = rng.normal(0, 0.4, (3, 2, 3, 3)).astype(np.float32)
    b = rng.normal(0, 0.1, 3).astype(np.float32)
    wd = rng.normal(0, 0.4, (27, 4)).astype(np.float32)
    inits = [numpy_helper.from_array(a, n) for a, n in ((w, "w"), (b, "b"), (wd, "wd"), (np.array([1, -1], dtype=np.int64), "shape"))]
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("MaxPool", ["r"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Reshape", ["p", "shape"], ["f"], name="flatten"),
        helper.make_node("MatMul", ["f", "wd"], ["y"], name="fc"),
    ]
    g = helper.make_graph(nodes, "onnx_cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 6, 6])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], initializer=inits)  # fmt: skip
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


@pytest.mark.parametrize("reuse", [1, 6])
def test_onnx_cnn_channels_first(tmp_path, reuse):
    import onnxruntime as ort

    rng = np.random.default_rng(5)
    model = _onnx_cnn(rng)
    cfg = {"Model": {"Precision": "fixed<16,6>"}, "LayerType": {"Conv": AUTO, "Dense": AUTO}, "LayerName": {"conv": {"ReuseFactor": reuse}}}
    design = rtlgen.convert(model, cfg)
    assert any("channels-first input" in n for n in design.graph.notes)
    assert design.graph.node("conv").op.reuse_factor == reuse and design.initiation_interval == reuse
    x = rng.uniform(-2, 2, (200, 2, 6, 6)).astype(np.float32)
    sess = ort.InferenceSession(model.SerializeToString())
    ref = np.concatenate([sess.run(None, {"x": x[i : i + 1]})[0] for i in range(len(x))])
    # Float reference: inputs and weights truncated (TRN) to a 2**-10 grid, sums exact after that;
    # the truncations all lean one way, about 0.03 over the 18 + 27 terms of each output here.
    assert np.max(np.abs(design.predict(x) - ref)) < 0.06
    if reuse == 1:  # the reuse hardware is simulated in test_keras_conv_reuse_rtl (this one takes minutes)
        _sim(design, x[:150], tmp_path)


def test_mnist_conv_float_model():
    import glob

    import onnx
    from onnx import numpy_helper

    from conftest import shared_model

    folder = shared_model("qonnx-tests", "onnx", "mnist-conv")
    # Sums of 0..255 pixels need exact accumulators, results and ReLUs (hls4ml's Activation type).
    auto = {"Conv": AUTO, "Dense": AUTO, "Activation": AUTO}
    design = rtlgen.convert(folder / "model.onnx", {"Model": {"Precision": "fixed<16,6>"}, "LayerName": {"Input3": {"Precision": "ufixed<8,8>"}}, "LayerType": auto})

    def load(kind):
        t = onnx.TensorProto()
        t.ParseFromString(open(glob.glob(str(folder / "test_data_set_0" / f"{kind}_0.pb"))[0], "rb").read())
        return numpy_helper.to_array(t)

    x, y = load("input"), load("output")
    p = design.predict(x)
    assert p.argmax() == y.argmax()
    # Only the weights are rounded (to 2**-10); relative to the largest logit the error is below 3 %.
    assert np.max(np.abs(p - y)) / np.max(np.abs(y)) < 0.03
    # The build's worst-case bound is an interval bound, far from this sample's error through two
    # convolutions on 0..255 inputs; it is tested where it is tight (test_onnx_import, test_precision).


def test_keras_activations_and_softmax(tmp_path):
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(1)
    L = keras.layers
    model = keras.Sequential(
        [
            keras.Input((12,)), L.Dense(16, activation="tanh", name="d1"), L.LeakyReLU(0.2, name="lr"),
            L.Dense(16, activation="sigmoid", name="d2"), L.PReLU(name="pr"), L.Dense(8, name="d3"), L.ELU(name="elu"),
            L.Dense(8, activation="hard_sigmoid", name="d4"), L.ReLU(max_value=6.0, name="r6"), L.Dense(5, name="d5"),
            L.Softmax(name="sm"),
        ]
    )  # fmt: skip
    x = np.random.default_rng(0).uniform(-3, 3, (500, 12)).astype(np.float32)
    design = rtlgen.convert(model, {"Model": {"Precision": "fixed<18,6>"}})
    kinds = {n.name: n.kind for n in design.graph.nodes}
    assert kinds["d1_tanh"] == "Lut" and kinds["lr"] == "Pwl" and kinds["sm"] == "Softmax"
    bounds = [n for n in design.graph.notes if "worst-case error" in n and not n.startswith("output")]
    assert len(bounds) == 4  # tanh, sigmoid, elu tables and the softmax
    ref = model.predict(x, verbose=0)
    # Float reference: 12 fractional bits plus the reported table errors (tanh 0.031 at most).
    assert np.max(np.abs(design.predict(x) - ref)) < 0.02
    # The build's own bound on the output error holds (up to Keras's float32 rounding).
    output_bound = design.graph.error_bound
    assert np.max(np.abs(design.predict(x) - ref)) <= output_bound + 1e-6
    assert np.mean(design.predict(x).argmax(1) == ref.argmax(1)) >= 0.99
    _sim(design, x[:200], tmp_path)


def test_qonnx_sigmoid_between_quantizers_is_exact():
    from conftest import execute_qonnx
    from rtlgen.examples import qonnx_mlp

    model = qonnx_mlp((6, 5, 3), seed=4)
    relu = next(n for n in model.graph.node if n.op_type == "Relu")
    relu.op_type = "Sigmoid"
    design = rtlgen.convert(model)
    assert any(n.kind == "Threshold" for n in design.graph.nodes)  # exact thresholds, no table
    x = np.random.default_rng(2).uniform(-8, 8, (200, 6)).astype(np.float32)
    assert np.array_equal(design.predict(x).astype(np.float32), execute_qonnx(model, x))


def test_keras_residual_block_with_merges(tmp_path):
    """A branching functional model: fork, add (skip connection), concatenate, re-join."""
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(4)
    L = keras.layers
    inp = keras.Input((6, 6, 3), name="x")
    h = L.Conv2D(3, 3, padding="same", activation="relu", name="c1")(inp)
    h = L.Conv2D(3, 3, padding="same", name="c2")(h)
    s = L.Add(name="skip")([inp, h])
    m = L.Maximum(name="mx")([s, inp])
    c = L.Concatenate(name="cat")([m, h])
    out = L.Dense(4, name="fc")(L.Flatten(name="fl")(L.MaxPooling2D(2, name="p")(c)))
    model = keras.Model(inp, out, name="residual")
    design = rtlgen.convert(model, {"Model": {"Precision": "fixed<16,6>"}, "LayerType": {"Conv": AUTO, "Dense": AUTO}})
    kinds = [n.kind for n in design.graph.nodes]
    assert kinds.count("Merge") == 2 and kinds.count("Concat") == 1
    x = np.random.default_rng(3).uniform(-2, 2, (300, 6, 6, 3)).astype(np.float32)
    assert np.max(np.abs(design.predict(x) - model.predict(x, verbose=0))) < 0.05
    _sim(design, x[:200], tmp_path)
    assert design.initiation_interval == 1


def test_keras_separable_and_permute(tmp_path):
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(6)
    L = keras.layers
    model = keras.Sequential(
        [keras.Input((5, 5, 2)), L.SeparableConv2D(3, 3, depth_multiplier=2, name="sep"), L.Permute((2, 1, 3), name="perm"),
         L.Reshape((27,), name="rs"), L.Dense(3, name="fc")]
    )  # fmt: skip
    design = rtlgen.convert(model, {"Model": {"Precision": "fixed<16,6>"}, "LayerType": {"Conv": AUTO, "Dense": AUTO}})
    names = {n.name: n.kind for n in design.graph.nodes}
    assert names["sep_depthwise"] == "Conv" and names["sep"] == "Conv" and names["perm"] == "Gather"
    x = np.random.default_rng(6).uniform(-2, 2, (200, 5, 5, 2)).astype(np.float32)
    assert np.max(np.abs(design.predict(x) - model.predict(x, verbose=0))) < 0.05
    _sim(design, x[:150], tmp_path, stall="none")


# -- convolutions with a reuse factor ------------------------------------------------------------


def _conv_case(kind, rng):
    from rtlgen.ir.ops.spatial import Conv

    if kind == "conv2d":
        w, shape, kw = rng.integers(-5, 6, (2, 2, 2, 3)), (3, 3, 2), {}
    elif kind == "depthwise":
        w, shape, kw = rng.integers(-5, 6, (3, 3, 2, 2)), (5, 5, 2), {"padding": ((1, 1), (1, 1)), "stride": (2, 2), "depthwise": True}
    elif kind == "conv1d":
        w, shape, kw = rng.integers(-5, 6, (1, 3, 2, 2)), (1, 8, 2), {"padding": ((0, 0), (1, 1)), "dilation": (1, 2)}
    else:  # hls4ml's accumulator: products rounded by 3 bits onto a 9-bit wrapping grid
        w, shape, kw = rng.integers(-31, 32, (2, 2, 2, 2)), (4, 4, 2), {"accum": FixedType(9, 5, True, "TRN", "WRAP"), "product_shift": 3}
    w[rng.random(w.shape) < 0.2] = 0
    op = Conv(w, None, in_shape=shape, **kw)
    op.bias = rng.integers(-20, 20, op.out_shape[2])
    return op


@pytest.mark.parametrize(
    # Up to the number of positions whole positions share the multipliers; beyond, chunks of taps.
    "kind,reuse", [("conv2d", 2), ("conv2d", 8), ("conv2d", 16), ("depthwise", 3), ("depthwise", 27), ("conv1d", 3), ("conv1d", 12), ("accum", 3), ("accum", 18)]
)
def test_conv_reuse_layer_bit_exact_with_measured_timing(kind, reuse):
    """Time-multiplexed convolutions equal the golden model, with interval R and latency R + 1."""
    from streams import run_layer

    from rtlgen.ir import Tensor
    from rtlgen.layers._conv import ConvReuse
    from rtlgen.plan.reuse import valid_conv_reuse_factors

    rng = np.random.default_rng(reuse)
    op = _conv_case(kind, rng)
    assert reuse in valid_conv_reuse_factors(*op.reuse_shape())
    op.reuse_factor = reuse
    tin = FixedType(8, 3, True)
    src = Tensor("x", op.in_shape, tin)
    dst = Tensor("y", op.out_shape, op.accum or FixedType(16, 16, True))
    xs = rng.integers(tin.min_mantissa, tin.max_mantissa + 1, (12, src.size))
    ref = op.golden(xs, src, dst)
    dut = hardware(op, [src], dst)
    assert isinstance(dut, ConvReuse) and (dut.initiation_interval, dut.latency) == (reuse, reuse + 1)
    outs, t_in, t_out = run_layer(dut, xs)
    assert np.array_equal(outs, ref)
    assert set(np.diff(t_in).tolist()) == {reuse} and t_out[0] - t_in[0] == reuse + 1
    rs = np.random.default_rng(7)
    pat_r, pat_v = rs.random(20000) < 0.6, rs.random(20000) < 0.7
    outs2, _, _ = run_layer(dut, xs, ready=lambda c: pat_r[c], valid=lambda c: pat_v[c])
    assert np.array_equal(outs2, ref)


@pytest.mark.parametrize("kind,reuse,signed", [("conv2d", 8, True), ("depthwise", 27, False), ("conv1d", 12, True), ("accum", 3, True), ("accum", 18, False)])
def test_conv_reuse_text_form_is_bit_exact(kind, reuse, signed, tmp_path):
    """The Verilog text a build writes for a time-multiplexed convolution (position groups, tap
    chunks, weight tables, products rounded one by one, unsigned inputs) equals the golden model."""
    from streams import run_text_form

    from rtlgen.ir import Tensor

    rng = np.random.default_rng(100 + reuse)
    op = _conv_case(kind, rng)
    op.reuse_factor = reuse
    tin = FixedType(8, 3, signed)
    src = Tensor("x", op.in_shape, tin)
    dst = Tensor("y", op.out_shape, op.accum or FixedType(16, 16, True))
    xs = rng.integers(tin.min_mantissa, tin.max_mantissa + 1, (60, src.size))
    ref = op.golden(xs, src, dst)
    text = run_text_form(hardware(op, [src], dst), xs, ref, tmp_path, seed=reuse)
    assert "module top__conv_reuse0" in text


def test_conv_reuse_shares_multipliers():
    from rtlgen.layers._conv import ConvReuse

    w = np.full((3, 3, 1, 2), 3, dtype=np.int64)
    lanes = np.arange(9 * 9).reshape(9, 1, 9)  # 9 positions of 9 distinct taps
    dut = ConvReuse(FixedType(8, 8, True), 81, FixedType(16, 16, True), lanes=lanes, weights=w.reshape(9, 2).T, reuse_factor=3)
    assert (dut.multipliers, dut.initiation_interval, dut.latency) == (3 * 9 * 2, 3, 4)  # 3 positions per cycle
    dut = ConvReuse(FixedType(8, 8, True), 81, FixedType(16, 16, True), lanes=lanes, weights=w.reshape(9, 2).T, reuse_factor=27)
    assert (dut.multipliers, dut.initiation_interval) == (3 * 2, 27)  # 3 taps per cycle


def test_keras_conv_reuse_rtl(tmp_path):
    """Conv2D, depthwise and Conv1D layers at reuse factors above 1: RTL == golden, timing as reported."""
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(8)
    L = keras.layers
    model = keras.Sequential(
        [keras.Input((6, 6, 2)), L.Conv2D(3, 3, padding="same", activation="relu", name="c1"),
         L.DepthwiseConv2D(2, strides=2, depth_multiplier=2, name="dw"), L.Reshape((9, 6), name="rs"),
         L.Conv1D(2, 3, name="c1d"), L.Flatten(name="fl"), L.Dense(3, name="fc")]
    )  # fmt: skip
    cfg = {"Model": {"Precision": "fixed<16,6>"}, "LayerType": {"Conv": AUTO, "Dense": AUTO},
           "LayerName": {"c1": {"ReuseFactor": 9}, "dw": {"ReuseFactor": 4}, "c1d": {"ReuseFactor": 16}}}  # fmt: skip
    design = rtlgen.convert(model, cfg)
    convs = {n.name: n.op.reuse_factor for n in design.graph.nodes if n.kind == "Conv"}
    # dw: 9 positions, 4 taps: 4 cycles are not a schedule, so 3 (3 positions per cycle) with a note.
    assert convs == {"c1": 9, "dw": 3, "c1d": 14}
    assert any(n.startswith("dw: reuse factor 4 does not split") for n in design.graph.notes)
    assert design.initiation_interval == 14
    x = np.random.default_rng(8).uniform(-2, 2, (200, 6, 6, 2)).astype(np.float32)
    assert np.max(np.abs(design.predict(x) - model.predict(x, verbose=0))) < 0.05
    _sim(design, x[:120], tmp_path)


def test_conv_reuse_factor_out_of_range_refused():
    keras = pytest.importorskip("keras")
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Conv2D(2, 3, name="cv")])
    with pytest.raises(rtlgen.ConfigError, match=r"^node 'cv': reuse factor 40 cannot be used with 4 output positions of 9"):
        rtlgen.convert(model, {"LayerName": {"cv": {"ReuseFactor": 40}}})


def _qonnx_cnn(rng):
    """Quantized input, a convolution with 4-bit weights and bias, ReLU and a 5-bit quantizer, max
    pooling, a depthwise convolution, a channels-first flatten and a quantized dense layer."""
    from onnx import TensorProto, helper, numpy_helper

    d = "qonnx.custom_op.general"
    f = lambda a, n: numpy_helper.from_array(np.asarray(a, dtype=np.float32), n)  # noqa: E731
    inits = [
        f(rng.normal(0, 0.5, (4, 2, 3, 3)), "w1"), f(rng.normal(0, 0.3, 4), "b1"), f(rng.normal(0, 0.5, (4, 1, 2, 2)), "w2"),
        f(rng.normal(0, 0.3, (16, 3)), "w3"), f(0.125, "s_in"), f(0.25, "s_w"), f(0.25, "s_a"), f(0.0, "z"),
        f(6.0, "b6"), f(4.0, "b4"), f(5.0, "b5"), numpy_helper.from_array(np.array([1, -1], dtype=np.int64), "shape"),
    ]  # fmt: skip
    q = lambda i, s, b, o, signed=1: helper.make_node("Quant", [i, s, "z", b], [o], domain=d, signed=signed, narrow=0, rounding_mode="ROUND", name="q_" + o)  # noqa: E731
    nodes = [
        q("x", "s_in", "b6", "xq"), q("w1", "s_w", "b4", "w1q"), q("w2", "s_w", "b4", "w2q"), q("w3", "s_w", "b4", "w3q"),
        helper.make_node("Conv", ["xq", "w1q", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"), q("r1", "s_a", "b5", "a1", signed=0),
        helper.make_node("MaxPool", ["a1"], ["p1"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "w2q"], ["c2"], name="conv2", kernel_shape=[2, 2], group=4),
        q("c2", "s_a", "b6", "a2"),
        helper.make_node("Reshape", ["a2", "shape"], ["fl"], name="flatten"),
        helper.make_node("MatMul", ["fl", "w3q"], ["y"], name="fc"),
    ]  # fmt: skip
    g = helper.make_graph(nodes, "qcnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 6, 6])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], initializer=inits)  # fmt: skip
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(d, 1)])
    m.ir_version = 8
    return m


@pytest.mark.parametrize("reuse", [1, 4])
def test_qonnx_cnn_equals_qonnx_and_rtl(tmp_path, reuse):
    """A quantized channels-first CNN: golden == qonnx's executor bit for bit, and RTL == golden."""
    from conftest import execute_qonnx

    rng = np.random.default_rng(11)
    model = _qonnx_cnn(rng)
    design = rtlgen.convert(model, {"LayerType": {"Conv": {"ReuseFactor": reuse}}})
    assert any("channels-first input" in n for n in design.graph.notes)
    assert [n.op.reuse_factor for n in design.graph.nodes if n.kind == "Conv"] == [reuse, reuse]
    x = rng.uniform(-4, 4, (300, 2, 6, 6)).astype(np.float32)
    assert np.array_equal(design.predict(x).astype(np.float32), execute_qonnx(model, x))
    if reuse > 1:  # fully parallel convolutions are simulated in the tests above
        _sim(design, x[:100], tmp_path)


def test_generated_config_lists_conv_reuse_factors(tmp_path):
    """``rtlgen config`` lists each convolution's exact reuse factors, and building with the
    generated file unchanged gives the same design (separable halves included)."""
    from rtlgen.config import generate

    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(9)
    L = keras.layers
    model = keras.Sequential(
        [keras.Input((6, 6, 2)), L.Conv2D(3, 3, padding="same", name="c1"), L.SeparableConv2D(2, 3, name="sep"),
         L.Flatten(name="fl"), L.Dense(3, name="fc")]
    )  # fmt: skip
    base = {"Model": {"Precision": "fixed<16,6>", "ReuseFactor": 5}}
    design = rtlgen.convert(model, base)
    text = generate(design, granularity="name", precision="fixed<16,6>", reuse=5)
    assert "  c1:  # Conv 36 output positions x 18 kernel terms; valid reuse factors: 1, 2, 3, 4, 5, 6, 8" in text
    assert "  # sep_depthwise: Conv" in text
    cfg = tmp_path / "cfg.yml"
    cfg.write_text(text)
    again = rtlgen.convert(model, str(cfg))
    reuse = {n.name: n.op.reuse_factor for n in design.graph.nodes if hasattr(n.op, "reuse_factor")}
    assert reuse == {n.name: n.op.reuse_factor for n in again.graph.nodes if hasattr(n.op, "reuse_factor")}
    assert reuse["c1"] == 5
    m = design.random_inputs(300)
    assert np.array_equal(design.predict_int(m), again.predict_int(m))


# -- merges of branches of different latency -----------------------------------------------------


def _branches_into_merges(reuse):
    """x -> conv1d (``reuse``) -> max(., x) -> 1x1 conv -> add(., max): the skip input of the add
    is one cycle early, the one of the max ``reuse + 1`` cycles."""
    from rtlgen.ir import Conv, Graph, Merge, Node, Tensor

    rng = np.random.default_rng(11)
    g = Graph("branches")
    t6, t14, t20, t21 = (FixedType(w, w, True) for w in (6, 14, 20, 21))
    g.add_tensor(Tensor("x", (1, 6, 2), t6))
    conv = Conv(rng.integers(-3, 4, (1, 3, 2, 2)), rng.integers(-9, 10, 2), padding=((0, 0), (1, 1)), in_shape=(1, 6, 2), reuse_factor=reuse)
    point = Conv(rng.integers(-3, 4, (1, 1, 2, 2)), None, in_shape=(1, 6, 2))
    for node, ins, t in [(conv, ["x"], t14), (Merge("max"), ["c", "x"], t14), (point, ["m"], t20), (Merge("add"), ["p", "m"], t21)]:
        out = "cmpa"[len(g.nodes)]
        g.add_tensor(Tensor(out, (1, 6, 2), t))
        g.add_node(Node(out, node, ins, [out]))
    g.inputs, g.outputs = ["x"], ["a"]
    g.verify()
    return g


@pytest.mark.parametrize("reuse", [1, 2])
def test_merge_inputs_balanced_in_rtl(reuse, tmp_path):
    """The earlier input of a merge waits in a FIFO whose own latency fits in the difference: a
    difference of one cycle (the 1x1 convolution) costs no cycle, with or without a reusing
    convolution upstream, and the RTL meets the declared latency and interval."""
    from rtlgen.config import Config
    from rtlgen.design import Design
    from rtlgen.layers import Network

    g = _branches_into_merges(reuse)
    net = Network(g)
    conv_latency = dict(net.layers)["c"].latency
    assert net.arrival["c"] - net.arrival["x"] == conv_latency and net.arrival["p"] - net.arrival["m"] == 1
    design = Design(g, Config(io_type="io_parallel"))
    assert design.latency == conv_latency + 1 and design.initiation_interval == reuse
    m = design.random_inputs(200)
    check_rtl(design, g.tensors["x"].type.to_float(m), work_dir=tmp_path, stall="random")


@pytest.mark.slow
def test_fuzz_network_merge_after_reusing_conv(tmp_path):
    """A fuzzed QONNX network (a reusing conv1d and a 1x1 conv, each into a Max merge with its
    input) whose RTL once measured one cycle more than its declared latency."""
    import ast
    from pathlib import Path

    onnx = pytest.importorskip("onnx")
    base = Path(__file__).parent / "data" / "fuzz_failures" / "net140"
    config = ast.literal_eval(base.with_suffix(".txt").read_text().splitlines()[0])
    design = rtlgen.convert(onnx.load(str(base.with_suffix(".onnx"))), config=config)
    assert (design.latency, design.initiation_interval) == (5, 2)
    check_rtl(design, work_dir=tmp_path, n_random=200, stall="random")
