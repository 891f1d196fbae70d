"""Graph passes: objects with one method ``run(graph) -> graph``, applied as an explicit list.

:func:`run_passes` verifies the graph after every pass and can dump each intermediate graph as JSON.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import numpy as np

from .config import Config
from .errors import ConfigError
from .ir import Conv, Dense, Graph, Relu, Requant, Threshold
from .ir.ops.recurrent import SCHEDULES, Recurrent
from .plan.recurrent import cell_digits, cell_reuse, schedule_costs
from .plan.reuse import reuse_plan, valid_conv_reuse_factors, valid_reuse_factors

__all__ = [
    "Pass",
    "CheckConfigNames",
    "ApplyReuse",
    "FoldRounding",
    "InferValueSets",
    "EstimateArithmetic",
    "CheckParameterRanges",
    "run_passes",
    "default_passes",
    "valid_reuse_factors",
]

log = logging.getLogger(__name__)

# An adder graph the hardware does not use (another schedule's or strategy's) is planned for a
# note only up to this many non-zero CSD digits: planning takes seconds per 10,000 digits, and
# minutes for a large layer.
NOTE_PLAN_DIGITS = 10_000


def _far_beyond(graph: Graph, config: Config) -> bool:
    """Whether the size guard (:func:`rtlgen.size.check_size`) will refuse the design: its adder
    graphs are then not planned here, so that the refusal comes in seconds."""
    from .size import far_beyond

    return far_beyond(graph, config)


class Pass:
    """A graph transformation; subclasses implement :meth:`run`."""

    def run(self, graph: Graph) -> Graph:
        raise NotImplementedError  # pragma: no cover

    def __repr__(self):
        return type(self).__name__


class CheckConfigNames(Pass):
    """Every ``LayerName`` key in the configuration must name a node of the graph."""

    def __init__(self, config: Config):
        self.config = config

    def run(self, graph):
        names = dict.fromkeys([n.name for n in graph.nodes] + list(graph.inputs) + list(graph.source_names))
        self.config.check_layer_names(list(names))
        return graph


class ApplyReuse(Pass):
    """Set and check the reuse factor of every layer that has one (Dense: also its strategy;
    convolutions) from the configuration, and ``AdderLevels`` of every op with adder trees.
    A node is configured by the name of the layer it came from (``attrs["layer"]``, else its own).

    With ``check=False`` factors outside a layer's range are clamped into it and inexact ones
    rounded down without a note (for tools that only read the graph, such as ``rtlgen config``)."""

    def __init__(self, config: Config, *, check: bool = True):
        self.config = config
        self.check = check

    def run(self, graph):
        recurrent = []
        for node in graph.nodes:
            op = node.op
            if isinstance(op, Conv):
                P, K = op.reuse_shape()
                r = self.config.reuse_factor(node.attrs.get("layer", node.name), "Conv")
                if self.config.io_type == "io_stream":
                    # io_stream computes one window at a time: the schedule splits its kernel terms only.
                    op.reuse_factor = self._exact(
                        graph, node, r, K, valid_conv_reuse_factors(1, K),
                        f"{K} kernel terms per window in io_stream", "one term per cycle", f"{K} kernel terms",
                    )  # fmt: skip
                    continue
                op.reuse_factor = self._exact(
                    graph, node, r, P * K, valid_conv_reuse_factors(P, K),
                    f"{P} output positions of {K} kernel terms", "one term per cycle", f"{P} positions x {K} kernel terms",
                )  # fmt: skip
            elif isinstance(op, Dense):
                r = self.config.reuse_factor(node.name, "Dense")
                op.reuse_factor = self._exact(
                    graph, node, r, op.n_in * op.n_out, valid_reuse_factors(op.n_in, op.n_out),
                    f"{op.n_in} inputs and {op.n_out} outputs", "one multiplier", f"{op.n_in}x{op.n_out}",
                )  # fmt: skip
                op.strategy = self.config.strategy(node.name, "Dense")
            elif isinstance(op, Recurrent):
                _recurrent_schedule(self.config, node)
                recurrent.append(node)
        for node in graph.nodes:
            if hasattr(node.op, "adder_levels"):
                levels = self.config.adder_levels(node.name, node.kind)
                if levels is not None:
                    node.op.adder_levels = levels
        # Once every layer's schedule is set: the size guard's verdict needs them all.
        big = _far_beyond(graph, self.config) if recurrent else False
        for node in recurrent:
            _schedule_note(graph, node, big)
        return graph

    def _exact(self, graph, node, r, most, valid, shape, slowest, split) -> int:
        """``r`` checked against ``1..most`` and rounded down to the nearest exact schedule in
        ``valid`` (never slower than asked), with a note when it was not one."""
        if not self.check:
            r = min(max(r, 1), most)
        if not 1 <= r <= most:
            raise ConfigError(
                f"node {node.name!r}: reuse factor {r} cannot be used with {shape}; "
                f"it must be between 1 (fully parallel) and {most} ({slowest})"
            )
        near = max(v for v in valid if v <= r)
        if near != r and self.check:
            choices = [v for v in valid if near // 2 <= v <= 2 * r][:12]
            graph.notes.append(
                f"{node.name}: reuse factor {r} does not split {split} evenly; "
                f"using {near} (exact choices near it: {', '.join(map(str, choices))})"
            )
        return near


def _recurrent_schedule(config: Config, node) -> None:
    """A recurrent layer is unrolled (one cell per time step) at reuse factor 1 with the latency
    strategy, and reuses one cell over the time steps at any reuse factor above 1 or with
    ``Strategy: Resource``."""
    op = node.op
    r = config.reuse_factor(node.name, node.kind)
    op.reuse_factor = r
    op.schedule = "reused" if r > 1 or config.strategy(node.name, node.kind) == "resource" else "unrolled"


def _schedule_note(graph: Graph, node, big: bool) -> None:
    """The note with both schedules' costs. The cell's adder graph (reuse factor 1) is planned
    when the chosen schedule uses it and the design is not ``big`` (beyond the size guard), or
    when it is small; otherwise the latencies that depend on it are left out."""
    op = node.op
    src = graph.tensors[node.inputs[0]]
    steps = op.steps_of(src)
    digits = cell_digits(op)
    plan = SCHEDULES if digits <= NOTE_PLAN_DIGITS or (not big and cell_reuse(op) == 1) else ()
    costs = schedule_costs(op, src.type, steps, plan)
    parts = [
        f"{k} ({c['cells']} cell{'s' if c['cells'] > 1 else ''}): {c['multipliers']} multipliers, "
        f"latency {_or_unplanned(c['latency'])}, interval {_or_unplanned(c['interval'])}"
        for k, c in costs.items()
    ]
    if any(c["latency"] is None for c in costs.values()):
        parts.append(f"? needs the cell's adder graph ({digits:,} CSD digits) planned")
    graph.notes.append(f"{node.name}: {node.kind} over {steps} steps, {op.schedule} schedule; " + "; ".join(parts))


def _or_unplanned(v) -> str:
    return "?" if v is None else str(v)


class FoldRounding(Pass):
    """Let the hardware do a requantization's round-half-up in the bias of the dense layer before it.

    ``round(y / 2**s) = floor((y + 2**(s-1)) / 2**s)``, and with a ReLU between them as well:
    for ``y < 0`` both sides are 0, as ``y + 2**(s-1) < 2**s``. The requantization then only
    drops bits (wires, no incrementer after the adder tree), and the half is one more constant
    in the column's sum, where a bias usually is already. Per lane (HGQ2's heterogeneous
    quantizers), only for an exact dense output (no hls4ml accumulator) read by the ReLU or the
    requantization alone, and only when the shifted sums still fit their tensors' types.

    The graph keeps the model's arithmetic (the golden model, traces and profiles show every
    tensor as the framework computes it); the rewrite is noted for the hardware, which
    :meth:`rtlgen.ir.Node.hardware_op` applies: ``attrs["hw"]`` (``bias`` on the dense layer,
    ``lanes`` and ``attrs["rounding_folded"]``, the dense layer's name, on the requantization). Only the
    requantization's output is the same integers; the tensors between differ by the halves.
    """

    _HALF = {"RND": 0, "RND_MIN_INF": -1}  # round half up: + 2**(s-1); half down: one less

    def run(self, graph):
        for node in graph.nodes:
            if isinstance(node.op, Requant) and "rounding_folded" not in node.attrs:
                self._fold(graph, node)
        return graph

    def _fold(self, graph, req):
        chain = [req]
        prod = graph.producer(req.inputs[0])
        if prod is not None and isinstance(prod.op, Relu):
            chain.append(prod)
            prod = graph.producer(prod.inputs[0])
        if prod is None or not isinstance(prod.op, Dense) or prod.op.accum is not None:
            return
        dense = prod.op
        for n in chain[1:] + [prod]:
            t = n.outputs[0]
            if t in graph.outputs or len(graph.consumers(t)) != 1:
                return
        src = graph.tensors[req.inputs[0]].type
        mid = [graph.tensors[n.outputs[0]].type for n in chain[1:] + [prod]]
        if any(t.frac != src.frac for t in mid):
            return
        op = req.op
        types = op.lane_types() if op.lanes else [op.type] * dense.n_out
        if len(types) != dense.n_out:
            return
        adds, new = [], []
        for t in types:
            s = src.frac - t.frac if t is not None else 0
            if t is None or s < 1 or t.rounding not in self._HALF:
                adds.append(0)
                new.append(t)
                continue
            adds.append((1 << (s - 1)) + self._HALF[t.rounding])
            new.append(t.with_modes(rounding="TRN"))
        if not any(adds):
            return
        bias = np.zeros(dense.n_out, dtype=np.int64) if dense.bias is None else np.asarray(dense.bias)
        folded = bias.astype(object) + np.array(adds, dtype=object)
        # The shifted sums must still fit every tensor of the chain (their widths are the hardware's).
        x = graph.tensors[prod.inputs[0]].type
        xlo, xhi = np.full(dense.n_in, x.min_mantissa, dtype=object), np.full(dense.n_in, x.max_mantissa, dtype=object)
        feed = graph.producer(prod.inputs[0])
        if feed is not None and isinstance(feed.op, Requant) and feed.op.lanes and len(feed.op.lanes) == dense.n_in:
            for i, r in enumerate(_lane_ranges(feed.op)):
                if r is not None:
                    xlo[i], xhi[i] = r[0], r[1]
        w = np.asarray(dense.weight, dtype=object)
        hi = np.where(w > 0, w * xhi[:, None], w * xlo[:, None]).sum(axis=0) + folded
        lo = np.where(w > 0, w * xlo[:, None], w * xhi[:, None]).sum(axis=0) + folded
        if any(int(v) > t.max_mantissa for v in hi for t in mid) or any(int(v) < mid[-1].min_mantissa for v in lo):
            return
        prod.attrs["hw"] = {"bias": [int(v) for v in folded]}
        req.attrs["hw"] = {"lanes": [None if t is None else str(t) for t in new]}
        req.attrs["rounding_folded"] = prod.name


class InferValueSets(Pass):
    """Give each dense layer the value sets or ranges of its input lanes where the producer fixes them.

    A per-lane requantization (HGQ2's heterogeneous activations) bounds each lane by its own type,
    so a lane's adders are only as wide as that type, and lanes quantized to zero bits vanish.

    A threshold activation with one level takes exactly two values (``base`` and ``base + step``):
    bipolar and binary activations. Their lanes then enter the adder graph as single bits, so a
    layer with weights in {-1, 0, 1} becomes XNOR-popcounts.
    """

    def run(self, graph):
        for node in graph.nodes:
            if not isinstance(node.op, Dense):
                continue
            prod = graph.producer(node.inputs[0])
            if prod is not None and isinstance(prod.op, Requant) and prod.op.lanes and len(prod.op.lanes) == node.op.n_in:
                node.op.in_ranges = _lane_ranges(prod.op)
                continue
            if prod is None or not isinstance(prod.op, Threshold):
                continue
            th = prod.op
            levels = th.thresholds.shape[1]
            values = [int(th.base + th.step * k) for k in range(levels + 1)]
            if len(values) <= 2 and th.thresholds.shape[0] == node.op.n_in:
                node.op.in_values = [list(values)] * node.op.n_in
        return graph


def _lane_ranges(op: Requant) -> list:
    """``[lo, hi, k]`` per lane of a per-lane requantization, in the mantissas of its common type."""
    out = []
    for t in op.lane_types():
        if t is None:
            out.append([0, 0, 0])  # a lane that is always zero
            continue
        k = op.type.frac - t.frac
        if k < 0:
            out.append(None)
            continue
        out.append([int(t.min_mantissa) << k, int(t.max_mantissa) << k, k])
    return out


class EstimateArithmetic(Pass):
    """Note, for every dense layer, what each arithmetic choice would cost, so the trade-off
    between the multiplier-free adder graph, DSP multipliers and time multiplexing is visible in
    the build output. The adder graph planned here is the one the hardware uses (cached)."""

    # Layers with more non-zero CSD digits than this are estimated without planning the graph
    # (:data:`NOTE_PLAN_DIGITS` when the hardware does not use it or the size guard will refuse
    # the design).
    PLAN_LIMIT = 400_000

    def __init__(self, config: Config):
        self.config = config

    def run(self, graph):
        from .plan.adders import csd_digits, lane_bounds, plan_adder_graphs

        big = any(isinstance(n.op, Dense) for n in graph.nodes) and _far_beyond(graph, self.config)
        requests = {}
        for node in graph.nodes:
            op = node.hardware_op()
            if not isinstance(op, Dense) or (op.accum is not None and op.product_shift > 0):
                continue
            latency = op.reuse_factor == 1 and op.strategy == "latency"
            if csd_digits(op.weight) <= (self.PLAN_LIMIT if latency and not big else NOTE_PLAN_DIGITS):
                wt = op.weight.astype(object) * (1 << -op.product_shift) if op.accum is not None and op.product_shift < 0 else op.weight
                lo, hi, values, steps = lane_bounds(graph.tensors[node.inputs[0]].type, op.n_in, op.in_values, op.in_ranges)
                requests[node.name] = ((wt, lo, hi, op.bias), dict(values=values, steps=steps, adder_levels=op.adder_levels))
        # All layers at once: their plans share the cores.
        planned = dict(zip(requests, plan_adder_graphs(list(requests.values()))))
        for node in graph.nodes:
            op = node.op
            if not isinstance(op, Dense):
                continue
            w = op.weight
            a = np.abs(np.asarray(w, dtype=np.int64))
            nz, digits = int(np.count_nonzero(a)), csd_digits(a)
            n_mul = int(np.count_nonzero(a & (a - 1)))
            latency = op.reuse_factor == 1 and op.strategy == "latency"
            parts = []
            if op.accum is not None and op.product_shift > 0:
                parts.append(f"products rounded one by one: {nz} constant products")
            elif node.name in planned:
                g = planned[node.name]
                cycles = max(1, math.ceil(g.max_depth / op.adder_levels))
                parts.append(
                    f"latency: {g.n_adders} adders (~{g.lut_cost()} LUT, 0 DSP), {g.max_depth} adder levels "
                    f"= {cycles} cycle(s) at AdderLevels {op.adder_levels}"
                )
            else:
                parts.append(f"latency: at most {max(digits - op.n_out, 0)} adders before sharing, 0 DSP")
            parts.append(f"resource R=1: {n_mul} DSP, 1 cycle interval")
            for r in sorted({r for r in (op.n_in, 4 * op.n_in) if 1 < r <= op.n_in * op.n_out} | ({op.reuse_factor} - {1})):
                k, s, c = reuse_plan(op.n_in, op.n_out, r)
                parts.append(f"resource R={r}: {k * s} DSP, interval {c}")
            chosen = "latency" if latency else f"resource R={op.reuse_factor}"
            graph.notes.append(
                f"{node.name}: Dense {op.n_in}x{op.n_out} ({nz} non-zero weights, {digits} CSD digits) "
                f"[{chosen}] " + "; ".join(parts)
            )
        return graph


class CheckParameterRanges(Pass):
    """With ``strict``, refuse a network whose float weights or biases lie outside their configured
    types (the importer notes them, ``node.attrs["out_of_range"]``; without ``strict`` they are
    saturated or wrapped as the type says, and the build reports them)."""

    def __init__(self, *, strict: bool = False):
        self.strict = strict

    def run(self, graph):
        bad = [(n.name, line) for n in graph.nodes for line in n.attrs.get("out_of_range", ())]
        if self.strict and bad:
            name, line = bad[0]
            more = f" ({len(bad) - 1} more in {', '.join(sorted({n for n, _ in bad[1:]}))})" if len(bad) > 1 else ""
            raise ConfigError(
                f"node {name!r}: {line}{more}; give the layer a wider type in the configuration "
                f"(LayerName.{name}.Precision) or build without --strict"
            )
        return graph


def default_passes(config: Config, *, reuse_check: bool = True, strict: bool = False) -> list[Pass]:
    """The pipeline :func:`rtlgen.convert` runs after the importer (``strict``: refuse float
    parameters outside their configured types, :class:`CheckParameterRanges`)."""
    return [
        CheckConfigNames(config), CheckParameterRanges(strict=strict), ApplyReuse(config, check=reuse_check),
        FoldRounding(), InferValueSets(), EstimateArithmetic(config),
    ]  # fmt: skip


def run_passes(graph: Graph, passes: list[Pass], *, dump_dir: str | os.PathLike | None = None) -> Graph:
    graph.verify()
    for i, p in enumerate(passes):
        graph = p.run(graph)
        graph.verify()
        log.debug("pass %s done", p)
        if dump_dir is not None:
            Path(dump_dir).mkdir(parents=True, exist_ok=True)
            (Path(dump_dir) / f"{i:02d}_{type(p).__name__}.json").write_text(graph.to_json())
    return graph
