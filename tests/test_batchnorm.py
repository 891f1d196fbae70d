"""Batch normalization as people write it: after convolutions (folded into the float weights before
quantizing, as hls4ml folds it) and on its own (input, after pooling: a per-channel scale and shift
with its own ``scale``/``bias``/``result`` types), from Keras and from ONNX as PyTorch exports it."""

import numpy as np
import pytest

import rtlgen
from conftest import check_rtl

CFG = {"Model": {"Precision": "fixed<18,8>"}}


def _randomize(model, seed=0):
    rng = np.random.default_rng(seed)
    for w in model.weights:
        w.assign(rng.uniform(0.5, 2, w.shape) if "variance" in w.path else rng.normal(0, 0.5, w.shape))
    return model


def _keras_models():
    keras = pytest.importorskip("keras")
    L = keras.layers
    return {
        "conv-bn-relu": keras.Sequential(
            [keras.Input((6, 6, 2)), L.Conv2D(3, 3, padding="same", name="c1"), L.BatchNormalization(name="bn1"),
             L.ReLU(name="r1"), L.MaxPooling2D(2, name="p"), L.Flatten(name="f"), L.Dense(3, name="out")]),
        "bn-first": keras.Sequential(
            [keras.Input((6, 6, 1)), L.BatchNormalization(name="bn0"), L.Conv2D(2, 3, activation="relu", name="c1"),
             L.AveragePooling2D(2, name="ap"), L.BatchNormalization(name="bn2"), L.Flatten(name="f"), L.Dense(3, name="out")]),
        "separable-bn-dense-bn": keras.Sequential(
            [keras.Input((6, 6, 2)), L.SeparableConv2D(3, 3, name="s1"), L.BatchNormalization(name="bn1"),
             L.Flatten(name="f"), L.Dense(4, name="d"), L.BatchNormalization(name="bn2")]),
    }  # fmt: skip


@pytest.mark.parametrize("name", ["conv-bn-relu", "bn-first", "separable-bn-dense-bn"])
def test_keras_batchnorm_blocks_build_within_their_bound(name):
    model = _randomize(_keras_models()[name])
    design = rtlgen.convert(model, CFG)
    standalone = {n.name for n in design.graph.nodes if n.attrs.get("source") == "BatchNormalization"}
    # After a float convolution or dense layer a batch norm is folded; elsewhere it stands alone.
    assert standalone == ({"bn0", "bn2"} if name == "bn-first" else set())
    x = np.random.default_rng(1).uniform(-2, 2, (400, *model.input_shape[1:])).astype(np.float32)
    err = np.abs(design.predict(x) - model.predict(x, verbose=0)).max()
    assert design.graph.error_bound is not None and err <= design.graph.error_bound


def test_keras_standalone_batchnorm_types_and_folding():
    """bn0 on the input and bn2 after pooling stay per-channel scale-and-shift layers with their
    own configured types; the scale is quantized to ``scale``, the shift to ``bias``."""
    model = _randomize(_keras_models()["bn-first"])
    cfg = {"Model": {"Precision": "fixed<18,8>"}, "LayerName": {"bn0": {"Precision": {"scale": "fixed<8,2>", "bias": "fixed<8,4>", "result": "fixed<12,4>"}}}}
    design = rtlgen.convert(model, cfg)
    bn0 = design.graph.node("bn0")
    assert bn0.kind == "Conv" and bn0.op.depthwise and bn0.op.weight.shape == (1, 1, 1, 1)
    from rtlgen.fixed import FixedType

    gamma, beta, mean, var = (np.asarray(w) for w in model.get_layer("bn0").weights)
    inv = gamma / np.sqrt(var + 1e-3)
    from rtlgen.importers._precision import hls4ml_text

    t = FixedType.parse("fixed<8,2>")
    assert bn0.op.weight.ravel().tolist() == t.quantize(hls4ml_text(inv, t)).tolist()
    assert design.graph.tensors[design.graph.node("bn0_result").outputs[0]].type == FixedType.parse("fixed<12,4>")
    assert design.graph.node("bn2").kind == "Conv"


