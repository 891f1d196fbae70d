"""Live oracles: HGQ2's own predict and hls4ml's bit-accurate C++ emulation (skipped when absent).

Models are trained here on synthetic data, saved, and read back by rtlgen from the file.
"""

import os

import numpy as np
import pytest

import rtlgen
from conftest import check_rtl
from rtlgen.sim.runner import available_simulators

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _grid_inputs(rng, n, d, lo=-4, hi=4, frac=10):
    """Inputs exactly on a 2**-frac grid, so the configured input type holds them losslessly."""
    return (np.round(rng.uniform(lo, hi, (n, d)) * 2**frac) / 2**frac).astype(np.float32)


@pytest.fixture(scope="module")
def hgq_model_file(tmp_path_factory):
    pytest.importorskip("hgq", reason="HGQ2 is not installed (pip install -e '.[keras]')")
    import keras
    from hgq.config import LayerConfigScope, QuantizerConfigScope
    from hgq.layers import QBatchNormDense, QDense
    from hgq.utils import trace_minmax

    keras.utils.set_random_seed(7)
    rng = np.random.default_rng(7)
    x = _grid_inputs(rng, 2000, 16)
    y = np.tanh(x @ rng.normal(size=(16, 5)).astype(np.float32) / 4)
    with QuantizerConfigScope(place="all", default_q_type="kbi", overflow_mode="SAT_SYM"), QuantizerConfigScope(
        place="datalane", default_q_type="kif", overflow_mode="WRAP"
    ), LayerConfigScope(enable_ebops=True, beta0=1e-4):
        inp = keras.Input((16,), name="inp")
        h = QDense(32, activation="relu", name="qd1")(inp)
        h = QBatchNormDense(16, activation="relu", name="qbnd")(h)
        out = QDense(5, name="qd_out")(h)
        model = keras.Model(inp, out, name="hgq_tagger")
    model.compile(keras.optimizers.Adam(1e-2), "mse")
    model.fit(x, y, epochs=4, batch_size=64, verbose=0)
    trace_minmax(model, x, verbose=0)
    path = tmp_path_factory.mktemp("hgq") / "hgq_tagger.keras"
    model.save(path)
    xt = _grid_inputs(np.random.default_rng(8), 3000, 16)
    return path, xt, model.predict(xt, verbose=0, batch_size=1000)


def test_hgq2_heterogeneous_golden_equals_hgq(hgq_model_file):
    path, x, ref = hgq_model_file
    design = rtlgen.convert(path, {"Model": {"Precision": "fixed<24,12>"}})
    iq = [n for n in design.graph.nodes if n.kind == "Requant" and n.op.lanes]
    assert iq, "input quantizers become per-lane requantizations"
    assert len({t for n in iq for t in n.op.lanes}) > 1  # really heterogeneous
    dense = [n.op for n in design.graph.nodes if n.kind == "Dense"]
    assert all(d.accum is None for d in dense)
    assert np.array_equal(design.predict(x).astype(np.float32), ref)


def test_hgq2_rtl_equals_golden(hgq_model_file, tmp_path):
    if "verilator" not in available_simulators():
        pytest.skip("verilator is not available")
    path, x, ref = hgq_model_file
    design = rtlgen.convert(path, {"Model": {"Precision": "fixed<24,12>", "ReuseFactor": 4}})
    check_rtl(design, x[:1000], work_dir=tmp_path)
    assert np.array_equal(design.predict(x).astype(np.float32), ref)


def test_float_keras3_mlp_equals_hls4ml(tmp_path):
    pytest.importorskip("keras", reason="Keras is not installed (pip install -e '.[keras]')")
    hls4ml = pytest.importorskip("hls4ml", reason="hls4ml is not installed (pip install -e '.[hls4ml]')")
    import shutil

    if shutil.which("g++") is None:
        pytest.skip("hls4ml's emulation needs g++")
    import keras

    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [keras.Input((16,), name="x"), keras.layers.Dense(32, activation="relu", name="fc1"), keras.layers.Dense(5, name="fc2")],
        name="mlp",
    )
    rng = np.random.default_rng(3)
    x = rng.uniform(-8, 8, (2000, 16)).astype(np.float32)
    path = tmp_path / "mlp.keras"
    model.save(path)
    config = hls4ml.utils.config_from_keras_model(model, granularity="name", default_precision="fixed<16,6>")
    hls_model = hls4ml.converters.convert_from_keras_model(
        model, hls_config=config, output_dir=str(tmp_path / "hls"), backend="Vivado", io_type="io_parallel"
    )
    hls_model.compile()
    ref = hls_model.predict(x)
    design = rtlgen.convert(path, config)  # the very same configuration dict
    assert np.array_equal(design.predict(x).astype(np.float32), ref.astype(np.float32).reshape(len(x), -1))


def test_in_memory_keras_model():
    pytest.importorskip("keras", reason="Keras is not installed (pip install -e '.[keras]')")
    import keras

    keras.utils.set_random_seed(4)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(2)])
    from_memory = rtlgen.convert(model)
    m = from_memory.random_inputs(100)
    assert from_memory.predict_int(m).shape == (100, 2)
