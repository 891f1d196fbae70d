"""Constant-coefficient arithmetic: CSD digits, shared adder graphs, pipelining by adder levels,
bipolar inputs as XNOR-popcounts, and the DSP strategy; hardware in Amaranth's simulator."""

import math

import numpy as np
import pytest
from streams import run_layer

import rtlgen
from rtlgen import golden
from rtlgen.errors import ConfigError
from rtlgen.examples import example_model
from rtlgen.fixed import FixedType
from rtlgen.ir import Dense, Tensor
from rtlgen.layers import DenseParallel
from rtlgen.layers._dense import dense_hardware
from rtlgen.plan.adders import csd, plan_adder_graph


def _dense(op, x):
    return op.golden(x, None, None)

# Layers built only to read their figures are never elaborated.
pytestmark = pytest.mark.filterwarnings("ignore:.*created but never used")


def test_csd_is_exact_and_canonical():
    for v in range(-2000, 2001):
        digits = csd(v)
        assert sum(s << k for k, s in digits) == v
        shifts = [k for k, _ in digits]
        assert all(b - a >= 2 for a, b in zip(shifts, shifts[1:]))  # no two adjacent non-zero digits
    assert csd(0) == [] and csd(7) == [(0, -1), (3, 1)]


@pytest.mark.parametrize("seed", range(6))
def test_adder_graph_equals_matmul(seed):
    rng = np.random.default_rng(seed)
    n_in, n_out = int(rng.integers(1, 24)), int(rng.integers(1, 24))
    w = rng.integers(-100, 100, (n_in, n_out))
    w[rng.random(w.shape) < 0.3] = 0
    w[:, 0] = 0  # an output with no weights at all
    b = rng.integers(-300, 300, n_out)
    lo = rng.integers(-64, 1, n_in)
    hi = lo + rng.integers(0, 128, n_in)  # some lanes are constant
    values = [None] * n_in
    for i in range(0, n_in, 3):
        values[i] = tuple(sorted(rng.choice(np.arange(-20, 20), 2, replace=False).tolist()))
        lo[i], hi[i] = values[i]
    g = plan_adder_graph(w, lo, hi, b, values=values)
    x = np.stack([rng.choice(values[i], 300) if values[i] else rng.integers(lo[i], hi[i] + 1, 300) for i in range(n_in)], 1)
    assert np.array_equal(g.evaluate(x).astype(np.int64), x @ w + b)
    # Every node's interval really holds its values, so no adder can overflow.
    vals = _node_values(g, x)
    for s, v in enumerate(vals):
        assert g.lo[s] <= v.min() and v.max() <= g.hi[s], s


def test_shared_sources_get_exact_ranges():
    """A sum whose two sides read the same input has its exact range, not the sum of intervals:
    7x as 8x - x needs 11 bits for 8-bit x (intervals would give 12), and every signal's range is
    the tightest that holds its values over every input."""
    g = plan_adder_graph(np.array([[7]]), [-128], [127])
    s, sh, sign = g.outputs[0]
    assert sorted([sign * g.lo[s] << sh, sign * g.hi[s] << sh]) == [7 * -128, 7 * 127]
    assert g.width(s) == 11
    rng = np.random.default_rng(4)
    w = rng.integers(-40, 40, (6, 9))
    g = plan_adder_graph(w, [-8] * 6, [7] * 6)
    grid = np.array(np.meshgrid(*[np.arange(-8, 8)] * 3, indexing="ij")).reshape(3, -1).T
    x = np.concatenate([grid, grid[:, ::-1]], axis=1)  # every value of each lane, in combinations
    vals = _node_values(g, x)
    for v, lo, hi in zip(vals, g.lo, g.hi):
        assert lo <= v.min() and v.max() <= hi


def _node_values(g, x):
    x = x.astype(object)
    vals = []
    for src in g.sources:
        if src[0] == "in":
            vals.append(x[:, src[1]] >> src[2])
        elif src[0] == "off":
            # What the hardware does: the low w bits with the top one inverted.
            w = src[3]
            vals.append(((x[:, src[1]] >> src[2]) & ((1 << w) - 1)) ^ (1 << (w - 1)))
        elif src[0] == "bit":
            b = (x[:, src[1]] >> src[2]) & 1
            vals.append(1 - b if src[3] else b)
        else:
            vals.append(np.full(len(x), src[1], dtype=object))
    for p, sp, q, sq, d in g.adders:
        # sq == 0: the low d bits of P with the top one inverted, as the hardware does.
        vals.append(sp * vals[p] + sq * (vals[q] << d) if sq else (vals[p] & ((1 << d) - 1)) ^ (1 << (d - 1)))
    return vals


