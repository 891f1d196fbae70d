"""A quick estimate of each layer's hardware, made before anything is elaborated, and the guard
that stops a build far beyond every part of the target family.

The estimate reads only the graph (numpy on the weights, no Amaranth): a fully parallel layer
costs adders for the non-zero canonical-signed-digits of its constant weights, repeated at every
output position of an ``io_parallel`` convolution, and pipeline registers; a layer with a reuse
factor above 1 costs one multiplier (a DSP) per product computed in a cycle (none for a constant
weight that is a power of two) and registers for its held input and accumulators; a streamed
window costs its taps in registers; pooling costs comparators or adders per window value;
gathers are wires (registers when io_stream collects a whole tensor); a recurrent layer costs its
cell once per time step (unrolled) or once (reused), see :func:`_recurrent`; other layers about
one LUT per output bit. It is meant to tell millions from thousands within a second, not to replace
synthesis: on the calibration designs of ``benchmarks/size_guard.py`` (dense and convolutional,
io_parallel and io_stream, reuse 1 and above, an LSTM and a GRU in both schedules, a SimpleRNN)
LUTs and flip-flops are within 1.5x of Yosys (xc7), and ``tests/test_size.py`` keeps them there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import DesignError
from .ir import Conv, Dense, Gather, Graph, Pool, Reshape
from .ir.ops.recurrent import GRU, LSTM, Recurrent, SimpleRNN
from .plan.adders import csd_digits as _csd_digits
from .plan.recurrent import cell_graphs
from .plan.reuse import conv_reuse_plan, reuse_plan, valid_conv_reuse_factors, valid_reuse_factors

__all__ = ["LayerCost", "estimate", "check_size", "far_beyond", "FAR_BEYOND", "MAX_LAYERS"]

# A design this many times larger than the largest part of the family is refused (unless forced).
FAR_BEYOND = 2.0
# Deeper networks exceed what the HDL elaborator's recursion handles (not forcible).
MAX_LAYERS = 1500

# Coefficients fitted to Yosys (xc7) on the designs of ``benchmarks/size_guard.py --calibrate``
# (the table is in that script's docstring). LUTs per bit of a constant multiplier's adders,
# counted as CSD digits times a typical adder width: shared subexpressions and the bits below a
# shifted operand make the real adders about half that.
ADDER_LUT = 0.46
# Pipeline registers of a fully parallel layer per LUT of its adders.
PIPE_FF = 0.45
# Recurrent layers (fitted to Yosys on the LSTM(16) of benchmarks/recurrent_schedules.py, both
# schedules, and small GRUs and SimpleRNNs): the cell's adder graph and its pipeline registers
# against a dense layer's, LUTs per activation lookup (its window's clamp and index; the table a
# block RAM), per elementwise product and per shared multiplier, values per unit registered
# between the cell's stages, and per gate output of the shared multipliers.
RNN_ADDER = 0.72
RNN_PIPE = 1.08
RNN_LOOKUP_LUT = 48
RNN_PRODUCT_LUT = 4
RNN_SHARED_LUT = 8
RNN_ACC_VALUES = 1
# A reused SimpleRNN's table feeds the cast to the state, not a register, so Yosys builds it as
# logic instead of a block RAM (unrolled, it is a block RAM): about this many table bits per LUT.
RNN_ROM_BITS = 44


@dataclass
class LayerCost:
    """One layer's estimated LUTs (adders, logic) and DSP multipliers."""

    name: str
    kind: str
    lut: int
    dsp: int
    shape: str = ""
    # Multipliers that do not fit the DSPs become logic of about this many LUTs each.
    lut_per_mult: int = 0
    ff: int = 0


