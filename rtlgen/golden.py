"""The golden model: the IR executed on integer mantissas with numpy, exactly.

This is the specification the hardware is checked against. Every function takes and returns integer
mantissa arrays with a leading batch dimension; each op's own arithmetic is in its IR module
(:mod:`rtlgen.ir.ops`).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .fixed import int_array
from .ir import Graph
from .ir.ops import Op

__all__ = ["run_node", "run", "quantize_input", "dequantize_output", "map_blocks", "block_rows", "host_input", "input_mantissas", "output_reals", "host_output"]

# Rows per block. Smaller blocks keep a block's tensors in the core's cache, but each op's Python
# part holds the GIL, and with one thread per core that contention costs more: on two cores the
# jet taggers ran at 0.4 M/s with 512 rows, about 1.0 M/s with 2048 and 1.2-1.4 M/s with 8192.
BLOCK_ROWS = 8192
# ... unless a block's widest tensor would then exceed this many values (a CNN's feature maps).
BLOCK_VALUES = 1 << 19


def block_rows(graph: Graph) -> int:
    """Rows per block for ``graph``: :data:`BLOCK_ROWS`, fewer (at least 256) for wide tensors."""
    widest = max((t.size for t in graph.tensors.values()), default=1)
    return max(256, min(BLOCK_ROWS, BLOCK_VALUES // max(widest, 1)))


def _workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def map_blocks(fn, x, *, rows: int = BLOCK_ROWS, workers: int | None = None):
    """``fn(x)`` computed on blocks of ``rows`` rows, on one thread per core, and put back together.

    ``fn`` must treat every row on its own (every op's golden model does: a leading batch
    dimension). numpy releases the GIL inside its loops, so the blocks run in parallel. ``fn`` may
    return an array or a dict of arrays (concatenated key by key)."""
    n = len(x)
    if n <= rows:
        return fn(x)
    starts = range(0, n, rows)
    workers = min(workers or _workers(), len(starts))
    if workers == 1:
        parts = [fn(x[s : s + rows]) for s in starts]
    else:
        # One thread per core already: BLAS threads on top of them only contend (about 30 % slower).
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1, "blas"), ThreadPoolExecutor(workers) as pool:
            parts = list(pool.map(lambda s: fn(x[s : s + rows]), starts))
    if isinstance(parts[0], dict):
        return {k: _concat([p[k] for p in parts]) for k in parts[0]}
    return _concat(parts)


def _concat(parts):
    # Python-integer blocks (wide values) and int64 blocks join as Python integers: exact either way.
    if any(p.dtype == object for p in parts) and not all(p.dtype == object for p in parts):
        parts = [p.astype(object) for p in parts]
    return np.concatenate(parts)


def run_node(graph: Graph, node, *xs: np.ndarray) -> np.ndarray:
    """One node's output mantissas from its input mantissas."""
    srcs = [graph.tensors[t] for t in node.inputs]
    return node.op.evaluate(list(xs), srcs, graph.tensors[node.outputs[0]])


def run(graph: Graph, x: np.ndarray, *, trace: bool = False, floats: bool = True):
    """Run the integer graph on input mantissas ``x`` of shape ``(batch, *input_shape)``.

    Returns the output mantissas, or with ``trace=True`` a dict of every tensor's mantissas.
    ``floats=False`` keeps every mantissa in integer arrays (the results are the same).
    """
    x = int_array(x)
    return map_blocks(lambda b: _run(graph, b, trace, floats), x.reshape(len(x), -1), rows=block_rows(graph))


def _run(graph: Graph, x: np.ndarray, trace: bool, floats: bool = True):
    # Ops that can carry their mantissas in float32 exactly do (``Op.evaluate_float``, on integer or
    # float inputs): chains of dense layers and requantizations then run on BLAS and half-size
    # arrays; any other op gets integers back.
    values = {graph.inputs[0]: x}
    for node in graph.nodes:
        xs = [values[t] for t in node.inputs]
        y = None
        if floats and type(node.op).evaluate_float is not Op.evaluate_float and all(v.dtype != object for v in xs):
            y = node.op.evaluate_float(xs, [graph.tensors[t] for t in node.inputs], graph.tensors[node.outputs[0]])
        if y is None:
            y = run_node(graph, node, *(_as_int(v) for v in xs))
        values[node.outputs[0]] = y
    if trace:
        return {k: _as_int(v) for k, v in values.items()}
    return _as_int(values[graph.outputs[0]])


def _as_int(v: np.ndarray) -> np.ndarray:
    return v.astype(np.int64) if v.dtype.kind == "f" else v


def quantize_input(graph: Graph, x) -> np.ndarray:
    """Float network inputs to the hardware's input mantissas, as the original network does."""
    return input_mantissas(graph, host_input(graph, x))


def host_input(graph: Graph, x) -> np.ndarray:
    """The network inputs after the host's float stage (the inputs themselves without one)."""
    x = np.asarray(x)
    return x if graph.pre is None else graph.pre.run(x)


def input_mantissas(graph: Graph, y) -> np.ndarray:
    """Input mantissas from :func:`host_input`'s values: row by row, so it may run block by block."""
    t = graph.tensors[graph.inputs[0]]
    y = _channels_last(np.asarray(y).reshape(len(y), -1).astype(np.float64), graph)
    if graph.pre is None:
        return t.type.quantize(y / t.scale)
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


def _channels_last(x, graph):
    """Channels-first network inputs (ONNX) reordered to the hardware's channels-last lanes."""
    order = getattr(graph, "input_order", None)
    return x if order is None else x[:, order]


def dequantize_output(graph: Graph, y: np.ndarray) -> np.ndarray:
    """Output mantissas to the network's float outputs (through the float tail, if any)."""
    return host_output(graph, output_reals(graph, y))


def output_reals(graph: Graph, y: np.ndarray) -> np.ndarray:
    """Output mantissas to their real values in the network's output order (row by row)."""
    t = graph.tensors[graph.outputs[0]]
    real = t.type.to_float(y) * t.scale
    if getattr(graph, "output_order", None) is not None:
        real = real[:, graph.output_order]
    return real


def host_output(graph: Graph, real: np.ndarray) -> np.ndarray:
    """:func:`output_reals`' values through the host's float tail, if any."""
    return real if graph.post is None else graph.post.run(real.astype(np.float32))
