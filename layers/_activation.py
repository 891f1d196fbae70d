"""Activation layers: table lookup (:class:`LutLayer`) and exact piecewise-linear (:class:`PwlLayer`).

Their IR ops and golden models are :class:`rtlgen.ir.ops.activation.Lut` and :class:`rtlgen.ir.ops.activation.Pwl`.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Const, Module, Mux, Signal, Value
from amaranth.lib.memory import Memory

from rtlgen.fixed import FixedType
from rtlgen.ir.ops import Lut, Pwl

from ._common import Layer, shape_of
from ._dense import _product, _select
from ._elementwise import _Elementwise, requantize
from ._registry import register

__all__ = ["LutLayer", "PwlLayer"]


class LutLayer(Layer):
    """``y = table[clip((x >> shift) - offset, 0, len(table) - 1)]`` in each of ``n`` lanes.

    ``rom="memory"``: one ROM (``amaranth.lib.memory.Memory``) per pair of lanes, each lane with a
    synchronous read port, so that Yosys infers one dual-port block RAM (or LUT RAM) per pair.
    ``latency`` = 1, ``initiation_interval`` = 1; the read registers hold while the output stalls.

    ``rom="logic"``: a multiplexer tree per lane, combinational, ``latency`` = 0; its Verilog grows
    with ``len(table) * n``, so it suits small tables.
    """

    def __init__(self, in_type, out_type, n, *, table, shift=0, offset=0, rom="memory"):
        table = np.asarray(table)
        if table.ndim != 1 or table.size == 0:
            raise ValueError(f"table must be a non-empty 1-D array, not one of shape {table.shape}")
        if shift < 0:
            raise ValueError(f"shift must be non-negative, not {shift}")
        if rom not in ("memory", "logic"):
            raise ValueError(f"rom must be memory or logic, not {rom!r}")
        lo, hi = int(table.min()), int(table.max())
        if lo < out_type.min_mantissa or hi > out_type.max_mantissa:
            raise ValueError(f"table entry {lo if lo < out_type.min_mantissa else hi} does not fit the output type {out_type}")
        self.table = [int(v) for v in table]
        self.shift, self.offset, self.rom = int(shift), int(offset), rom
        super().__init__(in_type, n, out_type, n)

    @property
    def latency(self) -> int:
        return 1 if self.rom == "memory" else 0

    initiation_interval = 1

    def _index(self, x: Value) -> Value:
        n = len(self.table)
        q = x >> self.shift if self.shift else x  # a floor shift: arithmetic for signed inputs
        d = q - self.offset if self.offset else q
        # The clip only costs logic when the input range reaches past the table.
        lo = (self.in_type.min_mantissa >> self.shift) - self.offset
        hi = (self.in_type.max_mantissa >> self.shift) - self.offset
        if lo < 0:
            d = Mux(d < 0, 0, d)
        if hi > n - 1:
            d = Mux(d > n - 1, n - 1, d)
        bits = max((n - 1).bit_length(), 1)
        return d.as_unsigned()[:bits]  # in [0, n - 1] now, so the low bits are the index

    def elaborate(self, platform):
        m = Module()
        index = [self._index(self.i.payload[k]) for k in range(self.n_in)]
        if self.rom == "logic":
            m.d.comb += [self.o.valid.eq(self.i.valid), self.i.ready.eq(self.o.ready)]
            values = [Const(v, shape_of(self.out_type)) for v in self.table]
            for k in range(self.n_out):
                m.d.comb += self.o.payload[k].eq(_select(values, index[k]))
            return m

        # One pipeline stage, the read ports' data registers: it advances when the output is empty
        # or taken, so a stalled result is held and nothing is dropped.
        enable = Signal()
        m.d.comb += [enable.eq(~self.o.valid | self.o.ready), self.i.ready.eq(enable)]
        with m.If(enable):
            m.d.sync += self.o.valid.eq(self.i.valid)
        for k in range(self.n_out):
            if k % 2 == 0:
                rom = Memory(shape=shape_of(self.out_type), depth=len(self.table), init=self.table)
                m.submodules[f"rom{k // 2}"] = rom
            port = rom.read_port(domain="sync")
            m.d.comb += [port.addr.eq(index[k]), port.en.eq(enable), self.o.payload[k].eq(port.data)]
        return m


class PwlLayer(_Elementwise):
    """The exact piecewise-linear function of :class:`rtlgen.ir.ops.activation.Pwl` in each of ``n``
    lanes; combinational, ``latency`` = 0.

    Constants are per-lane integer arrays of mantissas with ``const_frac`` fractional bits
    (``lower``/``upper`` may be None).
    """

    def __init__(self, in_type, out_type, n, *, slope_hi, bias_hi, slope_lo, bias_lo, knot,
                 lower=None, upper=None, const_frac):  # fmt: skip
        if const_frac < 0:
            raise ValueError(f"const_frac must be non-negative, not {const_frac}")
        self.const_frac = int(const_frac)

        def lanes(v):
            if v is None:
                return None
            v = np.broadcast_to(np.asarray(v), (n,))
            return [int(c) for c in v]

        self.slope_hi, self.bias_hi = lanes(slope_hi), lanes(bias_hi)
        self.slope_lo, self.bias_lo = lanes(slope_lo), lanes(bias_lo)
        self.knot, self.lower, self.upper = lanes(knot), lanes(lower), lanes(upper)
        super().__init__(in_type, n, out_type, n)

    def lane(self, x: Value, k: int) -> Value:
        fs, fc = self.in_type.frac, self.const_frac
        g = max(fs, fc)  # grid of x - knot
        f = g + fc  # grid of products, biases and bounds
        knot = self.knot[k]
        d = x << (g - fs)
        if knot:
            d = d - (knot << (g - fc))

        def piece(slope, bias):
            p = _product(d, slope)
            b = bias << (f - fc)
            if p is None:
                return Const(b)
            return p + b if b else p

        hi = (self.slope_hi[k], self.bias_hi[k])
        lo = (self.slope_lo[k], self.bias_lo[k])
        v = piece(*hi)
        if lo != hi:
            # x > knot compared on x's own grid: x_m > knot * 2**(fs - fc) <=> x_m > its floor.
            kx = (knot << max(fs - fc, 0)) >> max(fc - fs, 0)
            v = Mux(x > kx, v, piece(*lo))
        if self.lower is not None:
            low = self.lower[k] << (f - fc)
            v = Mux(v < low, low, v)
        if self.upper is not None:
            high = self.upper[k] << (f - fc)
            v = Mux(v > high, high, v)
        shape = v.shape()
        return requantize(v, FixedType(shape.width, shape.width - f, shape.signed), self.out_type)


@register(Lut)
def _lut_factory(op, inputs, output):
    src = inputs[0]
    op.check_types(output.type)
    return LutLayer(
        src.type, output.type, src.size,
        table=op.table, shift=op.shift, offset=op.offset, rom=op.rom,
    )  # fmt: skip


@register(Pwl)
def _pwl_factory(op, inputs, output):
    src = inputs[0]
    return PwlLayer(src.type, output.type, src.size, const_frac=op.const_type.frac, **op.constants(src.shape))
