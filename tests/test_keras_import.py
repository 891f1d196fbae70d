"""Keras, QKeras and HGQ2 files read without TensorFlow; golden model against stored or live oracles."""

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

import rtlgen
from conftest import check_rtl, shared_model
from rtlgen.config import generate
from rtlgen.errors import ConfigError, UnsupportedOpError
from rtlgen.importers._keras import quantizer_type

DATA = Path(__file__).parent / "data"


def _keras3_file(path, layers, weights):
    """A Keras 3 ``.keras`` archive written by hand: config.json + model.weights.h5."""
    cfg = {"class_name": "Sequential", "config": {"name": "seq", "layers": layers}}
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", json.dumps(cfg))
        z.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
        import io

        buf = io.BytesIO()
        with h5py.File(buf, "w") as f:
            # Keras 3 names groups after the layer class (dense, dense_1, ...), not the layer.
            g = f.create_group("layers")
            counts = {}
            for layer in layers:
                cls = layer["class_name"].lower()
                n = counts.get(cls, 0)
                counts[cls] = n + 1
                name = layer["config"]["name"]
                if name in weights:
                    v = g.create_group(cls if n == 0 else f"{cls}_{n}").create_group("vars")
                    for i, a in enumerate(weights[name]):
                        v.create_dataset(str(i), data=a)
        z.writestr("model.weights.h5", buf.getvalue())
    return path


def _float_mlp_layers():
    return [
        {"class_name": "InputLayer", "config": {"name": "inp", "batch_shape": [None, 6]}},
        {"class_name": "Dense", "config": {"name": "d1", "units": 5, "activation": "relu", "use_bias": True}},
        {"class_name": "Dense", "config": {"name": "d2", "units": 3, "activation": "linear", "use_bias": True}},
    ]


def _hls4ml_reference(x, w1, b1, w2, b2, t, accum):
    """hls4ml's float-layer arithmetic written out: weights printed with F decimals and read back,
    every cast TRN/WRAP, products cast to accum_t, ReLU cast to the default type."""
    from rtlgen.fixed import cast
    from rtlgen.importers._precision import hls4ml_text

    def dense(xm, xf, w, b):
        wm, bm = t.quantize(hls4ml_text(w, t)), t.quantize(hls4ml_text(b, t))
        if accum is None:
            return xm @ wm + (bm << xf), xf + t.frac
        prods = cast(xm[:, :, None] * wm[None], xf + t.frac, accum)
        return cast(prods.sum(axis=1) + cast(bm, t.frac, accum), accum.frac, accum), accum.frac

    xm = t.quantize(x)
    h, hf = dense(xm, t.frac, w1, b1)
    h = cast(np.maximum(h, 0), hf, t)
    y, yf = dense(h, t.frac, w2, b2)
    return y * 2.0**-yf


@pytest.mark.parametrize("auto", [True, False])
def test_keras3_file_float_mlp_hls4ml_semantics(tmp_path, rng, auto):
    w1, b1 = rng.normal(0, 0.5, (6, 5)).astype(np.float32), rng.normal(0, 0.2, 5).astype(np.float32)
    w2, b2 = rng.normal(0, 0.5, (5, 3)).astype(np.float32), rng.normal(0, 0.2, 3).astype(np.float32)
    path = _keras3_file(tmp_path / "m.keras", _float_mlp_layers(), {"d1": [w1, b1], "d2": [w2, b2]})
    t = rtlgen.FixedType.parse("fixed<10,4>")
    cfg = {"Model": {"Precision": str(t)}}
    if auto:  # what hls4ml's config_from_keras_model writes: derive accumulator and result types
        auto_p = {"Precision": {"weight": "auto", "bias": "auto", "accum": "auto", "result": "auto"}}
        cfg["LayerName"] = {"d1": auto_p, "d2": auto_p}
    design = rtlgen.convert(path, cfg)
    x = rng.uniform(-10, 10, (400, 6))
    accum = None if auto else t
    assert np.array_equal(design.predict(x), _hls4ml_reference(x, w1, b1, w2, b2, t, accum))


