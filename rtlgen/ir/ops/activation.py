"""Activation functions as IR ops: lookup tables and exact piecewise-linear functions.

Two ops, both elementwise, both carrying their own golden model and hardware:

* :class:`Lut` looks every lane up in one table of output mantissas. :func:`make_lut` builds the
  table for a smooth function (sigmoid, tanh, softplus, softsign, elu, selu, exp, and the hard
  functions too) and records its worst-case error.
* :class:`Pwl` computes a two-piece linear function with optional clipping exactly, with its
  constants quantized once to a constant type. The builders :func:`relu`, :func:`relu6`,
  :func:`leaky_relu`, :func:`prelu`, :func:`thresholded_relu`, :func:`hard_sigmoid` and
  :func:`hard_tanh` return it for the usual activations.

Importing this module registers both ops with :func:`rtlgen.ir.register_op`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rtlgen.fixed import FixedType, align, cast, int_array
from rtlgen.ir.graph import register_op

from ._base import Op

__all__ = [
    "Lut",
    "make_lut",
    "LUT_FUNCTIONS",
    "Pwl",
    "DEFAULT_CONST_TYPE",
    "relu",
    "relu6",
    "leaky_relu",
    "prelu",
    "thresholded_relu",
    "hard_sigmoid",
    "hard_tanh",
]

# Inputs and outputs wider than this are not exact float64 values, so the float function and the
# error could not be evaluated exactly.
_FLOAT_BITS = 53
# Up to this input width the error is measured on every input mantissa.
_EXHAUSTIVE_BITS = 20

# SELU's constants as TensorFlow's and JAX's kernels use them (Keras' docs round them to 8 digits).
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def _hard_sigmoid(x, variant="keras3"):
    if variant == "keras3":
        return np.clip(x + 3.0, 0.0, 6.0) / 6.0  # relu6(x + 3) / 6
    return np.clip(0.2 * x + 0.5, 0.0, 1.0)  # Keras 2 and hls4ml


def _elu(x, alpha=1.0):
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0.0)))


# name -> (float64 function, its parameters with their defaults). Every one is monotonic, which
# the error bound for wide inputs relies on (see make_lut).
LUT_FUNCTIONS = {
    "sigmoid": (lambda x: np.exp(-np.logaddexp(0.0, -x)), {}),
    "tanh": (np.tanh, {}),
    "softplus": (lambda x: np.logaddexp(0.0, x), {}),
    "softsign": (lambda x: x / (1.0 + np.abs(x)), {}),
    "elu": (_elu, {"alpha": 1.0}),
    "selu": (lambda x: _SELU_SCALE * _elu(x, _SELU_ALPHA), {}),
    "exp": (np.exp, {}),
    "hard_sigmoid": (_hard_sigmoid, {"variant": "keras3"}),
    "hard_tanh": (lambda x: np.clip(x, -1.0, 1.0), {}),
}

_HARD_SIGMOID_VARIANTS = ("keras3", "keras2", "hls4ml")
_SAMPLES = ("midrange", "midpoint", "lowest")
_SPANS = ("input", "best")
_ROMS = ("memory", "logic")


def _lut_function(function: str, params: dict | None):
    """The float64 function and a name for reports, with ``params`` checked."""
    if function not in LUT_FUNCTIONS:
        raise ValueError(
            f"activation function must be one of {', '.join(LUT_FUNCTIONS)}, not {function!r}"
        )
    fn, defaults = LUT_FUNCTIONS[function]
    params = dict(params or {})
    for key in params:
        if key not in defaults:
            allowed = ", ".join(defaults) or "none"
            raise ValueError(f"{function} has no parameter {key!r} (parameters: {allowed})")
    if function == "hard_sigmoid" and params.get("variant", "keras3") not in _HARD_SIGMOID_VARIANTS:
        raise ValueError(
            f"hard_sigmoid variant must be one of {', '.join(_HARD_SIGMOID_VARIANTS)}, "
            f"not {params['variant']!r}"
        )
    if "alpha" in params:
        alpha = params["alpha"]
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha):
            raise ValueError(f"{function} alpha must be a finite number, not {alpha!r}")
        params["alpha"] = float(alpha)
    merged = {**defaults, **params}
    name = function + ("(" + ", ".join(f"{k}={v}" for k, v in params.items()) + ")" if params else "")

    def f(x):
        with np.errstate(over="ignore"):
            return fn(np.asarray(x, dtype=np.float64), **merged)

    return f, name


def _check_float_type(t: FixedType, what: str) -> None:
    if t.width > _FLOAT_BITS:
        raise ValueError(
            f"{what} type {t} is wider than {_FLOAT_BITS} bits, so its values are not exact floats"
        )


@register_op
@dataclass
class Lut(Op):
    """Table lookup: ``y = table[clip((x >> shift) - offset, 0, len(table) - 1)]`` in every lane.

    ``x`` is the input mantissa (``>>`` is a floor shift), ``table`` holds output mantissas, which
    must fit the output type. ``function`` and ``max_error`` (the worst-case ``|y - f(x)|`` in real
    units over the reachable inputs, or None when unknown) only feed reports.

    Hardware (:class:`rtlgen.layers._activation.LutLayer`): with ``rom="memory"`` a ROM with a
    synchronous read port per lane, latency 1, stalls with the output; with ``rom="logic"`` a
    multiplexer tree, combinational, latency 0 (for small tables: its Verilog grows with the table
    size times the number of lanes).
    """

    table: np.ndarray
    shift: int = 0
    offset: int = 0
    function: str = ""
    max_error: float | None = None
    rom: str = "memory"
    # The same maximum over the inputs whose f(x) lies within the output type's range (None: unknown).
    fit_error: float | None = None

    def __post_init__(self):
        table = np.asarray(self.table)
        if table.ndim != 1 or table.size == 0:
            raise ValueError(f"table must be a non-empty 1-D array, not one of shape {table.shape}")
        if table.dtype.kind not in "iuO" or (
            table.dtype.kind == "O" and not all(isinstance(v, (int, np.integer)) for v in table)
        ):
            raise ValueError(f"table must hold integer mantissas, not {table.dtype}")
        self.table = int_array(table)
        for name in ("shift", "offset"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise ValueError(f"{name} must be an integer, not {v!r}")
            setattr(self, name, int(v))
        if self.shift < 0:
            raise ValueError(f"shift must be non-negative, not {self.shift}")
        if self.max_error is not None:
            self.max_error = float(self.max_error)
        if self.fit_error is not None:
            self.fit_error = float(self.fit_error)
        if self.rom not in _ROMS:
            raise ValueError(f"rom must be one of {', '.join(_ROMS)}, not {self.rom!r}")

    def check_types(self, dst: FixedType) -> None:
        lo, hi = int(self.table.min()), int(self.table.max())
        if lo < dst.min_mantissa or hi > dst.max_mantissa:
            bad = lo if lo < dst.min_mantissa else hi
            raise ValueError(f"table entry {bad} does not fit the output type {dst}")

    def index(self, x) -> np.ndarray:
        """The table index of every input mantissa."""
        return np.clip((int_array(x) >> self.shift) - self.offset, 0, len(self.table) - 1)

    def error_bound(self, ctx, node, errs):
        from ._bounds import lipschitz, magnitude

        e = errs[0]
        own = self.fit_error if self.fit_error is not None else self.max_error
        reach = magnitude(ctx.graph.tensors[node.inputs[0]], ctx.bounds) + e
        return lipschitz(self.function, reach) * e + (math.inf if own is None else own)

    def golden(self, x, src, dst):
        self.check_types(dst.type)
        return self.table[self.index(x)]


def make_lut(
    function: str,
    src_type: FixedType | str,
    out_type: FixedType | str,
    *,
    table_size: int = 1024,
    params: dict | None = None,
    sample: str = "midrange",
    span: str = "input",
) -> Lut:
    """A :class:`Lut` for ``function`` from inputs of ``src_type`` to outputs of ``out_type``.

    The input range ``[src_type.min, src_type.max]`` is cut into ``min(2**src_type.width,
    table_size)`` buckets of ``2**shift`` consecutive mantissas (``shift`` the smallest that fits;
    the clip in :class:`Lut` never acts). Each entry is ``out_type.quantize(v)`` (its rounding; ``v``
    is first clipped to the output range, so entries saturate and never wrap), where ``v`` is, with
    ``a`` and ``b`` the bucket's lowest and highest input:

    * ``sample="midrange"`` (default): ``(f(a) + f(b)) / 2``, the constant closest to ``f`` over the
      bucket, since every function here is monotonic;
    * ``"midpoint"``: ``f((a + b) / 2)``;
    * ``"lowest"``: ``f(a)``, as hls4ml's tables.

    When a bucket is a single input all three are ``f(x)``: the table is then ``f`` rounded.

    ``span="best"``: the table covers only the window of at most ``table_size`` buckets (its
    bucket width a power of two mantissas, its place balancing the two tails) with the smallest
    ``fit_error``, then ``max_error``, over the whole input type; inputs outside it clamp to the
    end entries, whose ``midrange`` then spans those inputs too. A saturating function (sigmoid,
    tanh) on a wide input type gets fine buckets where it changes, not coarse ones over its tails.

    ``fit_error`` is the same maximum over the inputs where ``f(x)`` lies within ``out_type``'s range
    (what is left when no output overflows or saturates).

    ``max_error`` is ``max |y(x) - f(x)|`` over every input mantissa when ``src_type`` is at most 20
    bits wide; wider, it is the same maximum taken over the lowest and highest input of each bucket,
    which is still exact because ``f`` is monotonic and the output constant over a bucket. ``f`` is
    evaluated in float64 (numpy), so the bound is exact to float64 rounding.

    ``params``: ``{"alpha": 1.0}`` for elu; ``{"variant": "keras3"}`` for hard_sigmoid (Keras 3,
    ``relu6(x + 3) / 6``) or ``"keras2"``/``"hls4ml"`` (``clip(0.2 x + 0.5, 0, 1)``). SELU uses
    the constants of TensorFlow's and JAX's kernels.
    """
    src_type, out_type = FixedType.parse(src_type), FixedType.parse(out_type)
    f, name = _lut_function(function, params)
    if (
        isinstance(table_size, bool)
        or not isinstance(table_size, (int, np.integer))
        or table_size < 1
        or table_size & (table_size - 1)
    ):
        raise ValueError(f"table size must be a power of two, not {table_size}")
    if sample not in _SAMPLES:
        raise ValueError(f"sample must be one of {', '.join(_SAMPLES)}, not {sample!r}")
    if span not in _SPANS:
        raise ValueError(f"span must be one of {', '.join(_SPANS)}, not {span!r}")
    _check_float_type(src_type, "input")
    _check_float_type(out_type, "output")

    lo, hi = src_type.min_mantissa, src_type.max_mantissa
    if span == "best":
        shift, offset, n = _best_window(f, src_type, out_type, int(table_size), sample)
    else:
        shift = max(0, src_type.width - (int(table_size).bit_length() - 1))
        offset = lo >> shift
        n = (hi >> shift) - offset + 1
    lut, fa, fb, err = _table(f, name, src_type, out_type, shift, offset, n, sample)

    top, bottom = float(out_type.max), float(out_type.min)
    if src_type.width <= _EXHAUSTIVE_BITS:
        x = np.arange(lo, hi + 1, dtype=np.int64)
        fx = f(src_type.to_float(x))
        err = np.abs(out_type.to_float(lut.table[lut.index(x)]) - fx)
        fit = err[(fx >= bottom) & (fx <= top)]
    else:
        fit = _fit_errors(out_type.to_float(lut.table), fa, fb, out_type)
    lut.max_error = float(err.max())
    lut.fit_error = float(fit.max(initial=0.0))
    return lut


def _table(f, name, src: FixedType, out: FixedType, shift: int, offset: int, n: int, sample: str):
    """``(lut, fa, fb, err)``: the table of ``n`` buckets from bucket ``offset`` on, ``f`` at the
    lowest and highest input reaching each entry (the end entries take every input clamped to
    them), and each entry's worst error over those inputs (exact: ``f`` is monotonic)."""
    lo, hi = src.min_mantissa, src.max_mantissa
    k = np.arange(n, dtype=np.int64)
    first = np.maximum((k + offset) << shift, lo)  # lowest and highest input of each bucket
    last = np.minimum(((k + offset + 1) << shift) - 1, hi)
    a, b = first.copy(), last.copy()
    a[0], b[-1] = lo, hi
    fa, fb = f(src.to_float(a)), f(src.to_float(b))
    if sample == "midrange":
        v = 0.5 * fa + 0.5 * fb  # halves first: no overflow for huge values
    elif sample == "midpoint":
        v = f(src.to_float(first) * 0.5 + src.to_float(last) * 0.5)
    else:
        v = f(src.to_float(first))
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{name} is not finite in float64 over the range of {src}")
    # Entries saturate at the output range whatever its overflow mode: a bucket whose function
    # leaves the range (or straddles its edge) holds the nearest representable value, never a wrap.
    v = np.clip(v, float(out.min), float(out.max))
    lut = Lut(out.quantize(v), shift=shift, offset=offset, function=name)
    y = out.to_float(lut.table)
    return lut, fa, fb, np.maximum(np.abs(y - fa), np.abs(y - fb))


