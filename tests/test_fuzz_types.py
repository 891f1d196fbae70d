"""Property-based fuzzing of fixed-point types: random element-wise networks built directly in the
IR, with every rounding mode and every overflow mode (WRAP, SAT, SAT_ZERO, SAT_SYM, which QONNX
quantizers cannot express), against an exact reference in Python fractions, and in RTL.

Each example is a chain of two to six nodes on a vector of random width and type: casts to random
types (all 7 rounding x 4 overflow modes, widths 1 to 12, binary points inside, left and right of
the bits), ReLUs, merges (add, sub, mul, avg, max, min) and concatenations, each merge with the
previous node's output and any earlier tensor as inputs (so the graph is a DAG with forks). The
reference evaluates every tensor as exact fractions with the scalar reference of
``tests/test_fixed.py`` (written independently of :mod:`rtlgen.fixed`); the golden model must equal
it on every lane for inputs covering the input type's extremes, and the RTL must equal the golden
model under random stalls, in io_parallel and io_stream.
"""

import collections
import os
import time
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from test_fixed import ref_quantize

from conftest import check_rtl
from rtlgen.config import Config
from rtlgen.design import Design
from rtlgen.fixed import FixedType
from rtlgen.ir import Concat, Graph, Merge, Node, Relu, Requant, Tensor

ROUNDINGS = ["TRN", "TRN_ZERO", "RND", "RND_ZERO", "RND_INF", "RND_MIN_INF", "RND_CONV"]
OVERFLOWS = ["WRAP", "SAT", "SAT_ZERO", "SAT_SYM"]
KINDS = ["add", "sub", "mul", "avg", "max", "min"]
TOTALS = collections.Counter()


def _holding(lo: Fraction, hi: Fraction, frac: int) -> FixedType:
    """The narrowest type with ``frac`` fractional bits whose range holds ``[lo, hi]`` exactly."""
    mlo, mhi = lo * Fraction(2) ** frac, hi * Fraction(2) ** frac
    assert mlo.denominator == 1 and mhi.denominator == 1
    signed = mlo < 0
    w = 1
    while not (FixedType(w, w - frac, signed).min_mantissa <= mlo and mhi <= FixedType(w, w - frac, signed).max_mantissa):
        w += 1
    return FixedType(w, w - frac, signed)


def _range(t: FixedType) -> tuple[Fraction, Fraction]:
    lo = -t.max_mantissa if (t.signed and t.overflow == "SAT_SYM") else t.min_mantissa
    return lo * t.lsb, t.max_mantissa * t.lsb


@st.composite
def chains(draw):
    """A random chain as (graph, per-node reference functions, description)."""

    def ftype(modes=True):
        w = draw(st.integers(1, 12))
        signed = draw(st.booleans()) if w > 1 else False
        t = FixedType(w, draw(st.integers(-3, w + 3)), signed)
        if modes:
            t = t.with_modes(draw(st.sampled_from(ROUNDINGS)), draw(st.sampled_from(OVERFLOWS)))
        return t

    lanes = draw(st.integers(1, 6))
    g = Graph(name="fuzz_types", inputs=["x"])
    x_t = ftype(modes=False)
    g.add_tensor(Tensor("x", (lanes,), x_t))
    ranges = {"x": _range(x_t)}
    refs, desc = [], [f"x: {x_t} x{lanes}"]
    cur = "x"
    for i in range(draw(st.integers(2, 6))):
        t_in = g.tensors[cur]
        kind = draw(st.sampled_from(["requant", "requant", "relu", "merge", "merge", "concat"]))
        out = f"t{i}"
        lo, hi = ranges[cur]
        if kind == "requant":
            t = ftype()
            g.add_node(Node(out, Requant(t), [cur], [out]))
            refs.append((out, [cur], lambda v, t=t: ref_quantize(v, t) * t.lsb))
            shape, r = t_in.shape, _range(t)
            desc.append(f"{out} = cast({cur}, {t})")
        elif kind == "relu":
            t = _holding(max(lo, Fraction(0)), max(hi, Fraction(0)), t_in.type.frac)
            g.add_node(Node(out, Relu(), [cur], [out]))
            refs.append((out, [cur], lambda v: max(v, Fraction(0))))
            shape, r = t_in.shape, (max(lo, Fraction(0)), max(hi, Fraction(0)))
            desc.append(f"{out} = relu({cur})")
        else:
            same = [n for n, tt in g.tensors.items() if tt.shape == t_in.shape] if kind == "merge" else list(g.tensors)
            other = draw(st.sampled_from(same))
            a, b = (cur, other) if draw(st.booleans()) else (other, cur)
            ta, tb = g.tensors[a].type, g.tensors[b].type
            (alo, ahi), (blo, bhi) = ranges[a], ranges[b]
            f = max(ta.frac, tb.frac)
            if kind == "concat":
                r = (min(alo, blo), max(ahi, bhi))
                shape = (g.tensors[a].shape[0] + g.tensors[b].shape[0],)
                op, fn, frac = Concat(), None, f
            else:
                m = draw(st.sampled_from(KINDS))
                fn = {
                    "add": lambda p, q: p + q, "sub": lambda p, q: p - q, "mul": lambda p, q: p * q,
                    "avg": lambda p, q: (p + q) / 2, "max": max, "min": min,
                }[m]  # fmt: skip
                corners = [fn(p, q) for p in (alo, ahi) for q in (blo, bhi)]
                r = (min(corners), max(corners))
                frac = {"mul": ta.frac + tb.frac, "avg": f + 1}.get(m, f)
                op, shape = Merge(m), t_in.shape
            t = _holding(*r, frac)
            g.add_node(Node(out, op, [a, b], [out]))
            refs.append((out, [a, b], fn))
            desc.append(f"{out} = {op.kind if kind == 'merge' else 'concat'}({a}, {b})")
        g.add_tensor(Tensor(out, shape, t))
        ranges[out] = r
        cur = out
    g.outputs = [cur]
    g.verify()
    return g, refs, desc


