"""Ops with two inputs: element-wise merges and concatenation. They make the graph a DAG.

Inputs may have different fixed-point types: both are first re-expressed exactly on the finer grid
(more fractional bits), so every merge is exact; the output type is derived from the bounds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .fixed import align, int_array
from .ir import register_op

__all__ = ["Merge", "Concat", "MERGE_KINDS"]

MERGE_KINDS = ("add", "sub", "mul", "avg", "max", "min")


@dataclass
class Merge:
    """``y = a (kind) b`` lane by lane, exactly. ``avg`` keeps the half bit (one more fractional
    bit); ``mul`` adds the fractional bits of both inputs."""

    kind: str = "add"

    def __post_init__(self):
        if self.kind not in MERGE_KINDS:
            raise ValueError(f"merge kind must be one of {', '.join(MERGE_KINDS)}, not {self.kind!r}")

    def golden(self, xs, srcs, dst):
        a, b = (int_array(x) for x in xs)
        if self.kind == "mul":
            return a * b
        f = max(s.type.frac for s in srcs)
        a, b = align(a, srcs[0].type.frac, f), align(b, srcs[1].type.frac, f)
        return {"add": a + b, "sub": a - b, "avg": a + b, "max": np.maximum(a, b), "min": np.minimum(a, b)}[self.kind]

    def hardware(self, srcs, dst):
        from rtlgen.layers import MergeLayer

        return MergeLayer([s.type for s in srcs], dst.type, dst.size, kind=self.kind)


@dataclass
class Concat:
    """Concatenation along the last (channel) axis: per position, ``a``'s lanes then ``b``'s."""

    def lane_sources(self, srcs):
        """For each output lane, ``(input number, input lane)``."""
        ca, cb = srcs[0].shape[-1], srcs[1].shape[-1]
        positions = srcs[0].size // ca
        out = []
        for p in range(positions):
            out += [(0, p * ca + c) for c in range(ca)] + [(1, p * cb + c) for c in range(cb)]
        return out

    def golden(self, xs, srcs, dst):
        f = dst.type.frac
        parts = [align(int_array(x), s.type.frac, f) for x, s in zip(xs, srcs)]
        return np.stack([parts[k][:, i] for k, i in self.lane_sources(srcs)], axis=1)

    def hardware(self, srcs, dst):
        from rtlgen.layers import MergeLayer

        return MergeLayer([s.type for s in srcs], dst.type, dst.size, kind="concat", lane_sources=self.lane_sources(srcs))


register_op(Merge)
register_op(Concat)