def test_sharing_and_pruning_cut_adders():
    rng = np.random.default_rng(1)
    w = rng.integers(-31, 32, (32, 32))
    shared = plan_adder_graph(w, [-128] * 32, [127] * 32)
    plain = plan_adder_graph(w, [-128] * 32, [127] * 32, cse=False)
    digits = sum(len(csd(v)) for v in w.ravel())
    # One adder per digit beyond the first of each output, and one per constant (the offsets of
    # signed lanes in offset binary).
    consts = sum(1 for src in plain.sources if src[0] == "const")
    assert plain.n_adders == digits - 32 + consts
    assert shared.n_adders < 0.75 * plain.n_adders
    pruned = w.copy()
    pruned[rng.random(w.shape) < 0.7] = 0
    assert plan_adder_graph(pruned, [-128] * 32, [127] * 32).n_adders < 0.5 * shared.n_adders


@pytest.mark.parametrize("levels", [1, 2, 5])
def test_adder_graph_layer_bit_exact_with_measured_timing(levels):
    rng = np.random.default_rng(levels)
    n_in, n_out = 12, 7
    w = rng.integers(-60, 60, (n_in, n_out))
    w[rng.random(w.shape) < 0.25] = 0
    b = rng.integers(-100, 100, n_out)
    tin, tout = FixedType(7, 3, True), FixedType(20, 14, True)
    dut = DenseParallel(tin, tout, weight=w, bias=b, adder_levels=levels)
    assert dut.multipliers == 0 and dut.adders > 0
    depth = dut.impl.graph.max_depth
    assert dut.latency == max(1, math.ceil(depth / levels))
    xs = rng.integers(tin.min_mantissa, tin.max_mantissa + 1, (40, n_in))
    ref = _dense(Dense(w, b), xs)
    outs, t_in, t_out = run_layer(dut, xs)
    assert np.array_equal(outs, ref)
    assert set(np.diff(t_in).tolist()) == {1}
    assert t_out[0] - t_in[0] == dut.latency
    rs = np.random.default_rng(5)
    pat_r, pat_v = rs.random(5000) < 0.6, rs.random(5000) < 0.7
    outs2, _, _ = run_layer(dut, xs, ready=lambda c: pat_r[c], valid=lambda c: pat_v[c])
    assert np.array_equal(outs2, ref)


def test_unsigned_inputs_and_wrapping_output():
    """Unsigned lanes, and an output narrower than the exact sum: it wraps as the golden model's
    WRAP accumulator does."""
    rng = np.random.default_rng(11)
    w = rng.integers(-200, 200, (9, 4))
    tin = FixedType(6, 6, False)
    accum = FixedType(10, 10, True, "TRN", "WRAP")
    op = Dense(w, None, accum=accum, product_shift=0)
    xs = rng.integers(0, 64, (50, 9))
    ref = _dense(op, xs)
    assert np.any(ref != xs @ w)  # it really wraps
    dut = DenseParallel(tin, accum, weight=w, accum=accum, product_shift=0, adder_levels=2)
    outs, _, _ = run_layer(dut, xs)
    assert np.array_equal(outs, ref)


def test_bipolar_inputs_become_xnor_popcounts():
    """Inputs in {-1, +1} and weights in {-1, 0, +1}: single bits (or their complements) summed by
    additions only, with narrow adders; bit-exact in simulation."""
    rng = np.random.default_rng(4)
    n_in, n_out = 24, 6
    w = rng.choice([-1, 0, 1], (n_in, n_out), p=[0.45, 0.1, 0.45])
    b = rng.integers(-3, 4, n_out)
    tin, tout = FixedType(2, 2, True, "TRN", "SAT_SYM"), FixedType(8, 8, True)
    dut = DenseParallel(tin, tout, weight=w, bias=b, in_values=[(-1, 1)] * n_in, adder_levels=2)
    g = dut.impl.graph
    assert {s[0] for s in g.sources} <= {"bit", "const"}
    assert all(sp > 0 and sq > 0 for _, sp, _, sq, _ in g.adders)  # no subtraction anywhere
    width = math.ceil(math.log2(n_in + 1)) + 1
    assert max(g.width(g.n_sources + k) for k in range(g.n_adders) if g.adders[k][1] and g.sources) <= width + 4
    plain = DenseParallel(tin, tout, weight=w, bias=b, adder_levels=2)
    assert g.adder_bits() < plain.impl.graph.adder_bits()
    xs = rng.choice([-1, 1], (60, n_in))
    outs, t_in, t_out = run_layer(dut, xs)
    assert np.array_equal(outs, xs @ w + b)
    assert t_out[0] - t_in[0] == dut.latency


