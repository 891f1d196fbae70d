"""Worst-case error propagation shared by the ops' ``error_bound`` methods.

Each op bounds ``|built value - reference value|`` of its output from its inputs' bounds (see
:mod:`rtlgen.importers._errors` for the whole scheme). ``ctx`` gives what the importer knew:
``ctx.graph``, ``ctx.bounds`` (exact mantissa bounds per tensor), ``ctx.mag`` (largest built
magnitude per tensor), ``ctx.weights`` (per node: error of quantized float weights and biases) and
``ctx.local`` (per node: error it adds by itself).
"""

from __future__ import annotations

import math
import re

import numpy as np

from rtlgen.fixed import FixedType

__all__ = ["rounding_error", "magnitude", "lipschitz", "pwl_error", "weights_error"]


def rounding_error(src_frac: int | None, dst: FixedType) -> float:
    """Worst-case error of casting a value with ``src_frac`` fractional bits (None: a real number) to ``dst``."""
    if src_frac is not None and dst.frac >= src_frac:
        return 0.0
    step = 2.0**-dst.frac
    if dst.rounding in ("TRN", "TRN_ZERO"):
        return step - (2.0**-src_frac if src_frac is not None else 0.0)
    return step / 2


def magnitude(t, bounds) -> float:
    lo, hi = bounds[t.name]
    m = max(abs(int(min(lo))), abs(int(max(hi))))
    return m * 2.0**-t.type.frac * t.scale


def lipschitz(function: str, reach: float) -> float:
    """Largest slope of a table's float function (``reach``: largest input magnitude, for exp)."""
    name = function.split("(")[0]
    alpha = re.search(r"alpha=([-0-9.e+]+)", function)
    alpha = float(alpha.group(1)) if alpha else 1.0
    if name == "sigmoid":
        return 0.25
    if name in ("tanh", "softplus", "softsign", "hard_tanh"):
        return 1.0
    if name == "elu":
        return max(1.0, abs(alpha))
    if name == "selu":
        from .activation import _SELU_ALPHA, _SELU_SCALE

        return _SELU_SCALE * _SELU_ALPHA
    if name == "exp":
        return math.exp(reach)
    if name == "hard_sigmoid":
        return 1 / 6 if "keras3" in function or "variant" not in function else 0.2
    return math.inf


def pwl_error(op, src, dst, bounds, e) -> float:
    """``L * e + max |built - float function|`` over the input grid (+ the jump at the knot if ``e`` > 0)."""
    c = {k: getattr(op, k) for k in ("slope_hi", "bias_hi", "slope_lo", "bias_lo", "knot", "lower", "upper")}
    n = src.size
    arr = {k: (None if v is None else np.broadcast_to(np.asarray(v, dtype=np.float64), src.shape).reshape(-1)) for k, v in c.items()}
    L = float(max(np.abs(arr["slope_hi"]).max(), np.abs(arr["slope_lo"]).max()))
    jump = float(np.abs(arr["bias_hi"] - arr["bias_lo"]).max()) if e > 0 else 0.0
    lo, hi = bounds[src.name]
    lo_m, hi_m = int(min(lo)), int(max(hi))
    if (hi_m - lo_m + 1) * n <= 1 << 22:
        xm = np.arange(lo_m, hi_m + 1, dtype=np.int64)
        X = np.repeat(xm[:, None], n, axis=1)
        y = dst.type.to_float(op.golden(X, src, dst))
        x = src.type.to_float(X)
        d = x - arr["knot"]
        f = np.where(d > 0, arr["slope_hi"] * d + arr["bias_hi"], arr["slope_lo"] * d + arr["bias_lo"])
        if arr["lower"] is not None:
            f = np.maximum(f, arr["lower"])
        if arr["upper"] is not None:
            f = np.minimum(f, arr["upper"])
        own = float(np.abs(y - f).max(initial=0.0))
    else:
        # Constants rounded to const_type move a piece by at most |dslope| * |x - knot| + |dbias|,
        # then the output cast rounds once.
        t = op.const_type
        q = 2.0 ** -(t.frac + 1) if t.rounding not in ("TRN", "TRN_ZERO") else 2.0**-t.frac
        x_max = max(abs(lo_m), abs(hi_m)) * 2.0**-src.type.frac
        k_max = float(np.abs(arr["knot"]).max())
        # A rounded knot can also pick the other piece for inputs between the two knots.
        pieces = float(np.abs(arr["bias_hi"] - arr["bias_lo"]).max()) + float(np.abs(arr["slope_hi"] - arr["slope_lo"]).max()) * q
        own = q * (x_max + k_max + 1) + L * q + q + pieces + rounding_error(None, dst.type)
    return L * e + own + jump




def weights_error(ctx, node, op, src, dst, e) -> float:
    """A sum of products (Dense, Conv): input error through the weights, quantized weights and
    biases, products rounded onto an accumulator grid."""
    bounds = ctx.bounds
    w = np.abs(np.asarray(op.weight, dtype=np.float64))
    wfrac = dst.type.frac - src.type.frac + op.product_shift
    lo, hi = bounds[node.inputs[0]]
    step = 2.0**-src.type.frac * src.scale
    lanes = np.maximum(np.abs(np.asarray(lo, dtype=np.float64)), np.abs(np.asarray(hi, dtype=np.float64))) * step
    mag = np.minimum(lanes, ctx.mag[node.inputs[0]]) + e
    if op.accum is not None and op.product_shift > 0:
        prod = rounding_error(None, op.accum)
    else:
        prod = 0.0
    dw, db = ctx.weights.get(node.name, (None, None))
    if op.weight.ndim == 2:  # Dense
        total = (w * 2.0**-wfrac).sum(axis=0) * e + np.count_nonzero(op.weight, axis=0) * prod
        if dw is not None:
            # An exact weight (dw = 0) adds nothing, even on an unbounded input (0 * inf).
            with np.errstate(invalid="ignore"):
                total = total + np.nan_to_num(dw * mag[:, None], nan=0.0).sum(axis=0)
    else:
        kh, kw, cin, c2 = op.weight.shape
        axes = (0, 1) if op.depthwise else (0, 1, 2)
        total = (w * 2.0**-wfrac).sum(axis=axes).reshape(-1) * e + np.count_nonzero(op.weight, axis=axes).reshape(-1) * prod
        if dw is not None:
            total = total + dw.sum(axis=axes).reshape(-1) * float(mag.max(initial=0.0))
    if db is not None:
        total = total + db
    return float(np.max(total, initial=0.0))
