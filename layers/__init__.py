"""IR ops to Amaranth components.

:func:`build_layer` returns the streaming component for one IR node; :class:`Network` chains them
into the top level. Every component reports ``latency`` and ``initiation_interval``.
"""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rtlgen.ir import Dense, Graph, Relu, Requant, Threshold

from ._common import Layer, shape_of, vector_stream
from ._dense import DenseParallel, DenseReuse, MaxTree, SumOfProducts, reuse_plan
from ._elementwise import GatherLayer, ReluLayer, RequantLayer, ThresholdLayer, requantize

__all__ = [
    "Layer",
    "DenseParallel",
    "DenseReuse",
    "GatherLayer",
    "MaxTree",
    "SumOfProducts",
    "ReluLayer",
    "RequantLayer",
    "ThresholdLayer",
    "Network",
    "build_layer",
    "requantize",
    "reuse_plan",
    "shape_of",
    "vector_stream",
]


def build_layer(graph: Graph, node) -> Layer:
    op = node.op
    src = graph.tensors[node.inputs[0]]
    dst = graph.tensors[node.outputs[0]]
    if hasattr(op, "hardware"):
        return op.hardware(src, dst)
    if isinstance(op, Dense):
        acc = {"accum": op.accum, "product_shift": op.product_shift}
        if op.reuse_factor == 1:
            return DenseParallel(src.type, dst.type, weight=op.weight, bias=op.bias, adder_levels=op.adder_levels, **acc)
        return DenseReuse(src.type, dst.type, weight=op.weight, bias=op.bias, reuse_factor=op.reuse_factor, **acc)
    if isinstance(op, Relu):
        return ReluLayer(src.type, dst.type, src.size)
    if isinstance(op, Requant):
        return RequantLayer(src.type, dst.type, src.size, lanes=op.lane_types() if op.lanes else None)
    if isinstance(op, Threshold):
        return ThresholdLayer(
            src.type, dst.type, src.size,
            thresholds=op.thresholds, increasing=op.increasing, base=op.base, step=op.step,
        )  # fmt: skip
    raise TypeError(f"no hardware for {type(op).__name__}")


class Network(wiring.Component):
    """The whole network in ``io_parallel`` form: one input vector and one output vector per transfer.

    ``latency`` is the sum of the layers' latencies (an idle design); ``initiation_interval`` the
    largest layer interval.
    """

    def __init__(self, graph: Graph):
        self.graph = graph
        self.layers = [(node.name, build_layer(graph, node)) for node in graph.nodes]
        tin = graph.tensors[graph.inputs[0]]
        tout = graph.tensors[graph.outputs[0]]
        super().__init__({"i": In(vector_stream(tin.type, tin.size)), "o": Out(vector_stream(tout.type, tout.size))})

    @property
    def latency(self) -> int:
        return sum(layer.latency for _, layer in self.layers)

    @property
    def initiation_interval(self) -> int:
        return max((layer.initiation_interval for _, layer in self.layers), default=1)

    def elaborate(self, platform):
        m = Module()
        prev = wiring.flipped(self.i)
        for name, layer in self.layers:
            m.submodules[name] = layer
            wiring.connect(m, prev, layer.i)
            prev = layer.o
        wiring.connect(m, prev, wiring.flipped(self.o))
        return m
