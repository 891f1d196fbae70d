"""Softmax hardware: a stall-able pipeline matching :meth:`rtlgen.ir.ops.softmax.Softmax.golden` bit for bit.

Stages (``T`` = ``ceil(ceil(log2 n) / tree_levels)``, at least 1; every stage a register row
enabled by ``o.ready | ~o.valid``):

===========  =====================================================  =============
stage        work                                                    cycles
===========  =====================================================  =============
max          comparator tree over the lanes (``stable`` only)        T
exp          ``max - x`` or ``x - base``, clamp, exp ROM read         1
sum          adder tree over the exp values                          T
inverse      leading one of the sum, inverse ROM read                1
multiply     ``e * r`` per lane                                      1
output       round and saturate, shifted by the leading one          1
===========  =====================================================  =============

``argmax`` is one (value, index) comparator tree of ``T`` stages, decoded to a one-hot output.
ROMs are ``amaranth.lib.memory.Memory`` instances with synchronous read ports (one per lane), so
they are defined in every simulator from time 0 and map to block or distributed RAM.
"""

from __future__ import annotations

import math

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib.memory import Memory

from rtlgen.fixed import FixedType
from rtlgen.ir.ops import Softmax

from ._common import Layer, shape_of
from ._elementwise import requantize
from ._registry import register

__all__ = ["SoftmaxLayer"]


class _Pipe:
    """Registers of one stall-able pipeline: every row loads when ``enable`` is high."""

    def __init__(self, m: Module, enable):
        self.m, self.enable = m, enable

    def reg(self, value, name, shape=None):
        r = Signal(shape if shape is not None else value.shape(), name=name)
        with self.m.If(self.enable):
            self.m.d.sync += r.eq(value)
        return r

    def delay(self, values, stages, name):
        for s in range(stages):
            values = [self.reg(v, f"{name}_d{s}_{k}") for k, v in enumerate(values)]
        return values

    def tree(self, items, combine, levels, name):
        """Pairwise reduction of ``items`` (tuples of values), lowest indices on the left, with a
        register row every ``levels`` levels and after the last. Returns the reduced tuple."""
        depth = max(math.ceil(math.log2(len(items))) if len(items) > 1 else 0, 1)
        for level in range(1, depth + 1):
            if len(items) > 1:
                items = [combine(items[j], items[j + 1]) if j + 1 < len(items) else items[j] for j in range(0, len(items), 2)]
            if level % levels == 0 or level == depth:
                items = [tuple(self.reg(v, f"{name}{level}_{j}_{f}") for f, v in enumerate(it)) for j, it in enumerate(items)]
        assert len(items) == 1
        return items[0]

    def rom(self, table, addrs, name):
        """Registered reads of a constant ``table`` at each address (one read port each)."""
        table = [int(v) for v in table]
        shape = unsigned(max(max(table).bit_length(), 1))
        if len(table) == 1:
            return [self.reg(Const(table[0], shape), f"{name}_{k}") for k in range(len(addrs))]
        mem = Memory(shape=shape, depth=len(table), init=table)
        self.m.submodules[name] = mem
        out = []
        for a in addrs:
            port = mem.read_port(domain="sync")
            self.m.d.comb += [port.addr.eq(a), port.en.eq(self.enable)]
            out.append(port.data)
        return out


def _tree_stages(n: int, levels: int) -> int:
    depth = max(math.ceil(math.log2(n)) if n > 1 else 0, 1)
    return math.ceil(depth / levels)


