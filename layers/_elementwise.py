"""Element-wise layers: combinational, latency 0, one vector per cycle."""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Value, signed

from rtlgen.fixed import FixedType

from ._common import Layer

__all__ = ["GatherLayer", "ReluLayer", "RequantLayer", "ThresholdLayer", "requantize"]


def requantize(x: Value, src: FixedType, dst: FixedType) -> Value:
    """Hardware for :func:`rtlgen.fixed.cast`: round with ``dst.rounding``, then ``dst.overflow``."""
    shift = src.frac - dst.frac
    if shift <= 0:
        q = x << -shift
    else:
        q = x >> shift  # arithmetic for signed values: floor
        r = x.as_unsigned()[:shift]
        half = 1 << (shift - 1)
        neg = x < 0
        above, at, nonzero = r > half, r == half, r != 0
        mode = dst.rounding
        up = {
            "TRN": Const(0, 1),
            "TRN_ZERO": neg & nonzero,
            "RND": above | at,
            "RND_MIN_INF": above,
            "RND_ZERO": above | (at & neg),
            "RND_INF": above | (at & ~neg),
            "RND_CONV": above | (at & q[0]),
        }[mode]
        q = q + up
    lo, hi = dst.min_mantissa, dst.max_mantissa
    if dst.overflow == "WRAP":
        low = q[: dst.width]
        return low.as_signed() if dst.signed else low
    if dst.overflow == "SAT_SYM" and dst.signed:
        lo = -hi
    if dst.overflow in ("SAT", "SAT_SYM"):
        return Mux(q < lo, lo, Mux(q > hi, hi, q))
    return Mux((q < lo) | (q > hi), 0, q)  # SAT_ZERO


class _Elementwise(Layer):
    def lane(self, x: Value, k: int) -> Value:
        raise NotImplementedError  # pragma: no cover - every subclass defines it

    def elaborate(self, platform):
        m = Module()
        m.d.comb += [self.o.valid.eq(self.i.valid), self.i.ready.eq(self.o.ready)]
        for k in range(self.n_out):
            m.d.comb += self.o.payload[k].eq(self.lane(self.i.payload[k], k))
        return m


class ReluLayer(_Elementwise):
    """``max(x, 0)`` per lane."""

    def __init__(self, in_type, out_type, n):
        super().__init__(in_type, n, out_type, n)

    def lane(self, x, k):
        return Mux(x < 0, 0, x)


class RequantLayer(_Elementwise):
    """Cast every lane from ``in_type`` to ``out_type``, or each to its own type in ``lanes``
    (then re-expressed on ``out_type``'s grid; ``None`` lanes are zero)."""

    def __init__(self, in_type, out_type, n, *, lanes=None):
        self.lanes = lanes
        super().__init__(in_type, n, out_type, n)

    def lane(self, x, k):
        if self.lanes is None:
            return requantize(x, self.in_type, self.out_type)
        t = self.lanes[k]
        if t is None:
            return Const(0, 1)
        return requantize(x, self.in_type, t) << (self.out_type.frac - t.frac)


class ThresholdLayer(_Elementwise):
    """``base + step * (number of thresholds passed)`` per lane; see :class:`rtlgen.ir.Threshold`."""

    def __init__(self, in_type, out_type, n, *, thresholds, increasing, base, step):
        self.thresholds, self.increasing, self.base, self.step = thresholds, increasing, base, step
        super().__init__(in_type, n, out_type, n)

    def lane(self, x, k):
        count = Const(0, 1)
        for t in self.thresholds[k]:
            t = int(t)
            count = count + ((x >= t) if self.increasing[k] else (x <= t))
        return Const(self.base, signed(max(abs(self.base).bit_length() + 1, 2))) + count * self.step


class GatherLayer(Layer):
    """Output lane ``j`` = input lane ``index[j]`` (``-1``: zero); wires only, latency 0."""

    def __init__(self, in_type, n_in, out_type, *, index):
        self.index = [int(i) for i in index]
        super().__init__(in_type, n_in, out_type, len(self.index))

    def elaborate(self, platform):
        m = Module()
        m.d.comb += [self.o.valid.eq(self.i.valid), self.i.ready.eq(self.o.ready)]
        for j, i in enumerate(self.index):
            m.d.comb += self.o.payload[j].eq(self.i.payload[i] if i >= 0 else 0)
        return m
