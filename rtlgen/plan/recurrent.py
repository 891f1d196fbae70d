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

from .adders import AdderGraph, csd_digits, plan_adder_graph
from .reuse import reuse_plan

__all__ = ["ADDER_LEVELS", "CellGraph", "cell_digits", "cell_graphs", "cell_latency", "cell_reuse", "schedule_costs", "shared_multipliers"]

# Adder levels between the registers of a cell's adder graphs.
ADDER_LEVELS = 3


@dataclass
class CellGraph:
    """One constant matrix-vector product of the cell, ``x @ weight + bias`` (exact mantissas
    with ``frac`` fractional bits), and its plan as an adder graph."""

    weight: np.ndarray
    bias: np.ndarray | None
    frac: int
    lo: list
    hi: list

    @property
    def graph(self) -> AdderGraph:
        return plan_adder_graph(self.weight, self.lo, self.hi, self.bias)

    def reuse(self, reuse_factor: int) -> tuple[int, int, int]:
        """``(inputs per cycle, outputs per cycle, cycles)`` of the product on shared multipliers
        (the reuse factor capped at one weight per cycle)."""
        n_in, n_out = self.weight.shape
        return reuse_plan(n_in, n_out, min(reuse_factor, n_in * n_out))

    def stages(self, reuse_factor: int = 1) -> int:
        """Cycles from the inputs to the registered outputs: the pipelined adder graph's register
        stages, or on shared multipliers the cycles plus the output register."""
        if reuse_factor > 1:
            return self.reuse(reuse_factor)[2] + 1
        return max(1, math.ceil(self.graph.max_depth / ADDER_LEVELS))


def _scaled(m, frac: int, to: int) -> np.ndarray:
    return np.asarray(m).astype(object) * (1 << (to - frac))


def cell_graphs(op, in_type: FixedType) -> list[CellGraph]:
    """The cell's adder graphs. Graph 0 takes ``x`` (``n_in`` lanes of ``in_type``) then ``h``
    (``units`` lanes of the state type); its outputs are, per gate, ``x @ kernel + h @ recurrent
    + bias`` in the op's gate order, except for a GRU's candidate gate: with ``reset_after`` its
    ``x @ kernel + bias`` then ``h @ recurrent + recurrent_bias``, else ``x @ kernel + bias`` only,
    and graph 1 (over ``cast(r * h)``, state lanes) gives ``rh @ recurrent``."""
    if op.lane_types is not None:
        return []  # the per-lane cell (HGQ2, QKeras) computes its products on its own
    u, n = op.units, op.n_in
    xf, sf = in_type.frac, op.state.frac
    kf, rf, bf = xf + op.kernel_frac, sf + op.recurrent_frac, op.bias_frac
    F = max(kf, rf, bf)
    W, U, B = _scaled(op.kernel, kf, F), _scaled(op.recurrent_kernel, rf, F), _scaled(op.bias, bf, F)
    lo = [in_type.min_mantissa] * n + [op.state.min_mantissa] * u
    hi = [in_type.max_mantissa] * n + [op.state.max_mantissa] * u
    if not isinstance(op, GRU):
        return [CellGraph(np.concatenate([W, U]), B, F, lo, hi)]
    zr = slice(0, 2 * u)
    cand = slice(2 * u, 3 * u)
    cols = [np.concatenate([W[:, zr], U[:, zr]]), np.concatenate([W[:, cand], np.zeros((u, u), dtype=object)])]
    bias = [B[zr], B[cand]]
    if op.reset_after:
        cols.append(np.concatenate([np.zeros((n, u), dtype=object), U[:, cand]]))
        rb = op.recurrent_bias
        bias.append(_scaled(rb[cand], bf, F) if rb is not None else np.zeros(u, dtype=object))
    graphs = [CellGraph(np.concatenate(cols, axis=1), np.concatenate(bias), F, lo, hi)]
    if not op.reset_after:
        s = op.state
        graphs.append(CellGraph(np.asarray(op.recurrent_kernel[:, cand]).astype(object), None, rf, [s.min_mantissa] * u, [s.max_mantissa] * u))
    return graphs


def cell_reuse(op, schedule: str | None = None) -> int:
    """The reuse factor of the cell's products: the op's in the reused schedule (shared
    multipliers above 1), else 1 (adder graphs)."""
    return op.reuse_factor if (schedule or op.schedule) == "reused" else 1


def cell_digits(op) -> int:
    """Non-zero CSD digits of the cell's constant products: the size of its adder graphs before
    sharing, and what planning them costs (a few seconds per 10,000 digits, growing faster)."""
    return csd_digits(op.kernel) + csd_digits(op.recurrent_kernel)


def cell_latency(op, in_type: FixedType, schedule: str | None = None, *, plan: bool = True) -> int | None:
    """Cycles of one pipelined cell in ``schedule`` (default the op's), from ``(x, state)`` to the
    registered new state: the products' stages, a register after the gate activations, and per op
    the registers between its elementwise products (see :mod:`rtlgen.layers._recurrent`).
    Products on adder graphs have the depth of their plan: without ``plan``, ``None`` instead."""
    if op.lane_types is not None:
        return 1  # the per-lane cell is combinational, registered once per step
    r = cell_reuse(op, schedule)
    if r == 1 and not plan:
        return None
    g = [cg.stages(r) for cg in cell_graphs(op, in_type)]
    if isinstance(op, LSTM):
        return g[0] + 3  # activations | c = f c + i g | h = o act(c)
    if isinstance(op, GRU):
        if op.reset_after:
            return g[0] + 3  # activations | candidate | new state
        return g[0] + 2 + g[1] + 2  # activations | r h | graph 1 | candidate | new state
    return g[0] + 1


def shared_multipliers(op, in_type: FixedType, schedule: str | None = None) -> int:
    """Multipliers of the cell's products in ``schedule``: none for adder graphs."""
    r = cell_reuse(op, schedule)
    if r == 1:
        return 0
    return sum(a * b for a, b, _ in (cg.reuse(r) for cg in cell_graphs(op, in_type)))


def schedule_costs(op, in_type: FixedType, steps: int, plan=("unrolled", "reused")) -> dict:
    """Cells, multipliers, latency and interval of both schedules for ``steps`` time steps (the
    reused one at the op's reuse factor). Adder graphs are planned for the schedules in ``plan``
    only; the others' latency (and a reused schedule's interval) is ``None`` when it needs them."""
    out = {}
    for schedule in ("unrolled", "reused"):
        lat = cell_latency(op, in_type, schedule, plan=schedule in plan)
        c = op.schedule_costs(steps, lat or 1)[schedule]
        if lat is None:
            c = {**c, "latency": None, "interval": None if schedule == "reused" else c["interval"]}
        out[schedule] = {**c, "multipliers": c["multipliers"] + shared_multipliers(op, in_type, schedule)}
    return out