def _reference(g, refs, m):
    """Every tensor of one sample as exact fractions; returns the output's mantissas."""
    vals = {"x": [int(v) * g.tensors["x"].type.lsb for v in m]}
    for out, ins, fn in refs:
        if fn is None:  # concatenation: a's lanes then b's (one position)
            vals[out] = vals[ins[0]] + vals[ins[1]]
        elif len(ins) == 1:
            vals[out] = [fn(v) for v in vals[ins[0]]]
        else:
            vals[out] = [fn(p, q) for p, q in zip(vals[ins[0]], vals[ins[1]])]
    t = g.tensors[g.outputs[0]].type
    mant = [Fraction(v) / t.lsb for v in vals[g.outputs[0]]]
    assert all(v.denominator == 1 and t.min_mantissa <= v <= t.max_mantissa for v in mant), "output type too narrow"
    return [int(v) for v in mant]


def _inputs(t: FixedType, lanes: int, n: int, rng) -> np.ndarray:
    """Random mantissas of the input type, every lane at its extremes in the first rows."""
    m = rng.integers(t.min_mantissa, t.max_mantissa + 1, (n, lanes))
    edges = [t.min_mantissa, t.max_mantissa, 0, min(1, t.max_mantissa), max(-1, t.min_mantissa)]
    m[: len(edges)] = np.array(edges)[:, None][: min(n, len(edges))]
    return m


def _check(net, n_vectors, rng, *, io_type=None, rtl_dir=None):
    g, refs, desc = net
    x_t = g.tensors["x"].type
    m = _inputs(x_t, g.tensors["x"].shape[0], n_vectors, rng)
    design = Design(g, Config(io_type=io_type or "io_parallel"))
    got = design.predict_int(m)
    want = np.array([_reference(g, refs, row) for row in m], dtype=np.int64)
    assert np.array_equal(got, want), (desc, np.argwhere(got != want)[:5])
    TOTALS["networks"] += 1
    TOTALS["vectors"] += len(m)
    for n in g.nodes:
        TOTALS[f"op:{n.kind}" + (f" {n.op.kind}" if n.kind == "Merge" else "")] += 1
        if n.kind == "Requant":
            TOTALS[f"rounding:{n.op.type.rounding}"] += 1
            TOTALS[f"overflow:{n.op.type.overflow}"] += 1
    if rtl_dir is not None:
        x = x_t.to_float(m[:200])
        res = check_rtl(design, x, work_dir=rtl_dir, stall="random", seed=int(rng.integers(1 << 30)))
        TOTALS["rtl_networks"] += 1
        TOTALS["rtl_vectors"] += res["n_vectors"]
        TOTALS[f"rtl_{io_type}"] += 1


@seed(41)
@settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(net=chains())
def test_types_golden_equals_fractions(net):
    _check(net, 64, np.random.default_rng(5))


@pytest.mark.parametrize("io_type", ["io_parallel", "io_stream"])
def test_types_rtl_equals_golden_under_stalls(io_type, tmp_path_factory):
    @seed(42 if io_type == "io_parallel" else 43)
    @settings(max_examples=1, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(net=chains())
    def run(net):
        _check(net, 64, np.random.default_rng(6), io_type=io_type, rtl_dir=tmp_path_factory.mktemp("fuzz"))

    run()


@pytest.mark.slow
@pytest.mark.heavy
def test_long_types_fuzz_run(tmp_path_factory):
    """The long run: ``RTLGEN_FUZZ_NETWORKS`` networks (default 300) of 2,000 vectors against the
    fraction reference, every ``RTLGEN_FUZZ_RTL_EVERY``-th (default 30) also in RTL (alternating
    interfaces); prints the totals."""
    n = int(os.environ.get("RTLGEN_FUZZ_NETWORKS", "300"))
    every = int(os.environ.get("RTLGEN_FUZZ_RTL_EVERY", "30"))
    TOTALS.clear()
    t0 = time.perf_counter()

    @seed(2028)
    @settings(max_examples=n, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(net=chains())
    def run(net):
        k = TOTALS["networks"]
        rtl = k % every == 0
        io = ["io_parallel", "io_stream"][(k // every) % 2]
        _check(net, 2000, np.random.default_rng(k), io_type=io, rtl_dir=tmp_path_factory.mktemp("fuzz") if rtl else None)
        if rtl:
            print(f"[{time.perf_counter() - t0:.0f} s] {dict(sorted(TOTALS.items()))}", flush=True)

    run()
    print(f"types fuzz totals after {time.perf_counter() - t0:.0f} s: {dict(sorted(TOTALS.items()))}")
    assert TOTALS["networks"] >= n
