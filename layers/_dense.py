"""Dense layers: ``y = x @ W + b`` with constant weights.

``DenseParallel`` (reuse factor 1) computes every product at once through a pipelined adder tree and
accepts a vector every cycle. ``DenseReuse`` (reuse factor R > 1) shares ``ceil(n_in / R) * n_out``
multipliers over ``ceil(n_in / ceil(n_in / R))`` cycles, reading each cycle's weights from one ROM
word (block RAM when it is large, logic otherwise).
"""

from __future__ import annotations

import math

import numpy as np
from amaranth.hdl import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory

from rtlgen.fixed import FixedType
from rtlgen.ir.ops import Dense
from rtlgen.plan.adders import lane_bounds
from rtlgen.plan.reuse import reuse_plan

from ._common import Layer, shape_of
from ._registry import register
from ._verilog import stream_ports

__all__ = ["DenseParallel", "DenseReuse", "MaxTree", "SumOfProducts", "dense_hardware"]


def _product(x, w: int):
    """``x * w`` for a constant ``w``, without a multiplier where a shift or negation does."""
    if w == 0:
        return None
    mag = abs(w)
    if mag & (mag - 1) == 0:
        p = x << (mag.bit_length() - 1)
        return -p if w < 0 else p
    return x * w


def _round_product(p, shift, accum):
    """A product moved onto the accumulator grid with its rounding mode (hls4ml's accum_t); the
    sum wraps to the accumulator width where the output lane truncates it."""
    if accum is None or shift <= 0:
        return p
    from ._elementwise import requantize

    w = p.shape().width
    src = FixedType(w, w - shift, p.shape().signed)
    # One bit more than the rounded value needs, so this cast never wraps.
    dst = FixedType(w - shift + 2, w - shift + 2, True, accum.rounding, "WRAP")
    return requantize(p, src, dst)


def _acc_shape(weight, in_type: FixedType, bias):
    # Any partial sum is bounded by the sum of term magnitudes, so the accumulator never wraps.
    xmax = max(abs(in_type.min_mantissa), abs(in_type.max_mantissa))
    bound = int(np.abs(weight).astype(object).sum(axis=0).max(initial=0)) * xmax
    if bias is not None:
        bound += int(np.abs(bias).astype(object).max(initial=0))
    return signed(max(bound.bit_length() + 1, 2))


class _TreeLayer(Layer):
    """Per output lane, a reduction tree over terms built from the input lanes, pipelined with a
    register every ``adder_levels`` tree levels and one stall signal for the whole pipeline.

    ``latency`` = number of register stages (at least 1); ``initiation_interval`` = 1.
    """

    def __init__(self, in_type, n_in, out_type, n_out, *, term_counts, adder_levels=3):
        if adder_levels < 1:
            raise ValueError(f"adder_levels must be a positive integer, not {adder_levels}")
        self.adder_levels = adder_levels
        self.tree_depth = max((math.ceil(math.log2(t)) if t > 1 else 0) for t in term_counts) if term_counts else 0
        super().__init__(in_type, n_in, out_type, n_out)

    @property
    def latency(self) -> int:
        return max(1, math.ceil(self.tree_depth / self.adder_levels))

    initiation_interval = 1

    def lane_terms(self, x: list, o: int) -> list:
        raise NotImplementedError  # pragma: no cover - every subclass defines it

    def combine(self, a, b):
        return a + b

    def elaborate(self, platform):
        m = Module()
        stages = self.latency
        valid = [Signal(name=f"valid{s}") for s in range(stages)]
        enable = Signal()
        m.d.comb += [enable.eq(~valid[-1] | self.o.ready), self.i.ready.eq(enable), self.o.valid.eq(valid[-1])]
        with m.If(enable):
            m.d.sync += valid[0].eq(self.i.valid)
            for s in range(1, stages):
                m.d.sync += valid[s].eq(valid[s - 1])

        x = [self.i.payload[i] for i in range(self.n_in)]
        lanes = [self.lane_terms(x, o) or [Const(0, 1)] for o in range(self.n_out)]

        def reduce_level(t):
            return [self.combine(t[j], t[j + 1]) if j + 1 < len(t) else t[j] for j in range(0, len(t), 2)]

        stage = 0
        for level in range(1, max(self.tree_depth, 1) + 1):
            lanes = [reduce_level(t) for t in lanes] if self.tree_depth else lanes
            if level % self.adder_levels == 0 or level == max(self.tree_depth, 1):
                regs = []
                for o, t in enumerate(lanes):
                    row = []
                    for j, v in enumerate(t):
                        r = Signal(v.shape(), name=f"s{stage}_o{o}_{j}")
                        with m.If(enable):
                            m.d.sync += r.eq(v)
                        row.append(r)
                    regs.append(row)
                lanes = regs
                stage += 1
        assert stage == stages
        for o, t in enumerate(lanes):
            assert len(t) == 1
            m.d.comb += self.o.payload[o].eq(t[0])
        return m