def _weighted(node, graph, io_type: str, reuse: int | None = None) -> LayerCost:
    op = node.op
    src = graph.tensors[node.inputs[0]].type
    r = op.reuse_factor if reuse is None else reuse
    wbits = max(int(np.abs(np.asarray(op.weight, dtype=np.int64)).max(initial=0)).bit_length() + 1, 2)
    adder = src.width + wbits  # bits of a typical adder: one LUT each
    per_mult = max(src.width * wbits // 2, 1)
    if isinstance(op, Dense):
        shape = f"Dense {op.n_in}x{op.n_out}"
        if r == 1 and getattr(op, "strategy", "latency") == "latency":
            return _adders(node.name, "Dense", _csd_digits(op.weight) * adder, shape, per_mult)
        k, s, _ = reuse_plan(op.n_in, op.n_out, r)
        return LayerCost(node.name, "Dense", (k * s) * adder, k * s, shape, per_mult, ff=_held(node, graph) + math.ceil(PIPE_FF * k * s * adder))
    P, K = op.reuse_shape()
    Q = op.weight.shape[3] * (op.weight.shape[2] if op.depthwise else 1)
    streamed = io_type == "io_stream" and _streamed(op)
    positions = 1 if streamed else P
    shape = f"Conv {P} positions x {K} kernel terms x {Q} filters"
    # A streamed convolution holds its window in registers (its line buffer's taps).
    kh, kw, cin = op.weight.shape[:3]
    window = kh * kw * cin * src.width if streamed else 0
    if r == 1:
        c = _adders(node.name, "Conv", positions * _csd_digits(op.weight) * adder, shape, per_mult)
        c.ff += window
        return c
    pp, pk, _, _ = conv_reuse_plan(positions, K, min(r, positions * K))
    mult = pp * pk * Q
    dsp = mult
    if pk == K:
        # Whole positions per cycle: every multiplier has one constant weight, and Yosys builds
        # those by a power of two (or zero) as wires.
        a = np.abs(np.asarray(op.weight, dtype=np.int64)).ravel()
        dsp = pp * int(np.count_nonzero(a & (a - 1)))
    held = 0 if streamed else _held(node, graph)
    return LayerCost(node.name, "Conv", mult * adder, dsp, shape, per_mult, ff=window + held + math.ceil(PIPE_FF * mult * adder))


def _recurrent(node, graph, schedule: str | None = None, reuse: int | None = None) -> LayerCost:
    """A SimpleRNN, LSTM or GRU: its cell once (the reused schedule) or once per time step
    (unrolled). A cell costs its products (adders for the constant weights at reuse factor 1,
    else shared multipliers), its elementwise multipliers (DSPs), its activation lookups and its
    pipeline registers. Unrolled, the first cell's state is zero, so only the input kernel's adders
    remain there, and the later steps' inputs and the earlier steps' outputs travel along the
    pipeline in shift registers (one LUT per bit and step); reused, the sequence is held and the
    shared multipliers accumulate."""
    op = node.op
    x, y = graph.tensors[node.inputs[0]], graph.tensors[node.outputs[0]]
    src = x.type
    schedule = schedule or op.schedule
    r = (op.reuse_factor if reuse is None else reuse) if schedule == "reused" else 1
    steps, u, F = x.size // op.n_in, op.units, op.n_in
    cells = steps if schedule == "unrolled" else 1
    kernel = np.asarray(op.kernel, dtype=np.int64)
    w = np.concatenate([kernel, np.asarray(op.recurrent_kernel, dtype=np.int64)])
    wbits = max(int(np.abs(w).max(initial=0)).bit_length() + 1, 2)
    adder = max(src.width, op.state.width) + wbits  # bits of a typical adder: one LUT each
    gates = w.shape[1]
    # Registers between the cell's elementwise stages (a few values per unit, as wide as the
    # accumulator) and the new state (and cell state).
    state = u * (op.state.width + (op.cell.width if op.cell is not None else 0))
    ff = cells * (_stage_values(op) * u * op.accum.width + state)
    lookups = {LSTM: 5, GRU: 3}.get(type(op), 1) * u
    lut = cells * (lookups * RNN_LOOKUP_LUT + op.cell_multipliers() * RNN_PRODUCT_LUT)
    if isinstance(op, SimpleRNN) and op.activation.get("kind") == "lut" and schedule == "reused":
        lut += u * len(op.activation["table"]) * op.table.width / RNN_ROM_BITS
    dsp = cells * op.cell_multipliers()
    if r == 1:
        full = _csd_digits(w)
        digits = _csd_digits(kernel) + (cells - 1) * full if schedule == "unrolled" else full
        add = ADDER_LUT * RNN_ADDER * digits * adder
        lut += add
        ff += PIPE_FF * RNN_PIPE * add
    else:
        graphs = cell_graphs(op, src) or []
        mults = sum(a * b for a, b, _ in (cg.reuse(r) for cg in graphs)) if graphs else reuse_plan(w.shape[0], gates, min(r, w.size))[0]
        dsp += mults
        lut += mults * RNN_SHARED_LUT
        # The products' accumulators and registered results.
        ff += RNN_ACC_VALUES * gates * (adder + max(w.shape[0], 2).bit_length())
    if schedule == "unrolled":
        carried = sum((steps - 1 - t) * F * src.width for t in range(steps))
        if op.return_sequences:
            carried += sum(t * u * y.type.width for t in range(steps))
        lut += carried
    else:
        ff += x.size * src.width + y.size * y.type.width * (2 if op.return_sequences else 1)
    kind = type(op).__name__
    shape = f"{kind} {u} units over {steps} steps of {F}, {schedule} schedule"
    per_mult = max(op.table.width * op.state.width // 2, 1)
    return LayerCost(node.name, kind, math.ceil(lut), math.ceil(dsp), shape, per_mult, ff=math.ceil(ff))


def _stage_values(op) -> int:
    """Values per unit registered between the cell's elementwise stages (fitted): an LSTM's and a
    GRU's gates and products; a GRU that resets before its recurrent product holds the state and
    ``r * h`` over the second product's stages too; a SimpleRNN registers its new state only."""
    if isinstance(op, SimpleRNN):
        return 1
    return 9 if isinstance(op, GRU) and not op.reset_after else 6


def _held(node, graph) -> int:
    """Register bits of a layer that reuses its multipliers: the input, held for the whole
    schedule, and the output's accumulators."""
    a, b = graph.tensors[node.inputs[0]], graph.tensors[node.outputs[0]]
    return a.size * a.type.width + b.size * b.type.width


def _adders(name, kind, digit_bits, shape, per_mult) -> LayerCost:
    """A fully parallel layer: constant multipliers as adders, pipelined by AdderLevels."""
    lut = math.ceil(ADDER_LUT * digit_bits)
    return LayerCost(name, kind, lut, 0, shape, per_mult, ff=math.ceil(PIPE_FF * lut))


def _streamed(op) -> bool:
    """A convolution over an image runs on a line buffer in io_stream: one window at a time."""
    return len(op.in_shape) == 3


def estimate(graph: Graph, io_type: str) -> list[LayerCost]:
    """Every node's estimated cost in ``io_type``."""
    out = []
    for node in graph.nodes:
        op = node.op
        if isinstance(op, (Dense, Conv)):
            out.append(_weighted(node, graph, io_type))
            continue
        if isinstance(op, Recurrent):
            out.append(_recurrent(node, graph))
            continue
        t = graph.tensors[node.outputs[0]]
        stream = io_type == "io_stream" and len(t.shape) >= 2
        lanes = t.shape[-1] if stream else t.size
        if isinstance(op, (Gather, Reshape)):
            # Wires; in io_stream a tensor gathered whole (a flatten) is collected into registers.
            out.append(LayerCost(node.name, node.kind, 0, 0, ff=t.size * t.type.width if io_type == "io_stream" else 0))
        elif isinstance(op, Pool):
            # A window of n values: n - 1 comparators and multiplexers, or n - 1 adders.
            n = op.pool[0] * op.pool[1]
            per = 2 if op.kind == "max" else 1
            src = graph.tensors[node.inputs[0]].type
            window = n * op.in_shape[2] * src.width if stream else 0
            if stream and op.kind == "avg" and len(set(op.divisors())) > 1:
                # Divisors that change with the position: io_stream runs it on the collected tensor.
                lanes, window = t.size, graph.tensors[node.inputs[0]].size * src.width
            out.append(LayerCost(node.name, node.kind, lanes * src.width * per * max(n - 1, 1), 0, ff=window))
        else:
            out.append(LayerCost(node.name, node.kind, lanes * t.type.width, 0))
    return out


def _lut_equivalent(costs: list[LayerCost], dsp: int) -> float:
    """LUTs, with the multipliers beyond ``dsp`` DSPs counted as logic."""
    lut = sum(c.lut for c in costs)
    spill = sum(c.dsp for c in costs) - dsp
    if spill > 0:
        per = sum(c.lut_per_mult * c.dsp for c in costs) / max(sum(c.dsp for c in costs), 1)
        lut += spill * per
    return lut


def _family(config) -> tuple[str, object]:
    """The target family's largest part: the family of the configuration's ``Part`` when it names
    a known device, else the largest Xilinx part rtlgen knows."""
    from .synth import PARTS

    part = str(config.model.get("Part") or "").lower() if hasattr(config, "model") else ""
    family = next((p.target for name, p in PARTS.items() if part and part.startswith(name)), None)
    pool = [p for p in PARTS.values() if (p.target == family if family else p.target in ("xc7", "xcup"))]
    return family or "xc7/xcup", max(pool, key=lambda p: (p.lut, p.dsp))


def _fitting_reuse(node, graph, io_type: str, lut_budget: float, dsp_budget: float) -> int | None:
    """The smallest exact reuse factor with which this layer fits its share of the part."""
    op = node.op
    if isinstance(op, Dense):
        valid = valid_reuse_factors(op.n_in, op.n_out)
    else:
        P, K = op.reuse_shape()
        valid = valid_conv_reuse_factors(1, K) if io_type == "io_stream" and _streamed(op) else valid_conv_reuse_factors(P, K)
    for r in valid:
        c = _weighted(node, graph, io_type, r)
        if c.dsp <= dsp_budget and c.lut <= lut_budget:
            return r
    return None


def _fitting_recurrent_reuse(node, graph, lut_budget: float, dsp_budget: float) -> int | None:
    """The smallest reuse factor with which a recurrent layer's reused schedule fits."""
    op = node.op
    n_in, n_out = op.n_in + op.units, op.recurrent_kernel.shape[1]
    for r in valid_reuse_factors(n_in, n_out):
        c = _recurrent(node, graph, "reused", r)
        if c.dsp <= dsp_budget and c.lut <= lut_budget:
            return r
    return None


def far_beyond(graph: Graph, config, *, factor: float = FAR_BEYOND) -> bool:
    """Whether :func:`check_size` refuses the design. The passes ask before planning adder graphs
    (minutes for a large layer), so that a design the guard refuses is refused in seconds."""
    if len(graph.nodes) > MAX_LAYERS:
        return True
    _, part = _family(config)
    return _lut_equivalent(estimate(graph, config.io_type), part.dsp) > factor * part.lut


def check_size(graph: Graph, config, *, factor: float = FAR_BEYOND) -> list[LayerCost]:
    """The estimate, or a :class:`DesignError` naming the costliest layer and settings that would
    fit when the design is more than ``factor`` times the family's largest part (or deeper than
    :data:`MAX_LAYERS`)."""
    if len(graph.nodes) > MAX_LAYERS:
        raise DesignError(
            f"the network has {len(graph.nodes):,} layers after import; rtlgen elaborates networks of up to "
            f"{MAX_LAYERS:,} layers: check the model (an unrolled loop?) or split it into parts"
        )
    io_type = config.io_type
    costs = estimate(graph, io_type)
    family, part = _family(config)
    total = _lut_equivalent(costs, part.dsp)
    if total <= factor * part.lut:
        return costs
    worst = max(costs, key=lambda c: _lut_equivalent([c], 0))
    nodes = {n.name: n for n in graph.nodes}
    weighted = [n for n in graph.nodes if isinstance(n.op, (Dense, Conv))]
    advice = []
    for io in (["io_stream", "io_parallel"] if io_type == "io_parallel" else ["io_stream"]):
        share = max(len(weighted), 1)
        picks = {}
        for n in weighted:
            r = _fitting_reuse(n, graph, io, part.lut / (2 * share), part.dsp / share)
            if r is None:
                picks = None
                break
            picks[n.name] = r
        if picks and worst.name in picks:
            others = sorted({r for name, r in picks.items() if name != worst.name})
            rest = f", the other layers {'/'.join(map(str, others[:4]))}" if others else ""
            advice.append(f"IOType {io} with reuse factor {picks[worst.name]} for {worst.name!r}{rest}")
    node = nodes[worst.name]
    what = f"reuse factor {node.op.reuse_factor}" if isinstance(node.op, (Dense, Conv)) else "its size"
    if isinstance(node.op, Recurrent):
        op = node.op
        what = f"the {op.schedule} schedule" + (f" at reuse factor {op.reuse_factor}" if op.schedule == "reused" else "")
        r = _fitting_recurrent_reuse(node, graph, part.lut / 2, part.dsp)
        # Reuse factor 1 is the unrolled schedule unless the strategy is Resource.
        setting = f"ReuseFactor {r}" if r and r > 1 else "Strategy Resource"
        advice = [f"{setting} for {worst.name!r} (the reused schedule: one cell over the time steps)"] if r else []
    fits = "; ".join(advice) if advice else "no reuse factor makes it fit: a smaller network or narrower types"
    raise DesignError(
        f"layer {worst.name!r} ({worst.shape or worst.kind}) needs about {_m(worst.lut)} LUTs"
        + (f" and {worst.dsp:,} DSPs" if worst.dsp else "")
        + f" at {what} in {io_type}; the design needs about {_m(total)} LUT-equivalents, "
        f"{total / part.lut:.0f}x the largest {family} part ({part.name}: {part.lut:,} LUTs, {part.dsp:,} DSPs); "
        f"settings that fit: {fits} (or pass --force to build it anyway)"
    )


def _m(v: float) -> str:
    if v >= 1e6:
        return f"{v / 1e6:.1f}M"
    if v >= 1e4:
        return f"{v / 1e3:.0f}k"
    return f"{math.ceil(v):,}"
