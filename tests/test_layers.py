"""Layer components against the golden model, in Amaranth's own simulator (small sizes)."""

import itertools

import numpy as np
import pytest
from amaranth.hdl import Elaboratable, Fragment, Module, Signal, signed, unsigned
from amaranth.sim import Simulator
from streams import run_layer

from rtlgen.fixed import OVERFLOW_MODES, ROUNDING_MODES, FixedType, cast
from rtlgen.ir import Dense, Threshold
from rtlgen.layers import DenseParallel, DenseReuse, ThresholdLayer, requantize


class _Comb(Elaboratable):
    def __init__(self, src, dst):
        self.src, self.dst = src, dst
        self.x = Signal(signed(src.width) if src.signed else unsigned(src.width))
        self.y = Signal(signed(dst.width) if dst.signed else unsigned(dst.width))

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.y.eq(requantize(self.x, self.src, self.dst))
        return m


@pytest.mark.parametrize("src_signed", [True, False])
def test_requantize_hardware_equals_cast_exhaustively(src_signed):
    """Every mantissa of a 7-bit source through every rounding/overflow mode and several shifts."""
    src = FixedType(7, 3, src_signed)
    cases = []
    for rnd, ovf in itertools.product(ROUNDING_MODES, OVERFLOW_MODES):
        # The last two drop more bits than the source has: the sign must still round correctly.
        for width, integer, signed_ in [(4, 2, True), (3, 1, False), (5, 4, True), (8, 5, True), (2, 3, False), (4, 10, True), (3, 12, False)]:
            cases.append(FixedType(width, integer, signed_, rnd, ovf))
    duts = [_Comb(src, dst) for dst in cases]
    top = Module()
    for i, d in enumerate(duts):
        top.submodules[f"d{i}"] = d
    xs = np.arange(src.min_mantissa, src.max_mantissa + 1)
    expected = [cast(xs, src, dst) for dst in cases]
    got = [[] for _ in duts]

    async def bench(ctx):
        for x in xs:
            for d in duts:
                ctx.set(d.x, int(x))
            for i, d in enumerate(duts):
                got[i].append(ctx.get(d.y))

    sim = Simulator(top)
    sim.add_testbench(bench)
    sim.run()
    for dst, exp, g in zip(cases, expected, got):
        assert np.array_equal(np.array(g), exp), str(dst)


def _cast_cases():
    cases = []
    for rnd, ovf in itertools.product(ROUNDING_MODES, OVERFLOW_MODES):
        for width, integer, signed_ in [(4, 2, True), (3, 1, False), (5, 4, True), (8, 5, True), (2, 3, False), (4, 10, True), (3, 12, False)]:
            cases.append(FixedType(width, integer, signed_, rnd, ovf))
    return cases


@pytest.mark.parametrize("src_signed", [True, False])
def test_requant_text_form_equals_cast_exhaustively(src_signed, tmp_path):
    """The Verilog text of a per-lane requantization (one lane per rounding/overflow mode and
    shift, as HGQ2's heterogeneous quantizers build it), every source mantissa in every lane,
    under random stalls, equals :func:`cast`."""
    from streams import run_text_form

    from rtlgen.layers import RequantLayer

    src = FixedType(7, 3, src_signed)
    cases = _cast_cases()
    out = FixedType(20, 17, True)  # frac 3: every case's grid, wide enough for all of them
    ms = np.arange(src.min_mantissa, src.max_mantissa + 1)
    xs = np.stack([np.roll(ms, -k) for k in range(len(cases))], axis=1)
    ref = np.stack([cast(xs[:, k], src, t) << (out.frac - t.frac) for k, t in enumerate(cases)], axis=1)
    dut = RequantLayer(src, out, len(cases), lanes=cases)
    assert "module top__requant0" in run_text_form(dut, xs, ref, tmp_path, seed=7)


@pytest.mark.parametrize(
    "src,dst", [(FixedType(9, 4, True), FixedType(5, 2, False, "RND_CONV", "SAT")), (FixedType(9, 4, False), FixedType(6, 4, True, "TRN", "WRAP"))]
)
def test_relu_and_requant_text_forms(src, dst, tmp_path):
    """ReLU and one-type requantization as text under random stalls against the golden model."""
    from streams import run_text_form

    from rtlgen.layers import ReluLayer, RequantLayer

    rng = np.random.default_rng(src.width + dst.width)
    xs = rng.integers(src.min_mantissa, src.max_mantissa + 1, (60, 12))
    relu_out = FixedType(src.width, src.integer, src.signed)
    (tmp_path / "relu").mkdir()
    (tmp_path / "requant").mkdir()
    run_text_form(ReluLayer(src, relu_out, 12), xs, np.maximum(xs, 0), tmp_path / "relu", seed=1)
    run_text_form(RequantLayer(src, dst, 12), xs, cast(xs, src, dst), tmp_path / "requant", seed=2)


def _random_dense(rng, n_in, n_out, wbits=4):
    w = rng.integers(-(1 << (wbits - 1)), 1 << (wbits - 1), (n_in, n_out))
    w[rng.random(w.shape) < 0.2] = 0
    b = rng.integers(-50, 50, n_out)
    return w.astype(np.int64), b.astype(np.int64)


