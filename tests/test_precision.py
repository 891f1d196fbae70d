"""One precision path for float models: the same network as a Keras file and as its ONNX export,
built with the same configuration, gives the same golden integers (hls4ml's arithmetic,
:mod:`rtlgen.importers._precision`)."""

import numpy as np
import pytest

import rtlgen
from conftest import shared_model

CONFIGS = [
    {"Model": {"Precision": "fixed<16,6>"}},
    {"Model": {"Precision": {"default": "fixed<12,4>", "accum": "auto", "result": "auto", "maximum": "fixed<18,8>"}}},
    {"Model": {"Precision": {"default": "fixed<10,3,RND,SAT>", "accum": "fixed<20,8>"}}},
]


def _keras_pair(tmp_path, kind):
    """A float Keras network saved as .keras and exported by Keras's own ONNX export."""
    pytest.importorskip("tf2onnx", reason="Keras's ONNX export needs tf2onnx (pip install -e '.[keras]')")
    keras = pytest.importorskip("keras")
    if kind == "dense":
        layers = [keras.Input((12,)), keras.layers.Dense(16, activation="relu", name="fc1"),
                  keras.layers.Dense(8, activation="relu", name="fc2"), keras.layers.Dense(4, name="out")]  # fmt: skip
    else:
        layers = [keras.Input((8, 8, 2)), keras.layers.Conv2D(3, 3, padding="same", activation="relu", name="c1"),
                  keras.layers.MaxPooling2D(2, name="p1"), keras.layers.Conv2D(4, 3, activation="relu", name="c2"),
                  keras.layers.Flatten(name="fl"), keras.layers.Dense(5, name="out")]  # fmt: skip
    model = keras.Sequential(layers, name=kind)
    rng = np.random.default_rng(7)
    for w in model.weights:
        w.assign(rng.normal(0, 0.5, w.shape).astype("float32"))
    model(np.zeros((1, *model.input_shape[1:]), dtype="float32"))
    model.save(tmp_path / f"{kind}.keras")
    model.export(str(tmp_path / f"{kind}.onnx"), format="onnx", verbose=False)
    return tmp_path / f"{kind}.keras", tmp_path / f"{kind}.onnx", model


def _same_golden(a_path, b_path, cfg, shape, rng, **kw):
    da, db = rtlgen.convert(a_path, cfg, **kw), rtlgen.convert(b_path, cfg, **kw)
    x = rng.uniform(-2, 2, (500, *shape)).astype(np.float32)
    ma, mb = da.quantize_input(x), db.quantize_input(x)
    assert np.array_equal(ma, mb)
    ya, yb = da.predict_int(ma), db.predict_int(mb)
    assert da.graph.tensors[da.graph.outputs[0]].type == db.graph.tensors[db.graph.outputs[0]].type
    assert np.array_equal(ya, yb)
    return da, db, x


@pytest.mark.parametrize("cfg", CONFIGS, ids=["default", "auto-capped", "rnd-sat-accum"])
@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_keras_and_its_onnx_export_give_the_same_integers(tmp_path, rng, kind, cfg):
    keras_path, onnx_path, model = _keras_pair(tmp_path, kind)
    da, db, x = _same_golden(keras_path, onnx_path, cfg, model.input_shape[1:], rng)
    # Both are the float network within the bound the build reports.
    ref = model.predict(x, verbose=0)
    bound = da.graph.error_bound
    assert bound is not None and bound == db.graph.error_bound
    inside = np.all(np.abs(x) <= 2**da.input_tensor.type.integer / 2, axis=tuple(range(1, x.ndim)))
    assert np.abs(da.predict(x) - ref)[inside].max() <= bound


@pytest.mark.parametrize(
    "keras_file, onnx_file",
    [("KERAS_conv2d_model.json", "conv2d_small_keras.onnx"), ("KERAS_conv1d_small.json", "conv1d_small_keras.onnx")],
)
def test_published_tf2onnx_conv_pairs_give_the_same_integers(rng, keras_file, onnx_file):
    k = shared_model("hls4ml-example-models", "keras", keras_file)
    o = shared_model("hls4ml-example-models", "onnx", onnx_file)
    d = rtlgen.convert(k, CONFIGS[0], skip_softmax=True)
    shape = d.input_tensor.shape
    shape = shape[1:] if len(shape) == 3 and shape[0] == 1 and "conv1d" in keras_file else shape
    _same_golden(k, o, CONFIGS[0], shape, rng, skip_softmax=True)


def test_onnx_batch_norm_after_gemm_is_folded_before_quantizing(tmp_path, rng):
    """Gemm -> BatchNormalization -> Relu in a float ONNX model: folded into the weights first,
    then quantized, exactly as the same network's Keras Dense + BatchNormalization."""
    from onnx import TensorProto, helper, numpy_helper

    w = rng.normal(0, 0.5, (6, 4)).astype(np.float32)
    b = rng.normal(0, 0.1, 4).astype(np.float32)
    gamma, beta = rng.uniform(0.5, 1.5, 4).astype(np.float32), rng.normal(0, 0.1, 4).astype(np.float32)
    mean, var = rng.normal(0, 0.1, 4).astype(np.float32), rng.uniform(0.5, 2, 4).astype(np.float32)
    inits = [numpy_helper.from_array(a, n) for a, n in ((w, "W"), (b, "B"), (gamma, "g"), (beta, "be"), (mean, "m"), (var, "v"))]
    nodes = [
        helper.make_node("Gemm", ["x", "W", "B"], ["h"], name="fc"),
        helper.make_node("BatchNormalization", ["h", "g", "be", "m", "v"], ["n"], name="bn", epsilon=1e-3),
        helper.make_node("Relu", ["n"], ["y"], name="act"),
    ]
    graph = helper.make_graph(
        nodes, "bn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])], inits,
    )  # fmt: skip
    path = tmp_path / "bn.onnx"
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString())
    d = rtlgen.convert(path, CONFIGS[0])
    assert [n.kind for n in d.graph.nodes] == ["Dense", "Relu", "Requant"]
    inv = gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + 1e-3)
    from rtlgen.fixed import FixedType
    from rtlgen.importers._precision import hls4ml_text

    t = FixedType.parse("fixed<16,6>")
    assert np.array_equal(d.graph.nodes[0].op.weight, t.quantize(hls4ml_text(w * inv, t)))
    import onnxruntime as ort

    x = rng.uniform(-1, 1, (300, 6)).astype(np.float32)
    ref = ort.InferenceSession(str(path)).run(None, {"x": x})[0]
    assert np.abs(d.predict(x) - ref).max() <= d.graph.error_bound
