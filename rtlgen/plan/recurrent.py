"""The matrix-vector products of a recurrent cell as adder graphs, and the cell's pipeline depth.

One step of a SimpleRNN, LSTM or GRU (:mod:`rtlgen.ir.ops.recurrent`) multiplies the input ``x``
and the state ``h`` by constant matrices. All gates' products with ``[x, h]`` form one constant
matrix-vector product, planned as one adder graph (shared subexpressions across gates); the
kernel, recurrent kernel and bias are scaled onto one common grid so every output is the exact
pre-activation. A GRU that resets before its recurrent product needs a second graph over
``cast(r * h)``. The layers (:mod:`rtlgen.layers._recurrent`) and the schedule note of the
passes both read the pipeline depth from here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rtlgen.fixed import FixedType
from rtlgen.ir.ops.recurrent import GRU, LSTM

from .adders import AdderGraph, plan_adder_graph

__all__ = ["ADDER_LEVELS", "CellGraph", "cell_graphs", "cell_latency"]

# Adder levels between the registers of a cell's adder graphs.
ADDER_LEVELS = 3


@dataclass
class CellGraph:
    """One constant matrix-vector product of the cell: ``graph`` over its input lanes, whose
    outputs are exact mantissas with ``frac`` fractional bits."""

    graph: AdderGraph
    frac: int

    @property
    def stages(self) -> int:
        """Register stages of the pipelined graph (the outputs are always registered)."""
        return max(1, math.ceil(self.graph.max_depth / ADDER_LEVELS))


def _scaled(m, frac: int, to: int) -> np.ndarray:
    return np.asarray(m).astype(object) * (1 << (to - frac))


def cell_graphs(op, in_type: FixedType) -> list[CellGraph]:
    """The cell's adder graphs. Graph 0 takes ``x`` (``n_in`` lanes of ``in_type``) then ``h``
    (``units`` lanes of the state type); its outputs are, per gate, ``x @ kernel + h @ recurrent
    + bias`` in the op's gate order, except for a GRU's candidate gate: with ``reset_after`` its
    ``x @ kernel + bias`` then ``h @ recurrent + recurrent_bias``, else ``x @ kernel + bias`` only,
    and graph 1 (over ``cast(r * h)``, state lanes) gives ``rh @ recurrent``."""
    u, n = op.units, op.n_in
    xf, sf = in_type.frac, op.state.frac
    kf, rf, bf = xf + op.kernel_frac, sf + op.recurrent_frac, op.bias_frac
    F = max(kf, rf, bf)
    W, U, B = _scaled(op.kernel, kf, F), _scaled(op.recurrent_kernel, rf, F), _scaled(op.bias, bf, F)
    lo = [in_type.min_mantissa] * n + [op.state.min_mantissa] * u
    hi = [in_type.max_mantissa] * n + [op.state.max_mantissa] * u
    if not isinstance(op, GRU):
        weight = np.concatenate([W, U])
        return [CellGraph(plan_adder_graph(weight, lo, hi, B), F)]
    zr = slice(0, 2 * u)
    cand = slice(2 * u, 3 * u)
    cols = [np.concatenate([W[:, zr], U[:, zr]]), np.concatenate([W[:, cand], np.zeros((u, u), dtype=object)])]
    bias = [B[zr], B[cand]]
    if op.reset_after:
        cols.append(np.concatenate([np.zeros((n, u), dtype=object), U[:, cand]]))
        rb = op.recurrent_bias
        bias.append(_scaled(rb[cand], bf, F) if rb is not None else np.zeros(u, dtype=object))
    graphs = [CellGraph(plan_adder_graph(np.concatenate(cols, axis=1), lo, hi, np.concatenate(bias)), F)]
    if not op.reset_after:
        s = op.state
        graphs.append(CellGraph(plan_adder_graph(np.asarray(op.recurrent_kernel[:, cand]).astype(object), [s.min_mantissa] * u, [s.max_mantissa] * u), rf))
    return graphs


def cell_latency(op, in_type: FixedType) -> int:
    """Cycles of one pipelined cell, from ``(x, state)`` to the registered new state: the adder
    graphs' stages, a register after the gate activations, and per op the registers between its
    elementwise products (see :class:`rtlgen.layers._recurrent.RecurrentLayer`)."""
    g = cell_graphs(op, in_type)
    if isinstance(op, LSTM):
        return g[0].stages + 3  # activations | c = f c + i g | h = o act(c)
    if isinstance(op, GRU):
        if op.reset_after:
            return g[0].stages + 3  # activations | candidate | new state
        return g[0].stages + 2 + g[1].stages + 2  # activations | r h | graph 1 | candidate | new state
    return g[0].stages + 1