@pytest.mark.parametrize("reuse", [1, 2, 3, 5, 10, 20, 30, 40])
def test_dense_layers_bit_exact_with_measured_timing(reuse):
    rng = np.random.default_rng(reuse)
    n_in, n_out = 10, 4
    w, b = _random_dense(rng, n_in, n_out)
    tin = FixedType(6, 3, True)
    op = Dense(w, b, reuse_factor=reuse, adder_levels=2)
    xs = rng.integers(tin.min_mantissa, tin.max_mantissa + 1, (24, n_in))
    ref = op.golden(xs, None, None)
    tout = FixedType(16, 10, True)
    if reuse == 1:
        dut = DenseParallel(tin, tout, weight=w, bias=b, adder_levels=2)
    else:
        dut = DenseReuse(tin, tout, weight=w, bias=b, reuse_factor=reuse)
    outs, t_in, t_out = run_layer(dut, xs)
    assert np.array_equal(outs, ref)
    # Back to back: interval between accepted inputs; first output latency after its input.
    gaps = set(np.diff(t_in).tolist())
    assert gaps == {dut.initiation_interval}
    assert t_out[0] - t_in[0] == dut.latency
    # Under random gaps and stalls the same outputs come out, in order.
    rs = np.random.default_rng(7)
    pat_r, pat_v = rs.random(5000) < 0.6, rs.random(5000) < 0.7
    outs2, _, _ = run_layer(dut, xs, ready=lambda c: pat_r[c], valid=lambda c: pat_v[c])
    assert np.array_equal(outs2, ref)


def test_dense_reuse_multiplier_count():
    w = np.ones((16, 8), dtype=np.int64) * 3
    tin = FixedType(8, 8, True)
    dut = DenseReuse(tin, FixedType(16, 16, True), weight=w, reuse_factor=4)
    assert (dut.multipliers, dut.latency, dut.initiation_interval) == (32, 5, 4)
    Fragment.get(dut, None)  # it must also elaborate
    dut = DenseReuse(tin, FixedType(16, 16, True), weight=w, reuse_factor=64)  # hls4ml-style R > n_in
    assert (dut.multipliers, dut.latency, dut.initiation_interval) == (2, 65, 64)
    Fragment.get(dut, None)  # it must also elaborate


@pytest.mark.parametrize(
    "n_in,n_out,reuse,rounding,signed",
    [(10, 4, 3, "TRN", True), (10, 4, 20, "RND_CONV", False), (10, 4, 40, None, True), (70, 12, 70, "RND", True)],
)
def test_dense_reuse_text_form_is_bit_exact(n_in, n_out, reuse, rounding, signed, tmp_path):
    """The Verilog text a build writes for a time-multiplexed dense layer (output groups, a weight
    ROM of logic or block RAM, products rounded one by one, unsigned inputs) equals the golden model."""
    from streams import run_text_form

    rng = np.random.default_rng(reuse + 200)
    w, b = _random_dense(rng, n_in, n_out, wbits=6)
    tin = FixedType(8, 3, signed)
    kw = {}
    if rounding:
        kw = {"accum": FixedType(10, 6, True, rounding, "WRAP"), "product_shift": 3}
        b = b // 8
    op = Dense(w, b, reuse_factor=reuse, **kw)
    xs = rng.integers(tin.min_mantissa, tin.max_mantissa + 1, (40, n_in))
    ref = op.golden(xs, None, None)
    dut = DenseReuse(tin, kw.get("accum", FixedType(16, 10, True)), weight=w, bias=b, reuse_factor=reuse, **kw)
    text = run_text_form(dut, xs, ref, tmp_path, seed=reuse)
    assert "module top__dense_reuse0" in text and ('rom_style = "block"' in text) == (n_in == 70)


def test_threshold_layer_both_directions():
    rng = np.random.default_rng(3)
    th = np.sort(rng.integers(-40, 40, (6, 3)), axis=1)
    inc = np.array([True, False, True, False, True, True])
    op = Threshold(th, inc, base=-1, step=1)
    tin = FixedType(8, 8, True)
    xs = rng.integers(-64, 64, (40, 6))
    dut = ThresholdLayer(tin, FixedType(3, 3, True), 6, thresholds=th, increasing=inc, base=-1, step=1)
    outs, _, _ = run_layer(dut, xs)
    assert np.array_equal(outs, op.golden(xs, None, None))


@pytest.mark.parametrize("reuse", [1, 3, 20])
def test_dense_with_hls4ml_accumulator(reuse):
    """Products rounded onto a narrow accumulator grid and sums wrapped, in hardware as in golden."""
    rng = np.random.default_rng(reuse + 100)
    n_in, n_out = 10, 4
    w, b = _random_dense(rng, n_in, n_out, wbits=6)
    tin = FixedType(8, 3, True)
    accum = FixedType(9, 5, True, "TRN", "WRAP")  # 4 fractional bits: products lose 3 bits
    op = Dense(w, b // 8, reuse_factor=reuse, accum=accum, product_shift=3)
    xs = rng.integers(tin.min_mantissa, tin.max_mantissa + 1, (30, n_in))
    ref = op.golden(xs, None, None)
    assert ref.min() >= accum.min_mantissa and ref.max() <= accum.max_mantissa
    exact = (xs @ w) // 8 + b // 8
    assert np.any(ref != exact)  # the narrow accumulator really rounds and wraps
    kw = {"weight": w, "bias": b // 8, "accum": accum, "product_shift": 3}
    dut = DenseParallel(tin, accum, **kw) if reuse == 1 else DenseReuse(tin, accum, reuse_factor=reuse, **kw)
    outs, _, _ = run_layer(dut, xs)
    assert np.array_equal(outs, ref)