def test_binary_01_inputs_and_ternary_weights():
    rng = np.random.default_rng(6)
    w = rng.choice([-2, -1, 0, 1, 3], (10, 5))
    tin, tout = FixedType(1, 1, False), FixedType(8, 8, True)
    dut = DenseParallel(tin, tout, weight=w, in_values=[(0, 1)] * 10)
    xs = rng.integers(0, 2, (40, 10))
    outs, _, _ = run_layer(dut, xs)
    assert np.array_equal(outs, xs @ w)


def test_resource_strategy_uses_multipliers():
    rng = np.random.default_rng(2)
    w = rng.integers(-60, 60, (8, 5))
    b = rng.integers(-10, 10, 5)
    tin, tout = FixedType(8, 4, True), FixedType(20, 12, True)
    dut = DenseParallel(tin, tout, weight=w, bias=b, strategy="resource", adder_levels=2)
    assert dut.multipliers == int(np.count_nonzero(w))
    xs = rng.integers(tin.min_mantissa, tin.max_mantissa + 1, (30, 8))
    outs, t_in, t_out = run_layer(dut, xs)
    assert np.array_equal(outs, xs @ w + b)
    assert t_out[0] - t_in[0] == dut.latency
    with pytest.raises(ValueError, match="strategy"):
        DenseParallel(tin, tout, weight=w, strategy="fast")


def test_dense_hardware_follows_the_node():
    w = np.array([[1, -1], [3, 0]])
    src, dst = Tensor("x", (2,), FixedType(4, 4, True)), Tensor("y", (2,), FixedType(10, 10, True))
    assert dense_hardware(Dense(w), src, dst).multipliers == 0
    assert dense_hardware(Dense(w, strategy="resource"), src, dst).multipliers == 3
    assert dense_hardware(Dense(w, reuse_factor=2), src, dst).initiation_interval == 2
    layer = dense_hardware(Dense(w, in_values=[[-1, 1], [-1, 1]]), src, dst)
    assert {s[0] for s in layer.impl.graph.sources} == {"bit", "const"}  # x = 2b - 1: a constant


def test_config_adder_levels_trade_latency():
    deep = rtlgen.convert(example_model("jet-tagger"), {"Model": {"AdderLevels": 1}})
    shallow = rtlgen.convert(example_model("jet-tagger"), {"Model": {"AdderLevels": 8}})
    assert deep.latency > shallow.latency >= 4
    assert all(n.op.adder_levels == 1 for n in deep.graph.nodes if n.kind == "Dense")
    notes = [n for n in deep.graph.notes if "adders" in n]
    assert len(notes) == 4 and all("DSP" in n for n in notes)
    with pytest.raises(ConfigError, match="AdderLevels"):
        rtlgen.convert(example_model("jet-tagger"), {"Model": {"AdderLevels": 0}})


def test_bipolar_network_dense_gets_value_sets():
    from test_onnx_import import _binary_trunc_model

    design = rtlgen.convert(_binary_trunc_model(np.random.default_rng(9), with_trunc=False))
    dense = [n for n in design.graph.nodes if n.kind == "Dense"]
    assert dense[0].op.in_values is None  # the network input is only typed, not valued
    assert dense[1].op.in_values == [[-1, 1]] * dense[1].op.n_in
    g = design.graph
    layer = dense_hardware(dense[1].op, g.tensors[dense[1].inputs[0]], g.tensors[dense[1].outputs[0]])
    m = design.random_inputs(200)
    h = golden.run(g, m, trace=True)[dense[1].inputs[0]]
    assert set(np.unique(h).tolist()) == {-1, 1}
    outs, _, _ = run_layer(layer, h)
    assert np.array_equal(outs, _dense(dense[1].op, h))


def test_per_lane_ranges_narrow_the_adders():
    """Lanes with their own ranges and always-zero low bits (HGQ2's per-lane quantizers)."""
    rng = np.random.default_rng(8)
    n_in, n_out = 10, 6
    w = rng.integers(-50, 50, (n_in, n_out))
    tin, tout = FixedType(12, 6, True), FixedType(24, 16, True)
    ranges = [[-(8 << k), (7 << k), k] for k in range(n_in - 1)] + [[0, 0, 0]]  # the last lane is always zero
    dut = DenseParallel(tin, tout, weight=w, in_ranges=ranges, adder_levels=2)
    wide = DenseParallel(tin, tout, weight=w, adder_levels=2)
    assert dut.impl.graph.adder_bits() < wide.impl.graph.adder_bits()
    xs = np.stack([rng.integers(-8, 8, 50) << k for k in range(n_in - 1)] + [np.zeros(50, dtype=np.int64)], 1)
    xs = np.clip(xs, tin.min_mantissa, tin.max_mantissa)
    outs, _, _ = run_layer(dut, xs)
    assert np.array_equal(outs, xs @ w)