class _ProductTree(_TreeLayer):
    """Output lane ``o`` = ``bias[o] + sum(x[i] * w for i, w in terms[o])``, one product per weight
    and an adder tree: the form for products rounded one by one (hls4ml's accum_t) and for
    multipliers Yosys maps to DSPs (``Strategy: resource`` at reuse factor 1)."""

    def __init__(self, in_type, n_in, out_type, *, terms, bias=None, adder_levels=3, accum=None, product_shift=0, dsp=False):
        self.terms = terms
        self.bias = bias
        self.accum, self.product_shift, self.dsp = accum, product_shift, dsp
        counts = [len(t) + int(self.bias is not None and self.bias[o] != 0) for o, t in enumerate(self.terms)]
        super().__init__(in_type, n_in, out_type, len(self.terms), term_counts=counts, adder_levels=adder_levels)

    @property
    def multipliers(self) -> int:
        return sum(1 for t in self.terms for _, w in t if self.dsp or abs(w) & (abs(w) - 1))

    def elaborate(self, platform):
        from ._verilog import TextModules

        if isinstance(platform, TextModules):
            return platform.instance(self, "product_tree", self.verilog)
        return super().elaborate(platform)

    def verilog(self, name: str) -> str:
        """This layer as a Verilog module ``name``, cycle for cycle and bit for bit the same as
        :meth:`elaborate` (ports ``clk rst i_valid i_ready i_payload o_valid o_ready o_payload``).

        Amaranth lowers every multiplier and adder bit by bit, which takes minutes for a large
        float network; the text is written in milliseconds. Every signal is a signed wire as wide as
        its exact range needs (products, rounded products and sums of known ranges), so Verilog's
        sign extension to the widest operand keeps every sum exact; the output lane keeps the low
        bits of the total, as the Amaranth form's assignment does."""
        from rtlgen.plan.adders import _bits

        t_in, t_out = self.in_type, self.out_type
        wi, wo, ni, no = t_in.width, t_out.width, self.n_in, self.n_out
        xlo, xhi = t_in.min_mantissa, t_in.max_mantissa
        decl, body, regs = [], [], []
        n = [0]

        def wire(expr, lo, hi, at_least=1):
            w = max(_bits(lo, hi)[0] + (lo >= 0), at_least)  # one bit more when non-negative: signed
            nm = f"w{n[0]}"
            n[0] += 1
            decl.append(f"  wire signed [{w - 1}:0] {nm};")
            body.append(f"  assign {nm} = {expr};")
            return nm, lo, hi, w

        def const(v):
            w = max(v.bit_length(), (-v - 1).bit_length()) + 1
            return f"{w}'sh{v % (1 << w):x}"

        xs = {}

        def lane(i):
            if i not in xs:
                bits = f"i_payload[{i * wi + wi - 1}:{i * wi}]"
                xs[i] = wire(bits if t_in.signed else f"$signed({{1'b0, {bits}}})", xlo, xhi)
            return xs[i]

        shift, acc = self.product_shift, self.accum
        rounding = acc.rounding if acc is not None else "TRN"
        lanes = []
        for o in range(no):
            terms = []
            for i, wt in self.terms[o]:
                x = lane(i)
                lo, hi = sorted((xlo * wt, xhi * wt))
                # At least one bit above the dropped ones: the sign is read from there.
                p = wire(f"{x[0]} * {const(wt)}", lo, hi, shift + 1 if acc is not None and shift > 0 else 1)
                if acc is not None and shift > 0:
                    rem, half = f"{p[0]}[{shift - 1}:0]", 1 << (shift - 1)
                    neg = f"{p[0]}[{p[3] - 1}]"
                    above, at, nz = f"({rem} > {shift}'d{half})", f"({rem} == {shift}'d{half})", f"({rem} != 0)"
                    up = {
                        "TRN": "1'b0", "TRN_ZERO": f"{neg} & {nz}", "RND": f"{above} | {at}", "RND_MIN_INF": above,
                        "RND_ZERO": f"{above} | ({at} & {neg})", "RND_INF": f"{above} | ({at} & ~{neg})",
                        "RND_CONV": f"{above} | ({at} & {p[0]}[{shift}])",
                    }[rounding]  # fmt: skip
                    p = wire(f"({p[0]} >>> {shift}) + $signed({{1'b0, {up}}})", lo >> shift, -((-hi) >> shift))
                terms.append(p)
            if self.bias is not None and self.bias[o] != 0:
                b = int(self.bias[o])
                terms.append(wire(const(b), b, b))
            lanes.append(terms or [wire("2'sh0", 0, 0)])

        def reg(t):
            nm = f"r{n[0]}"
            n[0] += 1
            decl.append(f"  reg signed [{t[3] - 1}:0] {nm};")
            regs.append(f"      {nm} <= {t[0]};")
            return (nm, *t[1:])

        stage, stages = 0, self.latency
        for level in range(1, max(self.tree_depth, 1) + 1):
            if self.tree_depth:
                lanes = [[wire(f"{t[j][0]} + {t[j + 1][0]}", t[j][1] + t[j + 1][1], t[j][2] + t[j + 1][2])
                          if j + 1 < len(t) else t[j] for j in range(0, len(t), 2)] for t in lanes]  # fmt: skip
            if level % self.adder_levels == 0 or level == max(self.tree_depth, 1):
                lanes = [[reg(v) for v in t] for t in lanes]
                stage += 1
        assert stage == stages
        outs = []
        for o, t in enumerate(lanes):
            y = f"y{o}"
            decl.append(f"  wire signed [{max(wo, t[0][3]) - 1}:0] {y};")
            body.append(f"  assign {y} = {t[0][0]};")
            outs.append(f"{y}[{wo - 1}:0]")
        valid = [f"valid{s}" for s in range(stages)]
        return "\n".join([
            "/* verilator lint_off WIDTH */",
            *stream_ports(name, ni * wi, no * wo),
            *[f"  reg {v} = 1'b0;" for v in valid],
            "  wire enable;", *decl,
            f"  assign enable = ~{valid[-1]} | o_ready;", "  assign i_ready = enable;", f"  assign o_valid = {valid[-1]};",
            *body,
            "  always @(posedge clk)", "    if (rst) begin", *[f"      {v} <= 1'b0;" for v in valid],
            "    end else if (enable) begin", "      valid0 <= i_valid;",
            *[f"      {valid[k]} <= {valid[k - 1]};" for k in range(1, stages)], "    end",
            "  always @(posedge clk)", "    if (enable) begin", *regs, "    end",
            f"  assign o_payload = {{{', '.join(reversed(outs))}}};",
            "endmodule", "/* verilator lint_on WIDTH */", "",
        ])  # fmt: skip

    def lane_terms(self, x, o):
        mul = (lambda a, w: a * w) if self.dsp else _product
        terms = [_round_product(mul(x[i], w), self.product_shift, self.accum) for i, w in self.terms[o]]
        if self.bias is not None and self.bias[o] != 0:
            terms.append(Const(int(self.bias[o])))
        return terms


