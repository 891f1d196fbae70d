#!/usr/bin/env python3
"""Write QKeras reference outputs (bit-exactness oracles) for rtlgen's tests.

QKeras needs Keras 2, so this script runs in its own virtual environment, never in
rtlgen's (Keras 3 / HGQ2) one. Setup (outside the repository), pins that were tested:

    python3 -m venv /work/venvs/qkeras
    /work/venvs/qkeras/bin/pip install "tensorflow-cpu==2.14.1" "qkeras==0.9.0" \
        "tensorflow-model-optimization==0.7.5" pyparsing h5py
    # tensorflow-cpu 2.14.1 brings keras 2.14.0 and numpy 1.26.4; pyparsing is an
    # undeclared dependency of qkeras 0.9.0.

Run from the repository root:

    /work/venvs/qkeras/bin/python scripts/make_qkeras_references.py \
        --models ../shared/models --out tests/data/qkeras

For every model it writes <name>.npz (np.savez_compressed) with

    x                   float32 inputs (seeded, on a fixed-point grid; see MODELS)
    y                   model.predict(x), float32
    logits              (classifiers) output of the last QDense, before softmax
    layer/<layer name>  output of every layer (one keras Model with all outputs) for
                        the first trace_samples rows of x (see MODELS)
    qweights/<layer>/kernel, qweights/<layer>/bias
                        the quantized kernel and bias that the layer's predict
                        multiplies with (folded with batch norm for QDenseBatchnorm)
    meta                JSON string: versions, command, seed, input spec, per-layer
                        quantizer configs, and the exactness checks below

Arrays are stored as float32, or as float16 where every value of that array is exactly
representable in float16 (checked; np.load(...)[k].astype(np.float32) restores it
bit for bit).

The script checks its own outputs and records the result in meta["checks"]: the trace
model's last output equals predict's; each dense layer's float32 output equals the exact
integer computation x_int @ W_int + b_int; each quantized activation equals the
closed-form integer quantizer (round half to even, saturate).

QDenseBatchnorm: AD08 (MLPerf Tiny v0.7, hls4ml-finn) was trained with an unreleased
QKeras branch (julesmuhizi/qkeras@qdense_batchnorm, Google QKeras PR #74). PyPI
qkeras 0.9.0 has no QDenseBatchnorm, so this file defines an inference-only layer that
performs the same float32 operations in the same order as that branch's layer (first
version 2021-04-27, and again from 2022-01-25 on): the batch norm is folded into the kernel and bias with the moving
statistics, and the folded kernel and bias are then quantized:

    inv    = rsqrt(moving_variance + epsilon) * gamma
    kernel = kernel_quantizer(inv * kernel)
    bias   = bias_quantizer(inv * (bias - moving_mean) + beta)
    y      = activation(x @ kernel + bias)

With this layer the 10 Keras outputs published with the model (data.h in
mlcommons/tiny_results_v0.7) are reproduced bit for bit. The 2022-01-09 revision of the
branch (quantize first, then fold) does not reproduce them. --qdbn qkeras uses the
installed QKeras's own QDenseBatchnorm instead, if it has one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

SEED = 0
N_SAMPLES = 10_000

# name -> model file (relative to --models), input distribution, classifier logits layer.
# Inputs are drawn from numpy.random.default_rng(SEED) and put on a grid of 2**-frac_bits
# so that every product and sum in the float32 predict is exact (checked below).
MODELS = {
    "QKERAS_3layer": {
        "path": "hls4ml-history/keras/QKERAS_3layer.h5",
        # Jet tagger, 16 standardized jet features. Each sample draws a half-width s in
        # {1, 2, 4} and its features uniformly in [-s, s): s=4 saturates about a third of
        # relu1 (quantized_relu(6) saturates at 63/64), s=1 keeps most units linear.
        "input": {"kind": "uniform_mixture", "half_widths": [1.0, 2.0, 4.0], "frac_bits": 10},
        # 2**-10 grid and |x| < 4: representable in ap_fixed<13,3> and in hls4ml's default
        # ap_fixed<16,6>.
        "x_type": "ap_fixed<16,6>",
        "logits_layer": "output",
        "trace_samples": 5000,
    },
    "AD08": {
        "path": "mlperf-tiny/AD08/model.h5",
        # ToyADMOS anomaly-detection autoencoder. Its inputs are log-mel energies in dB
        # (10*log10 of mel power, 2 frames x 32 mels); real features lie in about
        # [-55, 0]. The deployed design (hls4ml_config.yml) feeds input_1 as
        # ap_fixed<8,8>, i.e. integers in [-128, 127], so x is integer-valued:
        # 3/4 of the samples uniform in [-64, 15], 1/4 uniform over the whole
        # ap_fixed<8,8> range [-128, 127] (saturates more of the latent layer).
        "input": {
            "kind": "integer_mixture",
            "ranges": [[-64, 15], [-128, 127]],
            "weights": [0.75, 0.25],
            "frac_bits": 0,
        },
        "x_type": "ap_fixed<8,8>",
        "logits_layer": None,
        "trace_samples": 2000,
    },
}

# layer/* traces hold the first trace_samples rows only (x, y and logits hold all
# N_SAMPLES): the inputs are random, so the traces are incompressible (about 11-20 bits
# per value) and all 10,000 rows would make AD08.npz 11 MB. The exactness checks below
# still run on all N_SAMPLES rows.
MAX_FILE_MB = 5.0


# --------------------------------------------------------------------------- inputs


def make_inputs(spec: dict, n: int, n_features: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    f = spec["frac_bits"]
    if spec["kind"] == "uniform_mixture":
        hw = np.asarray(spec["half_widths"], np.float64)
        s = hw[rng.integers(0, len(hw), n)][:, None]
        u = rng.uniform(-1.0, 1.0, (n, n_features)) * s
        x = np.round(u * 2.0**f) / 2.0**f
        x = np.clip(x, -s, s - 2.0**-f)
    elif spec["kind"] == "integer_mixture":
        ranges = np.asarray(spec["ranges"], np.int64)
        pick = rng.choice(len(ranges), size=n, p=spec["weights"])
        lo = ranges[pick, 0][:, None]
        hi = ranges[pick, 1][:, None]
        x = lo + np.floor(rng.uniform(0.0, 1.0, (n, n_features)) * (hi - lo + 1))
        x = np.minimum(x, hi)
    else:
        raise ValueError(spec["kind"])
    x = x.astype(np.float32)
    assert np.all(x.astype(np.float64) * 2.0**f == np.round(x.astype(np.float64) * 2.0**f))
    return x


# --------------------------------------------------------------- QDenseBatchnorm


def make_qdense_batchnorm_class():
    """Inference-only QDenseBatchnorm with the fold-then-quantize arithmetic (see module doc)."""
    import tensorflow as tf
    from qkeras.qlayers import QDense

    class QDenseBatchnorm(QDense):
        def __init__(
            self,
            units,
            axis=-1,
            momentum=0.99,
            epsilon=1e-3,
            center=True,
            scale=True,
            beta_initializer="zeros",
            gamma_initializer="ones",
            moving_mean_initializer="zeros",
            moving_variance_initializer="ones",
            beta_regularizer=None,
            gamma_regularizer=None,
            beta_constraint=None,
            gamma_constraint=None,
            ema_freeze_delay=None,
            folding_mode="ema_stats_folding",
            **kwargs,
        ):
            for unused in (
                "renorm",
                "renorm_clipping",
                "renorm_momentum",
                "fused",
                "virtual_batch_size",
                "adjustment",
            ):
                kwargs.pop(unused, None)
            super().__init__(units, **kwargs)
            self.batchnorm = tf.keras.layers.BatchNormalization(
                axis=axis,
                momentum=momentum,
                epsilon=epsilon,
                center=center,
                scale=scale,
                beta_initializer=beta_initializer,
                gamma_initializer=gamma_initializer,
                moving_mean_initializer=moving_mean_initializer,
                moving_variance_initializer=moving_variance_initializer,
                beta_regularizer=beta_regularizer,
                gamma_regularizer=gamma_regularizer,
                beta_constraint=beta_constraint,
                gamma_constraint=gamma_constraint,
            )
            if folding_mode not in ("ema_stats_folding", "batch_stats_folding"):
                raise ValueError(f"folding_mode {folding_mode!r}")
            self.ema_freeze_delay = ema_freeze_delay
            self.folding_mode = folding_mode

        def build(self, input_shape):
            super().build(input_shape)
            # Weight order must match the saved files: kernel, bias, gamma, beta,
            # iteration, moving_mean, moving_variance.
            self.iteration = self.add_weight(
                name="iteration",
                shape=(),
                dtype=tf.int64,
                initializer=tf.keras.initializers.Constant(-1),
                trainable=False,
            )
            out_shape = tf.TensorShape(input_shape)[:-1].concatenate([self.units])
            self.batchnorm.build(out_shape)

        def folded_quantized_weights(self):
            bn = self.batchnorm
            inv = tf.math.rsqrt(bn.moving_variance + bn.epsilon)
            if bn.gamma is not None:
                inv *= bn.gamma
            bias = self.bias if self.use_bias else 0
            folded_bias = inv * (bias - bn.moving_mean)
            if bn.beta is not None:
                folded_bias = folded_bias + bn.beta
            folded_kernel = inv * self.kernel
            if self.kernel_quantizer:
                folded_kernel = self.kernel_quantizer_internal(folded_kernel)
            if self.bias_quantizer:
                folded_bias = self.bias_quantizer_internal(folded_bias)
            return folded_kernel, folded_bias

        def call(self, inputs, training=None):
            if training:
                raise NotImplementedError("this QDenseBatchnorm is inference-only")
            kernel, bias = self.folded_quantized_weights()
            out = tf.keras.backend.dot(inputs, kernel)
            out = tf.keras.backend.bias_add(out, bias, data_format="channels_last")
            if self.activation is not None:
                out = self.activation(out)
            return out

        def get_config(self):
            config = super().get_config()
            bn = self.batchnorm.get_config()
            for key in (
                "axis",
                "momentum",
                "epsilon",
                "center",
                "scale",
                "beta_initializer",
                "gamma_initializer",
                "moving_mean_initializer",
                "moving_variance_initializer",
                "beta_regularizer",
                "gamma_regularizer",
                "beta_constraint",
                "gamma_constraint",
            ):
                config[key] = bn[key]
            config["ema_freeze_delay"] = self.ema_freeze_delay
            config["folding_mode"] = self.folding_mode
            return config

    return QDenseBatchnorm


# ------------------------------------------------------------------- helpers


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def saved_keras_version(path: Path) -> str | None:
    import h5py

    with h5py.File(path, "r") as f:
        v = f.attrs.get("keras_version")
    return v.decode() if isinstance(v, bytes) else (None if v is None else str(v))


def frac_bits_of(a: np.ndarray, max_bits: int = 60) -> int | None:
    """Smallest f with a * 2**f integral for every element (None if none <= max_bits)."""
    a = np.asarray(a, np.float64)
    if not np.all(np.isfinite(a)):
        return None
    for f in range(-30, max_bits + 1):
        s = a * 2.0**f
        if np.all(s == np.round(s)):
            return f
    return None


def to_int(a: np.ndarray, f: int) -> np.ndarray:
    return np.round(np.asarray(a, np.float64) * 2.0**f).astype(np.int64)


def _s(v):
    """JSON-friendly value."""
    if isinstance(v, dict):
        return {k: _s(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_s(x) for x in v]
    if hasattr(v, "numpy"):
        try:
            v = v.numpy()
        except Exception:  # noqa: BLE001  (symbolic tensor from graph-mode predict)
            return f"<symbolic {v.name}>"
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (np.floating, np.integer, np.bool_)):
        return v.item()
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return str(v)


def equivalent_type(q) -> str | None:
    """Fixed-point type equal to a QKeras quantizer's output grid, where one exists."""
    name = type(q).__name__
    if name == "quantized_bits":
        alpha = q.alpha
        if isinstance(alpha, str):
            return None  # per-channel scale computed from the tensor (auto / auto_po2)
        if alpha is not None and np.any(np.asarray(alpha, np.float64) != 1.0):
            return None
        bits, integer = int(q.bits), int(q.integer)
        if bits - int(q.keep_negative) <= 0:
            return "binary {-1,+1}" if q.keep_negative else "binary {0,1}"
        ovf = "AP_SAT_SYM" if q.symmetric else "AP_SAT"
        if q.keep_negative:
            return f"ap_fixed<{bits},{integer + 1},AP_RND_CONV,{ovf}>"
        return f"ap_ufixed<{bits},{integer},AP_RND_CONV,AP_SAT>"
    if name == "quantized_relu":
        if q.use_sigmoid or q.negative_slope:
            return None
        return f"ap_ufixed<{int(q.bits)},{int(q.integer)},AP_RND_CONV,AP_SAT>"
    return None


