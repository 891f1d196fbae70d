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
from ._verilog import stream_ports

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
        from ._verilog import TextModules

        if isinstance(platform, TextModules):
            return platform.instance(self, "conv_reuse", self.verilog)
        return self._amaranth()

    def verilog(self, name: str) -> str:
        """This layer as a Verilog module ``name``, cycle for cycle and bit for bit the same as the
        Amaranth form (ports ``clk rst i_valid i_ready i_payload o_valid o_ready o_payload``).

        Amaranth lowers every multiplexer, multiplier and adder bit by bit, which took minutes
        for a layer of thousands of multipliers; the text is written in well under a second. Every
        arithmetic wire is signed and as wide as its exact range, so sums and products are exact;
        registers keep the low bits, which the accumulator's bound makes lossless."""
        from ._verilog import round_up_bit, signed_const, signed_width

        C, Gk, Q = self.cycles, self.key_chunks, self.channels
        t_in, t_out = self.in_type, self.out_type
        wi, wo, ni, no = t_in.width, t_out.width, self.n_in, self.n_out
        xlo, xhi = t_in.min_mantissa, t_in.max_mantissa
        aw = self._acc_shape().width
        cw = max(C - 1, 1).bit_length()
        decl, body = [], []
        n = [0]

        def wire(expr, lo, hi, at_least=1):
            w = max(signed_width(lo, hi), at_least)
            nm = f"w{n[0]}"
            n[0] += 1
            decl.append(f"  wire signed [{w - 1}:0] {nm};")
            body.append(f"  assign {nm} = {expr};")
            return nm, lo, hi, w

        def as_signed(bits):
            return bits if t_in.signed else f"$signed({{1'b0, {bits}}})"

        selects: dict[tuple, tuple] = {}  # one multiplexer per distinct lane sequence

        def select(seq):
            if seq not in selects:
                lo, hi = (0, 0) if all(i < 0 for i in seq) else (xlo, xhi)
                if len(set(seq)) == 1:
                    selects[seq] = wire(as_signed(f"x{seq[0]}") if seq[0] >= 0 else "2'sh0", lo, hi)
                else:
                    word = "{" + ", ".join(f"x{i}" if i >= 0 else f"{wi}'d0" for i in reversed(seq)) + "}"
                    v = f"v{n[0]}"
                    n[0] += 1
                    decl.append(f"  wire [{C * wi - 1}:0] {v};")
                    body.append(f"  assign {v} = {word};")
                    selects[seq] = wire(as_signed(f"{v}[cnt * {wi} +: {wi}]"), lo, hi)
            return selects[seq]

        wmax = int(np.abs(self.weights).max(initial=0))
        wb = max(wmax.bit_length() + 1, 2)
        shift, acc = self.product_shift, self.accum
        rounded = acc is not None and shift > 0
        partial = {}  # (s, q) -> the slot's sum of products in the current cycle
        for s in range(self.per_pos):
            for q in range(Q):
                terms = []
                for r in range(self.per_key):
                    seq, ws = self._slot_terms(s, q, r)
                    used = [w for w in ws if w is not None]
                    if not used:
                        continue
                    x = select(tuple(seq))
                    lo, hi = min(min(xlo * w, xhi * w) for w in used), max(max(xlo * w, xhi * w) for w in used)
                    lo, hi = min(lo, 0), max(hi, 0)
                    if len(set(used)) == 1:
                        wexpr = signed_const(used[0])
                    else:
                        packed = sum(((used[0] if w is None else w) & ((1 << wb) - 1)) << (k * wb) for k, w in enumerate(ws))
                        wexpr = f"$signed(wsel{n[0]})"
                        decl.append(f"  wire [{wb - 1}:0] wsel{n[0]};")
                        body.append(f"  assign wsel{n[0]} = {C * wb}'h{packed:x} >> (cnt * {wb});")
                        n[0] += 1
                    # At least one bit above the dropped ones: the sign is read from there.
                    p = wire(f"{x[0]} * {wexpr}", lo, hi, shift + 1 if rounded else 1)
                    if rounded:
                        up = round_up_bit(p[0], p[3], shift, acc.rounding)
                        p = wire(f"({p[0]} >>> {shift}) + $signed({{1'b0, {up}}})", lo >> shift, -((-hi) >> shift))
                    terms.append(p)
                if terms:
                    lo, hi = sum(t[1] for t in terms), sum(t[2] for t in terms)
                    partial[s, q] = wire(" + ".join(t[0] for t in terms), lo, hi)
        regs, last_regs = [], []
        for o in range(no):
            pos, q = divmod(o, Q)
            g, s = divmod(pos, self.per_pos)
            first = g * Gk
            bias = signed_const(int(self.bias[o]) if self.bias is not None else 0)
            base = bias if Gk == 1 else f"((cnt == {cw}'d{first}) ? {bias} : acc{o})"
            p = partial.get((s, q))
            value = f"{base} + {p[0]}" if p is not None else base
            v = f"u{o}"
            decl.append(f"  wire signed [{aw + 1}:0] {v};")
            body.append(f"  assign {v} = {value};")
            # No "cnt >= 0" for the first group: always true, which lint refuses.
            lower = f"(cnt >= {first}) & " if first else ""
            active = f"(cnt == {cw}'d{first})" if Gk == 1 else f"{lower}(cnt < {first + Gk})"
            regs.append(f"      if ({active}) acc{o} <= {v}[{aw - 1}:0];")
            final = f"{v}[{aw - 1}:0]" if g == self.pos_groups - 1 else f"acc{o}"
            last_regs.append(f"        out{o} <= {final};")
        ow = max(wo, aw)
        outs = []
        for o in range(no):
            decl.append(f"  wire signed [{ow - 1}:0] y{o};")
            body.append(f"  assign y{o} = out{o};")
            outs.append(f"y{o}[{wo - 1}:0]")
        return "\n".join([
            "/* verilator lint_off WIDTH */",
            *stream_ports(name, ni * wi, no * wo),
            "  reg valid = 1'b0;", "  reg busy = 1'b0;", f"  reg [{cw - 1}:0] cnt = {cw}'d0;",
            *[f"  reg [{wi - 1}:0] x{i} = {wi}'d0;" for i in range(ni)],
            *[f"  reg signed [{aw - 1}:0] acc{o} = {aw}'sd0;" for o in range(no)],
            *[f"  reg signed [{aw - 1}:0] out{o} = {aw}'sd0;" for o in range(no)],
            "  wire last, out_free, advance;", *decl,
            f"  assign last = busy & (cnt == {cw}'d{C - 1});", "  assign out_free = ~valid | o_ready;",
            "  assign advance = busy & (~last | out_free);", "  assign i_ready = ~busy | (last & out_free);",
            "  assign o_valid = valid;", *body,
            "  always @(posedge clk) begin",
            "    if (o_ready) valid <= 1'b0;",
            "    if (advance) begin", f"      cnt <= cnt + {cw}'d1;", *regs,
            "      if (last) begin", *last_regs, "        valid <= 1'b1;", "        busy <= 1'b0;", f"        cnt <= {cw}'d0;", "      end",
            "    end",
            "    if (i_valid & i_ready) begin",
            *[f"      x{i} <= i_payload[{i * wi + wi - 1}:{i * wi}];" for i in range(ni)],
            "      busy <= 1'b1;", f"      cnt <= {cw}'d0;", "    end",
            "    if (rst) begin", "      valid <= 1'b0;", "      busy <= 1'b0;", f"      cnt <= {cw}'d0;", "    end",
            "  end",
            f"  assign o_payload = {{{', '.join(reversed(outs))}}};",
            "endmodule", "/* verilator lint_on WIDTH */", "",
        ])  # fmt: skip

    def _amaranth(self):
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