class SumOfProducts(Layer):
    """Output lane ``o`` = ``bias[o] + sum(x[i] * w for i, w in terms[o])`` with constant weights:
    the fully parallel form of dense layers, convolutions and average pooling.

    ``strategy="latency"`` (the default) builds a shift-add adder graph with shared subexpressions
    and no multiplier (:mod:`._adders`); ``"resource"`` one multiplier per non-zero weight, which
    synthesis maps to DSPs. Products rounded one by one (``accum`` with ``product_shift > 0``)
    always take the multiplier form. ``in_values``: per input lane, the only values it takes (or
    None), e.g. ``(-1, 1)`` for bipolar activations, which then enter as single bits.
    ``in_ranges``: per input lane ``[lo, hi, k]`` or None, a lane known to stay in ``[lo, hi]``
    on multiples of ``2**k`` (per-lane quantizers, HGQ2), so its adders are only as wide as it is.
    ``latency`` and ``initiation_interval`` are those of the chosen form.
    """

    def __init__(
        self, in_type, n_in, out_type, *, terms, bias=None, adder_levels=3, accum=None, product_shift=0,
        strategy="latency", in_values=None, in_ranges=None,
    ):  # fmt: skip
        from ._adders import AdderGraphLayer, plan_adder_graph

        if strategy not in ("latency", "resource"):
            raise ValueError(f"strategy must be 'latency' or 'resource', not {strategy!r}")
        self.terms = [[(int(i), int(w)) for i, w in t if w != 0] for t in terms]
        self.bias = None if bias is None else np.asarray(bias)
        self.accum, self.product_shift, self.strategy = accum, product_shift, strategy
        self.adder_levels = adder_levels
        n_out = len(self.terms)
        if strategy == "resource" or (accum is not None and product_shift > 0):
            self.impl = _ProductTree(
                in_type, n_in, out_type, terms=self.terms, bias=self.bias, adder_levels=adder_levels,
                accum=accum, product_shift=product_shift, dsp=strategy == "resource",
            )  # fmt: skip
        else:
            weight = np.zeros((n_in, n_out), dtype=object)
            for o, t in enumerate(self.terms):
                for i, w in t:
                    weight[i, o] += w
            lo, hi, values, steps = lane_bounds(in_type, n_in, in_values, in_ranges)
            graph = plan_adder_graph(weight, lo, hi, self.bias, values=values, steps=steps, adder_levels=adder_levels)
            self.impl = AdderGraphLayer(in_type, out_type, graph, n_in=n_in, adder_levels=adder_levels)
        # Elaborated as this layer's submodule; a layer built only for its figures needs no warning.
        self.impl._MustUse__silence = True
        super().__init__(in_type, n_in, out_type, n_out)

    @property
    def latency(self) -> int:
        return self.impl.latency

    @property
    def initiation_interval(self) -> int:
        return self.impl.initiation_interval

    @property
    def multipliers(self) -> int:
        return self.impl.multipliers

    @property
    def adders(self) -> int:
        return getattr(self.impl, "adders", None)

    def elaborate(self, platform):
        m = Module()
        m.submodules.arith = self.impl
        wiring.connect(m, wiring.flipped(self.i), self.impl.i)
        wiring.connect(m, self.impl.o, wiring.flipped(self.o))
        return m


