"""The golden model: the IR executed on integer mantissas with numpy, exactly.

This is the specification the hardware is checked against. Every function takes and returns integer
mantissa arrays with a leading batch dimension.
"""

from __future__ import annotations

import numpy as np

from .fixed import FAST_ROUNDING, align, cast, int_array, shift_round
from .ir import Dense, Graph, Relu, Requant, Threshold

__all__ = ["run_node", "run", "quantize_input", "dequantize_output"]


def _dense(op: Dense, x: np.ndarray) -> np.ndarray:
    if op.accum is not None:
        return _dense_accum(op, x)
    w = op.weight
    # int64 matmul is exact while |sum| < 2**63; the bound check picks the exact path otherwise.
    bound = int(np.abs(x).max(initial=0)) * int(np.abs(w).sum(axis=0).max(initial=0))
    if op.bias is not None:
        bound += int(np.abs(op.bias).max(initial=0))
    if x.dtype == object or w.dtype == object or bound >= 1 << 62:
        y = np.dot(x.astype(object), w.astype(object))
    elif bound < 1 << 53:
        # Every product and partial sum is an integer below 2**53: float64 (BLAS) is exact too,
        # in any order of summation, and far faster than numpy's integer matmul. Blocks of rows
        # small enough that OpenBLAS stays on one thread: its idle threads spin, which costs more
        # than it gains at these sizes (and competes with the rest of a busy machine).
        xf, wf = x.astype(np.float64), w.astype(np.float64)
        y = np.empty((len(x), w.shape[1]), dtype=np.float64)
        rows = max(32, (1 << 17) // max(1, w.shape[0] * w.shape[1]))
        for s in range(0, len(x), rows):
            np.matmul(xf[s : s + rows], wf, out=y[s : s + rows])
        y = y.astype(np.int64)
    else:
        y = x @ w
    if op.bias is not None:
        y = y + op.bias
    return int_array(y)


def _dense_accum(op: Dense, x: np.ndarray) -> np.ndarray:
    """hls4ml's dense: products rounded to the accumulator grid, sums wrapped to its width."""
    from .fixed import overflow, round_shift

    acc_t = op.accum
    bias = op.bias if op.bias is not None else 0
    if op.product_shift <= 0:
        # Products are exact on the accumulator grid; wrapping is modular, so wrap once at the end.
        y = _dense(Dense(op.weight << -op.product_shift, None), x) + bias
        return overflow(y, acc_t)
    out = []
    x = int_array(x)
    for start in range(0, len(x), 512):  # bounds the (batch, n_in, n_out) product block
        xb = x[start : start + 512]
        prods = round_shift(xb[:, :, None] * op.weight[None], op.product_shift, acc_t.rounding)
        out.append(prods.sum(axis=1) + bias)
    return overflow(np.concatenate(out) if out else np.zeros((0, op.n_out), dtype=np.int64), acc_t)


def _threshold(op: Threshold, x: np.ndarray) -> np.ndarray:
    t = op.thresholds  # (C, L)
    inc = op.increasing[None, :, None]
    xe = x[:, :, None]
    passed = np.where(inc, xe >= t[None], xe <= t[None])
    return int_array(op.base + op.step * passed.sum(axis=2))


def run_node(graph: Graph, node, x: np.ndarray) -> np.ndarray:
    op = node.op
    if hasattr(op, "golden"):
        return op.golden(x, graph.tensors[node.inputs[0]], graph.tensors[node.outputs[0]])
    if isinstance(op, Dense):
        return _dense(op, x)
    if isinstance(op, Relu):
        return np.where(x > 0, x, 0).astype(x.dtype)
    if isinstance(op, Requant):
        src = graph.tensors[node.inputs[0]].type
        if op.lanes is None:
            return cast(x, src, op.type)
        fast = _requant_lanes(op, src, x)
        if fast is not None:
            return fast
        out = np.zeros(x.shape, dtype=np.int64)
        for c, t in enumerate(op.lane_types()):
            if t is not None:
                out[:, c] = align(cast(x[:, c], src, t), t.frac, op.type.frac)
        return out
    if isinstance(op, Threshold):
        return _threshold(op, x)
    raise TypeError(f"no golden model for {type(op).__name__}")


def _requant_lanes(op: Requant, src, x: np.ndarray):
    """Per-lane requantization (HGQ2) on all lanes at once: the same arithmetic as
    :func:`~rtlgen.fixed.cast` lane by lane, with per-lane shift and range arrays. None when a
    lane needs what only the general path does (other rounding modes, values near int64's limits)."""
    types = op.lane_types()
    idx = [c for c, t in enumerate(types) if t is not None]
    ts = [types[c] for c in idx]
    if x.dtype == object or not ts or len({(t.rounding, t.overflow, t.signed) for t in ts}) != 1:
        return None
    rounding, mode, signed = ts[0].rounding, ts[0].overflow, ts[0].signed
    if rounding not in FAST_ROUNDING or max(t.width for t in ts) > 62:
        return None
    s = np.array([src.frac - t.frac for t in ts], dtype=np.int64)
    up = np.array([op.type.frac - t.frac for t in ts], dtype=np.int64)
    m = x[:, idx]
    rs, ls = np.maximum(s, 0), np.maximum(-s, 0)
    bits = int(np.abs(m).max(initial=0)).bit_length()
    if bits + 2 + int(ls.max(initial=0)) > 62 or max(t.width for t in ts) + int(up.max(initial=0)) > 62:
        return None
    q = shift_round(m, rs, rounding) << ls
    hi = np.array([t.max_mantissa for t in ts], dtype=np.int64)
    lo = np.array([t.min_mantissa for t in ts], dtype=np.int64)
    if mode == "WRAP":
        w = np.array([t.width for t in ts], dtype=np.int64)
        q = q & ((np.int64(1) << w) - 1)
        if signed:
            q = np.where(q > hi, q - (np.int64(1) << w), q)
    elif mode in ("SAT", "SAT_SYM"):
        q = np.clip(q, -hi if (mode == "SAT_SYM" and signed) else lo, hi)
    else:  # SAT_ZERO
        q = np.where((q < lo) | (q > hi), 0, q)
    out = np.zeros(x.shape, dtype=np.int64)
    out[:, idx] = q << up
    return out


def run(graph: Graph, x: np.ndarray, *, trace: bool = False):
    """Run the integer graph on input mantissas ``x`` of shape ``(batch, *input_shape)``.

    Returns the output mantissas, or with ``trace=True`` a dict of every tensor's mantissas.
    """
    x = int_array(x)
    values = {graph.inputs[0]: x.reshape(len(x), -1)}
    for node in graph.nodes:
        if len(node.inputs) > 1:
            srcs = [graph.tensors[t] for t in node.inputs]
            values[node.outputs[0]] = node.op.golden([values[t] for t in node.inputs], srcs, graph.tensors[node.outputs[0]])
        else:
            values[node.outputs[0]] = run_node(graph, node, values[node.inputs[0]])
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
        # The host stage ends in the input quantizer, so this is an exact integer.
        if not np.array_equal(mi, m):
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