def _fit_errors(y, fa, fb, out: FixedType) -> np.ndarray:
    """Each entry's worst error over its inputs whose ``f`` lies within ``out``'s range."""
    bottom, top = float(out.min), float(out.max)
    # Over a bucket's fitting inputs f lies between its ends clipped to the output range.
    ca, cb = np.clip(fa, bottom, top), np.clip(fb, bottom, top)
    some = ~(((fa > top) & (fb > top)) | ((fa < bottom) & (fb < bottom)))
    return np.maximum(np.abs(y - ca), np.abs(y - cb))[some]


def _best_window(f, src: FixedType, out: FixedType, size: int, sample: str) -> tuple[int, int, int]:
    """``(shift, offset, entries)`` of the table of at most ``size`` entries with the smallest
    worst-case error over ``src`` (see :func:`make_lut`'s ``span``)."""
    lo, hi = src.min_mantissa, src.max_mantissa
    bottom, top = float(out.min), float(out.max)

    def g(m):
        return float(np.clip(f(src.to_float(np.int64(m))), bottom, top))

    best = None
    for shift in range(max(0, src.width - (size.bit_length() - 1)) + 1):
        b_lo, b_hi = lo >> shift, hi >> shift
        n = min(size, b_hi - b_lo + 1)
        starts = {b_lo}
        if n < b_hi - b_lo + 1:
            # The first entry spans f from the lowest input to its bucket's top, the last from its
            # bucket's bottom to the highest input: the smallest start where the first's spread
            # reaches the last's, or the one before it.
            a, z = b_lo, b_hi - n + 1
            while a < z:
                m = (a + z) // 2
                if abs(g(((m + 1) << shift) - 1) - g(lo)) >= abs(g(hi) - g((m + n - 1) << shift)):
                    z = m
                else:
                    a = m + 1
            starts = {a, max(a - 1, b_lo)}
        for start in sorted(starts):
            lut, fa, fb, err = _table(f, "", src, out, shift, start, n, sample)
            # Where f leaves the output range every table saturates alike: judge the rest first.
            key = (float(_fit_errors(out.to_float(lut.table), fa, fb, out).max(initial=0.0)), float(err.max()))
            if best is None or key < best[0]:
                best = (key, shift, start, n)
        if n == b_hi - b_lo + 1:
            break  # the whole input fits: coarser buckets only lose
    return best[1:]