class DenseParallel(SumOfProducts):
    """Fully parallel dense layer (reuse factor 1): one vector per cycle.

    ``strategy``: ``"latency"`` for the multiplier-free adder graph, ``"resource"`` for one DSP
    multiplier per non-zero weight."""

    def __init__(
        self, in_type, out_type, *, weight, bias=None, adder_levels=3, accum=None, product_shift=0,
        strategy="latency", in_values=None, in_ranges=None,
    ):  # fmt: skip
        self.weight = np.asarray(weight)
        n_in, n_out = self.weight.shape
        w = self.weight
        if accum is not None and product_shift < 0:
            # Products already on the accumulator grid: the golden model scales the weights.
            w = w.astype(object) * (1 << -product_shift)
            product_shift = 0
        terms = [[(i, w[i, o]) for i in range(n_in) if w[i, o]] for o in range(n_out)]
        super().__init__(
            in_type, n_in, out_type, terms=terms, bias=bias, adder_levels=adder_levels,
            accum=accum, product_shift=product_shift, strategy=strategy, in_values=in_values,
            in_ranges=in_ranges,
        )  # fmt: skip


def dense_hardware(op, src, dst) -> Layer:
    """The component for an IR :class:`~rtlgen.ir.Dense` node: reuse factor 1 gives
    :class:`DenseParallel` with the node's strategy (adder graph or DSP multipliers), above 1
    :class:`DenseReuse`."""
    acc = {"accum": op.accum, "product_shift": op.product_shift}
    if op.reuse_factor == 1:
        return DenseParallel(
            src.type, dst.type, weight=op.weight, bias=op.bias, adder_levels=op.adder_levels,
            strategy=op.strategy, in_values=op.in_values, in_ranges=op.in_ranges, **acc,
        )  # fmt: skip
    return DenseReuse(src.type, dst.type, weight=op.weight, bias=op.bias, reuse_factor=op.reuse_factor, **acc)