def _pytorch_style_onnx(path, seed=0):
    """Conv (with bias) -> BatchNormalization -> Relu -> AveragePool -> BatchNormalization ->
    Flatten -> Gemm, channels first, batch norms kept as nodes: what torch.onnx.export writes for
    a model in training-mode export or with folding disabled."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    f = np.float32
    arrays = {
        "W": rng.normal(0, 0.5, (3, 2, 3, 3)).astype(f), "B": rng.normal(0, 0.2, 3).astype(f),
        "g1": rng.uniform(0.5, 1.5, 3).astype(f), "b1": rng.normal(0, 0.2, 3).astype(f),
        "m1": rng.normal(0, 0.2, 3).astype(f), "v1": rng.uniform(0.5, 2, 3).astype(f),
        "g2": rng.uniform(0.5, 1.5, 3).astype(f), "b2": rng.normal(0, 0.2, 3).astype(f),
        "m2": rng.normal(0, 0.2, 3).astype(f), "v2": rng.uniform(0.5, 2, 3).astype(f),
        "Wf": rng.normal(0, 0.5, (4, 12)).astype(f), "Bf": rng.normal(0, 0.2, 4).astype(f),
    }  # fmt: skip
    nodes = [
        helper.make_node("Conv", ["x", "W", "B"], ["c"], name="/conv1/Conv", pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        helper.make_node("BatchNormalization", ["c", "g1", "b1", "m1", "v1"], ["n"], name="/bn1/BatchNormalization", epsilon=1e-5),
        helper.make_node("Relu", ["n"], ["r"], name="/relu/Relu"),
        helper.make_node("AveragePool", ["r"], ["a"], name="/pool/AveragePool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("BatchNormalization", ["a", "g2", "b2", "m2", "v2"], ["n2"], name="/bn2/BatchNormalization", epsilon=1e-5),
        helper.make_node("Flatten", ["n2"], ["fl"], name="/Flatten", axis=1),
        helper.make_node("Gemm", ["fl", "Wf", "Bf"], ["y"], name="/fc/Gemm", transB=1),
    ]
    graph = helper.make_graph(
        nodes, "torch_cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        [numpy_helper.from_array(a, n) for n, a in arrays.items()],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    path.write_bytes(model.SerializeToString())
    return path


def test_pytorch_style_conv_bn_relu_avgpool_against_onnxruntime(tmp_path):
    import onnxruntime as ort

    path = _pytorch_style_onnx(tmp_path / "torch_cnn.onnx")
    design = rtlgen.convert(path, CFG)
    names = [n.name for n in design.graph.nodes]
    assert "/bn1/BatchNormalization" not in names and "/bn2/BatchNormalization" in names  # folded; on its own
    x = np.random.default_rng(2).uniform(-2, 2, (400, 2, 4, 4)).astype(np.float32)
    ref = ort.InferenceSession(str(path)).run(None, {"x": x})[0]
    err = np.abs(design.predict(x) - ref).max()
    assert err <= design.graph.error_bound


@pytest.mark.parametrize("io_type", [pytest.param("io_parallel", marks=pytest.mark.slow), "io_stream"])
def test_batchnorm_blocks_rtl_equals_golden(tmp_path, io_type):
    for name in ("bn-first", "conv-bn-relu"):
        model = _randomize(_keras_models()[name])
        design = rtlgen.convert(model, {**CFG, "IOType": io_type})
        x = np.random.default_rng(3).uniform(-2, 2, (40, *model.input_shape[1:])).astype(np.float32)
        check_rtl(design, x, work_dir=tmp_path / name)
    onnx_design = rtlgen.convert(_pytorch_style_onnx(tmp_path / "t.onnx"), {**CFG, "IOType": io_type})
    xo = np.random.default_rng(4).uniform(-2, 2, (40, 2, 4, 4)).astype(np.float32)
    check_rtl(onnx_design, xo, work_dir=tmp_path / "onnx")