def test_lambda_layer_refused_without_running_it(tmp_path):
    layers = _float_mlp_layers()
    layers.insert(2, {"class_name": "Lambda", "config": {"name": "evil", "function": "__import__('os').system('touch pwned')"}})
    path = _keras3_file(tmp_path / "m.keras", layers, {"d1": [np.ones((6, 5)), np.zeros(5)], "d2": [np.ones((5, 3)), np.zeros(3)]})
    with pytest.raises(UnsupportedOpError, match=r"^node 'evil' \(Lambda\): Lambda layers hold arbitrary code"):
        rtlgen.convert(path)
    assert not (Path.cwd() / "pwned").exists()


def test_custom_and_conv_layers_refused(tmp_path):
    for cls, msg in (("MyFancyLayer", "layer type 'MyFancyLayer' is not supported"), ("MultiHeadAttention", "layer type 'MultiHeadAttention' is not supported")):
        layers = _float_mlp_layers()
        layers.insert(2, {"class_name": cls, "config": {"name": "odd"}})
        path = _keras3_file(tmp_path / f"{cls}.keras", layers, {"d1": [np.ones((6, 5)), np.zeros(5)]})
        with pytest.raises(UnsupportedOpError, match=rf"^node 'odd' \({cls}\): {msg}"):
            rtlgen.convert(path)


@pytest.mark.parametrize(
    "spec, text",
    [
        ({"class_name": "quantized_bits", "config": {"bits": 6, "integer": 0, "alpha": 1}}, "fixed<6,1,RND_CONV,SAT>"),
        ("quantized_bits(8, 3, 1, alpha=1)", "fixed<8,4,RND_CONV,SAT_SYM>"),
        ("quantized_relu(6)", "ufixed<6,0,RND_CONV,SAT>"),
        ("quantized_relu(6, 6)", "ufixed<6,6,RND_CONV,SAT>"),
        ("quantized_bits(4, 0, keep_negative=False, alpha=1)", "ufixed<4,0,RND_CONV,SAT>"),
        ("quantized_bits(4, 0, alpha=0.5)", "fixed<4,0,RND_CONV,SAT>"),
    ],
)
def test_qkeras_quantizer_types(spec, text):
    t, _ = quantizer_type(spec, "layer")
    assert str(t) == text


def test_qkeras_quantizer_refusals():
    with pytest.raises(UnsupportedOpError, match=r"alpha='auto'"):
        quantizer_type("quantized_bits(4, 0, alpha='auto')", "fc")
    with pytest.raises(UnsupportedOpError, match=r"stochastic"):
        quantizer_type({"class_name": "quantized_bits", "config": {"bits": 4, "use_stochastic_rounding": True}}, "fc")


def _no_tensorflow(code):
    """Run ``code`` in a fresh interpreter where importing TensorFlow/Keras/QKeras fails."""
    guard = (
        "import sys\n"
        "class _Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('tensorflow', 'keras', 'qkeras', 'hgq', 'tf_keras'):\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, _Block())\n"
    )
    return subprocess.run([sys.executable, "-c", guard + code], capture_output=True, text=True, timeout=300)


