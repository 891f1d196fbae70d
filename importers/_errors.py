"""Worst-case error of the built network against the model it came from, as an interval bound.

The reference is the source model computed exactly in real numbers: float layers with their float
weights and functions, quantized layers (QKeras, HGQ2, QONNX quantizers) with their own quantizers.
rtlgen adds error in a few places only: float inputs rounded to the input type, float weights and
biases quantized by the configuration, products rounded onto an ``accum`` grid, results cast to a
configured type, lookup tables, inexact averages. Each tensor gets a bound ``e`` on
``|built value - reference value|`` over all its lanes, propagated node by node:

* sums of products: ``sum |dw| * (|x| + e_x) + sum |w| * e_x + |db| + terms * product rounding``,
  with ``|x|`` from the tensor's exact mantissa bounds;
* casts: ``e + rounding step`` (a configured cast) or ``e + output step`` (a model's own quantizer,
  0 while its input is exact); thresholds stay exact only on exact inputs;
* functions: ``Lipschitz constant * e + the table's or constants' own worst-case error`` (plus the
  jump of a discontinuous function);
* pooling, layout, ReLU and max/min merges keep ``e``; sums and averages combine them.

The bound holds for float inputs within the input type's range and as long as no value overflows
its type (saturating or wrapping casts are not modelled).
"""

from __future__ import annotations

import math

from rtlgen.ir import Graph, GraphError
from rtlgen.ir.ops._bounds import magnitude as _magnitude
from rtlgen.ir.ops._bounds import rounding_error

__all__ = ["ErrorBounds", "rounding_error"]


class ErrorBounds:
    """What the importers know about inexact steps, and the propagation over the finished graph."""

    def __init__(self):
        self.inputs: dict[str, float] = {}  # input tensor -> rounding error of the float input
        self.weights: dict[str, tuple] = {}  # node -> (|weight error| array, |bias error| per channel)
        self.local: dict[str, float] = {}  # node -> error it adds by itself (inexact averages)
        # layer -> lines on float parameters outside their configured types (saturated or wrapped)
        self.out_of_range: dict[str, list] = {}

    def propagate(self, graph: Graph, bounds: dict) -> dict[str, float]:
        """``tensor -> bound`` for every tensor of the graph (each op's ``error_bound``)."""
        self.graph, self.bounds = graph, bounds
        err = {t: self.inputs.get(t, 0.0) for t in graph.inputs}
        # Largest magnitude of each tensor's built values where nothing overflows: a wrapping cast's
        # bounds are its whole type, but without overflow it cannot exceed its input (plus a step).
        self.mag = {t: _magnitude(graph.tensors[t], bounds) for t in graph.inputs}
        for node in graph.nodes:
            ins = [err[t] for t in node.inputs]
            err[node.outputs[0]] = self._node(graph, bounds, node, ins)
            self.mag[node.outputs[0]] = self._node_magnitude(graph, bounds, node)
        return err

    def _node_magnitude(self, graph, bounds, node) -> float:
        dst = graph.tensors[node.outputs[0]]
        return node.op.built_magnitude(self, node, _magnitude(dst, bounds), self.mag[node.inputs[0]])

    def notes(self, graph: Graph, bounds: dict) -> list[str]:
        err = self.propagate(graph, bounds)
        out = []
        for node in graph.nodes:
            lines = self.out_of_range.get(node.name)
            if lines:
                node.attrs["out_of_range"] = list(lines)
                out.extend(f"{node.name}: {line}" for line in lines)
            if node.name in self.weights:
                out.append(f"{node.name}: float weights quantized; output within {_up(err[node.outputs[0]])} of the float model")
        tin = graph.tensors[graph.inputs[0]]
        e = err[graph.outputs[0]]
        graph.error_bound = None if math.isinf(e) else float(e)
        cond = f"float inputs rounded to {tin.type}" if self.inputs.get(graph.inputs[0]) else "inputs quantized by the model itself"
        if math.isinf(e):
            out.append(f"output {graph.outputs[0]}: no error bound against the model (a quantizer or threshold follows an inexact value)")
        else:
            tail = " before the float tail that runs on the host" if graph.post is not None and e > 0 else ""
            out.append(f"output {graph.outputs[0]}: worst-case error {_up(e)} against the model{tail} ({cond}; no value overflowing its type)")
        return out

    # -- one node ---------------------------------------------------------------------------------

    def _node(self, graph, bounds, node, ins):
        if not hasattr(node.op, "error_bound"):
            raise GraphError(f"node {node.name!r}: op {node.kind} has no error model (error_bound)")
        return node.op.error_bound(self, node, ins)


def _up(v: float, digits: int = 3) -> str:
    """``v`` with ``digits`` significant digits, rounded up, so a printed bound still holds."""
    if v <= 0:
        return "0"
    if math.isinf(v):
        return "inf"
    ex = math.floor(math.log10(v)) - digits + 1
    return f"{math.ceil(v / 10.0**ex) * 10.0**ex:.{digits}g}"
