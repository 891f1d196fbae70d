"""Activation ops: hardware against the golden model on every input, golden against independent
references, and the reported LUT error bound against an independent evaluation."""

import math
from fractions import Fraction

import numpy as np
import pytest
from streams import run_layers

from rtlgen import golden
from rtlgen.fixed import FixedType, cast
from rtlgen.ir import Graph, Node, Tensor
from rtlgen.ir.ops.activation import (
    Lut,
    Pwl,
    hard_sigmoid,
    hard_tanh,
    leaky_relu,
    make_lut,
    prelu,
    relu,
    relu6,
    thresholded_relu,
)
from rtlgen.layers import Network, hardware

SRC = FixedType(10, 4, True)  # 1024 input mantissas, [-8, 8) in steps of 1/64
LANES = 4


def _every_input(src):
    """Vectors in which every lane sees every input mantissa once (lane k shifted by 257 k)."""
    m = np.arange(src.min_mantissa, src.max_mantissa + 1, dtype=np.int64)
    return m, np.stack([np.roll(m, -257 * k) for k in range(LANES)], axis=1)


ALL, XS = _every_input(SRC)

OUT_TYPES = [
    FixedType(8, 3, True, "RND", "SAT"),
    FixedType(8, 1, False, "TRN", "SAT"),
    FixedType(12, 4, True, "RND_CONV", "WRAP"),
    FixedType(6, 2, True, "TRN_ZERO", "SAT_SYM"),
    FixedType(7, 3, False, "RND_INF", "SAT_ZERO"),
]


def _tensors(out_type, src=SRC, shape=(LANES,)):
    return Tensor("x", shape, src), Tensor("y", shape, out_type)


def _simulate(duts, xs, *, stall_seed=None):
    """Stream the vectors ``xs`` through every DUT side by side (random valid/ready gaps with a
    stall seed); returns each DUT's output vectors and (first input cycle, first output cycle)."""
    results = run_layers(duts, xs, stall_seed=stall_seed)
    outs = [np.array(o, dtype=np.int64).reshape(-1, xs.shape[1]) for o, _, _ in results]
    return outs, [(t_in[0] if t_in else None, t_out[0] if t_out else None) for _, t_in, t_out in results]


def _check_hardware(ops_and_types, *, stall_index=0, src_type=SRC):
    """Every (op, output type) in hardware equals its golden model on every input, back to back
    with the reported latency; the ``stall_index``-th also under random valid/ready stalls."""
    _, xs = _every_input(src_type)
    duts, expected = [], []
    for op, out_type in ops_and_types:
        src, dst = _tensors(out_type, src=src_type)
        expected.append(op.golden(xs, src, dst))
        duts.append(hardware(op, [src], dst))
    outs, times = _simulate(duts, xs)
    for (op, out_type), dut, got, exp, (t_in, t_out) in zip(ops_and_types, duts, outs, expected, times):
        assert np.array_equal(got, exp), f"{op.function} -> {out_type}"
        assert t_out - t_in == dut.latency
    op, out_type = ops_and_types[stall_index]
    src, dst = _tensors(out_type, src=src_type)
    (got,), _ = _simulate([hardware(op, [src], dst)], xs, stall_seed=5)
    assert np.array_equal(got, expected[stall_index])


# -- lookup tables --------------------------------------------------------------------------------

LUT_CASES = [
    ("sigmoid", None),
    ("tanh", None),
    ("softplus", None),
    ("softsign", None),
    ("elu", {"alpha": 0.5}),
    ("selu", None),
    ("exp", None),
    ("hard_sigmoid", {"variant": "keras2"}),
    ("hard_tanh", None),
]


@pytest.mark.parametrize("function,params", LUT_CASES)
def test_lut_hardware_equals_golden_on_every_input(function, params):
    # 1024 entries (one per input), 64 entries (16 inputs a bucket) and a ROM of logic.
    cases = [(make_lut(function, SRC, t, table_size=1024, params=params), t) for t in OUT_TYPES]
    t = OUT_TYPES[0]
    cases.append((make_lut(function, SRC, t, table_size=64, params=params), t))
    logic = make_lut(function, SRC, t, table_size=32, params=params)
    logic.rom = "logic"
    cases.append((logic, t))
    _check_hardware(cases, stall_index=len(cases) - 2)