def test_published_qkeras_models_import_without_tensorflow():
    jet = shared_model("hls4ml-history", "keras", "QKERAS_3layer.h5")
    ad08 = shared_model("mlperf-tiny", "AD08", "model.h5")
    proc = _no_tensorflow(
        "import rtlgen\n"
        f"d = rtlgen.convert({str(jet)!r}, skip_softmax=True)\n"
        f"a = rtlgen.convert({str(ad08)!r})\n"
        "print(len(d.graph.nodes), len(a.graph.nodes))\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["10", "16"]


def _qkeras_refs(name):
    path = DATA / "qkeras" / f"{name}.npz"
    if not path.exists():
        pytest.skip(f"stored QKeras reference {path.name} not generated (scripts/make_qkeras_references.py)")
    return np.load(path, allow_pickle=False)


def test_qkeras_jet_tagger_equals_qkeras_predict():
    path = shared_model("hls4ml-history", "keras", "QKERAS_3layer.h5")
    refs = _qkeras_refs("QKERAS_3layer")
    meta = json.loads(str(refs["meta"]))
    design = rtlgen.convert(path, {"Model": {"Precision": meta.get("input_precision", "fixed<16,6>")}}, skip_softmax=True)
    x = refs["x"]
    assert np.array_equal(design.quantize_input(x), design.input_tensor.type.quantize(x))  # inputs on the grid
    assert np.array_equal(design.predict(x).astype(np.float32), refs["logits"])


def test_ad08_equals_qkeras_predict():
    path = shared_model("mlperf-tiny", "AD08", "model.h5")
    refs = _qkeras_refs("AD08")
    meta = json.loads(str(refs["meta"]))
    design = rtlgen.convert(path, {"Model": {"Precision": meta.get("input_precision", "fixed<8,8>")}})
    assert np.array_equal(design.predict(refs["x"]).astype(np.float32), refs["y"])


def test_mnist_keras2_json_config_round_trip(tmp_path):
    path = shared_model("hls4ml-history", "keras", "KERAS_mnist_12x12_mlp.json")
    default = rtlgen.convert(path, skip_softmax=True)
    text = generate(default, granularity="name", reuse=4)
    cfg = tmp_path / "cfg.yml"
    cfg.write_text(text)
    configured = rtlgen.convert(path, str(cfg), skip_softmax=True)
    assert [n.op.reuse_factor for n in configured.graph.nodes if n.kind == "Dense"] == [4, 4, 4]
    m = default.random_inputs(500)
    assert np.array_equal(default.predict_int(m), configured.predict_int(m))
    # Without the reuse change the configuration reproduces the default build exactly.
    plain = tmp_path / "plain.yml"
    plain.write_text(generate(default, granularity="name"))
    assert rtlgen.convert(path, str(plain), skip_softmax=True).verilog == default.verilog


def test_hls4ml_project_yaml_is_accepted():
    path = shared_model("mlperf-tiny", "AD08", "hls4ml_config.yml")
    cfg = rtlgen.load_config(str(path))
    assert str(cfg.precision("q_dense", "accum", "Dense")) == "fixed<16,8>"
    assert cfg.reuse_factor("q_dense_batchnorm_2") == 8


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"^configuration key 'LayerName.fc1.Strategy' must be one of Latency, Resource \(layers with weights\) or Stable, Latency, Argmax \(softmax\), not 'Fast'$"):
        rtlgen.load_config({"LayerName": {"fc1": {"Strategy": "Fast"}}})
    with pytest.raises(ConfigError, match=r"names no layer of this model"):
        from rtlgen.examples import qonnx_mlp

        rtlgen.convert(qonnx_mlp((4, 3, 2)), {"LayerName": {"nope": {"ReuseFactor": 1}}})


def test_qkeras_trace_every_layer():
    """Every layer output QKeras recorded equals the golden model's tensor of the same name."""
    path = shared_model("hls4ml-history", "keras", "QKERAS_3layer.h5")
    refs = _qkeras_refs("QKERAS_3layer")
    design = rtlgen.convert(path, {"Model": {"Precision": "fixed<16,6>"}}, skip_softmax=True)
    layers = [k.split("/", 1)[1] for k in refs.files if k.startswith("layer/")]
    n = len(refs[f"layer/{layers[0]}"])
    trace = design.trace(refs["x"][:n])
    compared = [name for name in layers if name in trace]
    assert {"fc1", "relu1", "fc2", "relu2", "fc3", "relu3", "output"} <= set(compared)
    for name in compared:
        assert np.array_equal(trace[name].astype(np.float32), refs[f"layer/{name}"].astype(np.float32)), name


def _simulate_refs(design, refs, n, tmp_path, stall="none"):
    check_rtl(design, refs["x"][:n], work_dir=tmp_path, stall=stall)


