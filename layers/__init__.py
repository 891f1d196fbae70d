"""IR ops to Amaranth components.

:func:`hardware` returns the streaming component for one IR op (one factory per op class, see
:mod:`._registry`); :class:`Network` chains them into the top level. Every component reports ``latency`` and ``initiation_interval``.
"""

from __future__ import annotations

from amaranth.hdl import Module, Shape, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rtlgen.ir import Graph

from . import _activation, _recurrent, _softmax  # noqa: F401  (register their factories)
from ._common import Layer, shape_of, vector_stream
from ._conv import ConvReuse
from ._dense import DenseParallel, DenseReuse, MaxTree, SumOfProducts
from ._elementwise import (
    ForkLayer,
    GatherLayer,
    MergeLayer,
    ReluLayer,
    RequantLayer,
    ThresholdLayer,
    requantize,
)
from ._pool import ScaledSum
from ._registry import hardware
from ._stream import BeatFifo, Deserializer, Serializer, StreamNetwork, WindowBuffer

__all__ = [
    "Layer",
    "DenseParallel",
    "DenseReuse",
    "ForkLayer",
    "MergeLayer",
    "StreamFifo",
    "GatherLayer",
    "MaxTree",
    "SumOfProducts",
    "ReluLayer",
    "RequantLayer",
    "ThresholdLayer",
    "Network",
    "StreamNetwork",
    "ConvReuse",
    "ScaledSum",
    "WindowBuffer",
    "Deserializer",
    "Serializer",
    "BeatFifo",
    "build_layer",
    "hardware",
    "requantize",
    "shape_of",
    "vector_stream",
]


def build_layer(graph: Graph, node) -> Layer:
    """The component for one node of ``graph``."""
    return hardware(node.hardware_op(), [graph.tensors[t] for t in node.inputs], graph.tensors[node.outputs[0]])


class StreamFifo(wiring.Component):
    """A first-in first-out buffer of ``depth`` vectors between two streams.

    ``latency`` 1 reads its memory asynchronously (registers or LUT RAM); ``latency`` 2 reads it
    synchronously into an output register, which block RAM can hold (:class:`SyncFIFOBuffered`
    takes a cycle more from an empty queue to its output than :class:`SyncFIFO`).
    """

    initiation_interval = 1

    def __init__(self, t, lanes, depth, *, latency=1):
        if latency not in (1, 2):
            raise ValueError(f"a FIFO's latency is 1 or 2 cycles, not {latency}")
        self.depth, self.latency = depth, latency
        super().__init__({"i": In(vector_stream(t, lanes)), "o": Out(vector_stream(t, lanes))})

    def elaborate(self, platform):
        from amaranth.lib.fifo import SyncFIFO, SyncFIFOBuffered

        from ._verilog import TextModules, fifo_verilog

        width = Shape.cast(self.i.payload.shape()).width
        if isinstance(platform, TextModules):
            return platform.instance(self, "fifo", lambda name: fifo_verilog(name, width, self.depth, buffered=self.latency == 2))
        m = Module()
        kind = SyncFIFO if self.latency == 1 else SyncFIFOBuffered
        m.submodules.fifo = fifo = kind(width=width, depth=self.depth)
        m.d.comb += [
            fifo.w_data.eq(self.i.payload.as_value()),
            fifo.w_en.eq(self.i.valid),
            self.i.ready.eq(fifo.w_rdy),
            self.o.payload.eq(fifo.r_data),
            self.o.valid.eq(fifo.r_rdy),
            fifo.r_en.eq(self.o.ready),
        ]
        return m