def quantizer_info(q) -> dict | None:
    if q is None:
        return None
    if isinstance(q, str):
        return {"str": q}
    info = {"str": str(q), "class": type(q).__name__}
    if hasattr(q, "get_config"):
        try:
            info["config"] = _s(q.get_config())
        except Exception as e:  # noqa: BLE001
            info["config"] = f"<get_config failed: {e}>"
    if getattr(q, "scale", None) is not None:
        info["scale_after_predict"] = _s(q.scale)
    t = equivalent_type(q)
    if t:
        info["equivalent_type"] = t
    return info


def relu_reference(z: np.ndarray, q) -> np.ndarray | None:
    """Closed-form quantized_relu (use_sigmoid=0, negative_slope=0): round half to even, saturate."""
    if type(q).__name__ != "quantized_relu" or q.use_sigmoid or q.negative_slope:
        return None
    bits, integer = int(q.bits), int(q.integer)
    k = np.clip(np.round(z.astype(np.float64) * 2.0 ** (bits - integer)), 0, 2**bits - 1)
    return (k * 2.0 ** (integer - bits)).astype(np.float32)


def maybe_float16(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, np.float32)
    h = a.astype(np.float16)
    if np.array_equal(h.astype(np.float32), a) and np.all(np.isfinite(h) == np.isfinite(a)):
        return h
    return a


