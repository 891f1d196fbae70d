"""The intermediate representation: a small typed graph of integer operations.

Every tensor carries a :class:`~rtlgen.fixed.FixedType`: its values are integer mantissas and its real
value is ``mantissa * 2**-type.frac * scale`` (``scale`` is 1 except after a quantizer whose scale is
not a power of two). Shapes exclude the batch dimension.

The graph (:mod:`.graph`) and the ops (:mod:`.ops`, one module per family) import nothing from the
importers, passes or layers.
"""

from .graph import OPS, Graph, GraphError, HostStage, Node, Tensor, register_op
from .ops import (
    Concat,
    Conv,
    Dense,
    Gather,
    Lut,
    Merge,
    Op,
    Pool,
    Pwl,
    Relu,
    Requant,
    Reshape,
    Softmax,
    Threshold,
)

__all__ = [
    "Tensor", "Node", "Graph", "HostStage", "GraphError", "OPS", "register_op",
    "Op", "Dense", "Relu", "Requant", "Threshold", "Conv", "Pool", "Gather", "Reshape", "Merge", "Concat",
    "Lut", "Pwl", "Softmax",
]  # fmt: skip