# -- piecewise-linear activations -----------------------------------------------------------------

DEFAULT_CONST_TYPE = FixedType(18, 8, True, "RND_CONV")

_PWL_CONSTANTS = ("slope_hi", "bias_hi", "slope_lo", "bias_lo", "knot", "lower", "upper")


@register_op
@dataclass
class Pwl(Op):
    """A two-piece linear function with clipping, computed exactly, one final rounding.

    Per lane::

        v = slope_hi * (x - knot) + bias_hi    if x > knot
            slope_lo * (x - knot) + bias_lo    otherwise
        v = min(max(v, lower), upper)          (a bound that is None is absent)
        y = cast(v, dst.type)                  (dst's rounding, then its overflow)

    Every constant is a real number, or an array broadcast to the tensor's shape (per-lane values,
    as PReLU's ``alpha``), and is first quantized with ``const_type`` (its rounding; a constant
    outside ``const_type``'s range is an error). From there everything up to the final cast is
    exact: ``x - knot`` on the finer of the two grids, the product with the slope on that grid plus
    ``const_type.frac`` fractional bits, and the bias and bounds on the same grid.

    Hardware (:class:`rtlgen.layers._activation.PwlLayer`): combinational, latency 0; one constant
    multiplier per lane and piece (a shift when the slope is a power of two, nothing when it is 0).
    """

    slope_hi: float | np.ndarray = 1.0
    bias_hi: float | np.ndarray = 0.0
    slope_lo: float | np.ndarray = 1.0
    bias_lo: float | np.ndarray = 0.0
    knot: float | np.ndarray = 0.0
    lower: float | np.ndarray | None = None
    upper: float | np.ndarray | None = None
    const_type: FixedType = DEFAULT_CONST_TYPE
    function: str = ""

    def __post_init__(self):
        self.const_type = FixedType.parse(self.const_type)
        if self.const_type.frac < 0:
            raise ValueError(
                f"the constant type needs a non-negative number of fractional bits, not "
                f"{self.const_type} with {self.const_type.frac}"
            )
        for name in _PWL_CONSTANTS:
            v = getattr(self, name)
            if v is None and name in ("lower", "upper"):
                continue
            a = np.asarray(v)
            if a.dtype.kind not in "iuf" or not np.all(np.isfinite(a)):
                raise ValueError(f"{name} must be a finite number or array of them, not {v!r}")
            setattr(self, name, float(a) if a.ndim == 0 else a.astype(np.float64))

    def constants(self, shape: tuple[int, ...]) -> dict:
        """Every constant as mantissas of ``const_type``, one per lane of a tensor of ``shape``
        (``lower``/``upper`` are None when absent)."""
        t = self.const_type
        out = {}
        for name in _PWL_CONSTANTS:
            v = getattr(self, name)
            if v is None:
                out[name] = None
                continue
            try:
                v = np.broadcast_to(np.asarray(v, dtype=np.float64), shape).reshape(-1)
            except ValueError:
                raise ValueError(
                    f"{name} of shape {np.shape(v)} does not broadcast to the tensor shape {shape}"
                ) from None
            bad = v[(v < float(t.min)) | (v > float(t.max))]
            if bad.size:
                raise ValueError(
                    f"{name} {float(bad[0])} is outside the range [{float(t.min)}, {float(t.max)}] "
                    f"of the constant type {t}"
                )
            out[name] = int_array(t.quantize(v))
        if out["lower"] is not None and out["upper"] is not None and np.any(out["lower"] > out["upper"]):
            raise ValueError("lower bound above upper bound")
        return out

    def error_bound(self, ctx, node, errs):
        from ._bounds import pwl_error

        g = ctx.graph
        return pwl_error(self, g.tensors[node.inputs[0]], g.tensors[node.outputs[0]], ctx.bounds, errs[0])

    def golden(self, x, src, dst):
        c = self.constants(src.shape)
        x = int_array(x)
        shape = x.shape
        x = x.reshape(shape[0], -1)
        fs, fc = src.type.frac, self.const_type.frac
        g = max(fs, fc)  # grid of x - knot
        f = g + fc  # grid of the products, biases and bounds
        d = align(x, fs, g) - align(c["knot"], fc, g)

        def piece(slope, bias):
            return _mul(d, slope) + align(bias, fc, f)

        v = np.where(d > 0, piece(c["slope_hi"], c["bias_hi"]), piece(c["slope_lo"], c["bias_lo"]))
        if c["lower"] is not None:
            v = np.maximum(v, align(c["lower"], fc, f))
        if c["upper"] is not None:
            v = np.minimum(v, align(c["upper"], fc, f))
        return cast(int_array(v), f, dst.type).reshape(shape)


