"""Element-wise layers: combinational, latency 0, one vector per cycle."""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rtlgen.fixed import FixedType
from rtlgen.ir.ops import Concat, Gather, Merge, Relu, Requant, Reshape, Threshold

from ._common import Layer, drive_lanes, vector_stream
from ._registry import register

__all__ = ["ForkLayer", "GatherLayer", "MergeLayer", "ReluLayer", "RequantLayer", "ThresholdLayer", "requantize"]


def requantize(x: Value, src: FixedType, dst: FixedType) -> Value:
    """Hardware for :func:`rtlgen.fixed.cast`: round with ``dst.rounding``, then ``dst.overflow``."""
    shift = src.frac - dst.frac
    if shift <= 0:
        q = x << -shift
    else:
        width = x.shape().width
        if shift >= width:
            # Sign- or zero-extend first: the dropped bits must include the sign's copies.
            ext = x[-1].replicate(shift - width + 1) if x.shape().signed else Const(0, shift - width + 1)
            x = Cat(x, ext).as_signed() if x.shape().signed else Cat(x, ext)
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
    # An unsigned value is never below a bound of 0 or less: no comparison that is always false.
    under = (q < lo) if q.shape().signed or lo > 0 else Const(0, 1)
    if dst.overflow in ("SAT", "SAT_SYM"):
        return Mux(under, lo, Mux(q > hi, hi, q))
    return Mux(under | (q > hi), 0, q)  # SAT_ZERO


class _Elementwise(Layer):
    def lane(self, x: Value, k: int) -> Value:
        raise NotImplementedError  # pragma: no cover - every subclass defines it

    def elaborate(self, platform):
        from ._verilog import TextModules

        if isinstance(platform, TextModules) and callable(getattr(self, "verilog", None)):
            return platform.instance(self, type(self).__name__.lower().removesuffix("layer"), self.verilog)
        m = Module()
        m.d.comb += [self.o.valid.eq(self.i.valid), self.i.ready.eq(self.o.ready)]
        drive_lanes(m, self.o.payload, [self.lane(self.i.payload[k], k) for k in range(self.n_out)])
        return m


class _ElementwiseText:
    """The text form of an element-wise layer whose ``lane_text`` writes one lane (bit for bit its
    ``lane``): Amaranth lowers every bit of every lane, which took most of a dense network's
    build time."""

    def verilog(self, name: str) -> str:
        from ._verilog import _Text, stream_ports

        t = _Text()
        wi, wo = self.in_type.width, self.out_type.width
        lanes = []
        for k in range(self.n_out):
            v = self.lane_text(t, t.bits(f"i_payload[{(k + 1) * wi - 1}:{k * wi}]", wi, self.in_type.signed), k)
            lanes.append(_fit(v, wo))
        return "\n".join([
            "/* verilator lint_off WIDTH */",
            *stream_ports(name, self.n_in * wi, self.n_out * wo), *t.decl, *t.body,
            "  assign o_valid = i_valid;", "  assign i_ready = o_ready;",
            f"  assign o_payload = {{{', '.join(reversed(lanes))}}};",
            "endmodule", "/* verilator lint_on WIDTH */", "",
        ])  # fmt: skip


def _fit(v, width: int) -> str:
    """The low ``width`` bits of the signed value ``v`` (sign-extended when narrower), as
    :func:`._common.drive_lanes` drives a lane."""
    if not v.e[0].isalpha():  # a literal
        return f"{width}'d{v.lo % (1 << width)}"
    if v.w >= width:
        return f"{v.e}[{width - 1}:0]"
    return f"{{{{{width - v.w}{{{v.e}[{v.w - 1}]}}}}, {v.e}}}"


class ReluLayer(_ElementwiseText, _Elementwise):
    """``max(x, 0)`` per lane."""

    def __init__(self, in_type, out_type, n):
        super().__init__(in_type, n, out_type, n)

    def lane(self, x, k):
        return Mux(x < 0, 0, x)

    def lane_text(self, t, x, k):
        return t.clamp(x, 0, None)


class RequantLayer(_ElementwiseText, _Elementwise):
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

    def lane_text(self, t, x, k):
        if self.lanes is None:
            return t.cast(x, self.in_type.frac, self.out_type)
        lt = self.lanes[k]
        if lt is None:
            from ._verilog import _lit

            return _lit(0)
        return t.shl(t.cast(x, self.in_type.frac, lt), self.out_type.frac - lt.frac)


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
        from ._verilog import TextModules

        if isinstance(platform, TextModules):
            return platform.instance(self, "gather", self.verilog)
        m = Module()
        m.d.comb += [self.o.valid.eq(self.i.valid), self.i.ready.eq(self.o.ready)]
        drive_lanes(m, self.o.payload, [self.i.payload[i] if i >= 0 else Const(0, 1) for i in self.index])
        return m

    def verilog(self, name: str) -> str:
        """This layer as a Verilog module ``name``, bit for bit the same as the Amaranth form (a
        flatten moves thousands of lanes, which Amaranth lowers bit by bit). Lanes that read
        consecutive input lanes are written as one slice, and zero lanes as one constant."""
        from ._verilog import stream_ports

        wi, wo = self.in_type.width, self.out_type.width
        runs: list[list[int]] = []  # [first input lane or -1, lanes]
        for i in self.index:
            last = runs[-1] if runs else None
            if last and ((i < 0 and last[0] < 0) or (i >= 0 and wi == wo and last[0] >= 0 and last[0] + last[1] == i)):
                last[1] += 1
            else:
                runs.append([i, 1])
        parts = []
        for i, n in runs:
            if i < 0:
                parts.append(f"{n * wo}'d0")
            elif wo <= wi:
                parts.append(f"i_payload[{i * wi + n * wo - 1}:{i * wi}]")
            else:  # a wider lane: extended as the input type's sign says
                fill = f"{{{wo - wi}{{i_payload[{i * wi + wi - 1}]}}}}" if self.in_type.signed else f"{wo - wi}'d0"
                parts.append(f"{{{fill}, i_payload[{i * wi + wi - 1}:{i * wi}]}}")
        payload = "{" + ", ".join(reversed(parts)) + "}" if parts else f"{self.n_out * wo}'d0"
        return "\n".join([
            *stream_ports(name, self.n_in * wi, self.n_out * wo),
            "  assign o_valid = i_valid;", "  assign i_ready = o_ready;", f"  assign o_payload = {payload};",
            "endmodule", "",
        ])  # fmt: skip


