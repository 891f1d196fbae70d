"""Benchmark models, trained here on synthetic data so every run is self-contained.

* ``hgq``: the 16-64-32-32-5 jet tagger with HGQ2's heterogeneous (per-weight, per-lane) bit widths.
* ``uniform6``: the same network with homogeneous 6-bit weights and activations, as a QKeras
  ``quantized_bits(6)`` model has them. It is built with HGQ2 quantizers with fixed widths, because
  QKeras needs Keras 2 and cannot share one environment with HGQ2 and da4ml (Keras 3).
* ``pruned``: the HGQ2 tagger with 75 % of its weights set to zero after training (magnitude pruning).

Data-lane quantizers use WRAP: da4ml's tracer only handles WRAP quantizers; weights saturate.
"""

from __future__ import annotations

import os

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

SIZES = (16, 64, 32, 32, 5)


def grid_inputs(rng, n, d=16, lo=-4, hi=4, frac=8):
    """Inputs on a 2**-frac grid: exactly what an 8-fractional-bit input quantizer sees."""
    return (np.round(rng.uniform(lo, hi, (n, d)) * 2**frac) / 2**frac).astype(np.float32)


def synthetic_jets(rng, n):
    """Five classes from a fixed random nonlinear map of 16 features (a stand-in for jet data)."""
    x = grid_inputs(rng, n)
    proj = np.random.default_rng(1234).normal(size=(16, 5)).astype(np.float32)
    y = np.argmax(np.tanh(x @ proj / 3) + 0.3 * np.sin(x[:, :5] * 2), axis=1)
    return x, np.eye(5, dtype=np.float32)[y]


def train(kind: str, path, *, epochs: int = 12, seed: int = 0):
    """Train model ``kind`` and save it to ``path`` (.keras); return the path."""
    import keras
    from hgq.config import LayerConfigScope, QuantizerConfigScope
    from hgq.layers import QDense
    from hgq.utils import trace_minmax

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    x, y = synthetic_jets(rng, 20000)
    if kind == "uniform6":
        weights = {"default_q_type": "kbi", "overflow_mode": "SAT_SYM", "heterogeneous_axis": (), "trainable": False, "b0": 6, "i0": 1}
        lanes = {"default_q_type": "kif", "overflow_mode": "WRAP", "heterogeneous_axis": (), "trainable": False, "f0": 3, "i0": 2}
        scopes = [QuantizerConfigScope(place="weight", **weights), QuantizerConfigScope(place="bias", **weights),
                  QuantizerConfigScope(place="datalane", **lanes), LayerConfigScope(enable_ebops=False)]  # fmt: skip
    else:
        scopes = [
            QuantizerConfigScope(place="all", default_q_type="kbi", overflow_mode="SAT_SYM"),
            QuantizerConfigScope(place="datalane", default_q_type="kif", overflow_mode="WRAP"),
            LayerConfigScope(enable_ebops=True, beta0=3e-6),
        ]
    for s in scopes:
        s.__enter__()
    try:
        inp = keras.Input((SIZES[0],), name="inp")
        h = inp
        for i, n in enumerate(SIZES[1:-1]):
            h = QDense(n, activation="relu", name=f"fc{i}")(h)
        out = QDense(SIZES[-1], name="out")(h)
        model = keras.Model(inp, out, name=f"jet_{kind}")
    finally:
        for s in reversed(scopes):
            s.__exit__(None, None, None)
    model.compile(keras.optimizers.Adam(3e-3), keras.losses.CategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(x, y, epochs=epochs, batch_size=256, verbose=0)
    if kind == "pruned":
        for layer in model.layers:
            if isinstance(layer, QDense):
                k = layer.kernel.numpy()
                cut = np.quantile(np.abs(k), 0.75)
                layer.kernel.assign(np.where(np.abs(k) >= cut, k, 0).astype(k.dtype))
    trace_minmax(model, x, verbose=0)
    model.save(path)
    return path


def test_inputs(n: int, seed: int = 1):
    return grid_inputs(np.random.default_rng(seed), n)
