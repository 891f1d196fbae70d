"""The golden model: the IR executed on integer mantissas with numpy, exactly.

This is the specification the hardware is checked against. Every function takes and returns integer
mantissa arrays with a leading batch dimension; each op's own arithmetic is in its IR module
(:mod:`rtlgen.ir.ops`).
"""

from __future__ import annotations

import numpy as np

from .fixed import int_array
from .ir import Graph

__all__ = ["run_node", "run", "quantize_input", "dequantize_output"]


def run_node(graph: Graph, node, *xs: np.ndarray) -> np.ndarray:
    """One node's output mantissas from its input mantissas."""
    srcs = [graph.tensors[t] for t in node.inputs]
    return node.op.evaluate(list(xs), srcs, graph.tensors[node.outputs[0]])


def run(graph: Graph, x: np.ndarray, *, trace: bool = False):
    """Run the integer graph on input mantissas ``x`` of shape ``(batch, *input_shape)``.

    Returns the output mantissas, or with ``trace=True`` a dict of every tensor's mantissas.
    """
    x = int_array(x)
    values = {graph.inputs[0]: x.reshape(len(x), -1)}
    for node in graph.nodes:
        values[node.outputs[0]] = run_node(graph, node, *(values[t] for t in node.inputs))
    if trace:
        return values
    return values[graph.outputs[0]]


def quantize_input(graph: Graph, x) -> np.ndarray:
    """Float network inputs to the hardware's input mantissas, as the original network does."""
    t = graph.tensors[graph.inputs[0]]
    x = np.asarray(x)
    if graph.pre is not None:
        y = graph.pre.run(x).astype(np.float64)
        y = _channels_last(y.reshape(y.shape[0], -1), graph)
        m = np.ldexp(y / t.scale, t.type.frac)
        mi = np.rint(m)
        # The host stage ends in the input quantizer: its float32 values are whole steps of the
        # (float32) scale, so the nearest integer is the mantissa and it gives back that value.
        exact = np.array_equal(mi, m) or np.array_equal(
            (np.ldexp(mi, -t.type.frac) * t.scale).astype(np.float32), y.astype(np.float32)
        )
        if not exact:
            raise AssertionError("input stage did not produce values on the input type's grid")
        return int_array(mi.astype(np.int64))
    x = _channels_last(x.reshape(x.shape[0], -1).astype(np.float64), graph)
    return t.type.quantize(x / t.scale)


def _channels_last(x, graph):
    """Channels-first network inputs (ONNX) reordered to the hardware's channels-last lanes."""
    order = getattr(graph, "input_order", None)
    return x if order is None else x[:, order]


def dequantize_output(graph: Graph, y: np.ndarray) -> np.ndarray:
    """Output mantissas to the network's float outputs (through the float tail, if any)."""
    t = graph.tensors[graph.outputs[0]]
    real = t.type.to_float(y) * t.scale
    if getattr(graph, "output_order", None) is not None:
        real = real[:, graph.output_order]
    if graph.post is not None:
        return graph.post.run(real.astype(np.float32))
    return real