def _text_form_cases():
    rng = np.random.default_rng(21)
    s7, u6 = FixedType(7, 3, True), FixedType(6, 6, False)
    wide, wrap = FixedType(20, 14, True), FixedType(10, 10, True, "TRN", "WRAP")
    w = rng.integers(-60, 60, (12, 7))
    w[rng.random(w.shape) < 0.25] = 0
    b2, t12 = FixedType(2, 2, True, "TRN", "SAT_SYM"), FixedType(12, 6, True)
    wb = rng.choice([-1, 0, 1], (24, 6), p=[0.45, 0.1, 0.45])
    ranges = [[-(8 << k), (7 << k), k] for k in range(9)] + [[0, 0, 0]]
    b, w2, w3, bb = rng.integers(-100, 100, 7), rng.integers(-200, 200, (9, 4)), rng.integers(-50, 50, (10, 6)), rng.integers(-3, 4, 6)
    u8, w4, b4 = FixedType(8, 8, False), rng.integers(-48, 48, (16, 10)), rng.integers(-500, 500, 10)
    return {
        "signed-3-levels": (lambda: DenseParallel(s7, wide, weight=w, bias=b, adder_levels=1), s7),
        "unsigned-wrapping": (lambda: DenseParallel(u6, wrap, weight=w2, accum=wrap, adder_levels=2), u6),
        "bipolar": (lambda: DenseParallel(b2, FixedType(8, 8, True), weight=wb, bias=bb, in_values=[(-1, 1)] * 24, adder_levels=2), b2),
        "lane-ranges": (lambda: DenseParallel(t12, FixedType(24, 16, True), weight=w3, in_ranges=ranges, adder_levels=3), t12),
        "relu-fused": (lambda: _relu_fused(DenseParallel(s7, wide, weight=w, bias=b, adder_levels=2)), s7),
        "relu-wrapping": (lambda: _relu_fused(DenseParallel(s7, wrap, weight=w, bias=b, accum=wrap, adder_levels=2)), s7),
        # Non-negative lanes whose shared patterns are signed: top bits inverted, some inside adders.
        "inverted-top-bits": (lambda: DenseParallel(u8, FixedType(24, 24, True), weight=w4, bias=b4, adder_levels=2), u8),
    }


def _relu_fused(dut):
    dut.impl.relu = True
    return dut