def test_qkeras_jet_tagger_rtl(tmp_path):
    path = shared_model("hls4ml-history", "keras", "QKERAS_3layer.h5")
    refs = _qkeras_refs("QKERAS_3layer")
    design = rtlgen.convert(path, {"Model": {"Precision": "fixed<16,6>", "ReuseFactor": 4}}, skip_softmax=True)
    _simulate_refs(design, refs, 10000, tmp_path, stall="random")


@pytest.mark.parametrize("n", [pytest.param(1000, id="1k"), pytest.param(10000, id="10k", marks=pytest.mark.slow)])
def test_ad08_rtl_with_hls4ml_config(tmp_path, n):
    path = shared_model("mlperf-tiny", "AD08", "model.h5")
    refs = _qkeras_refs("AD08")
    design = rtlgen.convert(path, str(shared_model("mlperf-tiny", "AD08", "hls4ml_config.yml")))
    assert np.array_equal(design.predict(refs["x"]).astype(np.float32), refs["y"])  # accum_t is for float layers only
    _simulate_refs(design, refs, n, tmp_path)


def test_mnist_keras2_json_rtl_from_generated_config(tmp_path):
    from rtlgen.sim.runner import available_simulators

    if "verilator" not in available_simulators():
        pytest.skip("verilator is not available")
    path = shared_model("hls4ml-history", "keras", "KERAS_mnist_12x12_mlp.json")
    cfg = tmp_path / "cfg.yml"
    cfg.write_text(generate(rtlgen.convert(path, skip_softmax=True), granularity="name", reuse=16))
    design = rtlgen.convert(path, str(cfg), skip_softmax=True)
    res = check_rtl(design, n_random=500, work_dir=tmp_path / "sim")
    assert res["interval_measured"] == 16


def test_qkeras_power_of_two_weight_quantizers_equal_qkeras():
    from rtlgen.importers._keras import qkeras_weights

    path = DATA / "qkeras" / "quantizers.npz"
    if not path.exists():
        pytest.skip("stored QKeras quantizer reference not generated")
    refs = np.load(path)
    for i, spec in enumerate(refs["specs"]):
        m, frac = qkeras_weights(str(spec), refs["x"], "layer")
        assert np.array_equal((m * 2.0**-frac).astype(np.float32), refs[f"q{i}"]), spec


def test_qkeras_kernel_alpha_none_refused():
    from rtlgen.importers._keras import qkeras_weights

    with pytest.raises(UnsupportedOpError, match=r"alpha=None on a kernel means a data-dependent scale"):
        qkeras_weights("binary()", np.ones(3), "fc1")


def test_auto_precision_capped_by_maximum(tmp_path, rng):
    w1, b1 = rng.normal(0, 0.5, (6, 5)), rng.normal(0, 0.2, 5)
    w2, b2 = rng.normal(0, 0.5, (5, 3)), rng.normal(0, 0.2, 3)
    path = _keras3_file(tmp_path / "m.keras", _float_mlp_layers(), {"d1": [w1, b1], "d2": [w2, b2]})
    auto = {"Precision": {"accum": "auto", "result": "auto"}}
    cfg = {"Model": {"Precision": {"default": "fixed<16,6>", "maximum": "fixed<20,10>"}}, "LayerName": {"d1": auto, "d2": auto}}
    design = rtlgen.convert(path, cfg)
    results = [design.graph.tensors[n.outputs[0]].type for n in design.graph.nodes if n.name in ("d1_result", "d2_result")]
    assert results and all(t.width == 20 for t in results)
    exact = rtlgen.convert(path, {"Model": {"Precision": "fixed<16,6>"}, "LayerName": {"d1": auto, "d2": auto}})
    x = rng.uniform(-4, 4, (300, 6))
    # Capping drops only fraction bits: the outputs differ from the exact ones by less than 2**-9.
    assert np.max(np.abs(design.predict(x) - exact.predict(x))) < 2.0**-9


# -- QKeras convolutions and binary networks (models built by scripts/make_qkeras_layer_references.py)


def _qkeras_model(name):
    path = DATA / "qkeras" / f"{name}.h5"
    if not path.exists():
        pytest.skip(f"stored QKeras model {path.name} not generated (scripts/make_qkeras_layer_references.py)")
    return path, _qkeras_refs(name)


