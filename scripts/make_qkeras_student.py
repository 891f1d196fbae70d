#!/usr/bin/env python3
"""Build the hls4ml tutorial's QKeras student and store it with QKeras's own outputs.

The student is the quantized MLP of the tutorial that rtlgen's users start from: QDense layers
with ``quantized_bits(9,1,alpha=1)`` kernels and ``quantized_bits(23,15,alpha=1)`` biases, each
followed by ``QActivation(quantized_relu(16,15))``, an output QDense with the same quantizers,
its logits quantized by ``QActivation(quantized_bits(32,15))``, and a softmax. (As a kernel
quantizer, ``quantized_bits(32,15)`` without ``alpha`` means QKeras's data-dependent
``auto_po2`` scale, which rtlgen refuses by name.) It is trained briefly on a synthetic
pulse-shape task (two pulse classes with different tails, 32 samples each) so that its weights
and activations are those of a trained network, not random ones.

QKeras needs Keras 2, so this runs in its own environment (set up as described in
``make_qkeras_references.py``). From the repository root:

    /work/venvs/qkeras/bin/python scripts/make_qkeras_student.py --out tests/data/qkeras

It writes ``qkeras_student.h5`` (the model, saved by Keras 2) and ``qkeras_student.npz`` with

    x              float32 inputs on a 2**-8 grid (exact in the default input type fixed<16,6>)
    y              model.predict(x) (after the softmax), float32
    layer/<name>   every layer's output for every row of x
    meta           JSON: versions, seed, command, checks

Every layer before the softmax is on a fixed-point grid that float32 holds exactly (checked).
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
N = 400
SAMPLES = 32


def make_student(keras, q):
    kq, bq = "quantized_bits(9,1,alpha=1)", "quantized_bits(23,15,alpha=1)"
    inp = keras.Input((SAMPLES,), name="input_1")
    h = q.QDense(32, kernel_quantizer=kq, bias_quantizer=bq, name="fc1")(inp)
    h = q.QActivation("quantized_relu(16,15)", name="relu1")(h)
    h = q.QDense(16, kernel_quantizer=kq, bias_quantizer=bq, name="fc2")(h)
    h = q.QActivation("quantized_relu(16,15)", name="relu2")(h)
    h = q.QDense(2, kernel_quantizer=kq, bias_quantizer=bq, name="output")(h)
    h = q.QActivation("quantized_bits(32,15)", name="output_q")(h)
    out = keras.layers.Activation("softmax", name="softmax")(h)
    return keras.Model(inp, out, name="qkeras_student")


def pulses(rng, n):
    """Two pulse classes: a fast and a slow exponential tail, random amplitude, noise, on 2**-8."""
    t = np.arange(SAMPLES)
    label = rng.integers(0, 2, n)
    tau = np.where(label == 0, 3.0, 9.0)[:, None] * rng.uniform(0.8, 1.2, (n, 1))
    amp = rng.uniform(0.5, 3.0, (n, 1))
    x = amp * np.exp(-np.maximum(t[None] - 4, 0) / tau) * (t[None] >= 4) + rng.normal(0, 0.05, (n, SAMPLES))
    return (np.round(x * 256) / 256).astype(np.float32), label


def exact_on_grid(a: np.ndarray, frac: int = 24) -> bool:
    scaled = a.astype(np.float64) * 2.0**frac
    return bool(np.all(scaled == np.round(scaled)))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("tests/data/qkeras"))
    args = p.parse_args(argv)
    import keras
    import qkeras
    import tensorflow as tf

    if not keras.__version__.startswith("2."):
        raise SystemExit(f"keras {keras.__version__}: QKeras needs Keras 2 (see make_qkeras_references.py)")
    tf.keras.utils.set_random_seed(SEED)
    from importlib.metadata import version

    versions = {"qkeras": version("qkeras"), "tensorflow": tf.__version__, "keras": keras.__version__,
                "numpy": np.__version__, "python": platform.python_version()}  # fmt: skip
    rng = np.random.default_rng(SEED)
    model = make_student(keras, qkeras)
    xt, yt = pulses(rng, 4000)
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(xt, yt, epochs=5, batch_size=64, verbose=0)
    x, label = pulses(rng, N)
    y = model.predict(x, verbose=0)
    trace = keras.Model(model.inputs, [layer.output for layer in model.layers[1:]])
    outs = trace.predict(x, verbose=0)
    arrays = {"x": x, "y": y.astype(np.float32), "label": label.astype(np.int8)}
    for layer, o in zip(model.layers[1:], outs):
        arrays[f"layer/{layer.name}"] = o.astype(np.float32)
    checks = {
        "trace_matches_predict": bool(np.array_equal(outs[-1], y)),
        "outputs_on_grid": all(exact_on_grid(a) for k, a in arrays.items() if k.startswith("layer/") and k != "layer/softmax"),
        "accuracy": float((y.argmax(1) == label).mean()),
    }
    meta = {"versions": versions, "seed": SEED, "n": N, "checks": checks,
            "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:])}  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    model.save(args.out / "qkeras_student.h5")
    np.savez_compressed(args.out / "qkeras_student.npz", meta=np.array(json.dumps(meta, sort_keys=True)), **arrays)
    print("qkeras_student", checks)
    return 0 if checks["trace_matches_predict"] and checks["outputs_on_grid"] else 1


if __name__ == "__main__":
    sys.exit(main())
