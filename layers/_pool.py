"""Average pooling whose window sizes are not powers of two: a window sum times a constant reciprocal."""

from __future__ import annotations

from amaranth.hdl import Const, Module

from rtlgen.fixed import FixedType, type_for_range
from rtlgen.ir.ops import Pool

from ._common import Layer, drive_lanes
from ._dense import MaxTree, SumOfProducts
from ._elementwise import requantize
from ._registry import register

__all__ = ["ScaledSum"]


class ScaledSum(Layer):
    """Output lane ``o`` = ``cast(sum(x[i] for i in groups[o]) * factors[o])`` from the grid
    ``in_type.frac + factor_frac`` into ``out_type`` (its rounding and overflow).

    The sums come from the pipelined adder tree of :class:`SumOfProducts` (same ``latency``,
    interval 1); the constant product and the rounding follow its last register combinationally.
    """

    def __init__(self, in_type, n_in, out_type, *, groups, factors, factor_frac, adder_levels=3):
        self.groups = [list(g) for g in groups]
        self.factors = [int(f) for f in factors]
        self.factor_frac = int(factor_frac)
        if len(self.factors) != len(self.groups) or any(f <= 0 for f in self.factors):
            raise ValueError("factors must be one positive integer per output lane")
        # The sums are exact: a type wide enough for the largest window at either end of the input range.
        most = max((len(g) for g in self.groups), default=1)
        self.sum_type = type_for_range(min(in_type.min_mantissa, 0) * most, max(in_type.max_mantissa, 0) * most, in_type.frac)
        self.tree = SumOfProducts(in_type, n_in, self.sum_type, terms=[[(i, 1) for i in g] for g in self.groups], adder_levels=adder_levels)
        super().__init__(in_type, n_in, out_type, len(self.groups))

    @property
    def latency(self) -> int:
        return self.tree.latency

    initiation_interval = 1

    def elaborate(self, platform):
        m = Module()
        m.submodules.tree = tree = self.tree
        m.d.comb += [
            tree.i.payload.eq(self.i.payload),
            tree.i.valid.eq(self.i.valid),
            self.i.ready.eq(tree.i.ready),
            self.o.valid.eq(tree.o.valid),
            tree.o.ready.eq(self.o.ready),
        ]
        frac = self.in_type.frac + self.factor_frac
        lanes = []
        for o, f in enumerate(self.factors):
            p = tree.o.payload[o] * Const(f)
            w = p.shape().width
            src = FixedType(w, w - frac, p.shape().signed)
            lanes.append(requantize(p, src, self.out_type))
        drive_lanes(m, self.o.payload, lanes)
        return m


@register(Pool)
def _pool_factory(op, inputs, output):
    src = inputs[0]
    groups = op.groups()
    if op.kind == "max":
        return MaxTree(src.type, src.size, output.type, groups=groups, adder_levels=op.adder_levels)
    if op.recip_frac is None:
        terms = [[(i, w) for i in g] for g, w in zip(groups, op._lane_weights())]
        return SumOfProducts(src.type, src.size, output.type, terms=terms, adder_levels=op.adder_levels)
    return ScaledSum(
        src.type, src.size, output.type, groups=groups, factors=op.reciprocals(), factor_frac=op.recip_frac,
        adder_levels=op.adder_levels,
    )  # fmt: skip
