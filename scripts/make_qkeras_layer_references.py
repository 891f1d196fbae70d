#!/usr/bin/env python3
"""Build two small QKeras models and store them with QKeras's own outputs, for rtlgen's tests.

* ``qkeras_cnn``: QConv2D, QDepthwiseConv2D, QSeparableConv2D, QConv2DBatchnorm and QConv1D with
  quantized_bits kernels and biases, QActivation quantized_relu/quantized_bits, max pooling and a
  final QDense.
* ``qkeras_bnn``: a binary/ternary MLP: binary input activation, binary and ternary kernels,
  binary and ternary activations, a QDense with a quantized bias at the end.

QKeras needs Keras 2, so this runs in its own environment (set up as described in
``make_qkeras_references.py``). From the repository root:

    /work/venvs/qkeras/bin/python scripts/make_qkeras_layer_references.py --out tests/data/qkeras

For each model it writes ``<name>.h5`` (the model, saved by Keras 2) and ``<name>.npz`` with

    x        float16 inputs (every value on a 2**-3 grid, so float16 holds it exactly)
    y        model.predict(x), float32
    layer/<name>   every layer's output for the first TRACE rows of x
    qweights/<layer>/<kernel|depthwise|pointwise|bias>   what the layer multiplies with
    meta     JSON: versions, seed, command

Every layer output is on a fixed-point grid that float32 represents exactly (checked below), so
these are bit-exactness oracles.
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
N = 300
TRACE = 40


def qbits(bits, integer):
    return f"quantized_bits({bits},{integer},alpha=1)"


def make_cnn(keras, q):
    L = keras.layers
    inp = keras.Input((10, 10, 2), name="x")
    h = q.QConv2D(4, 3, padding="same", kernel_quantizer=qbits(4, 0), bias_quantizer=qbits(6, 2), name="qc1")(inp)
    h = q.QActivation("quantized_relu(4,2)", name="a1")(h)
    h = q.QDepthwiseConv2D(3, strides=2, depthwise_quantizer=qbits(4, 0), bias_quantizer=qbits(6, 2), name="qdw")(h)
    h = q.QActivation(qbits(6, 2), name="a2")(h)
    h = q.QSeparableConv2D(4, 2, depthwise_quantizer=qbits(4, 0), pointwise_quantizer=qbits(4, 0),
                           bias_quantizer=qbits(6, 2), name="qsep")(h)  # fmt: skip
    h = q.QActivation("quantized_relu(5,2)", name="a3")(h)
    h = q.QConv2DBatchnorm(3, 2, padding="same", kernel_quantizer=qbits(6, 2), bias_quantizer=qbits(8, 3), name="qcbn")(h)
    h = q.QActivation("quantized_relu(4,2)", name="a4")(h)
    h = L.Reshape((9, 3), name="rs")(h)
    h = q.QConv1D(2, 3, padding="same", kernel_quantizer=qbits(4, 0), bias_quantizer=qbits(6, 2), name="qc1d")(h)
    h = q.QActivation(qbits(6, 3), name="a5")(h)
    h = L.MaxPooling1D(2, name="mp")(h)
    h = L.Flatten(name="fl")(h)
    out = q.QDense(3, kernel_quantizer=qbits(6, 0), bias_quantizer=qbits(6, 2), name="fc")(h)
    return keras.Model(inp, out, name="qkeras_cnn")


def make_bnn(keras, q):
    inp = keras.Input((16,), name="x")
    h = q.QActivation("binary(alpha=1)", name="bin_in")(inp)
    h = q.QDense(12, kernel_quantizer="binary(alpha=1)", use_bias=False, name="fc1")(h)
    h = q.QActivation("binary(alpha=1)", name="act1")(h)
    h = q.QDense(8, kernel_quantizer="ternary(alpha=1)", use_bias=False, name="fc2")(h)
    h = q.QActivation("ternary(alpha=1, threshold=1.5)", name="act2")(h)
    out = q.QDense(3, kernel_quantizer="binary(alpha=1)", bias_quantizer=qbits(4, 2), name="fc3")(h)
    return keras.Model(inp, out, name="qkeras_bnn")


def randomize(model, rng):
    """Weights drawn wide enough that every quantizer level occurs; batch norm statistics frozen."""
    for layer in model.layers:
        ws = layer.get_weights()
        if not ws:
            continue
        new = []
        for v, w in zip(layer.weights, ws):
            name = v.name.split("/")[-1].split(":")[0]
            if name == "moving_variance":
                new.append(rng.uniform(0.5, 2.0, w.shape).astype(w.dtype))
            elif name == "gamma":
                new.append(rng.uniform(0.5, 1.5, w.shape).astype(w.dtype))
            elif name in ("moving_mean", "beta", "bias"):
                new.append(rng.normal(0, 0.5, w.shape).astype(w.dtype))
            elif "iteration" in name:
                new.append(w)
            else:
                new.append(rng.normal(0, 0.6, w.shape).astype(w.dtype))
        layer.set_weights(new)


def qweights(model, q) -> dict:
    out = {}
    for layer in model.layers:
        cfg = layer.get_config()
        if hasattr(layer, "get_folded_weights"):  # QConv2DBatchnorm: fold, then quantize
            kernel, bias = (np.asarray(a) for a in layer.get_folded_weights())
            out[f"qweights/{layer.name}/kernel"] = np.asarray(layer.kernel_quantizer_internal(kernel))
            out[f"qweights/{layer.name}/bias"] = np.asarray(layer.bias_quantizer_internal(bias))
            continue
        for key, attr in (("kernel", "kernel"), ("depthwise", "depthwise_kernel"), ("pointwise", "pointwise_kernel"), ("bias", "bias")):
            quant = cfg.get(f"{key}_quantizer") if key != "depthwise" else cfg.get("depthwise_quantizer")
            w = getattr(layer, attr, None)
            if w is None or quant is None:
                continue
            fn = getattr(layer, f"{key}_quantizer_internal", None) if key != "depthwise" else layer.depthwise_quantizer_internal
            out[f"qweights/{layer.name}/{key}"] = np.asarray(fn(w))
    return out


def exact_on_grid(a: np.ndarray, frac: int = 20) -> bool:
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
    ok = True
    for name, make, shape in (("qkeras_cnn", make_cnn, (10, 10, 2)), ("qkeras_bnn", make_bnn, (16,))):
        rng = np.random.default_rng(SEED)
        model = make(keras, qkeras)
        randomize(model, rng)
        x = (np.round(rng.uniform(-3, 3, (N, *shape)) * 8) / 8).astype(np.float32)
        y = model.predict(x, verbose=0)
        trace = keras.Model(model.inputs, [layer.output for layer in model.layers[1:]])
        outs = trace.predict(x[:TRACE], verbose=0)
        arrays = {"x": x.astype(np.float16), "y": y.astype(np.float32)}
        for layer, o in zip(model.layers[1:], outs):
            arrays[f"layer/{layer.name}"] = o.astype(np.float32)
        arrays.update(qweights(model, qkeras))
        checks = {
            "x_float16_exact": bool(np.array_equal(x.astype(np.float16).astype(np.float32), x)),
            "trace_matches_predict": bool(np.array_equal(outs[-1], y[:TRACE])),
            "outputs_on_grid": all(exact_on_grid(a) for k, a in arrays.items() if k.startswith("layer/")),
        }
        ok &= all(checks.values())
        meta = {"versions": versions, "seed": SEED, "n": N, "trace_rows": TRACE, "checks": checks,
                "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:])}  # fmt: skip
        args.out.mkdir(parents=True, exist_ok=True)
        model.save(args.out / f"{name}.h5")
        np.savez_compressed(args.out / f"{name}.npz", meta=np.array(json.dumps(meta, sort_keys=True)), **arrays)
        print(name, checks, {k: v.shape for k, v in arrays.items() if not k.startswith("layer/")})
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
