"""hls4ml's arithmetic for float layers, in one place for every model format.

A float model (Keras without quantizers, float ONNX) gets its fixed-point types from the
configuration exactly as hls4ml assigns them, whatever file it came from:

* the network input takes the input layer's ``result`` type (:func:`input_type`);
* weights and biases are printed with as many decimals as their type has fractional bits and read
  back (hls4ml's weight files), then converted with the type's rounding and overflow
  (:func:`float_weights`);
* every product is rounded onto the ``accum`` grid and the sum wraps to its width (``accum: auto``
  keeps sums exact);
* the layer's output is cast to its ``result`` type (``auto``: exact, capped at
  ``Model.Precision.maximum`` bits) (:func:`result_type`);
* a ReLU after such a layer casts to its own ``result`` type (:func:`relu_type`).

:class:`Precisions` is the importers' only view of the configuration: every type, table size and
softmax choice a layer gets is asked of it by layer name and kind, so the precision rules live here
and nowhere else (``tests/test_architecture.py`` checks that no other importer module reads a
:class:`~rtlgen.config.Config`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rtlgen.config import Config
from rtlgen.fixed import FixedType, cast

__all__ = ["Precisions", "FloatWeights", "input_type", "float_weights", "result_type", "relu_type", "hls4ml_text", "dyadic_frac",
           "table_type"]


def input_type(config: Config, name: str) -> FixedType:
    """The network input's type: the input layer's ``result`` (``input`` where only that is given)."""
    if config.has_precision(name, "result", "InputLayer"):
        return config.precision(name, "result", "InputLayer")
    return config.precision(name, "input") if config.has_precision(name, "input") else config.precision(name, "result")


def hls4ml_text(values, t: FixedType) -> np.ndarray:
    """Float weights as hls4ml hands them to its C++: printed with as many decimals as ``t`` has
    fractional bits and read back (then converted with ``t``'s own rounding and overflow)."""
    digits = max(t.frac, 0)
    text = np.array([float(f"{float(v):.{digits}f}") for v in np.asarray(values, dtype=np.float32).ravel()])
    return text.reshape(np.shape(values))


def dyadic_frac(v: float) -> int:
    """Fractional bits of a float's exact binary value."""
    from fractions import Fraction

    return Fraction(v).denominator.bit_length() - 1


@dataclass
class FloatWeights:
    """A float layer's weights and bias as mantissas.

    ``weight`` has ``wfrac`` fractional bits; ``bias`` is at the output grid (the accumulator's
    when ``accum`` is set, else input frac + ``wfrac``); ``shift`` rounds each product onto the
    accumulator grid. ``weight_error``/``bias_error`` are what quantizing changed (for error bounds).
    """

    weight: np.ndarray
    wfrac: int
    bias: np.ndarray
    accum: FixedType | None
    shift: int
    weight_error: np.ndarray | None = None
    bias_error: np.ndarray | None = None
    # One line per parameter kind whose float values lie outside its configured type's range.
    out_of_range: list = field(default_factory=list)


def float_weights(
    config: Config, name: str, layer_type: str, kernel, bias, in_frac: int, *, weight_var: str = "weight", accum: bool = True
) -> FloatWeights:
    """Quantize a float layer's ``kernel`` (any shape) and per-output ``bias`` with the configured
    ``weight`` (``weight_var``: ``scale`` for a batch normalization), ``bias`` and ``accum`` types of
    layer ``name`` (``accum=False``: the layer has no accumulator, as hls4ml's batch normalization).
    Raises ValueError for an accumulator that saturates (its result would depend on the order of
    summation)."""
    kernel0, bias0 = np.asarray(kernel, dtype=np.float64), np.asarray(bias, dtype=np.float64).ravel()
    ktype = config.precision(name, weight_var, layer_type)
    btype = config.precision(name, "bias", layer_type)
    accum = config.precision(name, "accum", layer_type, auto=True) if accum else None
    for what, values in ((weight_var, kernel0), ("bias", bias0)):
        bad = int(np.count_nonzero(~np.isfinite(values)))
        if bad:
            raise ValueError(
                f"{bad} of its {values.size} {what} values are not finite (NaN or infinity); "
                f"the model's parameters must be finite numbers: retrain or repair the model"
            )
    wm, wfrac = ktype.quantize(hls4ml_text(kernel0, ktype)), ktype.frac
    bm, bfrac = btype.quantize(hls4ml_text(bias0, btype)).astype(object), btype.frac
    fw = _place(wm, wfrac, bm, bfrac, accum, in_frac, kernel0, bias0)
    fw.out_of_range = [
        line
        for what, values, t in ((weight_var, kernel0, ktype), ("bias", bias0, btype))
        if (line := out_of_range(what, values, t))
    ]
    return fw


def out_of_range(what: str, values, t: FixedType) -> str | None:
    """One line saying how many of ``values`` lie outside ``t``'s range and the type that holds them
    all (same fractional bits), or None when every value fits."""
    v = np.asarray(values, dtype=np.float64).ravel()
    lo, hi = t.to_float(t.min_mantissa), t.to_float(t.max_mantissa)
    outside = (v < lo) | (v > hi)
    n = int(np.count_nonzero(outside))
    if not n:
        return None
    signed = t.signed or bool(v.min() < 0)
    integer = t.integer
    while True:
        need = FixedType(integer + t.frac, integer, signed)
        if need.to_float(need.min_mantissa) <= v.min() and v.max() <= need.to_float(need.max_mantissa):
            break
        integer += 1
    action = "saturated" if t.overflow.startswith("SAT") else "wrapped"
    return (
        f"{n} of {v.size} {what} values lie outside {t} (range [{lo:g}, {hi:g}]) and were {action}; "
        f"they span [{v.min():.6g}, {v.max():.6g}], which needs {need}"
    )


def exact_weights(wm, wfrac: int, bias, in_frac: int) -> FloatWeights:
    """A quantized layer's weight mantissas with a float bias taken exactly (its binary value)."""
    b = np.asarray(bias, dtype=np.float64).ravel().astype(np.float32).astype(np.float64)
    bfrac = max((dyadic_frac(v) for v in b), default=0)
    bm = np.array([int(round(v * 2.0**bfrac)) for v in b], dtype=object)
    return _place(wm, wfrac, bm, bfrac, None, in_frac)


def typed_weights(wm, wfrac: int, bm, bfrac: int, in_frac: int) -> FloatWeights:
    """A quantized layer's weight and bias mantissas, summed exactly."""
    return _place(wm, wfrac, np.asarray(bm, dtype=object), bfrac, None, in_frac)


def _place(wm, wfrac, bm, bfrac, accum, in_frac, kernel0=None, bias0=None) -> FloatWeights:
    out_frac = in_frac + wfrac
    shift = 0
    if accum is not None:
        if accum.overflow != "WRAP":
            raise ValueError(f"accumulator type {accum} must wrap (WRAP): saturating accumulators depend on summation order")
        if accum.frac > out_frac:  # products are exact on a finer accumulator grid
            wm = wm << (accum.frac - out_frac)
            wfrac += accum.frac - out_frac
            out_frac = accum.frac
        shift = out_frac - accum.frac
        bias_m = cast(np.asarray(bm, dtype=object), bfrac, accum).astype(np.int64)
    else:
        if bfrac > out_frac:  # finer bias: move the weights onto the bias grid
            wm = wm << (bfrac - out_frac)
            wfrac += bfrac - out_frac
            out_frac = bfrac
        bias_m = np.array([int(b) << (out_frac - bfrac) for b in np.ravel(bm)], dtype=np.int64)
    fw = FloatWeights(wm, wfrac, bias_m, accum, shift)
    if kernel0 is not None:
        bias_frac = accum.frac if accum is not None else out_frac
        fw.weight_error = np.abs(kernel0 - np.asarray(wm, dtype=np.float64) * 2.0**-wfrac)
        fw.bias_error = np.abs(bias0 - bias_m.astype(np.float64) * 2.0**-bias_frac)
    return fw


def scale_shift(builder, config: Config, name: str, x: str, scale, shift, *, source: str) -> str:
    """A float batch normalization on its own, ``y = x * scale + shift`` per channel (the last
    axis), as hls4ml computes it: ``scale`` and ``bias`` in their configured types, the exact
    product plus the bias cast to the layer's ``result`` type. Images become a depthwise 1x1
    convolution, vectors a dense layer with diagonal weights: the same adder graphs as any layer."""
    from rtlgen.ir.ops.spatial import Conv

    xt = builder.graph.tensors[x]
    fw = float_weights(config, name, "BatchNormalization", np.asarray(scale, dtype=np.float64).reshape(1, -1), shift,
                       xt.type.frac, weight_var="scale", accum=False)  # fmt: skip
    attrs = {"source": source, "float_weights": True}
    builder.errors.out_of_range[name] = fw.out_of_range
    s = np.asarray(fw.weight).reshape(-1)
    if len(xt.shape) == 3:
        op = Conv(s.reshape(1, 1, -1, 1), fw.bias if np.any(fw.bias) else None, (1, 1), ((0, 0), (0, 0)), (1, 1), True)
        out = builder.conv(name, x, op, fw.wfrac, attrs=attrs)
        builder.errors.weights[name] = (fw.weight_error.reshape(1, 1, -1, 1), fw.bias_error)
    else:
        out = builder.dense(name, x, np.diag(s), fw.wfrac, fw.bias, attrs=attrs)
        builder.errors.weights[name] = (np.diag(fw.weight_error.reshape(-1)), fw.bias_error)
    rtype = result_type(config, name, "BatchNormalization", builder.graph.tensors[out].type, builder.graph.notes)
    if rtype is not None:
        out = builder.requant(name + "_result", out, rtype, attrs={"source": "config"})
    return out


def result_type(config: Config, name: str, layer_type: str, exact: FixedType, notes: list) -> FixedType | None:
    """The type a float layer's output is cast to; None keeps the exact sums. An ``auto`` result
    wider than ``Model.Precision.maximum`` keeps every integer bit and drops the lowest fraction bits."""
    result = config.precision(name, "result", layer_type, auto=True)
    cap = config.maximum()
    if result is None and cap is not None and exact.width > cap.width:
        result = FixedType(cap.width, exact.integer, exact.signed)
        notes.append(f"{name}: auto result {exact} capped at {cap.width} bits: {result}")
    return result


def relu_type(config: Config, relu_name: str) -> FixedType | None:
    """hls4ml's ReLU after a float layer casts to its own result type (the model default unless
    configured; ``auto``: None, the exact non-negative part of its input)."""
    return config.precision(relu_name, "result", "Activation", auto=True)


def table_type(accum: FixedType) -> FixedType:
    """A recurrent layer's activation output type where ``table`` is not set: hls4ml's cell casts
    every activation into ``accum_t``, so its grid follows the precision (a fixed ``fixed<18,8>``
    would cap a wider model at 10 fractional bits); signed, with at least one integer bit, so
    tanh's and sigmoid's outputs fit."""
    integer = max(accum.integer, 1)
    return FixedType(accum.frac + integer, integer, True, accum.rounding, accum.overflow)


class Precisions:
    """The configuration as the importers see it: the type (or table, or softmax choice) a layer
    gets, asked by the layer's name and hls4ml kind. Wraps one :class:`Config`."""

    def __init__(self, config: Config | None = None):
        self._config = config if config is not None else Config()

    # Float layers: hls4ml's arithmetic.
    def input_type(self, name: str) -> FixedType:
        return input_type(self._config, name)

    def float_weights(self, name, layer_type, kernel, bias, in_frac, **kw) -> FloatWeights:
        return float_weights(self._config, name, layer_type, kernel, bias, in_frac, **kw)

    def result_type(self, name, layer_type, exact: FixedType, notes: list) -> FixedType | None:
        return result_type(self._config, name, layer_type, exact, notes)

    def relu_type(self, relu_name: str) -> FixedType | None:
        return relu_type(self._config, relu_name)

    def scale_shift(self, builder, name, x, scale, shift, *, source: str) -> str:
        return scale_shift(builder, self._config, name, x, scale, shift, source=source)

    def auto(self, name: str, var: str, layer_type: str) -> FixedType | None:
        """``var`` of layer ``name`` (``auto``: None, the exact type)."""
        return self._config.precision(name, var, layer_type, auto=True)

    def typed(self, name: str, var: str, layer_type: str) -> FixedType:
        """``var`` of layer ``name``, the model default where it is not configured."""
        return self._config.precision(name, var, layer_type)

    # Quantized layers keep their own types; a ``result`` set on the layer by name still casts.
    def explicit_result(self, name: str, layer_type: str) -> FixedType | None:
        level = self._config.layer_name.get(name) or {}
        p = level.get("Precision")
        p = p.get("result") if isinstance(p, dict) else p
        # hls4ml's "auto" (what config_from_keras_model writes) asks for the derived type: no cast.
        if not isinstance(p, str) or p.strip().lower() == "auto":
            return None
        if not self._config.has_precision(name, "result", layer_type):
            return None
        return self._config.precision(name, "result", layer_type)

    # Recurrent layers: hls4ml's keys, plus rtlgen's state and cell types (``result`` unless set).
    def recurrent(self, name: str, layer_type: str) -> dict:
        """Every type of a float SimpleRNN, LSTM or GRU (see :mod:`._recurrent`)."""
        c = self._config

        def explicit(var):
            for level in (c.layer_name.get(name), c.layer_type.get(layer_type), c.model):
                p = (level or {}).get("Precision")
                if isinstance(p, dict) and var in p and str(p[var]).lower() != "auto":
                    return FixedType.parse(p[var])
            return None

        weight, bias = c.precision(name, "weight", layer_type), c.precision(name, "bias", layer_type)
        result, accum = c.precision(name, "result", layer_type), c.precision(name, "accum", layer_type)
        return {
            "weight": weight, "recurrent_weight": explicit("recurrent_weight") or weight,
            "bias": bias, "recurrent_bias": explicit("recurrent_bias") or bias,
            "accum": accum, "table": explicit("table") or table_type(accum),
            "result": result, "state": explicit("state") or result, "cell": explicit("cell") or result,
            "table_size": self.table_size(name, layer_type),
        }  # fmt: skip

    # Tables and softmax.
    def table_size(self, name: str, layer_type: str) -> int:
        c = self._config
        for level in (c.layer_name.get(name), c.layer_type.get(layer_type), c.model):
            if level and "TableSize" in level:
                return int(level["TableSize"])
        return 1024

    def softmax(self, name: str, layer_type: str) -> dict:
        """``make_softmax`` keywords: implementation, table sizes, and the types set by name."""
        c = self._config
        size = self.table_size(name, layer_type)
        kwargs = {"implementation": c.softmax_implementation(name, layer_type), "exp_table_size": size, "inv_table_size": size}
        if c.has_precision(name, "result", layer_type) and name in c.layer_name:
            kwargs["out_type"] = c.precision(name, "result", layer_type)
        p = (c.layer_name.get(name) or {}).get("Precision")
        for var in ("exp_table", "inv_table"):
            if isinstance(p, dict) and var in p:
                kwargs[f"{var}_t"] = FixedType.parse(p[var])
        return kwargs