def _check_trace(design, refs):
    layers = [k.split("/", 1)[1] for k in refs.files if k.startswith("layer/")]
    n = len(refs[f"layer/{layers[0]}"])
    trace = design.trace(refs["x"][:n].astype(np.float32))
    compared = [name for name in layers if name in trace]
    for name in compared:
        assert np.array_equal(trace[name].reshape(n, -1).astype(np.float32), refs[f"layer/{name}"].reshape(n, -1)), name
    return compared


def test_qkeras_cnn_equals_qkeras_predict():
    """QConv2D, QDepthwiseConv2D, QSeparableConv2D, QConv2DBatchnorm, QConv1D: golden == QKeras."""
    path, refs = _qkeras_model("qkeras_cnn")
    design = rtlgen.convert(path)
    x = refs["x"].astype(np.float32)
    assert np.array_equal(design.quantize_input(x), design.input_tensor.type.quantize(x.reshape(len(x), -1)))  # on the grid
    assert np.array_equal(design.predict(x).astype(np.float32), refs["y"])
    compared = _check_trace(design, refs)
    assert {"qc1", "a1", "qdw", "a2", "qsep", "a3", "qcbn", "a4", "qc1d", "a5", "mp", "fc"} <= set(compared)
    # The weights the layers multiply with are QKeras's, batch norm folded into qcbn as QKeras folds it.
    for layer, key in (("qc1", "kernel"), ("qdw", "depthwise"), ("qcbn", "kernel"), ("qc1d", "kernel")):
        node = design.graph.node(layer)
        src, dst = design.graph.tensors[node.inputs[0]], design.graph.tensors[node.outputs[0]]
        w = node.op.weight * 2.0 ** -(dst.type.frac - src.type.frac)
        assert np.array_equal(w.reshape(-1), refs[f"qweights/{layer}/{key}"].reshape(-1)), layer


def test_qkeras_binary_network_equals_qkeras_predict():
    """Binary input, binary and ternary kernels and activations: golden == QKeras, thresholds exact."""
    path, refs = _qkeras_model("qkeras_bnn")
    design = rtlgen.convert(path)
    kinds = {n.name: n.kind for n in design.graph.nodes}
    assert kinds["bin_in"] == kinds["act1"] == kinds["act2"] == "Threshold"
    assert np.array_equal(design.predict(refs["x"]).astype(np.float32), refs["y"])
    assert {"bin_in", "fc1", "act1", "fc2", "act2", "fc3"} <= set(_check_trace(design, refs))
    assert set(np.unique(refs["layer/act2"]).tolist()) == {-1.0, 0.0, 1.0}  # every ternary level occurs


def test_qkeras_sign_activations_refused_without_alpha(tmp_path):
    layers = [
        {"class_name": "InputLayer", "config": {"name": "inp", "batch_input_shape": [None, 4]}},
        {"class_name": "QActivation", "config": {"name": "b", "activation": "binary()"}},
    ]
    with pytest.raises(UnsupportedOpError, match=r"^node 'b' \(QActivation\): binary without alpha first applies tanh"):
        rtlgen.convert(_keras3_file(tmp_path / "m.keras", layers, {}))


@pytest.mark.parametrize(
    "name,cfg",
    # The CNN's Verilog is about 3 MB: minutes of Verilator build, so it runs with the long tests.
    [pytest.param("qkeras_cnn", {"LayerType": {"Conv": {"ReuseFactor": 3}}}, marks=pytest.mark.slow), ("qkeras_bnn", {})],
)
def test_qkeras_cnn_and_binary_network_rtl(tmp_path, name, cfg):
    """RTL == golden (== QKeras, above) on the stored inputs, under random stalls."""
    path, refs = _qkeras_model(name)
    design = rtlgen.convert(path, cfg)
    assert np.array_equal(design.predict(refs["x"]).astype(np.float32), refs["y"])
    _simulate_refs(design, {"x": refs["x"].astype(np.float32)}, 300, tmp_path, stall="random")