def test_lut_index_clip_and_small_tables():
    """A hand-made table covering part of the input range clips; one-entry and odd-sized tables."""
    dst = FixedType(8, 8, True)
    cases = [
        (Lut(np.arange(-20, 20), shift=4, offset=-20, function="part"), dst),  # [-5, 5) of [-8, 8)
        (Lut(np.array([7]), shift=0, offset=0, function="one"), dst),
        (Lut(np.array([3, -1, 4, 1, -5]), shift=8, offset=-2, function="five"), dst),
    ]
    cases.append((Lut(np.arange(-20, 20), shift=4, offset=-20, rom="logic"), dst))
    _check_hardware(cases, stall_index=0)
    y = cases[0][0].golden(ALL[:, None], *_tensors(dst, shape=(1,)))[:, 0]
    assert y[0] == -20 and y[-1] == 19 and y[512] == 0  # clipped at both ends; x = 0 -> entry 20


def test_unsigned_input():
    """An unsigned input (logical shifts, no offset) through tables and piecewise-linear ops, with
    a knot below the input range."""
    src = FixedType(9, 3, False)
    t = OUT_TYPES[0]
    cases = [
        (make_lut("sigmoid", src, t, table_size=1024), t),
        (make_lut("softplus", src, t, table_size=64), t),
        (leaky_relu(0.3), t),
        (thresholded_relu(2.3), t),
        (Pwl(slope_hi=0.75, bias_hi=-1.0, slope_lo=3.0, knot=-1.5, upper=2.0, function="custom"), t),
        # A narrow negative constant rounded by more bits than it has.
        (Pwl(slope_hi=0.0, bias_hi=-1 / 512, slope_lo=0.0, bias_lo=-1 / 512), FixedType(4, 4, True, "RND")),
    ]
    _check_hardware(cases, stall_index=0, src_type=src)


def _reference(function, params):
    """The functions again, one float at a time with Python's math module and other formulas."""
    p = params or {}
    alpha = p.get("alpha", 1.0)
    selu_a, selu_s = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946
    slope = 1 / 6 if p.get("variant", "keras3") == "keras3" else 0.2
    return {
        "sigmoid": lambda x: 1 / (1 + math.exp(-x)),
        "tanh": math.tanh,
        "softplus": lambda x: math.log1p(math.exp(x)),
        "softsign": lambda x: x / (1 + abs(x)),
        "elu": lambda x: x if x > 0 else alpha * math.expm1(x),
        "selu": lambda x: selu_s * (x if x > 0 else selu_a * math.expm1(x)),
        "exp": math.exp,
        "hard_sigmoid": lambda x: min(max(slope * x + 0.5, 0.0), 1.0),
        "hard_tanh": lambda x: min(max(x, -1.0), 1.0),
    }[function]


def _true_max_error(lut, function, params, src, out_type, xs):
    f = _reference(function, params)
    y = lut.golden(xs[:, None], *_tensors(out_type, src=src, shape=(1,)))[:, 0]
    return max(abs(float(out_type.to_float(yi)) - f(float(src.to_float(xi)))) for xi, yi in zip(xs, y))


