"""Mantissas carried in float32 (``Op.evaluate_float``) give the same integers as the integer path.

Types are drawn so that bounds straddle float32's exact range (2**23 for casts, 2**24 for sums):
on one side the float path runs, on the other it must decline, and both sides equal the integers.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rtlgen import golden
from rtlgen.fixed import OVERFLOW_MODES, ROUNDING_MODES, FixedType, cast
from rtlgen.ir import Dense, Graph, Node, Relu, Requant, Tensor

types = st.builds(
    lambda w, i, s, r, o: FixedType(w, i, s, r, o),
    st.integers(2, 26), st.integers(-4, 26), st.booleans(), st.sampled_from(ROUNDING_MODES), st.sampled_from(OVERFLOW_MODES),
)  # fmt: skip


def _graph(src, in_shape, nodes):
    """A chain ``x -> nodes...`` of (op, output type, shape)."""
    g = Graph("g")
    g.tensors["x"] = Tensor("x", in_shape, src)
    prev = "x"
    for k, (op, t, shape) in enumerate(nodes):
        name = f"t{k}"
        g.tensors[name] = Tensor(name, shape, t)
        g.add_node(Node(f"n{k}", op, [prev], [name]))
        prev = name
    g.inputs, g.outputs = ["x"], [prev]
    return g


def _inputs(t: FixedType, rng, n, lanes):
    """Random mantissas with each type's extremes and zero among them."""
    x = rng.integers(t.min_mantissa, t.max_mantissa, (n, lanes), endpoint=True)
    x[:3] = [[t.min_mantissa], [t.max_mantissa], [0]]
    return x


@settings(max_examples=150, deadline=None, derandomize=True)
@given(src=types, dst=types, seed=st.integers(0, 2**16))
def test_cast_float_path_equals_integers(src, dst, seed):
    g = _graph(src, (8,), [(Requant(dst), dst, (8,))])
    x = _inputs(src, np.random.default_rng(seed), 64, 8)
    want = cast(x, src, dst)
    assert np.array_equal(golden.run(g, x, floats=True), want)
    assert np.array_equal(golden.run(g, x, floats=False), want)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(src=types, lane_types=st.lists(st.one_of(st.none(), types), min_size=1, max_size=9), seed=st.integers(0, 2**16))
def test_per_lane_float_path_equals_integers(src, lane_types, seed):
    # One rounding/overflow/signedness for all lanes, as HGQ2 makes them (others take the integer path).
    first = next((t for t in lane_types if t is not None), FixedType(4, 2))
    lanes = [None if t is None else FixedType(t.width, t.integer, first.signed, first.rounding, first.overflow) for t in lane_types]
    real = [t for t in lanes if t is not None] or [first]
    frac, integer = max(t.frac for t in real), max(t.integer for t in real) + 1
    op = Requant(FixedType(frac + integer, integer, True), [None if t is None else str(t) for t in lanes])
    n = len(lanes)
    g = _graph(src, (n,), [(op, op.type, (n,))])
    x = _inputs(src, np.random.default_rng(seed), 64, n)
    assert np.array_equal(golden.run(g, x, floats=True), golden.run(g, x, floats=False))


@settings(max_examples=100, deadline=None, derandomize=True)
@given(
    in_bits=st.integers(2, 14), w_bits=st.integers(1, 12), n_in=st.integers(1, 40), n_out=st.integers(1, 6),
    accum=st.one_of(st.none(), types), shift=st.integers(-3, 0), seed=st.integers(0, 2**16),
)  # fmt: skip
def test_dense_relu_requant_float_path_equals_integers(in_bits, w_bits, n_in, n_out, accum, shift, seed):
    rng = np.random.default_rng(seed)
    src = FixedType(in_bits, in_bits, True)
    w = rng.integers(-(1 << w_bits), 1 << w_bits, (n_in, n_out), endpoint=True)
    b = rng.integers(-(1 << (in_bits + w_bits)), 1 << (in_bits + w_bits), n_out, endpoint=True)
    dense = Dense(w, b, accum=accum, product_shift=shift if accum is not None else 0)
    wide = FixedType(64, 64, True) if accum is None else accum
    out = FixedType(10, 6, False, "RND_CONV", "SAT")
    g = _graph(src, (n_in,), [(dense, wide, (n_out,)), (Relu(), wide, (n_out,)), (Requant(out), out, (n_out,))])
    x = _inputs(src, rng, 64, n_in)
    trace_f = golden.run(g, x, floats=True, trace=True)
    trace_i = golden.run(g, x, floats=False, trace=True)
    for name in trace_i:
        assert np.array_equal(trace_f[name], trace_i[name]), name
        assert trace_f[name].dtype == trace_i[name].dtype


def test_the_float_path_runs_and_declines_at_float32s_limit():
    """Not vacuous: a sum bounded by 2**24 - 2 is carried in float32, one bounded by 2**24 is not."""
    src = FixedType(24, 24, True)
    dense = Dense(np.array([[1], [1]]), None)
    t = Tensor("x", (2,), src)
    ok = dense.evaluate_float([np.array([[(1 << 23) - 1, (1 << 23) - 1]])], [t], None)
    assert ok is not None and ok.dtype == np.float32 and int(ok[0, 0]) == (1 << 24) - 2
    assert dense.evaluate_float([np.array([[1 << 23, 1 << 23]])], [t], None) is None
    cast_op = Requant(FixedType(8, 8, True, "RND", "WRAP"))
    wide = Tensor("x", (1,), FixedType(26, 23, True))
    y = cast_op.evaluate_float([np.array([[(1 << 22) + 4]])], [wide], None)
    assert y is not None and y.dtype == np.float32 and int(y[0, 0]) == -128 + ((((1 << 19) + 1) + 128) % 256)
    assert cast_op.evaluate_float([np.array([[1 << 23]])], [wide], None) is None