# -------------------------------------------------------------------- main work


def process_model(name: str, cfg: dict, models_dir: Path, out_dir: Path, args, versions) -> dict:
    import tensorflow as tf
    from qkeras.utils import _add_supported_quantized_objects, load_qmodel

    t0 = time.time()
    path = models_dir / cfg["path"]
    custom = {}
    supported = {}
    _add_supported_quantized_objects(supported)
    if args.qdbn == "qkeras":
        if "QDenseBatchnorm" not in supported:
            raise SystemExit("--qdbn qkeras: the installed qkeras has no QDenseBatchnorm")
        qdbn_impl = "qkeras (installed package)"
    else:
        custom["QDenseBatchnorm"] = make_qdense_batchnorm_class()
        qdbn_impl = "scripts/make_qkeras_references.py (fold with moving stats, then quantize)"
    model = load_qmodel(str(path), custom_objects=custom, compile=False)
    t_load = time.time() - t0

    n_features = int(model.inputs[0].shape[-1])
    x = make_inputs(cfg["input"], args.n, n_features, SEED)

    t1 = time.time()
    y = model.predict(x, batch_size=args.batch_size, verbose=0).astype(np.float32)
    t_predict = time.time() - t1

    layers = [layer for layer in model.layers if not isinstance(layer, tf.keras.layers.InputLayer)]
    trace_model = tf.keras.Model(model.inputs, [layer.output for layer in layers])
    t2 = time.time()
    outs = trace_model.predict(x, batch_size=args.batch_size, verbose=0)
    t_trace = time.time() - t2
    outs = [np.asarray(o, np.float32) for o in outs]
    trace = {layer.name: o for layer, o in zip(layers, outs, strict=True)}

    checks = {}
    checks["trace_last_equals_predict"] = bool(np.array_equal(outs[-1], y))
    y_bs1 = model.predict(x[:256], batch_size=1, verbose=0)
    checks["predict_batch_size_independent"] = bool(np.array_equal(y_bs1, y[:256]))

    arrays = {"x": x, "y": y}
    if cfg["logits_layer"]:
        arrays["logits"] = trace[cfg["logits_layer"]]

    # previous-layer lookup (these models are chains)
    inbound = {}
    for layer in layers:
        node = layer._inbound_nodes[0]
        src = node.inbound_layers
        src = src[0] if isinstance(src, (list, tuple)) else src
        inbound[layer.name] = src.name
    value_of = dict(trace)
    value_of[model.layers[0].name] = x

    layer_meta = []
    for layer in layers:
        cls = type(layer).__name__
        info = {"name": layer.name, "class": cls, "inbound": inbound[layer.name]}
        out = trace[layer.name]
        src = value_of[inbound[layer.name]]
        if hasattr(layer, "kernel"):
            if hasattr(layer, "folded_quantized_weights"):
                qk, qb = layer.folded_quantized_weights()
            elif hasattr(layer, "batchnorm") and hasattr(layer, "get_folded_weights"):
                qk, qb = None, None  # installed QKeras layer: recompute below
            else:
                qk = (
                    layer.kernel_quantizer_internal(layer.kernel)
                    if layer.kernel_quantizer
                    else layer.kernel
                )
                qb = None
                if layer.use_bias:
                    qb = (
                        layer.bias_quantizer_internal(layer.bias)
                        if layer.bias_quantizer
                        else layer.bias
                    )
            if qk is None:  # installed QDenseBatchnorm: same formula with its own quantizers
                fk, fb = layer.get_folded_weights()
                qk = layer.kernel_quantizer_internal(fk) if layer.kernel_quantizer else fk
                qb = layer.bias_quantizer_internal(fb) if layer.bias_quantizer else fb
            qk = np.asarray(qk, np.float32)
            qb = None if qb is None else np.asarray(qb, np.float32)
            arrays[f"qweights/{layer.name}/kernel"] = qk
            if qb is not None:
                arrays[f"qweights/{layer.name}/bias"] = qb
            info["kernel_quantizer"] = quantizer_info(
                getattr(layer, "kernel_quantizer_internal", None)
            )
            info["bias_quantizer"] = quantizer_info(getattr(layer, "bias_quantizer_internal", None))
            info["activation"] = str(getattr(layer.activation, "__name__", layer.activation))
            if hasattr(layer, "batchnorm"):
                bn = layer.batchnorm
                info["batchnorm"] = {
                    "epsilon": float(bn.epsilon),
                    "folding_mode": getattr(layer, "folding_mode", None),
                    "ema_freeze_delay": getattr(layer, "ema_freeze_delay", None),
                    "implementation": qdbn_impl,
                    "fold": "kernel_q(inv*W), bias_q(inv*(b-moving_mean)+beta), "
                    "inv=tf.math.rsqrt(moving_variance+eps)*gamma (float32)",
                }
            info["qweights_frac_bits"] = {
                "kernel": frac_bits_of(qk),
                "bias": None if qb is None else frac_bits_of(qb),
            }
            # exactness: float32 predict == exact integer arithmetic?
            act_linear = info["activation"] in ("linear", "None")
            fa, fk_ = frac_bits_of(src), frac_bits_of(qk)
            fb_ = 0 if qb is None else frac_bits_of(qb)
            if act_linear and None not in (fa, fk_, fb_):
                f_out = max(fa + fk_, fb_)
                acc = to_int(src, fa) @ to_int(qk, fk_)
                acc = acc * 2 ** (f_out - fa - fk_)
                if qb is not None:
                    acc = acc + to_int(qb, fb_)[None, :] * 2 ** (f_out - fb_)
                maxabs = int(np.abs(acc).max())
                exact = acc.astype(np.float64) / 2.0**f_out
                mism = int(np.sum(exact != out.astype(np.float64)))
                info["exact_check"] = {
                    "input_frac_bits": fa,
                    "output_grid": f"2^-{f_out}",
                    "max_abs_acc_bits": maxabs.bit_length(),
                    "float32_equals_integer_result": mism == 0,
                    "mismatches": mism,
                }
                checks[f"{layer.name}: float32 == integer arithmetic"] = mism == 0
            else:
                info["exact_check"] = "not applicable (non-linear activation or off-grid input)"
        elif cls == "QActivation":
            q = layer.quantizer
            info["quantizer"] = quantizer_info(q)
            ref = relu_reference(src, q)
            if ref is not None:
                mism = int(np.sum(ref != out))
                bits, integer = int(q.bits), int(q.integer)
                scaled = src.astype(np.float64) * 2.0 ** (bits - integer)
                ties = (scaled - np.floor(scaled) == 0.5) & (scaled > 0) & (scaled < 2**bits - 1)
                info["exact_check"] = {
                    "matches_round_half_even_saturate": mism == 0,
                    "mismatches": mism,
                    "ties_seen": int(ties.sum()),
                    "saturated_fraction": float(np.mean(out == out.max())),
                    "zero_fraction": float(np.mean(out == 0)),
                }
                checks[f"{layer.name}: == closed-form quantized_relu"] = mism == 0
        else:
            info["config"] = {
                k: _s(v) for k, v in layer.get_config().items() if k in ("activation", "axis")
            }
        info["output_frac_bits"] = frac_bits_of(out)
        layer_meta.append(info)

    n_trace = min(int(cfg["trace_samples"]), len(x))
    for layer in layers:
        arrays[f"layer/{layer.name}"] = trace[layer.name][:n_trace]

    # storage: float16 only where exact
    stored = {}
    for k, v in arrays.items():
        stored[k] = maybe_float16(v) if (k.startswith("layer/") or k.startswith("qweights/")) else v
    dtypes = {k: str(v.dtype) for k, v in stored.items()}

    meta = {
        "model": name,
        "model_file": cfg["path"],
        "model_sha256": sha256(path),
        "keras_version_saved": saved_keras_version(path),
        "versions": versions,
        "command": " ".join([Path(sys.executable).name] + sys.argv),
        "seed": SEED,
        "rng": "numpy.random.default_rng(seed), one generator per model",
        "n_samples": int(args.n),
        "trace_samples": n_trace,
        "trace_note": "layer/<name>[i] is the output for x[i], i < trace_samples; "
        "checks ran on all n_samples",
        "input": cfg["input"],
        "x_type": cfg["x_type"],
        "x_grid": f"2^-{cfg['input']['frac_bits']}",
        "x_range_seen": [float(x.min()), float(x.max())],
        "predict": {"batch_size": int(args.batch_size)},
        "logits_layer": cfg["logits_layer"],
        "layers": layer_meta,
        "checks": checks,
        "dtypes": dtypes,
        "storage_note": "float16 arrays are exact copies of the float32 values",
    }
    stored["meta"] = np.array(json.dumps(meta, indent=1, sort_keys=False))
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{name}.npz"
    np.savez_compressed(target, **stored)
    size_mb = target.stat().st_size / 1e6
    status = "OK" if all(checks.values()) else "CHECKS FAILED"
    print(
        f"{name}: {target} {size_mb:.2f} MB, {len(stored)} arrays, "
        f"load {t_load:.1f}s predict {t_predict:.1f}s trace {t_trace:.1f}s, {status}"
    )
    for k, ok in checks.items():
        if not ok:
            print(f"  FAILED: {k}")
    if size_mb > MAX_FILE_MB:
        print(f"  warning: {target.name} is larger than {MAX_FILE_MB} MB")
    return {"file": str(target), "mb": size_mb, "checks": checks}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--models", type=Path, default=Path("../shared/models"), help="shared models folder"
    )
    p.add_argument("--out", type=Path, default=Path("tests/data/qkeras"))
    p.add_argument(
        "--only", nargs="*", choices=sorted(MODELS), help="models to process (default: all)"
    )
    p.add_argument("--n", type=int, default=N_SAMPLES)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument(
        "--qdbn",
        choices=["script", "qkeras"],
        default="script",
        help="QDenseBatchnorm implementation: this script's (default) or the installed qkeras's",
    )
    args = p.parse_args(argv)

    try:
        import h5py
        import qkeras
        import tensorflow as tf
    except ImportError as e:
        raise SystemExit(
            f"{e}: run this with the QKeras venv's python (see the module docstring)"
        ) from None

    try:
        import keras

        keras_version = keras.__version__
    except Exception:  # noqa: BLE001
        keras_version = None
    if not str(keras_version).startswith("2."):
        raise SystemExit(
            f"keras {keras_version}: QKeras needs Keras 2; run this with the QKeras venv's "
            "python (see the module docstring)"
        )
    try:
        from importlib.metadata import version

        qkeras_version = version("qkeras")
    except Exception:  # noqa: BLE001
        qkeras_version = getattr(qkeras, "__version__", None)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    versions = {
        "qkeras": qkeras_version,
        "tensorflow": tf.__version__,
        "keras": keras_version,
        "numpy": np.__version__,
        "h5py": h5py.__version__,
        "python": platform.python_version(),
        "TF_USE_LEGACY_KERAS": os.environ.get("TF_USE_LEGACY_KERAS"),
    }
    failed = False
    for name in args.only or list(MODELS):
        res = process_model(name, MODELS[name], args.models, args.out, args, versions)
        failed |= not all(res["checks"].values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