@pytest.mark.parametrize("function,params", LUT_CASES + [("hard_sigmoid", None)])
@pytest.mark.parametrize("table_size", [1024, 64])
def test_lut_max_error_holds_and_is_tight(function, params, table_size):
    for out_type in (FixedType(12, 4, True, "RND", "SAT"), FixedType(8, 1, False, "TRN", "SAT")):
        lut = make_lut(function, SRC, out_type, table_size=table_size, params=params)
        true = _true_max_error(lut, function, params, SRC, out_type, ALL)
        # Computed over every input mantissa: the worst case itself, up to float evaluation of f.
        assert lut.max_error == pytest.approx(true, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("function,params", LUT_CASES)
def test_lut_with_an_entry_per_input_is_the_function_rounded(function, params):
    """With one entry per input and round-to-nearest, every output is within half an LSB."""
    out_type = FixedType(20, 13, True, "RND", "SAT")  # [-4096, 4096): holds exp(8)
    lut = make_lut(function, SRC, out_type, table_size=1024, params=params)
    assert lut.shift == 0 and len(lut.table) == 1024
    assert lut.max_error <= float(out_type.lsb) / 2 + 1e-9


@pytest.mark.parametrize("sample", ["midrange", "midpoint", "lowest"])
def test_lut_samples(sample):
    """Each sampling rule; midrange is never worse than the others (the functions are monotonic)."""
    out_type = FixedType(20, 13, True, "RND", "SAT")  # holds exp(8)
    errors = {s: make_lut("exp", SRC, out_type, table_size=64, sample=s).max_error for s in ("midrange", "midpoint", "lowest")}
    lut = make_lut("exp", SRC, out_type, table_size=64, sample=sample)
    assert lut.max_error == pytest.approx(_true_max_error(lut, "exp", None, SRC, out_type, ALL), rel=1e-9)
    assert errors["midrange"] <= errors[sample] + float(out_type.lsb)
    # exp is convex: f at a bucket's midpoint lies below the middle of its range of values.
    assert errors["midrange"] < errors["midpoint"] < errors["lowest"]


@pytest.mark.parametrize("function,slope", [("sigmoid", 0.25), ("tanh", 1.0)])
@pytest.mark.parametrize("out_type", [FixedType(16, 6, True, "RND", "SAT"), FixedType(16, 0, False, "RND", "SAT")])
def test_make_lut_16_bit_input_bounded_error(function, slope, out_type):
    src = FixedType(16, 6, True)
    lut = make_lut(function, src, out_type, table_size=1024)
    assert (len(lut.table), lut.shift) == (1024, 6)
    x = src.to_float(np.arange(src.min_mantissa, src.max_mantissa + 1))
    y = out_type.to_float(lut.golden(np.arange(src.min_mantissa, src.max_mantissa + 1)[:, None], *_tensors(out_type, src=src, shape=(1,)))[:, 0])
    f = (1 / (1 + np.exp(-x))) if function == "sigmoid" else np.tanh(x)
    true = np.abs(y - f).max()
    assert lut.max_error == pytest.approx(true, rel=1e-9, abs=1e-12)
    # A bucket is 64 inputs: its ends are at most 31.5 input LSBs from the middle.
    bound = slope * 31.5 * float(src.lsb) + float(out_type.lsb) / 2
    if not out_type.signed and function == "tanh":
        bound = 1.0 + bound  # tanh's negative half clamps to 0
    assert lut.max_error <= bound + 1e-12


def test_wide_input_error_from_bucket_ends_is_exact():
    """Beyond 20 input bits the error comes from each bucket's ends; it matches all 4M inputs."""
    src, out_type = FixedType(22, 8, True), FixedType(16, 2, True, "RND", "SAT")
    lut = make_lut("sigmoid", src, out_type, table_size=1024)
    m = np.arange(src.min_mantissa, src.max_mantissa + 1)
    y = out_type.to_float(lut.table[lut.index(m)])
    x = src.to_float(m)
    true = np.abs(y - 1 / (1 + np.exp(-x))).max()
    assert abs(lut.max_error - true) <= 1e-12


@pytest.mark.parametrize("function,src", [("sigmoid", FixedType(16, 6)), ("tanh", FixedType(16, 6)), ("sigmoid", FixedType(22, 8)),
                                          ("elu", FixedType(16, 6))])
def test_best_span_windows_the_steep_part_and_its_error_is_exact(function, src):
    """``span="best"`` on a wide input: a window of at most ``table_size`` fine buckets where the
    function changes, the rest clamped to the end entries; its error, over every input (the
    clamped ones too), is exact and no worse than the table over the whole input."""
    out_type = FixedType(16, 6, True, "RND", "SAT")
    whole = make_lut(function, src, out_type, table_size=256)
    lut = make_lut(function, src, out_type, table_size=256, span="best")
    assert len(lut.table) <= 256 and lut.max_error <= whole.max_error
    m = np.arange(src.min_mantissa, src.max_mantissa + 1)
    f = {"sigmoid": lambda v: 1 / (1 + np.exp(-v)), "tanh": np.tanh, "elu": lambda v: np.where(v > 0, v, np.expm1(np.minimum(v, 0)))}[function]
    true = np.abs(out_type.to_float(lut.table[lut.index(m)]) - f(src.to_float(m))).max()
    assert abs(lut.max_error - true) <= 1e-12
    if function == "elu":  # linear above 0: no tail to drop
        assert lut.shift == whole.shift
    else:  # sigmoid flat beyond +-8 on this grid, tanh beyond +-4: both clamp
        assert lut.shift < whole.shift and lut.max_error < whole.max_error / 3
        assert ((m >> lut.shift) - lut.offset < 0).any() and ((m >> lut.shift) - lut.offset >= len(lut.table)).any()


def test_make_lut_validation():
    with pytest.raises(ValueError, match="table size must be a power of two, not 1000"):
        make_lut("sigmoid", SRC, "fixed<8,2>", table_size=1000)
    with pytest.raises(ValueError, match="activation function must be one of .*, not 'gelu'"):
        make_lut("gelu", SRC, "fixed<8,2>")
    with pytest.raises(ValueError, match="sigmoid has no parameter 'alpha'"):
        make_lut("sigmoid", SRC, "fixed<8,2>", params={"alpha": 1})
    with pytest.raises(ValueError, match="variant must be one of"):
        make_lut("hard_sigmoid", SRC, "fixed<8,2>", params={"variant": "keras1"})
    with pytest.raises(ValueError, match="sample must be one of"):
        make_lut("tanh", SRC, "fixed<8,2>", sample="middle")
    with pytest.raises(ValueError, match="span must be one of input, best, not 'some'"):
        make_lut("tanh", SRC, "fixed<8,2>", span="some")
    with pytest.raises(ValueError, match="not finite"):
        make_lut("exp", "fixed<20,20>", "fixed<16,6>")
    with pytest.raises(ValueError, match="table entry 200 does not fit the output type fixed<8,2>"):
        Lut(np.array([0, 200])).golden(ALL[:, None], *_tensors(FixedType(8, 2), shape=(1,)))
    with pytest.raises(ValueError, match="rom must be one of"):
        Lut(np.array([0]), rom="bram")
    with pytest.raises(ValueError, match="integer mantissas"):
        Lut(np.array([0.5]))


# -- piecewise-linear -----------------------------------------------------------------------------

PRELU_ALPHA = np.array([0.25, -0.5, 0.3, 1.75])
PWL_OPS = [
    leaky_relu(0.3),
    prelu(PRELU_ALPHA),
    thresholded_relu(0.7),
    relu6(),
    relu(max_value=2.5, negative_slope=0.1, threshold=0.5),
    hard_sigmoid("keras3"),
    hard_sigmoid("keras2"),
    hard_tanh(),
    leaky_relu(0.3, const_type=FixedType(6, 3, True, "RND")),  # constants coarser than the input
    thresholded_relu(0.7, const_type=FixedType(6, 3, True, "TRN")),
]


@pytest.mark.parametrize("op", PWL_OPS, ids=lambda op: op.function + "/" + str(op.const_type))
def test_pwl_hardware_equals_golden_on_every_input(op):
    _check_hardware([(op, t) for t in OUT_TYPES], stall_index=2)


def _pwl_reference(op, x, src, out_type):
    """The Pwl formula in exact rationals, lane by lane, then the final cast."""
    c = op.constants((LANES,))
    q = {k: None if v is None else [Fraction(int(m)) * op.const_type.lsb for m in v] for k, v in c.items()}
    f = 64 + op.const_type.frac + src.frac  # more fractional bits than any intermediate value
    out = np.zeros(x.shape, dtype=np.int64)
    for k in range(x.shape[1]):
        vals = []
        for m in x[:, k]:
            xv = Fraction(int(m)) * src.lsb
            d = xv - q["knot"][k]
            v = q["slope_hi"][k] * d + q["bias_hi"][k] if d > 0 else q["slope_lo"][k] * d + q["bias_lo"][k]
            if q["lower"] is not None:
                v = max(v, q["lower"][k])
            if q["upper"] is not None:
                v = min(v, q["upper"][k])
            vals.append(int(v * 2**f))
        out[:, k] = cast(np.array(vals, dtype=object), f, out_type)
    return out


@pytest.mark.parametrize("op", PWL_OPS, ids=lambda op: op.function + "/" + str(op.const_type))
def test_pwl_golden_equals_exact_rational_reference(op):
    for out_type in OUT_TYPES:
        src, dst = _tensors(out_type)
        assert np.array_equal(op.golden(XS, src, dst), _pwl_reference(op, XS, SRC, out_type))


@pytest.mark.parametrize(
    "op,f",
    [
        (leaky_relu(0.25), lambda x: np.where(x > 0, x, 0.25 * x)),
        (thresholded_relu(0.75), lambda x: np.where(x > 0.75, x, 0.0)),
        (relu6(), lambda x: np.clip(x, 0, 6)),
        (relu(max_value=2.5, negative_slope=0.125, threshold=0.5), lambda x: np.where(x > 0.5, np.minimum(x, 2.5), 0.125 * (x - 0.5))),
        (hard_tanh(), lambda x: np.clip(x, -1, 1)),
        (hard_sigmoid("keras3", const_type=FixedType(40, 2, True, "RND_CONV")), lambda x: np.clip(x + 3, 0, 6) / 6),
        (hard_sigmoid("keras3"), lambda x: np.clip(x + 3, 0, 6) / 6),
        (hard_sigmoid("keras2", const_type=FixedType(40, 2, True, "RND_CONV")), lambda x: np.clip(0.2 * x + 0.5, 0, 1)),
    ],
    ids=lambda v: v.function if isinstance(v, Pwl) else "",
)
def test_pwl_with_exact_constants_is_the_float_function_rounded_once(op, f):
    """With exactly representable constants the result is the real function with one rounding;
    hard_sigmoid's slope is not exact, but it stays within one LSB of Keras' formula."""
    for out_type in OUT_TYPES:
        src, dst = _tensors(out_type)
        y = op.golden(XS, src, dst)
        if op.function.startswith("hard_sigmoid"):
            # 1/6 is not exact in the constant type (nor is x / 6 in float64): values on a rounding
            # tie (x a multiple of 3 LSBs) may round either way, by one LSB.
            diff = np.abs(y - out_type.quantize(f(SRC.to_float(XS))))
            assert diff.max() <= 1
        else:
            assert np.array_equal(y, out_type.quantize(f(SRC.to_float(XS))))


def test_pwl_validation():
    src, dst = _tensors(FixedType(8, 4))
    with pytest.raises(ValueError, match="outside the range .* of the constant type fixed<18,8,RND_CONV>"):
        relu(max_value=300).golden(XS, src, dst)
    with pytest.raises(ValueError, match=r"slope_lo of shape \(3,\) does not broadcast to the tensor shape \(4,\)"):
        prelu([0.1, 0.2, 0.3]).golden(XS, src, dst)
    with pytest.raises(ValueError, match="negative_slope must be at least 0, not -0.1"):
        relu(negative_slope=-0.1)
    with pytest.raises(ValueError, match="alpha must be a finite number"):
        leaky_relu(float("nan"))
    with pytest.raises(ValueError, match="hard_sigmoid variant must be one of"):
        hard_sigmoid("keras1")
    with pytest.raises(ValueError, match="non-negative number of fractional bits"):
        Pwl(const_type=FixedType(8, 10))
    with pytest.raises(ValueError, match="lower bound above upper bound"):
        Pwl(lower=1.0, upper=0.5).golden(XS, src, dst)


# -- in a graph -----------------------------------------------------------------------------------


def test_graph_with_activations_golden_hardware_and_json():
    """PReLU then sigmoid through the IR: golden.run, the Network under stalls, JSON round trip."""
    g = Graph(name="acts", inputs=["x"], outputs=["y"])
    mid_t, out_t = FixedType(12, 5, True, "RND", "SAT"), FixedType(8, 0, False, "RND", "SAT")
    g.add_tensor(Tensor("x", (2, 2), SRC))
    g.add_tensor(Tensor("h", (2, 2), mid_t))
    g.add_tensor(Tensor("y", (2, 2), out_t))
    g.add_node(Node("prelu", prelu(PRELU_ALPHA.reshape(2, 2)), ["x"], ["h"]))
    g.add_node(Node("sigmoid", make_lut("sigmoid", mid_t, out_t, table_size=256), ["h"], ["y"]))
    g.verify()
    x = XS.reshape(-1, 2, 2)
    ref = golden.run(g, x)
    again = Graph.from_json(g.to_json())
    assert np.array_equal(golden.run(again, x), ref)
    assert again.nodes[1].op.max_error == g.nodes[1].op.max_error
    net = Network(g)
    assert net.latency == 1
    (got,), _ = _simulate([net], XS, stall_seed=11)
    assert np.array_equal(got, ref.reshape(-1, LANES))
