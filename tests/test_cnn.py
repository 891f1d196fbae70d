"""Convolutional networks in io_parallel form: Keras and QKeras CNNs, golden vs framework and RTL."""

import os

import numpy as np
import pytest

import rtlgen
from rtlgen.sim.runner import available_simulators

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
AUTO = {"Precision": {"accum": "auto", "result": "auto"}}


def _sim(design, x, tmp_path, stall="random"):
    if "verilator" not in available_simulators():
        pytest.skip("verilator is not available")
    res = design.simulate(x, stall=stall, work_dir=tmp_path)
    assert res["passed"] and res["mismatches"] == 0, res.get("failures")
    assert res["latency_measured"] == design.latency and res["interval_measured"] == design.initiation_interval


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


def test_unpadded_non_power_of_two_average_refused():
    keras = pytest.importorskip("keras")
    model = keras.Sequential([keras.Input((6, 6, 1)), keras.layers.AveragePooling2D(3, name="avg3")])
    with pytest.raises(rtlgen.UnsupportedOpError, match=r"^node 'avg3' \(AveragePooling2D\): average pooling over 9 values"):
        rtlgen.convert(model)


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


def test_onnx_cnn_channels_first(tmp_path):
    import onnxruntime as ort

    rng = np.random.default_rng(5)
    model = _onnx_cnn(rng)
    design = rtlgen.convert(model, {"Model": {"Precision": "fixed<16,6>"}, "LayerType": {"Conv": AUTO, "Dense": AUTO}})
    assert any("channels-first input" in n for n in design.graph.notes)
    x = rng.uniform(-2, 2, (200, 2, 6, 6)).astype(np.float32)
    sess = ort.InferenceSession(model.SerializeToString())
    ref = np.concatenate([sess.run(None, {"x": x[i : i + 1]})[0] for i in range(len(x))])
    # Float reference: inputs and weights truncated (TRN) to a 2**-10 grid, sums exact after that;
    # the truncations all lean one way, about 0.03 over the 18 + 27 terms of each output here.
    assert np.max(np.abs(design.predict(x) - ref)) < 0.06
    _sim(design, x[:150], tmp_path)


def test_mnist_conv_float_model():
    import glob

    import onnx
    from onnx import numpy_helper

    from conftest import shared_model

    folder = shared_model("qonnx-tests", "onnx", "mnist-conv")
    auto = {"Conv": AUTO, "Dense": AUTO}
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
    bounds = [n for n in design.graph.notes if "worst-case error" in n]
    assert len(bounds) == 4  # tanh, sigmoid, elu tables and the softmax
    ref = model.predict(x, verbose=0)
    # Float reference: 12 fractional bits plus the reported table errors (tanh 0.031 at most).
    assert np.max(np.abs(design.predict(x) - ref)) < 0.02
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
