"""Legacy BinaryNet-style Keras layers (BinaryDense, TernaryDense, binary_tanh, ternary_tanh).

The layers' own Keras code is not installable, so the reference is their inference written out in
numpy float32, as Keras computes it: ``x @ binarize(W)``, batch normalization as
``x * inv + (beta - mean * inv)``, and the activations. The hidden +-1 / -1,0,+1 activations must
equal the golden model's exactly; the last BatchNormalization is a float layer with the
configured fixed<16,6> types, so the outputs agree within the rounding of those types.
"""

import json

import h5py
import numpy as np
import pytest

import rtlgen
from conftest import check_rtl, shared_model
from rtlgen.errors import UnsupportedOpError

F32 = np.float32


def _keras_reference(json_path, x):
    """Every layer's float32 output of a BinaryNet-style Keras JSON model on ``x``."""
    cfg = json.loads(open(json_path).read())["config"]
    layers = cfg["layers"] if isinstance(cfg, dict) else cfg
    f = h5py.File(str(json_path)[: -len(".json")] + "_weights.h5", "r")
    out, y = {}, x.astype(F32)
    for layer in layers:
        cls, c = layer["class_name"], layer["config"]
        name = c["name"]
        w = {k.split("/")[-1].split(":")[0]: f[name][name][k.split("/", 1)[1]][()] for k in (n.decode() for n in f[name].attrs["weight_names"])}
        if cls == "BinaryDense":
            y = y @ np.where(w["kernel"] > 0, F32(1), F32(-1))
        elif cls == "TernaryDense":
            k = w["kernel"]
            y = y @ np.where(k > 0.5, F32(1), np.where(k <= -0.5, F32(-1), F32(0)))
        elif cls == "BatchNormalization":
            inv = (F32(1) / np.sqrt(w["moving_variance"] + F32(c["epsilon"]))) * w["gamma"]
            y = y * inv + (w["beta"] - w["moving_mean"] * inv)
        elif c.get("activation") == "binary_tanh":
            y = F32(2) * np.round(np.clip(F32(0.5) * y + F32(0.5), 0, 1)) - F32(1)
        elif c.get("activation") == "ternary_tanh":
            y = np.clip(y, -1, 1)
            y = np.where(y > 0.5, F32(1), np.where(y <= -0.5, F32(-1), F32(0)))
        out[name] = y
    return out


def _inputs(n, d, seed=0):
    """Inputs on the default input type's grid (fixed<16,6>: 2**-10), so quantizing them is exact."""
    return np.round(np.random.default_rng(seed).normal(0, 1.5, (n, d)) * 1024) / 1024


def _check(path, x, hidden):
    design = rtlgen.convert(path)
    ref = _keras_reference(path, x)
    trace = design.trace(x)
    for name in hidden:
        assert np.array_equal(trace[name], ref[name].astype(np.float64)), name
        assert set(np.unique(trace[name])) <= {-1.0, 0.0, 1.0}
    # Last BatchNormalization: scale, shift and result in fixed<16,6> (2**-11 rounding each, on
    # accumulators of at most 32 in magnitude).
    y, yr = design.predict(x), list(ref.values())[-1]
    assert np.abs(y - yr).max() <= 2.0**-5
    assert (y.argmax(1) == yr.argmax(1)).mean() >= 0.99
    return design


def test_binary_example_model_is_exact():
    path = shared_model("hls4ml-example-models", "keras", "KERAS_3layer_binary_smaller.json")
    design = _check(path, _inputs(500, 16), ["act1", "act2", "act3"])
    kinds = [n.kind for n in design.graph.nodes]
    assert kinds[:7] == ["Dense", "Threshold", "Dense", "Threshold", "Dense", "Threshold", "Dense"]
    # Hidden layers read +-1 inputs: one bit per lane, XNOR-popcount sums (int accumulators).
    assert str(design.graph.tensors[design.graph.nodes[2].outputs[0]].type).startswith("int<")


def test_binary_example_model_through_hls4ml_api():
    from rtlgen import hls4ml

    path = shared_model("hls4ml-example-models", "keras", "KERAS_3layer_binary_smaller.json")
    config = hls4ml.utils.config_from_keras_model(str(path), granularity="name")
    assert list(config["LayerName"])[:4] == ["input", "fc1", "bn1", "act1"]
    config["LayerName"]["fc2"]["ReuseFactor"] = 4
    hm = hls4ml.converters.convert_from_keras_model(str(path), hls_config=config)
    assert next(n.op.reuse_factor for n in hm.design.graph.nodes if n.name == "fc2") == 4
    x = _inputs(50, 16)
    assert np.array_equal(hm.predict(x), rtlgen.convert(path).predict(x))


