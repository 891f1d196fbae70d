#!/usr/bin/env python3
"""Build small QKeras QSimpleRNN, QLSTM and QGRU models and store them with QKeras's own outputs,
for rtlgen's tests (bit-exactness oracles read without QKeras).

QKeras needs Keras 2, so this runs in its own environment (outside the repository):

    python3 -m venv /work/venvs/keras2
    /work/venvs/keras2/bin/pip install "tensorflow-cpu==2.14.1" "qkeras==0.9.0" \\
        "tensorflow-model-optimization==0.7.5" pyparsing h5py

From the repository root:

    /work/venvs/keras2/bin/python scripts/make_qkeras_recurrent_references.py --out tests/data/qkeras

It writes ``qkeras_<kind>.h5`` (the model, saved by Keras 2) for kind in ``rnn``, ``lstm``, ``gru``,
``gru_after`` (``reset_after=True``, ``quantized_relu`` activation) and one ``qkeras_recurrent.npz`` with

    x          int8 input mantissas on a 2**-FRAC grid (sequences, STEPS, FEATURES), shared by the models
    y/<kind>   model.predict(x) as integer mantissas: predict = y * 2**-y_frac/<kind> exactly
    y_frac/<kind>
    meta       JSON: versions, seed, command, each model's quantizers

The models keep QKeras's defaults where they matter: ``hard_sigmoid`` recurrent activations (QKeras's
own, ``clip(x / 2 + 1 / 2, 0, 1)``), ``quantized_tanh`` activations, and the GRU with
``reset_after=False``. Every weight and activation goes through a quantizer, and the states through
a ``state_quantizer``, so every value predict computes is on a fixed-point grid float32 holds exactly.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

SEED = 0
N = 2000
STEPS, FEATURES, UNITS = 5, 2, 3
FRAC = 3  # inputs in [-2, 2) on a 2**-3 grid


def qbits(bits, integer):
    return f"quantized_bits({bits},{integer},alpha=1)"


def make(kind, keras, q):
    common = {
        "kernel_quantizer": qbits(6, 0), "recurrent_quantizer": qbits(6, 0), "bias_quantizer": qbits(6, 0),
        "state_quantizer": qbits(8, 1), "activation": "quantized_tanh(8)", "name": kind,
    }  # fmt: skip
    layer = {
        "rnn": lambda: q.QSimpleRNN(UNITS, return_sequences=True, **common),
        "lstm": lambda: q.QLSTM(UNITS, **common),  # recurrent_activation: QKeras's default hard_sigmoid
        "gru": lambda: q.QGRU(UNITS, reset_after=False, **common),
        "gru_after": lambda: q.QGRU(UNITS, reset_after=True, **{**common, "activation": "quantized_relu(6,1)"}),
    }[kind]()
    model = keras.Sequential([keras.Input((STEPS, FEATURES), name="x"), layer], name=f"qkeras_{kind}")
    rng = np.random.default_rng({"rnn": 1, "lstm": 2, "gru": 3, "gru_after": 4}[kind])
    model.set_weights([rng.uniform(-1, 1, w.shape).astype("float32") for w in model.get_weights()])
    return model


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    try:
        import keras
        import qkeras as q
        import tensorflow as tf
    except ImportError as e:
        sys.exit(f"{e}: run this with the Keras 2 environment's python (see the module docstring)")
    from tensorflow.python.ops import array_ops
    from tensorflow.python.util import nest

    # qkeras 0.9.0's recurrent cells call nest.is_sequence (a deprecated alias of nest.is_nested)
    # and, in QGRU with reset_after, array_ops.unstack (tf.unstack): TensorFlow 2.14 has neither
    # name any more, so the aliases are restored.
    if not hasattr(nest, "is_sequence"):
        nest.is_sequence = nest.is_nested
    if not hasattr(array_ops, "unstack"):
        array_ops.unstack = tf.unstack
    if not keras.__version__.startswith("2."):
        sys.exit(f"keras {keras.__version__}: QKeras needs Keras 2; use the Keras 2 environment (see the module docstring)")
    tf.random.set_seed(SEED)
    args.out.mkdir(parents=True, exist_ok=True)
    xm = np.random.default_rng(SEED).integers(-(2 ** (FRAC + 1)), 2 ** (FRAC + 1), (N, STEPS, FEATURES)).astype(np.int8)
    x = xm.astype(np.float32) * 2.0**-FRAC
    arrays = {"x": xm}
    meta = {
        "versions": {"python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__,
                     "qkeras": getattr(q, "__version__", "?"), "numpy": np.__version__},
        "seed": SEED, "x_frac": FRAC, "command": " ".join(sys.argv), "models": {},
    }  # fmt: skip
    for kind in ("rnn", "lstm", "gru", "gru_after"):
        model = make(kind, keras, q)
        y = model.predict(x, batch_size=N, verbose=0).astype(np.float32)
        # Every output is on a fixed-point grid: stored losslessly as integers on the coarsest one.
        frac = next(f for f in range(32) if np.array_equal(y * 2.0**f, np.round(y * 2.0**f)))
        ym = np.round(y.astype(np.float64) * 2.0**frac).astype(np.int64)
        ym = ym.astype(next(t for t in (np.int8, np.int16, np.int32) if np.abs(ym).max() < np.iinfo(t).max))
        assert np.array_equal(ym.astype(np.float64) * 2.0**-frac, y), kind
        assert len(np.unique(y)) > 100, kind  # outputs move with the input
        arrays[f"y/{kind}"], arrays[f"y_frac/{kind}"] = ym, np.array(frac)
        model.save(args.out / f"qkeras_{kind}.h5")
        cell = model.layers[-1].cell
        meta["models"][kind] = {
            key: str(getattr(cell, key, None))
            for key in ("kernel_quantizer", "recurrent_quantizer", "bias_quantizer", "state_quantizer", "activation", "recurrent_activation", "reset_after")
        }
    arrays["meta"] = np.array(json.dumps(meta, default=str))
    np.savez_compressed(args.out / "qkeras_recurrent.npz", **arrays)
    for f in sorted(args.out.glob("qkeras_*")):
        if f.stem.split("_", 1)[-1] in ("rnn", "lstm", "gru", "gru_after", "recurrent"):
            print(f, f.stat().st_size)


if __name__ == "__main__":
    main()