def _mul(a, b):
    """Exact elementwise product, leaving int64 for Python integers when it might not fit."""
    a, b = int_array(a), int_array(b)
    bound = int(np.abs(a).max(initial=0)) * int(np.abs(b).max(initial=0))
    if bound >= 1 << 62:
        a, b = a.astype(object), b.astype(object)
    return int_array(a * b)


def _number(name, v, *, minimum=None):
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number, not {v!r}")
    if minimum is not None and v < minimum:
        raise ValueError(f"{name} must be at least {minimum}, not {v}")
    return float(v)


def relu(*, max_value=None, negative_slope=0.0, threshold=0.0, const_type=DEFAULT_CONST_TYPE) -> Pwl:
    """Keras' ``ReLU(max_value, negative_slope, threshold)``: ``min(x, max_value)`` for
    ``x > threshold``, else ``negative_slope * (x - threshold)``. All three are non-negative, as
    Keras requires; ``max_value=None`` is no clipping."""
    negative_slope = _number("negative_slope", negative_slope, minimum=0)
    threshold = _number("threshold", threshold, minimum=0)
    if max_value is not None:
        max_value = _number("max_value", max_value, minimum=0)
    parts = [f"{k}={v}" for k, v in (("max_value", max_value), ("negative_slope", negative_slope), ("threshold", threshold)) if v]
    return Pwl(
        slope_hi=1.0, bias_hi=threshold, slope_lo=negative_slope, bias_lo=0.0, knot=threshold,
        upper=max_value, const_type=const_type, function=f"relu({', '.join(parts)})",
    )  # fmt: skip