@pytest.mark.slow
def test_binary_example_model_rtl(tmp_path):
    design = rtlgen.convert(shared_model("hls4ml-example-models", "keras", "KERAS_3layer_binary_smaller.json"))
    check_rtl(design, _inputs(200, 16, seed=1), work_dir=tmp_path)


def _write_legacy(path, layers, weights):
    """A Keras 2.0-style JSON model and its ``_weights.h5`` (the layout hls4ml's examples use)."""
    path.write_text(json.dumps({"class_name": "Sequential", "config": layers, "keras_version": "2.0.5", "backend": "tensorflow"}))
    with h5py.File(str(path)[: -len(".json")] + "_weights.h5", "w") as f:
        f.attrs["layer_names"] = np.array([layer["config"]["name"].encode() for layer in layers])
        for layer in layers:
            name = layer["config"]["name"]
            g = f.create_group(name)
            ws = weights.get(name, {})
            g.attrs["weight_names"] = np.array([f"{name}/{k}:0".encode() for k in ws])
            for k, v in ws.items():
                g.create_dataset(f"{name}/{k}:0", data=np.asarray(v, dtype=F32))


def _ternary_model(path, rng, *, gamma_sign=1.0, use_bias=False):
    def dense(name, units, first=False):
        c = {"name": name, "units": units, "H": 1, "use_bias": use_bias, "activation": "linear"}
        if first:
            c["batch_input_shape"] = [None, 12]
        return {"class_name": "TernaryDense", "config": c}

    def bn(name):
        return {"class_name": "BatchNormalization", "config": {"name": name, "epsilon": 1e-6, "axis": -1, "center": True, "scale": True}}

    layers = [dense("t1", 24, True), bn("bn1"), {"class_name": "Activation", "config": {"name": "a1", "activation": "ternary_tanh"}},
              dense("t2", 16), bn("bn2"), {"class_name": "Activation", "config": {"name": "a2", "activation": "ternary_tanh"}},
              dense("t3", 4), bn("bn3")]  # fmt: skip

    def bn_weights(n, spread):
        gamma = rng.uniform(0.5, 1.5, n) * np.where(rng.random(n) < 0.3, gamma_sign, 1.0)
        return {"gamma": gamma, "beta": rng.normal(0, 0.3, n), "moving_mean": rng.normal(0, spread, n), "moving_variance": rng.uniform(0.5, 2, n) * spread**2}

    weights = {
        "t1": {"kernel": rng.uniform(-1, 1, (12, 24))}, "bn1": bn_weights(24, 3.0),
        "t2": {"kernel": rng.uniform(-1, 1, (24, 16))}, "bn2": bn_weights(16, 2.0),
        "t3": {"kernel": rng.uniform(-1, 1, (16, 4))}, "bn3": bn_weights(4, 2.0),
    }  # fmt: skip
    _write_legacy(path, layers, weights)
    return path


def test_ternary_model_is_exact_with_negative_batchnorm_scales(tmp_path):
    path = _ternary_model(tmp_path / "ternary.json", np.random.default_rng(5), gamma_sign=-1.0)
    design = _check(path, _inputs(2000, 12, seed=2), ["a1", "a2"])
    th = [n.op for n in design.graph.nodes if n.kind == "Threshold"]
    assert len(th) == 2 and all(t.thresholds.shape[1] == 2 for t in th)
    assert not th[0].increasing.all()  # negative gammas count downwards


@pytest.mark.slow
def test_ternary_model_rtl(tmp_path):
    design = rtlgen.convert(_ternary_model(tmp_path / "ternary.json", np.random.default_rng(5), gamma_sign=-1.0))
    check_rtl(design, _inputs(200, 12, seed=3), work_dir=tmp_path)


def test_legacy_bias_is_refused(tmp_path):
    path = _ternary_model(tmp_path / "biased.json", np.random.default_rng(0), use_bias=True)
    with pytest.raises(UnsupportedOpError, match=r"^node 't1' \(TernaryDense\): a bias is not supported \(hls4ml binarizes it"):
        rtlgen.convert(path)
