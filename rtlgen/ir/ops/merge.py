"""Ops with two inputs: element-wise merges and concatenation. They make the graph a DAG.

Inputs may have different fixed-point types: both are first re-expressed exactly on the finer grid
(more fractional bits), so every merge is exact; the output type is derived from the bounds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rtlgen.fixed import align, int_array
from rtlgen.ir.graph import GraphError, register_op

from ._base import Op
from ._bounds import magnitude

__all__ = ["Merge", "Concat", "MERGE_KINDS"]

MERGE_KINDS = ("add", "sub", "mul", "avg", "max", "min")


@register_op
@dataclass
class Merge(Op):
    """``y = a (kind) b`` lane by lane, exactly. ``avg`` keeps the half bit (one more fractional
    bit); ``mul`` adds the fractional bits of both inputs."""

    kind: str = "add"
    arity = 2

    def __post_init__(self):
        if self.kind not in MERGE_KINDS:
            raise ValueError(f"merge kind must be one of {', '.join(MERGE_KINDS)}, not {self.kind!r}")

    def verify(self, name, ins, out):
        if ins[0].shape != ins[1].shape:
            raise GraphError(f"node {name!r}: {self.kind} of tensors of shapes {ins[0].shape} and {ins[1].shape}")

    def error_bound(self, ctx, node, errs):
        a, b = errs
        if self.kind in ("add", "sub"):
            return a + b
        if self.kind == "avg":
            return (a + b) / 2
        if self.kind in ("max", "min"):
            return max(a, b)
        ma = magnitude(ctx.graph.tensors[node.inputs[0]], ctx.bounds)
        mb = magnitude(ctx.graph.tensors[node.inputs[1]], ctx.bounds)
        return ma * b + mb * a + a * b

    def evaluate(self, xs, srcs, dst):
        a, b = (int_array(x) for x in xs)
        if self.kind == "mul":
            return a * b
        f = max(s.type.frac for s in srcs)
        a, b = align(a, srcs[0].type.frac, f), align(b, srcs[1].type.frac, f)
        return {"add": a + b, "sub": a - b, "avg": a + b, "max": np.maximum(a, b), "min": np.minimum(a, b)}[self.kind]


@register_op
@dataclass
class Concat(Op):
    """Concatenation along the last (channel) axis: per position, ``a``'s lanes then ``b``'s."""

    arity = 2

    def lane_sources(self, srcs):
        """For each output lane, ``(input number, input lane)``."""
        ca, cb = srcs[0].shape[-1], srcs[1].shape[-1]
        positions = srcs[0].size // ca
        out = []
        for p in range(positions):
            out += [(0, p * ca + c) for c in range(ca)] + [(1, p * cb + c) for c in range(cb)]
        return out

    def error_bound(self, ctx, node, errs):
        return max(errs)

    def evaluate(self, xs, srcs, dst):
        f = dst.type.frac
        parts = [align(int_array(x), s.type.frac, f) for x, s in zip(xs, srcs)]
        return np.stack([parts[k][:, i] for k, i in self.lane_sources(srcs)], axis=1)