class SoftmaxLayer(Layer):
    """The hardware of a :class:`rtlgen.ir.ops.softmax.Softmax` op (see the module docstring).

    ``latency``: ``2T + 4`` cycles (``stable``), ``T + 4`` (``latency``), ``T`` (``argmax``), with
    ``T = ceil(ceil(log2 n) / tree_levels)`` (at least 1); ``initiation_interval`` = 1.
    """

    def __init__(self, op):
        self.op = op
        super().__init__(op.src_type, op.n, op.out_type, op.n)

    @property
    def latency(self) -> int:
        t = _tree_stages(self.op.n, self.op.tree_levels)
        return {"stable": 2 * t + 4, "latency": t + 4, "argmax": t}[self.op.implementation]

    initiation_interval = 1

    def elaborate(self, platform):
        m = Module()
        op, n = self.op, self.op.n
        enable = Signal()
        valid = [Signal(name=f"valid{s}") for s in range(self.latency)]
        m.d.comb += [enable.eq(~valid[-1] | self.o.ready), self.i.ready.eq(enable), self.o.valid.eq(valid[-1])]
        with m.If(enable):
            m.d.sync += valid[0].eq(self.i.valid)
            m.d.sync += [valid[s].eq(valid[s - 1]) for s in range(1, len(valid))]
        pipe = _Pipe(m, enable)
        x = [self.i.payload[k] for k in range(n)]
        if op.implementation == "argmax":
            outs = self._argmax(pipe, x)
        else:
            outs = self._softmax(pipe, x)
        for k, v in enumerate(outs):
            m.d.comb += self.o.payload[k].eq(v)
        return m

    def _argmax(self, pipe, x):
        n = self.op.n

        def pick(a, b):
            # ``a`` holds the lower indices: it wins ties.
            take_b = b[0] > a[0]
            return Mux(take_b, b[0], a[0]), Mux(take_b, b[1], a[1])

        items = [(v, Const(k, range(max(n, 2)))) for k, v in enumerate(x)]
        _, idx = pipe.tree(items, pick, self.op.tree_levels, "amax")
        one = self.op.one()
        return [Mux(idx == k, Const(one, shape_of(self.out_type)), 0) for k in range(n)]

    def _softmax(self, pipe, x):
        op, n = self.op, self.op.n
        width = self.in_type.width
        last = len(op.exp_table) - 1
        step = 1 << op.exp_shift
        addrs = []
        # Differences (stable) or inputs (latency) beyond the table share its end entries.
        if op.implementation == "stable":
            (mx,) = pipe.tree([(v,) for v in x], lambda a, b: (Mux(b[0] > a[0], b[0], a[0]),), op.tree_levels, "max")
            x = pipe.delay(x, _tree_stages(n, op.tree_levels), "x")
            clamp = ((1 << width) - 1 - op.exp_base) >> op.exp_shift > last
            for v in x:
                d = (mx - v)[:width]  # 0 <= max - x < 2**width
                z = d - op.exp_base  # exp_base <= 0: index = ceil(d / step)
                k = z[op.exp_shift :]
                addrs.append(Mux(z >= last * step, last, k) if clamp else k)
        else:
            for v in x:
                z = v - op.exp_base
                k = z[op.exp_shift :]
                addrs.append(Mux(z < 0, 0, Mux(z >= last * step, last, k)))
        e = pipe.rom(op.exp_table, addrs, "exp_rom")

        s_min, s_max = op.sum_range()
        (total,) = pipe.tree([(v,) for v in e], lambda a, b: (a[0] + b[0],), op.tree_levels, "sum")
        total = total[: max(s_max.bit_length(), 1)]  # the exact sum never needs more
        e = pipe.delay(e, _tree_stages(n, op.tree_levels), "e")

        # Leading one of the sum: p in [p_lo, p_hi] (the sum's range bounds it); the next
        # inv_bits bits address the inverse ROM. A zero sum (latency form) takes p_lo, index 0.
        p_lo, p_hi = op.lead_range()
        b = op.inv_bits

        def below_lead(q):
            if b == 0:
                return Const(0, 1)
            if q >= b:
                return total[q - b : q]
            return Cat(Const(0, b - q), total[:q]) if q > 0 else Const(0, b)

        index, code = below_lead(p_lo), Const(0, range(p_hi - p_lo + 1))
        for q in range(p_lo + 1, p_hi + 1):
            index = Mux(total[q], below_lead(q), index)
            code = Mux(total[q], q - p_lo, code)
        (r,) = pipe.rom(op.inv_table, [index], "inv_rom")
        code = pipe.reg(code, "lead")
        e = pipe.delay(e, 1, "e_inv")

        prod = [pipe.reg(v * r, f"prod_{k}") for k, v in enumerate(e)]
        code = pipe.reg(code, "lead_mul")

        frac = op.inv_table_t.frac
        outs = []
        for k, v in enumerate(prod):
            w = v.shape().width
            y = None
            for q in range(p_lo, p_hi + 1):
                src = FixedType(w, w - (frac + q), signed=False)
                yq = requantize(v, src, self.out_type)
                y = yq if y is None else Mux(code == q - p_lo, yq, y)
            outs.append(pipe.reg(y, f"y_{k}", shape_of(self.out_type)))
        return outs


@register(Softmax)
def _softmax_factory(op, inputs, output):
    op._check(inputs[0], output)
    return SoftmaxLayer(op)
