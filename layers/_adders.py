"""The pipelined Amaranth form of a constant matrix-vector product planned as an adder graph
(:mod:`rtlgen.plan.adders`), with a register after every ``adder_levels`` adder levels."""

from __future__ import annotations

import math

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed, unsigned

from rtlgen.plan.adders import CARRY_IN, AdderGraph, _bits, csd, lut_estimate, plan_adder_graph

from ._common import Layer

__all__ = ["AdderGraph", "AdderGraphLayer", "csd", "plan_adder_graph", "lut_estimate"]


def _low_bits(v, d):
    """The low ``d`` bits of ``v`` in two's complement (sign- or zero-extended past its width)."""
    v = Value.cast(v)
    w = len(v)
    if d <= w:
        return v[:d]
    return Cat(v, (v[-1] if v.shape().signed else Const(0, 1)).replicate(d - w))


def _shape(lo, hi):
    w, s = _bits(lo, hi)
    return signed(w) if s else unsigned(w)


class AdderGraphLayer(Layer):
    """A pipelined adder graph: ``latency`` = ``max(1, ceil(depth / adder_levels))`` register stages
    (the outputs are always registered), ``initiation_interval`` = 1, one stall signal.

    ``relu``: the output registers hold ``max(y, 0)`` instead of ``y`` (set when a ReLU alone reads
    this layer, which then passes its input through unchanged): the clamp becomes the registers'
    synchronous reset, and the ReLU's per-bit logic after them disappears."""

    def __init__(self, in_type, out_type, graph: AdderGraph, *, n_in: int, adder_levels: int = 3, relu: bool = False):
        if adder_levels < 1:
            raise ValueError(f"adder_levels must be a positive integer, not {adder_levels}")
        self.graph = graph
        self.adder_levels = adder_levels
        self.relu = relu
        super().__init__(in_type, n_in, out_type, len(graph.outputs))

    @property
    def latency(self) -> int:
        return max(1, math.ceil(self.graph.max_depth / self.adder_levels))

    initiation_interval = 1
    multipliers = 0

    @property
    def adders(self) -> int:
        return self.graph.n_adders

    def elaborate(self, platform):
        from ._verilog import TextModules

        if isinstance(platform, TextModules):
            return platform.instance(self, "adder_graph", self.verilog)
        m = Module()
        g = self.graph
        L = self.adder_levels
        stages = self.latency
        valid = [Signal(name=f"valid{s}") for s in range(stages)]
        enable = Signal()
        m.d.comb += [enable.eq(~valid[-1] | self.o.ready), self.i.ready.eq(enable), self.o.valid.eq(valid[-1])]
        with m.If(enable):
            m.d.sync += valid[0].eq(self.i.valid)
            for s in range(1, stages):
                m.d.sync += valid[s].eq(valid[s - 1])

        def seg(s):  # the combinational segment (1-based) a signal is computed in
            return max(1, math.ceil(g.depth[s] / L))

        # Registered copies of a signal in later segments: regs[(s, k)] is s as seen in segment k.
        base: dict = {}
        regs: dict = {}
        sync = []

        def at(s, k):
            if s < g.n_sources and g.sources[s][0] == "const":
                return base[s]
            if k <= seg(s):
                return base[s]
            r = regs.get((s, k))
            if r is None:
                r = Signal(_shape(g.lo[s], g.hi[s]), name=f"r{s}_{k}")
                sync.append(r.eq(at(s, k - 1)))
                regs[(s, k)] = r
            return r

        x = self.i.payload
        for s, src in enumerate(g.sources):
            if src[0] == "in":
                base[s] = x[src[1]].shift_right(src[2]) if src[2] else x[src[1]]
            elif src[0] == "off":
                v = Value.cast(x[src[1]].shift_right(src[2]) if src[2] else x[src[1]])
                w = src[3]
                base[s] = Cat(_low_bits(v, w - 1), ~_low_bits(v, w)[w - 1]) if w > 1 else ~v[0]
            elif src[0] == "bit":
                b = Value.cast(x[src[1]])[src[2]]
                base[s] = ~b if src[3] else b
            else:
                base[s] = Const(src[1], _shape(src[1], src[1]))
        comb = []
        for k, (p, sp, q, sq, d) in enumerate(g.adders):
            s = g.n_sources + k
            here = seg(s)
            P, Q = at(p, here), at(q, here)
            v = Signal(_shape(g.lo[s], g.hi[s]), name=f"a{s}")
            if sq == 0:
                # P's top bit (of its own d bits) inverted: P + 2**(d-1), never negative.
                comb.append(v.eq(Cat(_low_bits(P, d - 1), ~_low_bits(P, d)[d - 1]) if d > 1 else ~Value.cast(P)[0]))
            elif sp > 0 and sq > 0 and CARRY_IN and not isinstance(P, Const) and len(Value.cast(P)) > d and d < len(v):
                # P's bit d is the chain's carry-in (the text form's structure, :data:`CARRY_IN`).
                P = Value.cast(P)
                rest = P.shift_right(d + 1).shift_left(1) + Q + P[d]
                comb.append(v.eq(Cat(_low_bits(P, d), rest).as_signed() if rest.shape().signed else Cat(_low_bits(P, d), rest)))
            elif sp > 0 and d > 0:
                # The low d bits are P's own; only the bits above them need adding.
                hi_part = P.shift_right(d) + Q if sq > 0 else P.shift_right(d) - Q
                whole = Cat(_low_bits(P, d), hi_part)
                comb.append(v.eq(whole.as_signed() if hi_part.shape().signed else whole))
            elif sp > 0:
                comb.append(v.eq(P + (Q << d) if sq > 0 else P - (Q << d)))
            else:
                comb.append(v.eq((Q << d) - P if sq > 0 else -P - (Q << d)))
            base[s] = v
        m.d.comb += comb
        outs = []
        for o, ref in enumerate(g.outputs):
            r = Signal(self.o.payload[o].shape(), name=f"y{o}")
            if ref is not None:
                s, sh, sign = ref
                v = at(s, stages)
                v = v << sh if sh else v
                v = v if sign > 0 else -v
                if self.relu:
                    # Clamp the value as the output type holds it (a wrapping type may flip its sign).
                    t = Signal(r.shape(), name=f"y{o}_v")
                    m.d.comb += t.eq(v)
                    v = Mux(t < 0, 0, t)
                sync.append(r.eq(v))
            outs.append(r)
        with m.If(enable):
            m.d.sync += sync
        m.d.comb += [self.o.payload[o].eq(r) for o, r in enumerate(outs)]
        return m

    def _chained(self, merged: set, seg) -> set:
        """The sums whose one reader is another sum in the same combinational segment that takes
        the whole sum (the bits the sum's own adder makes) as an operand. Their wires are kept:
        Yosys would otherwise merge such a sum into its reader's and map the many-operand sum to
        a carry-save tree of full adders (two LUTs a bit, and the carry-in summands lost)."""
        g, n = self.graph, self.graph.n_sources

        def split(k):  # written as low wires and a sum of the bits from d up (0: one sum)
            p, sp, q, sq, d = g.adders[k]
            return d if sq and sp > 0 and 0 < d < g.width(n + k) else 0

        readers: dict = {ref[0]: [None] for ref in g.outputs if ref is not None}
        for j, (p, sp, q, sq, d) in enumerate(g.adders):
            if not sq:
                readers.setdefault(p, []).append(None)
                continue
            carries = CARRY_IN and sp > 0 < sq and g.lo[p] != g.hi[p] and d < min(g.width(p), g.width(n + j))
            # P is read from bit d up unless its bit d is the carry-in; Q whole unless shifted.
            readers.setdefault(p, []).append(None if carries else (j, d if sp > 0 else 0))
            readers.setdefault(q, []).append((j, 0) if j not in merged and (d == 0 or split(j)) else None)
        out = set()
        for x, rs in readers.items():
            if x < n or len(rs) != 1 or rs[0] is None or seg(x) != seg(n + rs[0][0]):
                continue
            k = x - n
            if g.adders[k][3] and k not in merged and rs[0][1] == split(k):
                out.add(x)
            elif not g.adders[k][3] and g.adders[k][0] - n in merged:
                out.add(x)  # a flip that computes its merged source's sum itself
        return out

    def verilog(self, name: str) -> str:
        """This layer as a Verilog module ``name``, cycle for cycle the same as :meth:`elaborate`
        (ports ``clk rst i_valid i_ready i_payload o_valid o_ready o_payload``).

        Every operand enters an expression as a signed value (unsigned ones with a zero bit on
        top), so Verilog sign-extends all of them to the widest operand or result; the sums are
        then exact modulo ``2**width``, and each result is declared as wide as its interval needs,
        so the truncation on assignment loses nothing."""
        g = self.graph
        L = self.adder_levels
        stages = self.latency
        wi, wo = self.in_type.width, self.out_type.width
        ni, no = self.n_in, self.n_out
        decl: list[str] = []
        body: list[str] = []
        regs: list[str] = []
        shape: dict = {}  # name -> (width, signed)

        def wire(nm, width, sgn, expr, keep=False):
            shape[nm] = (width, sgn)
            decl.append(f"  {'(* keep *) ' if keep else ''}wire {'signed ' if sgn else ''}[{width - 1}:0] {nm};")
            body.append(f"  assign {nm} = {expr};")

        def op(nm):  # the name as a signed operand
            if isinstance(nm, int):
                w = max(nm.bit_length(), (-nm - 1).bit_length()) + 1
                return f"{w}'sh{nm % (1 << w):x}"
            return nm if shape[nm][1] else f"$signed({{1'b0, {nm}}})"

        def seg(s):
            return max(1, math.ceil(g.depth[s] / L))

        base: dict = {}
        copies: dict = {}

        def at(s, k):
            if k <= seg(s) or (s < g.n_sources and g.sources[s][0] == "const"):
                return base[s]
            r = copies.get((s, k))
            if r is None:
                prev = at(s, k - 1)
                r = f"r{s}_{k}"
                w, sgn = _bits(g.lo[s], g.hi[s])
                shape[r] = (w, sgn)
                decl.append(f"  reg {'signed ' if sgn else ''}[{w - 1}:0] {r};")
                regs.append(f"      {r} <= {op(prev)};")
                copies[(s, k)] = r
            return r

        lanes = {}

        def lane(i):
            if i not in lanes:
                lanes[i] = f"x{i}"
                wire(f"x{i}", wi, self.in_type.signed, f"i_payload[{i * wi + wi - 1}:{i * wi}]")
            return lanes[i]

        for s, src in enumerate(g.sources):
            if src[0] == "in":
                x = lane(src[1])
                if src[2]:
                    w = wi - src[2] if not self.in_type.signed else max(wi - src[2], 1)
                    wire(f"s{s}", w, self.in_type.signed, f"{x} >>> {src[2]}")
                    base[s] = f"s{s}"
                else:
                    base[s] = x
            elif src[0] == "off":
                # x >> k with its top bit (of the lane's own width) inverted: x >> k plus 2**(w-1).
                x, w = lane(src[1]), src[3]
                if src[2]:
                    wire(f"s{s}_x", wi, self.in_type.signed, f"{x} >>> {src[2]}")
                    x = f"s{s}_x"
                wire(f"s{s}", w, False, f"{{~{x}[{w - 1}], {x}[{w - 2}:0]}}" if w > 1 else f"~{x}[0]")
                base[s] = f"s{s}"
            elif src[0] == "bit":
                bit = f"i_payload[{src[1] * wi + src[2]}]"
                wire(f"s{s}", 1, False, f"~{bit}" if src[3] else bit)
                base[s] = f"s{s}"
            else:
                base[s] = int(src[1])
        n = g.n_sources

        def flipped(v, x, m):
            """The operand ``x`` as ``m`` bits with the top one inverted (plus ``2**(m-1)`` modulo
            ``2**m``)."""
            wire(f"{v}_e", m, True, x)
            wire(f"{v}_f", m, True, f"{{~{v}_e[{m - 1}], {v}_e[{m - 2}:0]}}" if m > 1 else f"~{v}_e[0]")
            return f"{v}_f"

        def mergeable(k):
            p, sp, q, sq, d = g.adders[k]
            return sq != 0 and ((sp > 0 and d < g.width(n + k)) or (sp < 0 and sq > 0))

        def carried(nm, width, P, pn, d, q):
            # P with its bit d zeroed, plus Q, plus that bit: the carry-in (see below).
            wire(f"{nm}_p", width, False, f"({P} >>> {d + 1}) <<< 1")
            wire(f"{nm}_q", width, False, q)
            return f"{nm}_p + {nm}_q + {pn}[{d}]"

        # Adders only read with their top bits inverted compute that directly: the inversion
        # goes on one operand's top bit (modulo the width, the same sum), inside that bit's LUT.
        merged = {k for k in g.merged_flips() if mergeable(k)}
        chained = self._chained(merged, seg)
        for k, (p, sp, q, sq, d) in enumerate(g.adders):
            s = n + k
            here = seg(s)
            v = f"a{s}"
            if k in merged:
                continue
            w, sgn = _bits(g.lo[s], g.hi[s])
            m = None  # the result's bits whose top one is inverted
            if sq == 0 and p - n in merged:
                m = d
                p, sp, q, sq, d = g.adders[p - n]
                sgn = False
            elif sq == 0:
                # P's top bit (of its own d bits) inverted: P + 2**(d-1), never negative.
                x = at(p, here)
                wire(v, w, False, f"{{~{x}[{d - 1}], {x}[{d - 2}:0]}}" if d > 1 else f"~{x}[0]")
                base[s] = v
                continue
            P, Q = op(at(p, here)), op(at(q, here))
            # An addition whose lowest chain bit has both operands: P's bit there enters as the
            # carry-in instead, so that bit needs no LUT. The operands are extended to the sum's
            # width first, so the one-bit carry is a summand of its own (an unsigned expression).
            pn = at(p, here)
            cin = CARRY_IN and sp > 0 and sq > 0 and d < w and isinstance(pn, str) and shape[pn][0] > d

            if sp > 0 and d >= w:
                wire(v, w, sgn, P)  # Q only reaches bits above the result
            elif sp > 0 and d > 0:
                # The low d bits are P's own; only the bits above them need adding.
                wire(f"{v}_l", d, False, P)
                Qf = Q if m is None else flipped(v, Q, m - d)
                if cin:
                    wire(f"{v}_h", (m or w) - d, False, carried(v, (m or w) - d, P, pn, d, Qf), s in chained)
                else:
                    wire(f"{v}_h", (m or w) - d, False, f"({P} >>> {d}) {'+' if sq > 0 else '-'} {Qf}", s in chained)
                wire(v, w, sgn, f"{{{v}_h, {v}_l}}")
            elif sp > 0:
                Qf = Q if m is None else flipped(v, Q, m)
                if cin:
                    wire(v, w, sgn, carried(v, w, P, pn, d, Qf), s in chained)
                else:
                    wire(v, w, sgn, f"{P} {'+' if sq > 0 else '-'} ({Qf} <<< {d})", s in chained)
            else:
                Qd = f"({Q} <<< {d})" if d else Q
                if m is not None:
                    wire(v, w, sgn, f"{Qd} - {flipped(v, P, m)}", s in chained)
                else:
                    wire(v, w, sgn, f"{Qd} - {P}" if sq > 0 else f"-{P} - {Qd}", s in chained)
            base[s] = v
        outs = []
        for o, ref in enumerate(g.outputs):
            y = f"y{o}"
            outs.append(y)
            decl.append(f"  reg [{wo - 1}:0] {y} = {wo}'h0;")
            if ref is not None:
                s, sh, sign = ref
                e = op(at(s, stages))
                e = f"({e} <<< {sh})" if sh else e
                e = e if sign > 0 else "-" + e
                if self.relu and self.out_type.signed:
                    # The value fits the output type, so its top bit there is its sign.
                    wire(f"{y}_v", wo, False, e)
                    e = f"{y}_v[{wo - 1}] ? {wo}'h0 : {y}_v"
                regs.append(f"      {y} <= {e};")
        valid = [f"valid{s}" for s in range(stages)]
        shifts = ["      valid0 <= i_valid;"] + [f"      {valid[s]} <= {valid[s - 1]};" for s in range(1, stages)]
        lines = [
            # Operands are extended and results truncated on purpose (see above).
            "/* verilator lint_off WIDTH */",
            f"module {name}(clk, rst, i_valid, i_ready, i_payload, o_valid, o_ready, o_payload);",
            "  input clk;",
            "  input rst;",
            "  input i_valid;",
            "  output i_ready;",
            f"  input [{ni * wi - 1}:0] i_payload;",
            "  output o_valid;",
            "  input o_ready;",
            f"  output [{no * wo - 1}:0] o_payload;",
            *[f"  reg {v} = 1'b0;" for v in valid],
            "  wire enable;",
            *decl,
            f"  assign enable = ~{valid[-1]} | o_ready;",
            "  assign i_ready = enable;",
            f"  assign o_valid = {valid[-1]};",
            *body,
            "  always @(posedge clk)",
            "    if (rst) begin",
            *[f"      {v} <= 1'b0;" for v in valid],
            "    end else if (enable) begin",
            *shifts,
            "    end",
            "  always @(posedge clk)",
            "    if (enable) begin",
            *regs,
            "    end",
            f"  assign o_payload = {{{', '.join(reversed(outs))}}};",
            "endmodule",
            "/* verilator lint_on WIDTH */",
            "",
        ]
        return "\n".join(lines)