class Network(wiring.Component):
    """The whole network in ``io_parallel`` form: one input vector and one output vector per transfer.

    The graph may be a DAG: a tensor read by several layers goes through a fork that hands every
    sample to each reader exactly once, and a merge waits for both of its inputs. The shorter
    input of a merge gets a FIFO as deep as the latency difference, so the network still accepts
    a vector every cycle; the FIFO's own latency fits within that difference. ``latency`` is the
    longest path (an idle design); ``initiation_interval`` the largest layer interval.
    """

    def __init__(self, graph: Graph):
        self.graph = graph
        self.layers = []
        self.arrival = {graph.inputs[0]: 0}
        for node in graph.nodes:
            layer = build_layer(graph, node)
            self.layers.append((node.name, layer))
            start = max(self.arrival[t] for t in node.inputs)
            self.arrival[node.outputs[0]] = start + layer.latency
        _fuse_relus(graph, dict(self.layers))
        tin = graph.tensors[graph.inputs[0]]
        tout = graph.tensors[graph.outputs[0]]
        super().__init__({"i": In(vector_stream(tin.type, tin.size)), "o": Out(vector_stream(tout.type, tout.size))})
        # Latency and interval are asked of networks that are never elaborated.
        for obj in [self] + [layer for _, layer in self.layers]:
            obj._MustUse__silence = True

    @property
    def latency(self) -> int:
        return self.arrival[self.graph.outputs[0]]

    @property
    def initiation_interval(self) -> int:
        return max((layer.initiation_interval for _, layer in self.layers), default=1)

    def elaborate(self, platform):
        m = Module()
        g = self.graph
        # Every top level has a clock and reset, even a purely combinational network.
        alive = Signal()
        m.d.sync += alive.eq(1)
        readers: dict[str, list] = {}
        for node, (_, layer) in zip(g.nodes, self.layers):
            ports = [layer.a, layer.b] if len(node.inputs) > 1 else [layer.i]
            for k, (t, port) in enumerate(zip(node.inputs, ports)):
                # The earlier-arriving input of a merge waits in a FIFO instead of stalling the fork.
                slack = 0
                if len(node.inputs) > 1:
                    slack = max(self.arrival[u] for u in node.inputs) - self.arrival[t]
                readers.setdefault(t, []).append((port, slack, f"{node.name}_in{k}"))
        readers.setdefault(g.outputs[0], []).append((wiring.flipped(self.o), 0, "out"))
        producers = {g.inputs[0]: wiring.flipped(self.i)}
        runs = self._runs(platform, readers)
        inner = {g.nodes[k].outputs[0] for run in runs for k in run[:-1]}  # tensors inside a run
        chained = {k for run in runs for k in run}
        for run in runs:
            members = [(_ident(self.layers[k][0]), self.layers[k][1]) for k in run]
            m.submodules[self.layers[run[-1]][0]] = platform.chain(members)
        for k, (name, layer) in enumerate(self.layers):
            if k not in chained:
                m.submodules[name] = layer
        for node, (_, layer) in zip(g.nodes, self.layers):
            producers[node.outputs[0]] = layer.o
        for t, uses in readers.items():
            if t in inner:
                continue
            src = producers[t]
            tt = g.tensors[t]
            if len(uses) > 1:
                fork = ForkLayer(tt.type, tt.size, len(uses))
                m.submodules[f"fork_{_ident(t)}"] = fork
                wiring.connect(m, src, fork.i)
                sources = fork.outputs()
            else:
                sources = [src]
            for s, (port, slack, label) in zip(sources, uses):
                if slack > 0:
                    # Its own latency must fit in the slack, or the merge waits for this input.
                    fifo = StreamFifo(tt.type, tt.size, slack + 2, latency=min(slack, 2))
                    m.submodules[f"fifo_{_ident(label)}"] = fifo
                    wiring.connect(m, s, fifo.i)
                    s = fifo.o
                wiring.connect(m, s, port)
        return m

    def _runs(self, platform, readers) -> list[list[int]]:
        """Runs of consecutive layers (indices) with text forms, each reading the one before it alone,
        as :meth:`StreamNetwork._chains` finds them: each becomes one text module, so the vectors
        between its layers are Verilog wires, which Amaranth would lower bit by bit."""
        from ._verilog import TextModules

        if not isinstance(platform, TextModules):
            return []
        g = self.graph
        text = [len(node.inputs) == 1 and platform.text_form(layer) is not None for node, (_, layer) in zip(g.nodes, self.layers)]
        made = {node.outputs[0]: k for k, node in enumerate(g.nodes)}
        runs: list[list[int]] = []
        for k, node in enumerate(g.nodes):
            src = made.get(node.inputs[0])
            if text[k] and src is not None and runs and runs[-1][-1] == src and len(readers[node.inputs[0]]) == 1:
                runs[-1].append(k)
            elif text[k]:
                runs.append([k])
        runs = [r for r in runs if len(r) > 1]
        for r in runs:
            for k in r:
                self.layers[k][1]._MustUse__silence = True  # inside a text module: never elaborated
        return runs


def _fuse_relus(graph: Graph, layers: dict):
    """Adder graphs read by a ReLU alone clamp at zero in their output registers (see
    :class:`._adders.AdderGraphLayer`); the ReLU then sees no negative value and costs nothing."""
    from rtlgen.ir.ops import Relu

    from ._adders import AdderGraphLayer

    producer = {n.outputs[0]: n for n in graph.nodes}
    readers: dict = {}
    for n in graph.nodes:
        for t in n.inputs:
            readers.setdefault(t, []).append(n)
    for n in graph.nodes:
        src = producer.get(n.inputs[0]) if isinstance(n.op, Relu) else None
        if src is None or len(readers[n.inputs[0]]) != 1 or n.inputs[0] in graph.outputs:
            continue
        impl = getattr(layers[src.name], "impl", None)
        if isinstance(impl, AdderGraphLayer):
            impl.relu = True


def _ident(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name)
