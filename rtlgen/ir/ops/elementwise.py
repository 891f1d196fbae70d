"""Element-wise ops: ReLU, requantization (casts) and multi-threshold activations."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rtlgen.fixed import (
    FAST_ROUNDING,
    FixedType,
    align,
    cast,
    float_carrier,
    float_overflow,
    float_round_shift,
    float_shift,
    int_array,
    shift_round,
)
from rtlgen.ir.graph import GraphError, register_op

from ._base import Op, check_same_shape
from ._bounds import rounding_error

__all__ = ["Relu", "Requant", "Threshold"]


@register_op
@dataclass
class Relu(Op):
    """``y = max(x, 0)``, same fractional bits."""

    def verify(self, name, ins, out):
        check_same_shape(name, ins, out)

    def golden(self, x, src, dst):
        return np.maximum(x, 0)

    def evaluate_float(self, xs, srcs, dst):
        return np.maximum(xs[0], xs[0].dtype.type(0))

    def error_bound(self, ctx, node, errs):
        return errs[0]

    def built_magnitude(self, ctx, node, own, m_in):
        return min(own, m_in)


def _data_magnitude(x: np.ndarray) -> int:
    """The largest magnitude in ``x`` (integer-valued)."""
    return int(max(float(x.max(initial=0)), -float(x.min(initial=0))))


@register_op
@dataclass
class Requant(Op):
    """Cast to ``type`` with its rounding and overflow modes.

    With ``lanes`` (one type string per lane, or ``None`` for a lane that is always zero) every lane
    is cast to its own type, as heterogeneous quantizers (HGQ2) do, and then expressed exactly in
    ``type``, which covers all of them.
    """

    type: FixedType
    lanes: list | None = None

    def lane_types(self) -> list:
        return [FixedType.parse(t) if t is not None else None for t in self.lanes]

    def verify(self, name, ins, out):
        check_same_shape(name, ins, out)

    def error_bound(self, ctx, node, errs):
        e = errs[0]
        src, dst = ctx.graph.tensors[node.inputs[0]], ctx.graph.tensors[node.outputs[0]]
        if node.attrs.get("source", "config") == "config":
            return e + rounding_error(src.type.frac, self.type) * src.scale
        # The model's own quantizer: exact on an exact input, else at most one step further.
        step = max((2.0**-t.frac for t in self.lane_types() if t is not None), default=0.0) if self.lanes else 2.0**-self.type.frac
        return 0.0 if e == 0 else e + step * dst.scale

    def built_magnitude(self, ctx, node, own, m_in):
        return min(own, m_in + 2.0**-self.type.frac * ctx.graph.tensors[node.outputs[0]].scale)

    def golden(self, x, src, dst):
        if self.lanes is None:
            return cast(x, src.type, self.type)
        fast = self._golden_lanes(src.type, x)
        if fast is not None:
            return fast
        out = np.zeros(x.shape, dtype=np.int64)
        for c, t in enumerate(self.lane_types()):
            if t is not None:
                out[:, c] = align(cast(x[:, c], src.type, t), t.frac, self.type.frac)
        return out

    def evaluate_float(self, xs, srcs, dst):
        src, x = srcs[0].type, xs[0]
        # The float type must hold the input, shifted left, and the output. The input's type
        # bounds its magnitude; only when that is too wide is the data at hand measured (two
        # reductions), as it is often far below its type's range.
        mags = (max(src.max_mantissa, -src.min_mantissa), None)
        if self.lanes is None:
            t, s = self.type, src.frac - self.type.frac
            for mag in mags:
                mag = _data_magnitude(x) if mag is None else mag
                ft = float_carrier(max(mag << max(-s, 0), t.max_mantissa, -t.min_mantissa))
                if ft is not None:
                    break
            if ft is None:
                return None
            v = x.astype(ft, copy=False)
            # Each branch makes a new array, which float_overflow may then change in place.
            v = float_round_shift(v, s, t.rounding) if s > 0 else float_shift(v, -s) if s < 0 else v.copy()
            return float_overflow(v, t.min_mantissa, t.max_mantissa, t.overflow, t.signed)
        for mag in mags:
            plan = self._float_lane_plan(src, _data_magnitude(x) if mag is None else mag)
            if plan is not None:
                break
        if plan is None:
            return None
        ft, rounding, mode, signed, down, left, up, lo, hi, mod, inv = plan
        # In place on one new array (the scaled copy): a fresh array per step costs more (page
        # faults) than the step. Exact: powers of two, on values the carrier holds.
        v = np.multiply(x, down, dtype=ft)
        if rounding == "TRN":
            np.floor(v, out=v)
        elif rounding == "RND":
            v += ft(0.5)
            np.floor(v, out=v)
        elif rounding == "RND_CONV":
            np.rint(v, out=v)
        else:
            v = float_round_shift(v, 0, rounding)  # the other modes, on the already scaled values
        if left is not None:
            v *= left
        if mode == "WRAP":
            k = np.subtract(v, lo)
            k *= inv
            np.floor(k, out=k)
            k *= mod
            v -= k
        else:
            v = float_overflow(v, lo, hi, mode, signed)
        if up is not None:
            v *= up
        return v

    def _float_lane_plan(self, src: FixedType, mag: int):
        """:meth:`_lane_plan` as float factors and bounds for :meth:`evaluate_float` on inputs up to
        ``mag`` in magnitude, or None."""
        lane = self._lane_plan(src)
        if lane is None:
            return None
        rounding, mode, signed, rs, ls, up, lo, hi = lane[:8]
        ft = float_carrier(max(mag << int(ls.max(initial=0)), self.type.max_mantissa, -self.type.min_mantissa))
        if ft is None or max(int(rs.max(initial=0)), int(ls.max(initial=0)), int(up.max(initial=0))) > 100:
            return None
        key = (src, self.type, id(self.lanes), ft)
        cache = self.__dict__.setdefault("_float_plans", {})
        if key not in cache:

            def f(a):
                return np.asarray(a, dtype=np.float64).astype(ft)

            mod = hi - lo + 1
            plan = (ft, rounding, mode, signed, f(np.exp2(-rs.astype(np.float64))), f(np.exp2(ls.astype(np.float64))) if ls.any() else None,
                    f(np.exp2(up.astype(np.float64))) if up.any() else None, f(lo), f(hi), f(mod), f(1 / mod))  # fmt: skip
            cache[key] = (self.lanes, plan)
        return cache[key][1]

    def _golden_lanes(self, src: FixedType, x: np.ndarray):
        """Per-lane requantization (HGQ2) on all lanes at once: the same arithmetic as
        :func:`~rtlgen.fixed.cast` lane by lane, with per-lane shift and range arrays. None when a
        lane needs what only the general path does (other rounding modes, values near int64's limits)."""
        plan = self._lane_plan(src)
        if x.dtype == object or plan is None:
            return None
        rounding, mode, signed, rs, ls, up, lo, hi, off, mask, checked = plan
        if not checked and max(-int(x.min(initial=0)), int(x.max(initial=0))).bit_length() + 2 + int(ls.max(initial=0)) > 62:
            return None
        q = shift_round(x, rs, rounding)
        if ls.any():
            q <<= ls
        if mode == "WRAP":
            # Two's complement wrap in place: offset by half the range, mask, offset back (lanes
            # that are always zero have an empty mask and no offset).
            if signed:
                q += off
            q &= mask
            if signed:
                q -= off
        elif mode in ("SAT", "SAT_SYM"):
            q = np.clip(q, -hi if (mode == "SAT_SYM" and signed) else lo, hi)
        else:  # SAT_ZERO
            q = np.where((q < lo) | (q > hi), 0, q)
        if up.any():
            q <<= up
        return q

    def _lane_plan(self, src: FixedType):
        """The per-lane shift and range arrays of :meth:`_golden_lanes` (kept: they only depend on
        the lanes, which do not change once a graph is built), or None when a lane needs the
        general path. Lanes that are always zero get an empty range."""
        # Keyed by the lanes' identity: hashing every lane's type string on each call costs as
        # much as the arithmetic on a small block. The entry keeps the list, so its id stays its own.
        key = (src, self.type, id(self.lanes))
        cache = self.__dict__.setdefault("_plans", {})
        if key not in cache:
            types = self.lane_types()
            ts = [t for t in types if t is not None]
            plan = None
            if ts and len({(t.rounding, t.overflow, t.signed) for t in ts}) == 1 and ts[0].rounding in FAST_ROUNDING:

                def per_lane(f, zero=0):
                    return np.array([f(t) if t is not None else zero for t in types], dtype=np.int64)

                s = per_lane(lambda t: src.frac - t.frac)
                up = per_lane(lambda t: self.type.frac - t.frac)
                hi = per_lane(lambda t: t.max_mantissa)
                if max(t.width for t in ts) + int(up.max(initial=0)) <= 62:
                    ls = np.maximum(-s, 0)
                    plan = (
                        ts[0].rounding, ts[0].overflow, ts[0].signed, np.maximum(s, 0), ls, up,
                        per_lane(lambda t: t.min_mantissa), hi,
                        per_lane(lambda t: t.max_mantissa + 1),
                        per_lane(lambda t: (1 << t.width) - 1),
                        # Inputs of the source type cannot come near int64's limits.
                        src.width + 2 + int(ls.max(initial=0)) <= 62,
                    )  # fmt: skip
            cache[key] = (self.lanes, plan)
        return cache[key][1]


@register_op
@dataclass
class Threshold(Op):
    """Multi-threshold activation: ``y = base + step * #{k : x >= thresholds[c, k]}`` per channel ``c``.

    Channels whose ``increasing`` flag is false count ``x <= thresholds[c, k]`` instead. This is how
    any monotonic float function between an integer accumulator and a quantizer (batch norm, scales
    that are not powers of two) stays bit-exact.
    """

    thresholds: np.ndarray  # int (channels, levels)
    increasing: np.ndarray  # bool (channels,)
    base: int = 0
    step: int = 1

    def verify(self, name, ins, out):
        if self.thresholds.ndim != 2 or self.thresholds.shape[0] != ins[0].size:
            raise GraphError(f"node {name!r}: thresholds must be (channels, levels)")
        check_same_shape(name, ins, out)

    def error_bound(self, ctx, node, errs):
        # Exact on an exact input; an inexact input may cross a threshold anywhere.
        return 0.0 if errs[0] == 0 else float("inf")

    def golden(self, x, src, dst):
        t = self.thresholds  # (C, L)
        inc = self.increasing[None, :, None]
        xe = x[:, :, None]
        passed = np.where(inc, xe >= t[None], xe <= t[None])
        return int_array(self.base + self.step * passed.sum(axis=2))