@pytest.mark.parametrize(
    "case", ["signed-3-levels", "unsigned-wrapping", "bipolar", "lane-ranges", "relu-fused", "relu-wrapping", "inverted-top-bits"]
)  # fmt: skip
def test_verilog_text_form_is_bit_exact(case, tmp_path):
    """The adder graph's own Verilog text (what builds write) against its plan, under random stalls
    in a simulator: the same figures Amaranth's form of it is tested for above."""
    from rtlgen.layers._verilog import to_verilog
    from rtlgen.sim.runner import available_simulators, run, write_testbench

    sims = available_simulators()
    if not sims:
        pytest.skip("no HDL simulator")
    make, tin = _text_form_cases()[case]
    dut = make()
    rng = np.random.default_rng(3)
    g = dut.impl.graph
    if case == "inverted-top-bits":
        assert g.merged_flips()
    if case == "bipolar":
        xs = rng.choice([-1, 1], (300, dut.n_in))
    elif case == "lane-ranges":
        xs = np.stack([rng.integers(-8, 8, 300) << k for k in range(9)] + [np.zeros(300, dtype=np.int64)], 1)
    else:
        xs = rng.integers(tin.min_mantissa, tin.max_mantissa + 1, (300, dut.n_in))
    tout = dut.out_type
    y = g.evaluate(xs).astype(object)
    # The output lanes hold the low bits of the exact sums, read back in the output type.
    mod = 1 << tout.width
    y = np.array([[(int(v) % mod) - (mod if tout.signed and int(v) % mod >= mod // 2 else 0) for v in r] for r in y])
    if dut.impl.relu:
        y = np.maximum(y, 0)
    (tmp_path / "rtl").mkdir()
    text = to_verilog(dut, "top")
    assert "module top__adder_graph0" in text
    (tmp_path / "rtl" / "top.v").write_text(text)
    meta = dict(
        toplevel="top", in_lanes=dut.n_in, in_width=tin.width, in_signed=tin.signed, out_lanes=dut.n_out,
        out_width=tout.width, out_signed=tout.signed, latency=dut.latency, interval=1,
        verilog_sources=["../rtl/top.v"],
    )  # fmt: skip
    write_testbench(tmp_path / "tb", xs, y, meta)
    sim = "icarus" if "icarus" in sims else sims[0]
    res = run(tmp_path / "tb", simulator=sim, stall="random", seed=1)
    assert res["passed"] and res["mismatches"] == 0, res.get("first_mismatches")


def test_reuse_check_off_keeps_the_pass_list():
    """``reuse_check=False`` only relaxes the reuse check: the other passes still run."""
    cfg = {"Model": {"ReuseFactor": 10**6}}
    with pytest.raises(ConfigError, match=r"reuse factor 1000000 cannot be used"):
        rtlgen.convert(example_model("jet-tagger"), cfg)
    design = rtlgen.convert(example_model("jet-tagger"), cfg, reuse_check=False)
    dense = [n.op for n in design.graph.nodes if isinstance(n.op, Dense)]
    assert [d.reuse_factor for d in dense] == [d.n_in * d.n_out for d in dense]
    assert sum("CSD digits" in n for n in design.graph.notes) == len(dense)  # EstimateArithmetic ran
    assert not any("does not split" in n for n in design.graph.notes)


@pytest.mark.parametrize(
    "rounding, signed, strategy",
    [("RND", True, "latency"), ("RND_CONV", False, "latency"), ("TRN", True, "resource")],
)
def test_product_tree_text_form_is_bit_exact(rounding, signed, strategy, tmp_path):
    """Products rounded one by one onto a wrapping accumulator (hls4ml's float layers) and DSP
    products: the Verilog text the build writes, in a simulator under random stalls, against the
    golden model; its pipeline is as deep as the Amaranth form's."""
    from rtlgen.layers._verilog import to_verilog
    from rtlgen.sim.runner import available_simulators, run, write_testbench

    sims = available_simulators()
    if not sims:
        pytest.skip("no HDL simulator")
    rng = np.random.default_rng(21)
    n_in, n_out = 11, 5
    w = rng.integers(-300, 300, (n_in, n_out))
    w[rng.random(w.shape) < 0.2] = 0
    w[:, 0] = 0  # an output with no products
    w[0, 1] = 64  # a power of two: a shift
    b = rng.integers(-40, 40, n_out)
    tin = FixedType(8, 3, signed)
    accum = FixedType(12, 6, True, rounding, "WRAP")
    shift = 3 if strategy == "latency" else 0
    op = Dense(w, b, accum=accum, product_shift=shift, strategy=strategy)
    dut = DenseParallel(tin, accum, weight=w, bias=b, accum=accum, product_shift=shift, strategy=strategy, adder_levels=2)
    xs = rng.integers(tin.min_mantissa, tin.max_mantissa + 1, (400, n_in))
    ref = _dense(op, xs)
    text = to_verilog(dut, "top")
    assert "module top__product_tree0" in text
    (tmp_path / "rtl").mkdir()
    (tmp_path / "rtl" / "top.v").write_text(text)
    meta = dict(
        toplevel="top", in_lanes=n_in, in_width=tin.width, in_signed=tin.signed, out_lanes=n_out,
        out_width=accum.width, out_signed=True, latency=dut.latency, interval=1, verilog_sources=["../rtl/top.v"],
    )  # fmt: skip
    write_testbench(tmp_path / "tb", xs, ref, meta)
    sim = "icarus" if "icarus" in sims else sims[0]
    res = run(tmp_path / "tb", simulator=sim, stall="random", seed=2)
    assert res["passed"] and res["mismatches"] == 0, res.get("first_mismatches")


def test_output_trees_use_depth_slack_for_narrower_adders(monkeypatch):
    """Outputs whose sums are shallower than the layer's deepest may be summed smallest terms
    first: fewer LUTs, the same depth, so the same number of pipeline stages."""
    from rtlgen.plan import adders

    rng = np.random.default_rng(8)
    w = rng.integers(-60, 60, (12, 10))
    w[rng.random(w.shape) < 0.6] = 0
    w[:, 0] = rng.integers(1, 60, 12)  # one dense column sets the depth
    hi = [1 << int(k) for k in rng.integers(1, 13, 12)]
    lo = [-h for h in hi]
    x = np.stack([rng.integers(lo[i], hi[i] + 1, 200) for i in range(12)], 1)
    g = plan_adder_graph(w, lo, hi, cse=False)
    tree = adders._Planner.tree
    monkeypatch.setattr(adders._Planner, "tree", lambda self, col, levels, build, *a: tree(self, col, 1, build))
    adders._CACHE.clear()
    least_depth = plan_adder_graph(w, lo, hi, cse=False)
    assert g.max_depth == least_depth.max_depth
    assert g.lut_cost() < least_depth.lut_cost()
    assert np.array_equal(g.evaluate(x).astype(np.int64), x @ w)


def test_relu_fuses_into_the_adder_graph_registers():
    """A ReLU that alone reads an adder graph clamps in the graph's output registers (Amaranth's
    form here; the text form above); a sum read by a ReLU and by another layer keeps its sign."""
    from rtlgen.ir import Graph, Node, Relu
    from rtlgen.layers import Network

    rng = np.random.default_rng(5)
    w = rng.integers(-20, 20, (6, 4))
    b = rng.integers(-30, 30, 4)
    tin, tacc = FixedType(6, 6, True), FixedType(16, 16, True)
    dut = _relu_fused(DenseParallel(tin, tacc, weight=w, bias=b, adder_levels=2))
    xs = rng.integers(tin.min_mantissa, tin.max_mantissa + 1, (100, 6))
    outs, _, _ = run_layer(dut, xs)
    assert np.array_equal(outs, np.maximum(xs @ w + b, 0))
    assert (xs @ w + b < 0).any()
    # A wrapping output type: the clamp reads the wrapped value, as a ReLU after it would.
    t6 = FixedType(6, 6, True, "TRN", "WRAP")
    dut = _relu_fused(DenseParallel(tin, t6, weight=w, bias=b, accum=t6, adder_levels=2))
    outs, _, _ = run_layer(dut, xs)
    wrapped = (xs @ w + b + 32) % 64 - 32
    assert np.array_equal(outs, np.maximum(wrapped, 0))
    assert (wrapped != xs @ w + b).any()

    def net(two_readers):
        g = Graph(inputs=["x"], outputs=["r"])
        for t in (Tensor("x", (6,), tin), Tensor("y", (4,), tacc), Tensor("r", (4,), FixedType(15, 15, False))):
            g.add_tensor(t)
        g.add_node(Node("fc", Dense(w, b), ["x"], ["y"]))
        g.add_node(Node("relu", Relu(), ["y"], ["r"]))
        if two_readers:
            g.add_tensor(Tensor("r2", (4,), FixedType(15, 15, False)))
            g.add_node(Node("relu2", Relu(), ["y"], ["r2"]))
        return dict(Network(g).layers)["fc"].impl.relu

    assert net(False) and not net(True)


def test_lut_cost_counts_where_the_operands_have_bits():
    """On a carry chain an addition needs a LUT only where both operands have bits (a constant
    bit passes straight to the chain), but for the lowest, whose base bit is the carry-in; a
    subtraction wherever either has; low bits are wires."""
    from rtlgen.plan.adders import _lut_cost

    assert _lut_cost(0, 255, 0, 15, 2, 1, 1, 0, 255 + 60) == 3  # bits 3-5: bit 2 is the carry-in
    assert _lut_cost(3, 3, 0, 15, 0, 1, 1, 3, 18) == 2  # a constant base has no bit to carry in
    assert _lut_cost(0, 255, 0, 15, 2, 1, -1, -60, 255) == 6  # bits 2-7
    assert _lut_cost(0, 255, -8, 7, 2, 1, 1, -32, 255 + 28) == 5  # a sign bit alone is a wire
    assert _lut_cost(-128, 127, -8, 7, 2, 1, 1, -160, 155) == 6  # two signs: up to the top
    assert _lut_cost(-128, 127, 0, 15, 2, -1, 1, -127, 188) == 9  # no wires below a negated base


def test_signed_terms_enter_with_inverted_top_bits(monkeypatch):
    """Shared patterns ``x_i - (x_j << k)`` of non-negative lanes are signed, and a signed term
    extends its sign over the whole sum it joins. With its top bit inverted (``+ 2**(w-1)``, the
    offset moved into the column's constant) it is non-negative, and its adders only cost where
    both operands have bits: fewer LUTs than the same plan without, as many stages, the same sums,
    and every node's interval still holds its values."""
    from rtlgen.plan import adders

    rng = np.random.default_rng(12)
    w = rng.integers(-48, 48, (24, 16))
    b = rng.integers(-500, 500, 16)
    lo, hi = [0] * 24, [255] * 24
    g = plan_adder_graph(w, lo, hi, b, adder_levels=3)
    assert any(a[3] == 0 for a in g.adders) and g.merged_flips()
    x = rng.integers(0, 256, (500, 24))
    assert np.array_equal(g.evaluate(x).astype(np.int64), x @ w + b)
    for s, v in enumerate(_node_values(g, x)):
        assert g.lo[s] <= v.min() and v.max() <= g.hi[s], s
    tree = adders._Planner.tree
    monkeypatch.setattr(adders, "CSE_FLIP", False)
    monkeypatch.setattr(adders._Planner, "tree", lambda self, col, lv, build, split=False, flip=False, pair=False: tree(self, col, lv, build, split, False, pair))
    adders._CACHE.clear()
    plain = plan_adder_graph(w, lo, hi, b, adder_levels=3)
    assert not any(a[3] == 0 for a in plain.adders)
    assert np.array_equal(plain.evaluate(x).astype(np.int64), x @ w + b)
    assert g.lut_cost() < 0.95 * plain.lut_cost()
    assert -(-g.max_depth // 3) <= -(-plain.max_depth // 3)


def test_offsets_of_shared_patterns_never_cost_a_stage(monkeypatch):
    """The constant that takes back the offsets of shared patterns is one more term in an output
    that had none; where that would need one more pipeline stage, the layer is planned without
    those offsets: never more stages than without them, and the same sums."""
    from rtlgen.plan import adders

    rng = np.random.default_rng(30)
    for _ in range(12):
        n_in, n_out = int(rng.integers(3, 12)), int(rng.integers(2, 8))
        w = rng.integers(-40, 40, (n_in, n_out))
        lo = [int(v) for v in rng.integers(-64, 1, n_in)]
        hi = [v + 100 for v in lo]
        levels = int(rng.integers(1, 4))
        adders._CACHE.clear()
        g = plan_adder_graph(w, lo, hi, adder_levels=levels)
        x = np.stack([rng.integers(lo[i], hi[i] + 1, 200) for i in range(n_in)], 1)
        assert np.array_equal(g.evaluate(x).astype(np.int64), x @ w)
        with monkeypatch.context() as m:
            m.setattr(adders, "CSE_FLIP", False)
            adders._CACHE.clear()
            plain = plan_adder_graph(w, lo, hi, adder_levels=levels)
        assert -(-g.max_depth // levels) <= max(1, -(-plain.max_depth // levels))


def test_minimal_signed_digit_forms():
    """Every form :func:`msd` lists sums to the weight with as few digits as CSD, and CSD's own
    form is among them."""
    from rtlgen.plan.adders import msd

    for v in range(-300, 301):
        forms = msd(v)
        assert tuple(sorted(csd(v))) in {tuple(sorted(f)) for f in forms}
        for f in forms:
            assert sum(s << k for k, s in f) == v and len(f) == len(csd(v))
    assert len(msd(3)) == 2  # 4 - 1 and 2 + 1


def test_other_digit_forms_share_more_and_keep_the_stages(monkeypatch):
    """Weights with several minimal forms (3 = 2 + 1 = 4 - 1) take the one whose pairs other
    columns have too: fewer LUTs, the same pipeline stages, the same integers."""
    from rtlgen.plan import adders

    rng = np.random.default_rng(3)
    w = rng.choice([3, -3, 6, 5, 11, -13, 0], size=(20, 16))
    lo, hi = [0] * 20, [255] * 20
    x = rng.integers(0, 256, (300, 20))
    g = plan_adder_graph(w, lo, hi, adder_levels=3)
    monkeypatch.setattr(adders, "MSD", False)
    adders._CACHE.clear()
    canonical = plan_adder_graph(w, lo, hi, adder_levels=3)
    assert g.lut_cost() < canonical.lut_cost()
    assert -(-g.max_depth // 3) <= -(-canonical.max_depth // 3)
    assert np.array_equal(g.evaluate(x).astype(np.int64), x @ w)


def test_layers_planned_on_every_core_equal_one_by_one(monkeypatch):
    """Several layers planned at once in forked processes give the plans made one by one, in this
    process; and no plan is shallower than the bound that lets the canonical one be skipped."""
    from rtlgen.plan import adders

    rng = np.random.default_rng(11)
    reqs = []
    for n_in, n_out, signed in ((12, 9, True), (20, 6, False), (7, 7, False)):
        w = rng.integers(-40, 40, (n_in, n_out))
        lo = [-128 if signed else 0] * n_in
        reqs.append(((w, lo, [127] * n_in, rng.integers(-50, 50, n_out)), dict(adder_levels=2)))
    monkeypatch.setattr(adders, "PARALLEL_DIGITS", 0)
    adders._CACHE.clear()
    forked = adders.plan_adder_graphs(reqs)
    monkeypatch.setattr(adders, "PARALLEL_DIGITS", 10**9)
    adders._CACHE.clear()
    alone = [plan_adder_graph(*args, **kw) for args, kw in reqs]
    for g, h, ((w, lo, hi, b), _) in zip(forked, alone, reqs):
        assert (g.adders, g.outputs, g.sources) == (h.adders, h.outputs, h.sources)
        assert g.max_depth >= adders._least_depth(adders._normalize(w, lo, hi, b))
        x = np.stack([rng.integers(lo[i], hi[i] + 1, 200) for i in range(len(lo))], 1)
        assert np.array_equal(g.evaluate(x).astype(np.int64), x @ w + b)


def test_wide_weights_keep_canonical_digits():
    """16-bit weights have dozens of digit forms and long columns: choosing among them would cost
    seconds per layer, so such a layer is planned in canonical digits only."""
    from rtlgen.plan import adders

    w = np.random.default_rng(0).integers(-32768, 32768, (32, 32))
    a = adders._normalize(w, [0] * 32, [255] * 32, adder_levels=3)
    assert adders._choice_keys(w) > adders.MSD_KEYS
    assert adders._variants(a) == [(False, 0)]
    small = adders._normalize(np.random.default_rng(1).integers(-40, 40, (16, 8)), [0] * 16, [255] * 16)
    assert adders._variants(small) == [(False, f) for f in adders.MSD_ROUNDS]


def _xcup_luts(text: str, work) -> int:
    """Yosys' LUT count of the Verilog ``text`` (top module ``top``) on xcup; skips without Yosys."""
    from rtlgen.synth import SynthesisError, synthesize, yosys_backend

    try:
        yosys_backend()
    except SynthesisError as exc:
        pytest.skip(str(exc))
    work.mkdir()
    (work / "top.v").write_text(text)
    return synthesize([work / "top.v"], "top", target="xcup", workdir=work, dsp=False)["lut"]


def test_carry_in_takes_the_lowest_bit_of_each_addition(tmp_path, monkeypatch):
    """Yosys puts the one-bit summand of the text form's additions on the carry chain's input:
    the same plan costs about one LUT less per such addition, as the LUT model counts."""
    from rtlgen.layers import _adders
    from rtlgen.layers._verilog import to_verilog

    rng = np.random.default_rng(5)
    w = rng.integers(-40, 41, (8, 6))
    dut = DenseParallel(FixedType(8, 8, False), FixedType(20, 20, True), weight=w, adder_levels=3)
    luts = {}
    for on in (True, False):
        monkeypatch.setattr(_adders, "CARRY_IN", on)
        text = to_verilog(dut, "top")
        if on:
            carried = text.count("_p + ")
        luts[on] = _xcup_luts(text, tmp_path / str(on))
    model = dut.impl.graph.lut_cost()
    assert carried >= dut.impl.graph.n_adders // 3
    assert luts[False] - luts[True] >= carried // 2, (luts, carried)
    assert abs(luts[True] - model) <= max(4, model // 10), (luts[True], model)


@pytest.mark.slow
def test_sums_read_whole_by_one_sum_are_kept(tmp_path, monkeypatch):
    """A sum whose one reader is another sum in the same segment is kept in the text form:
    without it Yosys merges the two into a many-operand sum of full adders, which costs more."""
    from rtlgen.layers import _adders
    from rtlgen.layers._verilog import to_verilog

    w = np.random.default_rng(7).integers(-40, 41, (16, 12))
    dut = DenseParallel(FixedType(7, 7, False), FixedType(24, 24, True), weight=w, adder_levels=3)
    g, n = dut.impl.graph, dut.impl.graph.n_sources
    luts = {}
    for keep in (True, False):
        if not keep:
            monkeypatch.setattr(_adders.AdderGraphLayer, "_chained", lambda self, merged, seg: set())
        text = to_verilog(dut, "top")
        if keep:
            kept = text.count("(* keep *)")
            seg = lambda s: max(1, math.ceil(g.depth[s] / 3))  # noqa: E731
            for s in dut.impl._chained({k for k in g.merged_flips()}, seg):
                # Read by exactly one sum, in its own segment.
                readers = [j for j, a in enumerate(g.adders) if s in (a[0], a[2])]
                assert len(readers) == 1 and seg(n + readers[0]) == seg(s)
                assert all(ref is None or ref[0] != s for ref in g.outputs)
        luts[keep] = _xcup_luts(text, tmp_path / str(keep))
    assert kept > 0
    assert luts[True] < luts[False], luts