class MergeLayer(wiring.Component):
    """Two vector streams ``a`` and ``b`` joined lane by lane into ``o`` (combinational, latency 0).

    A transfer happens when both inputs are valid and the output is ready; neither input is
    consumed alone, so the pairing of samples can never slip.
    """

    latency = 0
    initiation_interval = 1

    def __init__(self, in_types, out_type, n, *, kind, lane_sources=None):
        self.in_types, self.out_type, self.n, self.kind = list(in_types), out_type, n, kind
        self.lane_sources = lane_sources
        sizes = [n, n] if lane_sources is None else [1 + max(i for k, i in lane_sources if k == j) for j in (0, 1)]
        self.in_sizes = sizes
        super().__init__({
            "a": In(vector_stream(self.in_types[0], sizes[0])),
            "b": In(vector_stream(self.in_types[1], sizes[1])),
            "o": Out(vector_stream(out_type, n)),
        })  # fmt: skip

    def elaborate(self, platform):
        m = Module()
        a, b = self.a, self.b
        m.d.comb += [
            self.o.valid.eq(a.valid & b.valid),
            a.ready.eq(self.o.ready & b.valid),
            b.ready.eq(self.o.ready & a.valid),
        ]
        fa, fb = self.in_types[0].frac, self.in_types[1].frac
        f = max(fa, fb)
        if self.kind == "concat":
            f = self.out_type.frac
            for j, (k, i) in enumerate(self.lane_sources):
                src = (a, b)[k].payload[i]
                m.d.comb += self.o.payload[j].eq(src << (f - (fa, fb)[k]))
            return m
        for j in range(self.n):
            x, y = a.payload[j], b.payload[j]
            if self.kind == "mul":
                v = x * y
            else:
                x, y = x << (f - fa), y << (f - fb)
                if self.kind in ("add", "avg"):
                    v = x + y
                elif self.kind == "sub":
                    v = x - y
                elif self.kind == "max":
                    v = Mux(x > y, x, y)
                else:
                    v = Mux(x < y, x, y)
            m.d.comb += self.o.payload[j].eq(v)
        return m


class ForkLayer(wiring.Component):
    """One vector stream copied to ``n`` consumers, each taking every sample exactly once.

    Each output remembers whether it has taken the current sample, so consumers may accept it in
    different cycles; the input is released when all have it. Latency 0.
    """

    latency = 0
    initiation_interval = 1

    def __init__(self, t, lanes, n):
        self.n = n
        members = {"i": In(vector_stream(t, lanes))}
        members.update({f"o{k}": Out(vector_stream(t, lanes)) for k in range(n)})
        super().__init__(members)

    def outputs(self):
        return [getattr(self, f"o{k}") for k in range(self.n)]

    def elaborate(self, platform):
        m = Module()
        outs = self.outputs()
        taken = [Signal(name=f"taken{k}") for k in range(self.n)]
        done = [Signal(name=f"done{k}") for k in range(self.n)]
        for k, o in enumerate(outs):
            m.d.comb += [
                o.valid.eq(self.i.valid & ~taken[k]),
                o.payload.eq(self.i.payload),
                done[k].eq(taken[k] | o.ready),
            ]
        all_done = done[0]
        for d in done[1:]:
            all_done = all_done & d
        m.d.comb += self.i.ready.eq(all_done)
        with m.If(self.i.valid & all_done):
            m.d.sync += [t.eq(0) for t in taken]
        with m.Else():
            for k, o in enumerate(outs):
                with m.If(o.valid & o.ready):
                    m.d.sync += taken[k].eq(1)
        return m


@register(Relu)
def _relu_factory(op, inputs, output):
    return ReluLayer(inputs[0].type, output.type, inputs[0].size)


@register(Requant)
def _requant_factory(op, inputs, output):
    src = inputs[0]
    return RequantLayer(src.type, output.type, src.size, lanes=op.lane_types() if op.lanes else None)


@register(Threshold)
def _threshold_factory(op, inputs, output):
    src = inputs[0]
    return ThresholdLayer(
        src.type, output.type, src.size,
        thresholds=op.thresholds, increasing=op.increasing, base=op.base, step=op.step,
    )  # fmt: skip


@register(Gather)
def _gather_factory(op, inputs, output):
    return GatherLayer(inputs[0].type, inputs[0].size, output.type, index=op.index)


@register(Reshape)
def _reshape_factory(op, inputs, output):
    return GatherLayer(inputs[0].type, inputs[0].size, output.type, index=np.arange(inputs[0].size))


@register(Merge)
def _merge_factory(op, inputs, output):
    return MergeLayer([s.type for s in inputs], output.type, output.size, kind=op.kind)


@register(Concat)
def _concat_factory(op, inputs, output):
    return MergeLayer([s.type for s in inputs], output.type, output.size, kind="concat", lane_sources=op.lane_sources(inputs))