def relu6(*, const_type=DEFAULT_CONST_TYPE) -> Pwl:
    """``min(max(x, 0), 6)``."""
    return relu(max_value=6.0, const_type=const_type)


def leaky_relu(alpha=0.3, *, const_type=DEFAULT_CONST_TYPE) -> Pwl:
    """``x`` for ``x > 0``, else ``alpha * x`` (Keras' ``LeakyReLU(negative_slope=alpha)``)."""
    alpha = _number("alpha", alpha)
    return Pwl(slope_lo=alpha, const_type=const_type, function=f"leaky_relu(alpha={alpha})")


def prelu(alpha, *, const_type=DEFAULT_CONST_TYPE) -> Pwl:
    """``x`` for ``x > 0``, else ``alpha * x`` with ``alpha`` an array broadcast to the tensor's
    shape (Keras' ``PReLU`` weights, whose shared axes have length 1)."""
    alpha = np.asarray(alpha, dtype=np.float64)
    return Pwl(slope_lo=alpha, const_type=const_type, function="prelu")


def thresholded_relu(theta=1.0, *, const_type=DEFAULT_CONST_TYPE) -> Pwl:
    """``x`` for ``x > theta``, else 0 (Keras 2's ``ThresholdedReLU``, hls4ml's)."""
    theta = _number("theta", theta)
    return Pwl(
        slope_hi=1.0, bias_hi=theta, slope_lo=0.0, bias_lo=0.0, knot=theta,
        const_type=const_type, function=f"thresholded_relu(theta={theta})",
    )  # fmt: skip


