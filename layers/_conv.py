"""Convolutions with a reuse factor above 1 in ``io_parallel`` form: a time-multiplexed sum of products.

A convolution applies one kernel at every output position, so the natural thing to share over
cycles is the position: :class:`ConvReuse` computes a group of positions per cycle and steps
through the groups, and each multiplier keeps one constant weight (only its input is selected by
the cycle). When the reuse factor is larger than the number of positions, every position's dot
product is also split into chunks of kernel taps; the weights of a multiplier then come from a
small table indexed by the cycle.

The layer is described position by position: ``lanes[p, q, k]`` is the input lane that key ``k``
of output channel ``q`` reads at output position ``p`` (``-1``: zero padding), ``weights[q, k]``
the constant it is multiplied with, and output lane ``p * Q + q`` is their sum plus a bias. Plain
convolutions have keys ``(tap, input channel)``; depthwise ones have keys ``tap`` and read their
own input channel.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Const, Module, Mux, Signal, signed

from rtlgen.ir.ops import Conv
from rtlgen.plan.reuse import conv_reuse_plan

from ._common import Layer, drive_lanes, shape_of
from ._dense import SumOfProducts, _product, _round_product, _select
from ._registry import register

__all__ = ["ConvReuse"]


class ConvReuse(Layer):
    """A convolution computed over ``cycles`` cycles with about ``1 / cycles`` of the multipliers.

    ``initiation_interval`` = ``cycles`` and ``latency`` = ``cycles + 1``: the input is latched, one
    group of positions (or one chunk of their taps) is computed per cycle into per-lane
    accumulators, and on the last cycle the results are registered while the next vector may
    already be accepted. Products are rounded onto ``accum``'s grid by ``product_shift`` bits as in
    :class:`~rtlgen.layers.SumOfProducts`; the output lanes take the low bits of exact sums, which
    is ``accum``'s wrap-around.
    """

    def __init__(self, in_type, n_in, out_type, *, lanes, weights, bias=None, reuse_factor, accum=None, product_shift=0):
        self.weights = np.asarray(weights, dtype=np.int64)
        Q, K = self.weights.shape
        lanes = np.asarray(lanes, dtype=np.int64)
        if lanes.ndim != 3 or lanes.shape[2] != K or lanes.shape[1] not in (1, Q):
            raise ValueError(f"lanes must have shape (positions, {Q} or 1, {K}), not {lanes.shape}")
        self.lanes = np.broadcast_to(lanes, (lanes.shape[0], Q, K))
        P = self.lanes.shape[0]
        self.positions, self.channels, self.keys = P, Q, K
        self.bias = None if bias is None else np.asarray(bias, dtype=np.int64)
        if self.bias is not None and self.bias.shape != (P * Q,):
            raise ValueError(f"bias must have one value per output lane ({P * Q}), not shape {self.bias.shape}")
        self.accum, self.product_shift = accum, product_shift
        self.reuse_factor = reuse_factor
        self.per_pos, self.per_key, self.pos_groups, self.key_chunks = conv_reuse_plan(P, K, reuse_factor)
        self.cycles = self.pos_groups * self.key_chunks
        super().__init__(in_type, n_in, out_type, P * Q)

    @property
    def latency(self) -> int:
        return self.cycles + 1

    @property
    def initiation_interval(self) -> int:
        return self.cycles

    def _slot_terms(self, s: int, q: int, r: int):
        """Input lane (``-1``: zero) and weight (``None``: any, the input is zero) of multiplier
        ``r`` of slot ``(s, q)`` in every cycle."""
        lanes, weights = [], []
        for t in range(self.cycles):
            g, j = divmod(t, self.key_chunks)
            p, k = g * self.per_pos + s, j * self.per_key + r
            if p < self.positions and k < self.keys and self.weights[q, k] != 0 and self.lanes[p, q, k] >= 0:
                lanes.append(int(self.lanes[p, q, k]))
                weights.append(int(self.weights[q, k]))
            else:
                lanes.append(-1)
                weights.append(None)
        return lanes, weights

    @property
    def multipliers(self) -> int:
        """Multipliers with a weight other than zero in some cycle (shifts and negations included)."""
        return sum(
            any(w is not None for w in self._slot_terms(s, q, r)[1])
            for s in range(self.per_pos) for q in range(self.channels) for r in range(self.per_key)
        )  # fmt: skip

    def _acc_shape(self):
        # Every partial sum is bounded by the sum of term magnitudes plus the bias: never wraps.
        xmax = max(abs(self.in_type.min_mantissa), abs(self.in_type.max_mantissa))
        bound = int(np.abs(self.weights).astype(object).sum(axis=1).max(initial=0)) * xmax
        if self.bias is not None:
            bound += int(np.abs(self.bias).astype(object).max(initial=0))
        return signed(max(bound.bit_length() + 2, 2))

    def elaborate(self, platform):
        m = Module()
        C, Gk = self.cycles, self.key_chunks
        acc_shape = self._acc_shape()
        xs = [Signal(shape_of(self.in_type), name=f"x{i}") for i in range(self.n_in)]
        zero = Const(0, shape_of(self.in_type))
        acc = [Signal(acc_shape, name=f"acc{o}") for o in range(self.n_out)]
        out = [Signal(acc_shape, name=f"out{o}") for o in range(self.n_out)]
        busy = Signal()
        cnt = Signal(range(max(C, 2)))
        last, out_free, advance = Signal(), Signal(), Signal()
        m.d.comb += [
            last.eq(busy & (cnt == C - 1)),
            out_free.eq(~self.o.valid | self.o.ready),
            advance.eq(busy & (~last | out_free)),
            self.i.ready.eq(~busy | (last & out_free)),
        ]
        at = [Signal(name=f"at{t}") for t in range(C)]
        m.d.comb += [a.eq(cnt == t) for t, a in enumerate(at)]

        inputs: dict[tuple, object] = {}  # one multiplexer per distinct lane sequence, shared by slots

        def select_input(seq):
            if seq not in inputs:
                vals = [xs[i] if i >= 0 else zero for i in seq]
                if len(set(seq)) == 1:
                    inputs[seq] = vals[0]
                else:
                    sel = Signal(shape_of(self.in_type), name=f"sel{len(inputs)}")
                    m.d.comb += sel.eq(_select(vals, cnt))
                    inputs[seq] = sel
            return inputs[seq]

        wmax = int(np.abs(self.weights).max(initial=0))
        wshape = signed(max(wmax.bit_length() + 1, 2))
        # partial[s][q]: the slot's sum of products in the current cycle (None: always zero).
        partial = []
        for s in range(self.per_pos):
            row = []
            for q in range(self.channels):
                terms = []
                for r in range(self.per_key):
                    seq, ws = self._slot_terms(s, q, r)
                    used = [w for w in ws if w is not None]
                    if not used:
                        continue
                    x = select_input(tuple(seq))
                    if len(set(used)) == 1:
                        p = _product(x, used[0])  # a constant weight: padding only zeroes the input
                    else:
                        fill = used[0]
                        p = x * _table([fill if w is None else w for w in ws], wshape, cnt)
                    terms.append(_round_product(p, self.product_shift, self.accum))
                if terms:
                    # A named signal, so every lane reading this slot shares one adder tree.
                    total = sum(terms[1:], terms[0])
                    sig = Signal(total.shape(), name=f"part_s{s}_q{q}")
                    m.d.comb += sig.eq(total)
                    row.append(sig)
                else:
                    row.append(None)
            partial.append(row)

        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(advance):
            m.d.sync += cnt.eq(cnt + 1)
            for o in range(self.n_out):
                pos, q = divmod(o, self.channels)
                g, s = divmod(pos, self.per_pos)
                first = g * Gk
                bias = Const(int(self.bias[o]) if self.bias is not None else 0, acc_shape)
                base = bias if Gk == 1 else Mux(at[first], bias, acc[o])
                p = partial[s][q]
                value = base + p if p is not None else base
                active = at[first] if Gk == 1 else ((cnt >= first) if first else Const(1, 1)) & (cnt < first + Gk)
                with m.If(active):
                    m.d.sync += acc[o].eq(value)
                # The last cycle finishes the last group; the other groups are already complete.
                final = value if g == self.pos_groups - 1 else acc[o]
                with m.If(last):
                    m.d.sync += out[o].eq(final)
            with m.If(last):
                m.d.sync += [self.o.valid.eq(1), busy.eq(0), cnt.eq(0)]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [x.eq(self.i.payload[i]) for i, x in enumerate(xs)]
            m.d.sync += [busy.eq(1), cnt.eq(0)]
        drive_lanes(m, self.o.payload, out)
        return m


def _table(values, shape, index):
    """``values[index]`` from one packed constant (a shift, defined from time 0 like a
    multiplexer tree, and built in one step whatever the number of values)."""
    w = shape.width
    packed = 0
    for k, v in enumerate(values):
        packed |= (int(v) & ((1 << w) - 1)) << (k * w)
    word = Const(packed, w * len(values)).word_select(index, w)
    return word.as_signed() if shape.signed else word


@register(Conv)
def _conv_factory(op, inputs, output):
    src = inputs[0]
    if op.reuse_factor != 1:
        lanes, weights = op.reuse_terms()
        return ConvReuse(
            src.type, src.size, output.type, lanes=lanes, weights=weights, bias=op.bias_lanes(),
            reuse_factor=op.reuse_factor, accum=op.accum, product_shift=op.product_shift,
        )  # fmt: skip
    return SumOfProducts(
        src.type, src.size, output.type, terms=op.terms(), bias=op.bias_lanes(),
        adder_levels=op.adder_levels, accum=op.accum, product_shift=op.product_shift,
    )  # fmt: skip
