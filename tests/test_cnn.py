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
