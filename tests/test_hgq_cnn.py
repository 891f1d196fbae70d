"""HGQ2 convolutional networks: per-lane input quantizers, per-weight kernel widths, quantized
pooling; golden == HGQ2's predict exactly, RTL == golden in both interfaces."""

import numpy as np
import pytest

import rtlgen
from conftest import check_rtl


def _train(model, x, seed):
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(seed)
    y = np.random.default_rng(seed).integers(0, model.output_shape[-1], len(x))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=2, batch_size=64, verbose=0)  # a few steps: widths move off their start
    return model


def _hgq_cnn(kind, tmp_path):
    keras = pytest.importorskip("keras")
    pytest.importorskip("hgq")
    from hgq.config import LayerConfigScope, QuantizerConfigScope
    from hgq.layers import (
        QAveragePooling1D,
        QBatchNormalization,
        QConv1D,
        QConv2D,
        QDense,
        QGlobalAveragePooling1D,
        QMaxPooling2D,
    )

    keras.utils.set_random_seed(3)
    with (
        QuantizerConfigScope(place="all", default_q_type="kbi", overflow_mode="SAT_SYM"),
        QuantizerConfigScope(place="datalane", default_q_type="kif", overflow_mode="WRAP"),
        LayerConfigScope(enable_ebops=True, beta0=1e-5),
    ):
        if kind == "2d":
            layers = [keras.Input((8, 8, 1)), QConv2D(3, 3, name="c1"), QBatchNormalization(name="bn1"), QMaxPooling2D(2, name="p1"),
                      keras.layers.ReLU(name="r1"), keras.layers.Flatten(name="f"), QDense(4, name="d")]  # fmt: skip
            shape = (8, 8, 1)
        else:
            layers = [keras.Input((16, 2)), QConv1D(4, 3, padding="same", activation="relu", name="c1"),
                      QAveragePooling1D(2, name="p1"), QConv1D(3, 3, padding="same", name="c2"), QGlobalAveragePooling1D(name="gap"),
                      QDense(3, name="d")]  # fmt: skip
            shape = (16, 2)
        model = keras.Sequential(layers, name=f"hgq_cnn_{kind}")
    x = np.random.default_rng(0).uniform(-2, 2, (512, *shape)).astype(np.float32)
    _train(model, x, seed=1)
    path = tmp_path / f"hgq_cnn_{kind}.keras"
    model.save(path)
    return model, path, shape


@pytest.mark.parametrize("kind", ["2d", "1d"])
def test_hgq_cnn_golden_equals_hgq(tmp_path, kind):
    model, path, shape = _hgq_cnn(kind, tmp_path)
    design = rtlgen.convert(path)
    assert {n.kind for n in design.graph.nodes} >= {"Conv", "Pool", "Requant", "Dense"}
    x = np.random.default_rng(5).uniform(-3, 3, (2000, *shape)).astype(np.float32)
    ref = model.predict(x, batch_size=2000, verbose=0)
    assert np.array_equal(design.predict(x).astype(np.float32), ref)
    # The in-memory model reads the same.
    assert np.array_equal(rtlgen.convert(model).predict(x[:200]).astype(np.float32), ref[:200])


@pytest.mark.parametrize("io_type", ["io_parallel", "io_stream"])
def test_hgq_cnn_rtl_equals_golden(tmp_path, io_type):
    model, path, shape = _hgq_cnn("2d", tmp_path)
    design = rtlgen.convert(path, {"IOType": io_type})
    x = np.random.default_rng(6).uniform(-3, 3, (40, *shape)).astype(np.float32)
    check_rtl(design, x, work_dir=tmp_path / "sim")