class MaxTree(_TreeLayer):
    """Output lane ``o`` = the maximum of input lanes ``groups[o]``: max pooling."""

    def __init__(self, in_type, n_in, out_type, *, groups, adder_levels=3):
        self.groups = [list(g) for g in groups]
        super().__init__(in_type, n_in, out_type, len(self.groups), term_counts=[len(g) for g in self.groups], adder_levels=adder_levels)

    def lane_terms(self, x, o):
        return [x[i] for i in self.groups[o]]

    def combine(self, a, b):
        return Mux(a > b, a, b)


def _select(values, index):
    """``values[index]`` as a tree of 2:1 multiplexers.

    An ``Array`` lookup becomes a ``case`` in an ``always @*`` block, which event-driven simulators
    leave undefined until an input changes; continuous assignments are defined from time 0.
    """
    level, bit = list(values), 0
    while len(level) > 1:
        sel = index[bit]
        level = [Mux(sel, level[j + 1], level[j]) if j + 1 < len(level) else level[j] for j in range(0, len(level), 2)]
        bit += 1
    return level[0]


# Weight ROMs at least this deep and this large go to block RAM: below, a ROM bit costs about one
# LUT6 per 64 words, which is cheaper than a block RAM. (Yosys cannot put a ROM in LUTRAM; without
# the attribute it builds the ROM from logic, which is what a small ROM should be.)
BLOCK_ROM_DEPTH = 64
BLOCK_ROM_BITS = 4096