def hard_sigmoid(variant="keras3", *, const_type=DEFAULT_CONST_TYPE) -> Pwl:
    """``clip(slope * x + 0.5, 0, 1)`` with ``slope`` 1/6 (``"keras3"``: Keras 3's
    ``relu6(x + 3) / 6``) or 0.2 (``"keras2"`` or ``"hls4ml"``). The slope is quantized with
    ``const_type``; clipping to exactly 0 and 1 keeps the ends exact even when ``6 * slope`` is
    not 1."""
    if variant not in _HARD_SIGMOID_VARIANTS:
        raise ValueError(
            f"hard_sigmoid variant must be one of {', '.join(_HARD_SIGMOID_VARIANTS)}, not {variant!r}"
        )
    slope = 1.0 / 6.0 if variant == "keras3" else 0.2
    return Pwl(
        slope_hi=slope, bias_hi=0.5, slope_lo=slope, bias_lo=0.5, lower=0.0, upper=1.0,
        const_type=const_type, function=f"hard_sigmoid({variant})",
    )  # fmt: skip


def hard_tanh(*, const_type=DEFAULT_CONST_TYPE) -> Pwl:
    """``clip(x, -1, 1)``."""
    return Pwl(lower=-1.0, upper=1.0, const_type=const_type, function="hard_tanh")