class DenseReuse(Layer):
    """Time-multiplexed dense layer with ``multipliers = inputs per cycle * outputs per cycle``.

    ``initiation_interval`` = ``cycles`` and ``latency`` = ``cycles + 1``: the input is latched,
    one block of products is accumulated per cycle, and the result is registered on the last one
    while the next vector may already be accepted.
    """

    def __init__(self, in_type, out_type, *, weight, bias=None, reuse_factor, accum=None, product_shift=0):
        self.accum, self.product_shift = accum, product_shift
        self.weight = np.asarray(weight)
        self.bias = None if bias is None else np.asarray(bias)
        n_in, n_out = self.weight.shape
        if not 1 <= reuse_factor <= n_in * n_out:
            raise ValueError(f"reuse factor must be between 1 and {n_in * n_out}, not {reuse_factor}")
        self.reuse_factor = reuse_factor
        self.per_in, self.per_out, self.cycles = reuse_plan(n_in, n_out, reuse_factor)
        super().__init__(in_type, n_in, out_type, n_out)

    @property
    def latency(self) -> int:
        return self.cycles + 1

    @property
    def initiation_interval(self) -> int:
        return self.cycles

    @property
    def multipliers(self) -> int:
        return self.per_in * self.per_out

    def _roms(self):
        """Per multiplier ``(q, j)`` with a weight other than zero in some cycle, its weight in every
        cycle: multiplier ``(q, j)`` computes input ``chunk * k + j`` times output ``group * s + q``."""
        k, s, C = self.per_in, self.per_out, self.cycles
        G = math.ceil(self.n_out / s)
        t = np.arange(C)
        w = np.zeros((math.ceil(self.n_in / k) * k, G * s), dtype=np.int64)
        w[: self.n_in, : self.n_out] = self.weight
        roms = {}
        for q in range(s):
            for j in range(k):
                rom = w[(t // G) * k + j, (t % G) * s + q]
                if rom.any():
                    roms[q, j] = [int(v) for v in rom]
        return roms

    def elaborate(self, platform):
        from ._verilog import TextModules

        if isinstance(platform, TextModules):
            return platform.instance(self, "dense_reuse", self.verilog)
        return self._amaranth()

    def verilog(self, name: str) -> str:
        """This layer as a Verilog module ``name``, cycle for cycle and bit for bit the same as the
        Amaranth form (ports ``clk rst i_valid i_ready i_payload o_valid o_ready o_payload``),
        written in a fraction of the time Amaranth takes to lower it. Arithmetic wires are signed
        and as wide as their exact ranges; the weight ROM is read one cycle ahead as there."""
        from ._verilog import round_up_bit, signed_const, signed_width

        k, s, C = self.per_in, self.per_out, self.cycles
        G = math.ceil(self.n_out / s)
        n_chunks = C // G
        t_in, t_out = self.in_type, self.out_type
        wi, wo, ni, no = t_in.width, t_out.width, self.n_in, self.n_out
        xlo, xhi = t_in.min_mantissa, t_in.max_mantissa
        aw = _acc_shape(self.weight, self.in_type, self.bias).width
        cw, chw, gw = max(C - 1, 1).bit_length(), max(n_chunks - 1, 1).bit_length(), max(G - 1, 1).bit_length()
        wb = max(int(np.abs(self.weight).max(initial=0)).bit_length() + 1, 2)
        decl, body, rom_text = [], [], []
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

        sel = []
        for j in range(k):
            idx = [c * k + j for c in range(n_chunks)]
            real = [i for i in idx if i < ni]
            if not real:
                sel.append(wire("2'sh0", 0, 0))
            elif n_chunks == 1:
                sel.append(wire(as_signed(f"x{idx[0]}"), xlo, xhi))
            else:
                word = "{" + ", ".join(f"x{i}" if i < ni else f"{wi}'d0" for i in reversed(idx)) + "}"
                decl.append(f"  wire [{n_chunks * wi - 1}:0] v{j};")
                body.append(f"  assign v{j} = {word};")
                sel.append(wire(as_signed(f"v{j}[chunk * {wi} +: {wi}]"), min(xlo, 0), max(xhi, 0)))
        roms = self._roms()
        used = list(roms)
        weights = {}
        if C > 1 and used:
            # All weights of a cycle in one ROM word, read at the count the next cycle will have.
            width = wb * len(used)
            block = C >= BLOCK_ROM_DEPTH and C * width >= BLOCK_ROM_BITS
            words = [sum((roms[qj][t] & ((1 << wb) - 1)) << (m * wb) for m, qj in enumerate(used)) for t in range(C)]
            rom_text = [
                *(['  (* rom_style = "block" *)'] if block else []),
                f"  reg [{width - 1}:0] rom [0:{C - 1}];", f"  reg [{width - 1}:0] word;", f"  reg [{cw - 1}:0] nxt;",
                "  initial begin", *[f"    rom[{t}] = {width}'h{v:x};" for t, v in enumerate(words)], "  end",
                "  always @* begin", "    nxt = cnt;", f"    if (advance) nxt = last ? {cw}'d0 : cnt + {cw}'d1;",
                f"    if (i_valid & i_ready) nxt = {cw}'d0;", "  end",
                "  always @(posedge clk) word <= rom[nxt];",
            ]  # fmt: skip
            for m, qj in enumerate(used):
                decl.append(f"  wire signed [{wb - 1}:0] c{m};")
                body.append(f"  assign c{m} = word[{(m + 1) * wb - 1}:{m * wb}];")
                weights[qj] = f"c{m}"
        else:
            weights = {qj: signed_const(roms[qj][0]) for qj in used}
        shift, acc = self.product_shift, self.accum
        rounded = acc is not None and shift > 0
        products = []
        for q in range(s):
            terms = []
            for j in range(k):
                if (q, j) not in weights:
                    continue
                x = sel[j]
                ws = roms[q, j]
                lo = min(0, min(min(x[1] * w, x[2] * w) for w in ws))
                hi = max(0, max(max(x[1] * w, x[2] * w) for w in ws))
                # At least one bit above the dropped ones: the sign is read from there.
                p = wire(f"{x[0]} * {weights[q, j]}", lo, hi, shift + 1 if rounded else 1)
                if rounded:
                    up = round_up_bit(p[0], p[3], shift, acc.rounding)
                    p = wire(f"({p[0]} >>> {shift}) + $signed({{1'b0, {up}}})", lo >> shift, -((-hi) >> shift))
                terms.append(p)
            products.append(wire(" + ".join(t[0] for t in terms), sum(t[1] for t in terms), sum(t[2] for t in terms)) if terms else None)
        step, final = [], []
        for o in range(no):
            p = products[o % s]
            if p is not None:
                cond = f"if (group == {gw}'d{o // s}) " if G > 1 else ""
                step.append(f"      {cond}acc{o} <= acc{o} + {p[0]};")
            fin = f"acc{o} + {p[0]}" if (p is not None and o // s == G - 1) else f"acc{o}"
            final.append(f"        out{o} <= {fin};")
        if G > 1:
            walk = [f"      if (group == {gw}'d{G - 1}) begin", f"        group <= {gw}'d0;", f"        chunk <= chunk + {chw}'d1;",
                    f"      end else group <= group + {gw}'d1;"]  # fmt: skip
        else:
            walk = [f"      chunk <= chunk + {chw}'d1;"]
        restart = [f"{r} <= {b}'d0;" for r, b in (("cnt", cw), ("chunk", chw), ("group", gw))]
        bias = [int(self.bias[o]) if self.bias is not None else 0 for o in range(no)]
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
            f"  reg [{chw - 1}:0] chunk = {chw}'d0;", f"  reg [{gw - 1}:0] group = {gw}'d0;",
            *[f"  reg [{wi - 1}:0] x{i} = {wi}'d0;" for i in range(ni)],
            *[f"  reg signed [{aw - 1}:0] acc{o} = {aw}'sd0;" for o in range(no)],
            *[f"  reg signed [{aw - 1}:0] out{o} = {aw}'sd0;" for o in range(no)],
            "  wire last, out_free, advance;",
            f"  assign last = busy & (cnt == {cw}'d{C - 1});", "  assign out_free = ~valid | o_ready;",
            "  assign advance = busy & (~last | out_free);", "  assign i_ready = ~busy | (last & out_free);",
            "  assign o_valid = valid;", *rom_text, *decl, *body,
            "  always @(posedge clk) begin",
            "    if (o_ready) valid <= 1'b0;",
            "    if (advance) begin", f"      cnt <= cnt + {cw}'d1;", *walk, *step,
            "      if (last) begin", *final, "        valid <= 1'b1;", "        busy <= 1'b0;",
            *[f"        {r}" for r in restart], "      end",
            "    end",
            "    if (i_valid & i_ready) begin",
            *[f"      x{i} <= i_payload[{i * wi + wi - 1}:{i * wi}];" for i in range(ni)],
            *[f"      acc{o} <= {signed_const(b)};" for o, b in enumerate(bias)],
            "      busy <= 1'b1;", *[f"      {r}" for r in restart], "    end",
            "    if (rst) begin", "      valid <= 1'b0;", "      busy <= 1'b0;", *[f"      {r}" for r in restart], "    end",
            "  end",
            f"  assign o_payload = {{{', '.join(reversed(outs))}}};",
            "endmodule", "/* verilator lint_on WIDTH */", "",
        ])  # fmt: skip

    def _amaranth(self):
        m = Module()
        k, s, C = self.per_in, self.per_out, self.cycles
        G = math.ceil(self.n_out / s)  # output groups; cycle t handles chunk t // G, group t % G
        acc_shape = _acc_shape(self.weight, self.in_type, self.bias)
        xs = [Signal(shape_of(self.in_type), name=f"x{i}") for i in range(self.n_in)]
        acc = [Signal(acc_shape, name=f"acc{o}") for o in range(self.n_out)]
        out = [Signal(acc_shape, name=f"out{o}") for o in range(self.n_out)]
        busy = Signal()
        cnt = Signal(range(max(C, 2)))
        chunk = Signal(range(max(C // G, 2)))
        group = Signal(range(max(G, 2)))
        last = Signal()
        out_free = Signal()
        advance = Signal()
        m.d.comb += [
            last.eq(busy & (cnt == C - 1)),
            out_free.eq(~self.o.valid | self.o.ready),
            advance.eq(busy & (~last | out_free)),
            self.i.ready.eq(~busy | (last & out_free)),
        ]
        n_chunks = C // G
        sel_x = []
        for j in range(k):
            lanes = [xs[c * k + j] if c * k + j < self.n_in else Const(0, 1) for c in range(n_chunks)]
            sel_x.append(_select(lanes, chunk) if n_chunks > 1 else lanes[0])
        wmax = int(np.abs(self.weight).max(initial=0))
        wshape = signed(max(wmax.bit_length() + 1, 2))

        def w_at(i, o):
            return int(self.weight[i, o]) if i < self.n_in and o < self.n_out else 0

        # Multiplier (j, q) computes input chunk*k + j times output group*s + q.
        roms = {(q, j): [w_at((t // G) * k + j, (t % G) * s + q) for t in range(C)] for q in range(s) for j in range(k)}
        used = [qj for qj, rom in roms.items() if any(rom)]
        weights = {}
        if C > 1 and used:
            # All weights of a cycle in one word of one ROM, read synchronously at the count the
            # next cycle will have: the word is ready exactly when that cycle starts, so a large
            # ROM can be block RAM at no extra latency.
            wb = wshape.width
            word = [sum((roms[qj][t] & ((1 << wb) - 1)) << (n * wb) for n, qj in enumerate(used)) for t in range(C)]
            block = C >= BLOCK_ROM_DEPTH and C * wb * len(used) >= BLOCK_ROM_BITS
            mem = Memory(shape=unsigned(wb * len(used)), depth=C, init=word, attrs={"rom_style": "block"} if block else None)
            m.submodules.wrom = mem
            port = mem.read_port(domain="sync")
            nxt = Signal.like(cnt)
            m.d.comb += nxt.eq(cnt)
            with m.If(advance):
                m.d.comb += nxt.eq(Mux(last, 0, cnt + 1))
            with m.If(self.i.valid & self.i.ready):
                m.d.comb += nxt.eq(0)
            m.d.comb += port.addr.eq(nxt)
            weights = {qj: port.data[n * wb : (n + 1) * wb].as_signed() for n, qj in enumerate(used)}
        elif used:
            weights = {qj: Const(roms[qj][0], wshape) for qj in used}
        products = []
        for q in range(s):
            row = [_round_product(sel_x[j] * weights[(q, j)], self.product_shift, self.accum) if (q, j) in weights else None for j in range(k)]
            terms = [p for p in row if p is not None]
            products.append(sum(terms) if terms else None)
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(advance):
            m.d.sync += cnt.eq(cnt + 1)
            if G > 1:
                with m.If(group == G - 1):
                    m.d.sync += [group.eq(0), chunk.eq(chunk + 1)]
                with m.Else():
                    m.d.sync += group.eq(group + 1)
            else:
                m.d.sync += chunk.eq(chunk + 1)
            for o in range(self.n_out):
                p = products[o % s]
                if p is None:
                    continue
                with m.If((group == o // s) if G > 1 else Const(1, 1)):
                    m.d.sync += acc[o].eq(acc[o] + p)
            with m.If(last):
                # The last cycle serves the last output group; the others are already complete.
                for o in range(self.n_out):
                    p = products[o % s]
                    final = acc[o] + p if (p is not None and o // s == G - 1) else acc[o]
                    m.d.sync += out[o].eq(final)
                m.d.sync += [self.o.valid.eq(1), busy.eq(0), cnt.eq(0), chunk.eq(0), group.eq(0)]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [x.eq(self.i.payload[i]) for i, x in enumerate(xs)]
            m.d.sync += [busy.eq(1), cnt.eq(0), chunk.eq(0), group.eq(0)]
            m.d.sync += [a.eq(int(self.bias[o]) if self.bias is not None else 0) for o, a in enumerate(acc)]
        for o in range(self.n_out):
            m.d.comb += self.o.payload[o].eq(out[o])
        return m


@register(Dense)
def _dense_factory(op, inputs, output):
    return dense_hardware(op, inputs[0], output)
