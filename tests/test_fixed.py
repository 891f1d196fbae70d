"""Exhaustive tests of ``rtlgen.fixed`` against an independent ``Fraction`` reference.

The reference below is written from the Xilinx ``ap_fixed`` definitions only (value =
mantissa * 2**-(width - integer)); it never calls a helper of the module under test.
"""

from __future__ import annotations

import functools
import math
import random
import re
from fractions import Fraction

import numpy as np
import pytest

from rtlgen.fixed import (
    OVERFLOW_MODES,
    ROUNDING_MODES,
    FixedType,
    FixedTypeError,
    align,
    cast,
    int_array,
    overflow,
    round_shift,
    type_for_range,
)

ROUNDINGS = ("TRN", "TRN_ZERO", "RND", "RND_ZERO", "RND_MIN_INF", "RND_INF", "RND_CONV")
OVERFLOWS = ("WRAP", "SAT", "SAT_ZERO", "SAT_SYM")
WIDTHS = range(1, 7)


# ------------------------------------------------------------------------------------------------
# Independent reference
# ------------------------------------------------------------------------------------------------


def pow2(n: int) -> Fraction:
    """Exactly 2**n for any integer n."""
    return Fraction(2**n) if n >= 0 else Fraction(1, 2**-n)


def ref_bounds(width: int, signed: bool) -> tuple[int, int]:
    if signed:
        return -(2 ** (width - 1)), 2 ** (width - 1) - 1
    return 0, 2**width - 1


@functools.lru_cache(maxsize=None)
def ref_round(x: Fraction, mode: str) -> int:
    """Round the exact rational ``x`` (in units of the destination LSB) to an integer."""
    x = Fraction(x)
    lower = math.floor(x)
    upper = lower + 1
    if x == lower:
        return lower
    if mode == "TRN":
        return lower
    if mode == "TRN_ZERO":
        return math.trunc(x)
    dist_lower, dist_upper = x - lower, upper - x
    if dist_lower < dist_upper:
        return lower
    if dist_upper < dist_lower:
        return upper
    # An exact tie between ``lower`` and ``upper``.
    if mode == "RND":  # towards plus infinity
        return upper
    if mode == "RND_MIN_INF":  # towards minus infinity
        return lower
    if mode == "RND_ZERO":  # towards zero
        return min(lower, upper, key=abs)
    if mode == "RND_INF":  # away from zero
        return max(lower, upper, key=abs)
    if mode == "RND_CONV":  # to even
        return lower if lower % 2 == 0 else upper
    raise AssertionError(mode)


def ref_overflow(m: int, width: int, signed: bool, mode: str) -> int:
    lo, hi = ref_bounds(width, signed)
    if mode == "WRAP":
        r = m % (2**width)
        if signed and r >= 2 ** (width - 1):
            r -= 2**width
        return r
    if mode == "SAT_ZERO":
        return m if lo <= m <= hi else 0
    if mode == "SAT_SYM" and signed:
        lo = -hi  # the most negative code is never produced (module docstring)
    if mode in ("SAT", "SAT_SYM"):
        return max(lo, min(hi, m))
    raise AssertionError(mode)


def ref_quantize(value: Fraction, t: FixedType) -> int:
    """Mantissa of ``t`` for the exact real ``value`` (round, then overflow)."""
    frac = t.width - t.integer
    scaled = Fraction(value) * pow2(frac)
    return ref_overflow(ref_round(scaled, t.rounding), t.width, t.signed, t.overflow)


def ref_cast(m: int, src_frac: int, dst: FixedType) -> int:
    return ref_quantize(Fraction(m) * pow2(-src_frac), dst)


# Vectorised look-ups of the scalar reference, so that the exhaustive tests stay fast. The tables
# are filled by the scalar reference above; numpy is only used to index them.

TABLE_HALF = 1 << 13  # overflow tables cover rounded mantissas in [-TABLE_HALF, TABLE_HALF)


@functools.lru_cache(maxsize=None)
def overflow_table(width: int, signed: bool, mode: str) -> np.ndarray:
    return np.array(
        [ref_overflow(r, width, signed, mode) for r in range(-TABLE_HALF, TABLE_HALF)],
        dtype=np.int64,
    )


@functools.lru_cache(maxsize=None)
def rounded_table(start: int, stop: int, drop: int, mode: str) -> np.ndarray:
    """``ref_round(n * 2**-drop)`` for every integer ``n`` in ``[start, stop)``."""
    return np.array([ref_round(Fraction(n) * pow2(-drop), mode) for n in range(start, stop)])


def apply_overflow_table(rounded: np.ndarray, t: FixedType) -> np.ndarray:
    assert rounded.min() >= -TABLE_HALF and rounded.max() < TABLE_HALF
    return overflow_table(t.width, t.signed, t.overflow)[rounded + TABLE_HALF]


def integer_bits(width: int) -> range:
    """Integer-bit counts to try: negative ones, zero, and more than the width."""
    return range(-3, width + 3)


def as_ints(a) -> list[int]:
    return [int(v) for v in np.asarray(a).ravel()]


# ------------------------------------------------------------------------------------------------
# The reference itself (a few hand-checked values, so that a wrong reference cannot hide bugs)
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "x, expected",
    [
        # x:          TRN TRN_ZERO RND RND_ZERO RND_MIN_INF RND_INF RND_CONV
        (Fraction(5, 2), (2, 2, 3, 2, 2, 3, 2)),
        (Fraction(7, 2), (3, 3, 4, 3, 3, 4, 4)),
        (Fraction(-5, 2), (-3, -2, -2, -2, -3, -3, -2)),
        (Fraction(-7, 2), (-4, -3, -3, -3, -4, -4, -4)),
        (Fraction(-1, 2), (-1, 0, 0, 0, -1, -1, 0)),
        (Fraction(1, 2), (0, 0, 1, 0, 0, 1, 0)),
        (Fraction(-9, 4), (-3, -2, -2, -2, -2, -2, -2)),
        (Fraction(11, 4), (2, 2, 3, 3, 3, 3, 3)),
        (Fraction(-11, 4), (-3, -2, -3, -3, -3, -3, -3)),
        (Fraction(3), (3, 3, 3, 3, 3, 3, 3)),
    ],
)
def test_reference_rounding(x, expected):
    assert tuple(ref_round(x, mode) for mode in ROUNDINGS) == expected


def test_reference_overflow():
    # 4-bit signed: [-8, 7]
    wrapped = [ref_overflow(m, 4, True, "WRAP") for m in (8, 9, -9, 16, -8, 7)]
    assert wrapped == [-8, -7, 7, 0, -8, 7]
    assert [ref_overflow(m, 4, True, "SAT") for m in (8, -9, -8)] == [7, -8, -8]
    assert [ref_overflow(m, 4, True, "SAT_ZERO") for m in (8, -9, -8, 5)] == [0, 0, -8, 5]
    assert [ref_overflow(m, 4, True, "SAT_SYM") for m in (8, -9, -8, -7)] == [7, -7, -7, -7]
    # 4-bit unsigned: [0, 15]
    assert [ref_overflow(m, 4, False, "WRAP") for m in (16, -1, 17)] == [0, 15, 1]
    assert [ref_overflow(m, 4, False, "SAT_SYM") for m in (16, -1, 0)] == [15, 0, 0]


def test_mode_lists():
    assert sorted(ROUNDING_MODES) == sorted(ROUNDINGS)
    assert sorted(OVERFLOW_MODES) == sorted(OVERFLOWS)


# ------------------------------------------------------------------------------------------------
# FixedType basics
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("signed", [True, False])
@pytest.mark.parametrize("width", [1, 2, 5, 8, 63, 64, 80])
def test_type_properties(width, signed):
    for integer in (-4, 0, 1, width, width + 5):
        t = FixedType(width, integer, signed)
        lo, hi = ref_bounds(width, signed)
        assert t.frac == width - integer
        assert (t.min_mantissa, t.max_mantissa) == (lo, hi)
        assert t.lsb == pow2(integer - width)
        assert t.min == lo * pow2(integer - width)
        assert t.max == hi * pow2(integer - width)
        assert t.to_fraction(hi) == t.max
        assert t.contains(lo) and t.contains(hi)
        assert not t.contains(lo - 1) and not t.contains(hi + 1)
        if width <= 53:
            assert t.to_float([lo, hi]).tolist() == [float(t.min), float(t.max)]


def test_with_modes():
    t = FixedType(8, 3)
    assert t.with_modes("RND") == FixedType(8, 3, True, "RND", "WRAP")
    assert t.with_modes(overflow="SAT") == FixedType(8, 3, True, "TRN", "SAT")
    assert FixedType(np.int64(8), np.int32(3)) == t


@pytest.mark.parametrize(
    "args, message",
    [
        ((0, 0), r"^Fixed-point width must be a positive integer, not 0$"),
        ((-3, 0), r"^Fixed-point width must be a positive integer, not -3$"),
        ((True, 0), r"^Fixed-point width must be a positive integer, not True$"),
        ((8, 1.5), r"^Fixed-point integer bits must be an integer, not 1\.5$"),
        ((8, 3, True, "ROUND"), r"^Rounding mode must be one of .*, not 'ROUND'$"),
        ((8, 3, True, "TRN", "CLAMP"), r"^Overflow mode must be one of .*, not 'CLAMP'$"),
    ],
)
def test_type_validation(args, message):
    with pytest.raises(FixedTypeError, match=message):
        FixedType(*args)


def test_quantize_rejects_non_finite():
    for bad in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(FixedTypeError):
            FixedType(8, 3).quantize([0.0, bad])


# ------------------------------------------------------------------------------------------------
# Exhaustive cast()
# ------------------------------------------------------------------------------------------------

# Every mantissa of a 9-bit signed source and of a 9-bit unsigned source (narrower sources are
# subsets). The source has ``dst.frac + offset`` fractional bits: more when offset > 0 (rounding),
# fewer when offset < 0 (exact left shift).
SRC_WIDTH = 9
SRC_FRAC_OFFSETS = (-3, -1, 0, 1, 2, 3, 5)
SRC_MANTISSAS = {
    True: np.arange(-(1 << (SRC_WIDTH - 1)), 1 << (SRC_WIDTH - 1), dtype=np.int64),
    False: np.arange(0, 1 << SRC_WIDTH, dtype=np.int64),
}


@pytest.mark.parametrize("overflow_mode", OVERFLOWS)
@pytest.mark.parametrize("rounding", ROUNDINGS)
@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
@pytest.mark.parametrize("width", WIDTHS)
def test_cast_exhaustive(width, signed, rounding, overflow_mode):
    checked = 0
    for integer in integer_bits(width):
        dst = FixedType(width, integer, signed, rounding, overflow_mode)
        for offset in SRC_FRAC_OFFSETS:
            src_frac = dst.frac + offset
            for src_signed, m in SRC_MANTISSAS.items():
                src = FixedType(SRC_WIDTH, SRC_WIDTH - src_frac, src_signed)
                # value * 2**dst.frac == m * 2**-offset, whatever the integer bits are
                rounded = rounded_table(int(m[0]), int(m[-1]) + 1, offset, rounding)
                expected = apply_overflow_table(rounded, dst)
                got = cast(m, src, dst)
                assert got.dtype == np.int64
                if not np.array_equal(got, expected):
                    bad = np.flatnonzero(got != expected)[0]
                    pytest.fail(
                        f"cast({int(m[bad])} of {src} -> {dst}) = {int(got[bad])}, "
                        f"expected {int(expected[bad])}"
                    )
                # the source may also be given as its number of fractional bits
                assert np.array_equal(cast(m, src_frac, dst), expected)
                checked += m.size
    assert checked > 0


def test_cast_reference_spot_checks():
    # The tables used above agree with the plain scalar reference on some random samples.
    rng = random.Random(7)
    for _ in range(2000):
        dst = FixedType(
            rng.randint(1, 6),
            rng.randint(-3, 9),
            rng.random() < 0.5,
            rng.choice(ROUNDINGS),
            rng.choice(OVERFLOWS),
        )
        src_frac = dst.frac + rng.choice(SRC_FRAC_OFFSETS)
        m = rng.randint(-256, 511)
        assert int(cast([m], src_frac, dst)[0]) == ref_cast(m, src_frac, dst), (m, src_frac, dst)


# ------------------------------------------------------------------------------------------------
# Exhaustive quantize()
# ------------------------------------------------------------------------------------------------

QUANT_EXTRA_BITS = 3  # inputs are every multiple of 2**-(frac + 3)


@pytest.mark.parametrize("overflow_mode", OVERFLOWS)
@pytest.mark.parametrize("rounding", ROUNDINGS)
@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
@pytest.mark.parametrize("width", WIDTHS)
def test_quantize_exhaustive(width, signed, rounding, overflow_mode):
    lo, hi = ref_bounds(width, signed)
    span = 2**width + 3  # beyond the limits by more than a whole wrap-around
    step = 2**QUANT_EXTRA_BITS
    start, stop = (lo - span) * step, (hi + span) * step + 1
    j = np.arange(start, stop)
    rounded = rounded_table(start, stop, QUANT_EXTRA_BITS, rounding)
    for integer in integer_bits(width):
        t = FixedType(width, integer, signed, rounding, overflow_mode)
        x = np.ldexp(j.astype(np.float64), -(t.frac + QUANT_EXTRA_BITS))
        # the float inputs really are the intended exact multiples
        assert Fraction(float(x[1])) == (start + 1) * pow2(-(t.frac + QUANT_EXTRA_BITS))
        expected = apply_overflow_table(rounded, t)
        got = t.quantize(x)
        if not np.array_equal(got, expected):
            bad = np.flatnonzero(got != expected)[0]
            pytest.fail(
                f"{t}.quantize({x[bad]!r}) = {int(got[bad])}, expected {int(expected[bad])}"
            )
        # scalars and nested lists work too
        assert int(t.quantize(float(x[0]))) == int(expected[0])
        assert t.quantize(x.reshape(-1, 1)).shape == (x.size, 1)


def _float_edge_values() -> list[float]:
    values = [0.0, -0.0, 5e-324, -5e-324, 2.0**-60, -(2.0**-60), 1e-300, -1e-300]
    for k in range(-4, 5):
        for base in (float(k), k + 0.5, k + 0.25, k + 0.75):
            values += [base, np.nextafter(base, np.inf), np.nextafter(base, -np.inf)]
    for e in (51, 52, 53, 60, 61, 62, 63, 64, 70, 100, 300, 1000):
        for v in (2.0**e, 2.0**e + 2.0 ** (e - 52), 2.0**e - 2.0 ** (e - 53)):
            values += [v, -v]
    values += [2.0**52 + 0.5, -(2.0**52) - 0.5, 1.7976931348623157e308, -1.7976931348623157e308]
    return [float(v) for v in values]


FLOAT_EDGE_TYPES = [
    (8, 4),
    (4, 4),
    (3, 1),
    (1, 1),
    (16, -1000),  # 1016 fractional bits: large inputs overflow a float when scaled
    (4, 1100),  # -1096 fractional bits: small inputs underflow a float when scaled
    (80, 80),
    (80, 40),
    (64, 2),
    (62, 62),
]


@pytest.mark.parametrize("rounding", ROUNDINGS)
@pytest.mark.parametrize("width, integer", FLOAT_EDGE_TYPES)
def test_quantize_float_edge_cases(width, integer, rounding):
    values = _float_edge_values()
    for signed in (True, False):
        for overflow_mode in OVERFLOWS:
            t = FixedType(width, integer, signed, rounding, overflow_mode)
            got = as_ints(t.quantize(values))
            expected = [ref_quantize(Fraction(v), t) for v in values]
            for v, g, e in zip(values, got, expected, strict=True):
                assert g == e, f"{t}.quantize({v!r}) = {g}, expected {e}"


@pytest.mark.parametrize("rounding", ROUNDINGS)
@pytest.mark.parametrize("width, integer", [(8, 4), (4, 4), (3, 1), (1, 1), (16, 6), (52, 20), (40, 40)])
def test_quantize_float_path_on_edge_values(width, integer, rounding):
    """The float path of quantize (values below 2**52 once scaled, the usual network inputs)
    against exact rational rounding, on the edge values it can take: ties, their neighbours,
    subnormals."""
    frac = width - integer
    values = [v for v in _float_edge_values() if abs(v) * 2.0**frac < 2.0**52]
    for signed in (True, False):
        for overflow_mode in OVERFLOWS:
            t = FixedType(width, integer, signed, rounding, overflow_mode)
            fast = t._quantize_float(np.array(values))
            if rounding in ("RND_ZERO", "RND_INF"):
                assert fast is None  # these take the general path
                continue
            assert fast is not None
            for v, g in zip(values, fast.tolist(), strict=True):
                assert g == ref_quantize(Fraction(v), t), f"{t}: {v!r} -> {g}"


# ------------------------------------------------------------------------------------------------
# round_shift()
# ------------------------------------------------------------------------------------------------

SHIFT_MANTISSAS = list(range(-300, 301))


@pytest.mark.parametrize("shift", [-3, -2, -1, 0, 1, 2, 3, 4, 5])
@pytest.mark.parametrize("mode", ROUNDINGS)
def test_round_shift_exhaustive(shift, mode):
    got = round_shift(np.array(SHIFT_MANTISSAS, dtype=np.int64), shift, mode)
    expected = [ref_round(Fraction(m) * pow2(-shift), mode) for m in SHIFT_MANTISSAS]
    assert got.dtype == np.int64
    assert as_ints(got) == expected


def test_round_shift_input_kinds():
    assert as_ints(round_shift([5, -5], 1, "RND")) == [3, -2]
    assert as_ints(round_shift(np.array([5, 250], dtype=np.uint8), 2, "RND_CONV")) == [1, 62]
    assert as_ints(round_shift(np.array([7], dtype=np.int8), -4)) == [112]
    assert as_ints(round_shift(np.array([True, False]), -1)) == [2, 0]
    assert round_shift(np.zeros((2, 3), dtype=np.int64), 2).shape == (2, 3)
    with pytest.raises(TypeError):
        round_shift(np.array([1.5]), 1)
    # default mode is TRN (floor)
    assert as_ints(round_shift([-1, -5, 5], 1)) == [-1, -3, 2]


# ------------------------------------------------------------------------------------------------
# Wide values: object arrays of exact Python integers
# ------------------------------------------------------------------------------------------------

BIG = [
    2**62,
    2**62 - 1,
    2**62 + 1,
    2**63 - 1,
    2**63,
    2**63 + 1,
    2**64 + 2**3,  # exact tie for a shift of 4
    2**70 + 2**5 + 2**4,  # tie for a shift of 5, odd quotient
    2**70 + 2**5 + 2**3 + 1,
    2**79 - 1,
    2**79,
    2**80 + 12345,
    3 * 2**100 + 2**99,
    2**200 + 1,
]
BIG_VALUES = BIG + [-v for v in BIG] + [0, 1, -1, 7, -8]


@pytest.mark.parametrize("mode", ROUNDINGS)
@pytest.mark.parametrize("shift", [-70, -10, -1, 0, 1, 2, 3, 4, 5, 8, 62, 63, 64, 70, 100, 250])
def test_round_shift_wide(shift, mode):
    m = np.array(BIG_VALUES, dtype=object)
    got = round_shift(m, shift, mode)
    expected = [ref_round(Fraction(v) * pow2(-shift), mode) for v in BIG_VALUES]
    assert as_ints(got) == expected
    assert all(isinstance(v, (int, np.integer)) for v in np.asarray(got).ravel())


INT64_EDGES = [0, 1, -1, 3, -3, 2**40 + 5, -(2**40) - 5, 2**62 - 1, -(2**62), 2**63 - 1, -(2**63)]


@pytest.mark.parametrize("mode", ROUNDINGS)
@pytest.mark.parametrize("shift", [-64, -30, -2, 1, 40, 61, 62, 63, 64, 65, 70, 200])
def test_round_shift_int64_edges(shift, mode):
    """int64 inputs: left shifts that would overflow int64 promote, huge right shifts are exact."""
    m = np.array(INT64_EDGES, dtype=np.int64)
    got = round_shift(m, shift, mode)
    expected = [ref_round(Fraction(v) * pow2(-shift), mode) for v in INT64_EDGES]
    assert as_ints(got) == expected
    if any(abs(e) >= 2**63 for e in expected):
        assert got.dtype == object


def test_int64_left_shift_promotes():
    m = np.array([2**40, -(2**40), 3], dtype=np.int64)
    got = round_shift(m, -30)
    assert got.dtype == object
    assert as_ints(got) == [2**70, -(2**70), 3 * 2**30]
    got = align(m, 2, 32)
    assert got.dtype == object and as_ints(got) == [2**70, -(2**70), 3 * 2**30]
    small = align(m, 2, 4)
    assert small.dtype == np.int64 and as_ints(small) == [2**42, -(2**42), 12]
    with pytest.raises(ValueError):
        align(m, 4, 2)


WIDE_TYPES = [(80, 80), (80, 30), (80, -5), (64, 64), (63, 10), (62, 62), (70, 100)]


@pytest.mark.parametrize("overflow_mode", OVERFLOWS)
@pytest.mark.parametrize("rounding", ROUNDINGS)
def test_cast_wide(rounding, overflow_mode):
    m_obj = np.array(BIG_VALUES, dtype=object)
    m_i64 = np.array(INT64_EDGES, dtype=np.int64)
    for width, integer in WIDE_TYPES:
        for signed in (True, False):
            dst = FixedType(width, integer, signed, rounding, overflow_mode)
            for src_frac in (dst.frac - 7, dst.frac, dst.frac + 1, dst.frac + 4, dst.frac + 70):
                for m, values in ((m_obj, BIG_VALUES), (m_i64, INT64_EDGES)):
                    got = cast(m, src_frac, dst)
                    expected = [ref_cast(v, src_frac, dst) for v in values]
                    assert as_ints(got) == expected, (dst, src_frac)
                    if all(-(2**62) <= e < 2**62 for e in expected):
                        assert got.dtype == np.int64
                    if any(not -(2**63) <= e < 2**63 for e in expected):
                        assert got.dtype == object


@pytest.mark.parametrize("overflow_mode", OVERFLOWS)
def test_overflow_int64_into_wide_type(overflow_mode):
    m = np.array(INT64_EDGES, dtype=np.int64)
    for width in (62, 63, 64, 65, 80):
        for signed in (True, False):
            t = FixedType(width, width, signed, "TRN", overflow_mode)
            expected = [ref_overflow(v, width, signed, overflow_mode) for v in INT64_EDGES]
            assert as_ints(overflow(m, t)) == expected, t
            assert as_ints(overflow(m.astype(object), t)) == expected, t


def test_quantize_wide():
    t = FixedType(80, 70, True, "RND_CONV", "SAT")
    values = [2.0**68 + 2.0**16 + 2.0**-10, -(2.0**68) - 2.0**-10, 2.0**69, 1e300, -1e300, 0.1]
    assert as_ints(t.quantize(values)) == [ref_quantize(Fraction(v), t) for v in values]
    assert t.quantize(values).dtype == object


def test_int_array():
    assert int_array([1, 2]).dtype == np.int64
    small = int_array(np.array([1, -(2**62)], dtype=object))
    assert small.dtype == np.int64 and as_ints(small) == [1, -(2**62)]
    wide = int_array(np.array([1, 2**62], dtype=object))
    assert wide.dtype == object and as_ints(wide) == [1, 2**62]
    assert int_array(np.array([], dtype=object)).dtype == np.int64
    big_unsigned = np.array([2**64 - 1, 2**63, 5], dtype=np.uint64)
    assert as_ints(int_array(big_unsigned)) == [2**64 - 1, 2**63, 5]
    with pytest.raises(TypeError):
        int_array(np.array([0.5]))


# ------------------------------------------------------------------------------------------------
# Parsing and printing
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("fixed<16,6>", FixedType(16, 6)),
        ("ufixed<8,0,RND,SAT>", FixedType(8, 0, False, "RND", "SAT")),
        ("int<8>", FixedType(8, 8)),
        ("uint<4>", FixedType(4, 4, False)),
        ("ap_fixed<18,8,AP_RND_CONV,AP_SAT>", FixedType(18, 8, True, "RND_CONV", "SAT")),
        ("ap_ufixed<8,3,AP_RND_ZERO,AP_SAT_SYM>", FixedType(8, 3, False, "RND_ZERO", "SAT_SYM")),
        ("ap_int<12>", FixedType(12, 12)),
        ("ap_uint<1>", FixedType(1, 1, False)),
        ("  fixed < 16 , 6 >  ", FixedType(16, 6)),
        ("\tufixed<8, 0, RND, SAT>\n", FixedType(8, 0, False, "RND", "SAT")),
        ("int< 8 >", FixedType(8, 8)),
        ("fixed<8,3,rnd_inf,sat_zero>", FixedType(8, 3, True, "RND_INF", "SAT_ZERO")),
        ("FIXED<8,3,TRN_ZERO>", FixedType(8, 3, True, "TRN_ZERO")),
        ("fixed<4,-2>", FixedType(4, -2)),
        ("fixed<4,9,RND_MIN_INF,WRAP>", FixedType(4, 9, True, "RND_MIN_INF")),
    ],
)
def test_parse(text, expected):
    t = FixedType.parse(text)
    assert t == expected
    assert FixedType.parse(str(t)) == t
    assert FixedType.parse(t) is t


@pytest.mark.parametrize(
    "t, text",
    [
        (FixedType(16, 6), "fixed<16,6>"),
        (FixedType(8, 8), "int<8>"),
        (FixedType(4, 4, False), "uint<4>"),
        (FixedType(8, 0, False, "RND", "SAT"), "ufixed<8,0,RND,SAT>"),
        (FixedType(8, 3, True, "TRN", "SAT"), "fixed<8,3,TRN,SAT>"),
        (FixedType(8, 3, True, "RND_CONV"), "fixed<8,3,RND_CONV>"),
        (FixedType(8, 8, True, "RND"), "fixed<8,8,RND>"),
        (FixedType(4, -2, False), "ufixed<4,-2>"),
    ],
)
def test_str(t, text):
    assert str(t) == text


def test_str_round_trip_grid():
    count = 0
    for width in (1, 2, 7, 16, 80):
        for integer in (-3, 0, 1, width, width + 2):
            for signed in (True, False):
                for rounding in ROUNDINGS:
                    for overflow_mode in OVERFLOWS:
                        t = FixedType(width, integer, signed, rounding, overflow_mode)
                        assert FixedType.parse(str(t)) == t
                        assert FixedType.parse(f"ap_{t}") == t
                        count += 1
    assert count == 5 * 5 * 2 * 7 * 4


MALFORMED = (
    r"is malformed; expected 'fixed<W,I>', 'fixed<W,I,ROUNDING>', "
    r"'fixed<W,I,ROUNDING,OVERFLOW>' or 'int<W>'$"
)
NOT_FIXED = (
    r"is not a fixed-point type; expected e\.g\. 'fixed<16,6>', 'ufixed<8,0,RND,SAT>' or 'int<8>'$"
)


@pytest.mark.parametrize(
    "text, message",
    [
        ("fixed<16>", r"^Precision 'fixed<16>' " + MALFORMED),
        ("float", r"^Precision 'float' " + NOT_FIXED),
        ("fixed<0,0>", r"^Fixed-point width must be a positive integer, not 0$"),
        (
            "fixed<8,3,FOO>",
            r"^Rounding mode must be one of TRN, TRN_ZERO, RND, RND_ZERO, RND_INF, RND_MIN_INF, "
            r"RND_CONV, not 'FOO'$",
        ),
        (
            "fixed<8,3,RND,BAR>",
            r"^Overflow mode must be one of WRAP, SAT, SAT_ZERO, SAT_SYM, not 'BAR'$",
        ),
        ("int<8,2>", r"^Precision 'int<8,2>' " + MALFORMED),
        ("fixed<a,3>", r"^Precision 'fixed<a,3>' " + MALFORMED),
        ("fixed<16,6", r"^Precision 'fixed<16,6' " + NOT_FIXED),
        ("ap_float<8,3>", r"^Precision 'ap_float<8,3>' " + NOT_FIXED),
        ("", r"^Precision '' " + NOT_FIXED),
    ],
)
def test_parse_errors_pinned(text, message):
    with pytest.raises(FixedTypeError, match=message):
        FixedType.parse(text)


@pytest.mark.parametrize(
    "text, offending",
    [
        ("fixed<16>", "fixed<16>"),
        ("float", "float"),
        ("fixed<0,0>", "0"),
        ("fixed<8,3,FOO>", "FOO"),
        ("fixed<-4,2>", "-4"),
        ("fixed<8,3,RND,SAT,2>", "fixed<8,3,RND,SAT,2>"),
        ("uint<0>", "0"),
        ("fixed<>", "fixed<>"),
        ("fixed<8,3,,SAT>", "''"),
    ],
)
def test_parse_errors_name_the_text(text, offending):
    with pytest.raises(FixedTypeError) as info:
        FixedType.parse(text)
    assert offending in str(info.value)
    assert isinstance(info.value, ValueError)


def test_parse_rejects_non_strings():
    with pytest.raises(
        FixedTypeError, match=r"^Precision must be a string such as 'fixed<16,6>', not 16$"
    ):
        FixedType.parse(16)


# ------------------------------------------------------------------------------------------------
# type_for_range()
# ------------------------------------------------------------------------------------------------


def _holds(width: int, signed: bool, lo: int, hi: int) -> bool:
    tlo, thi = ref_bounds(width, signed)
    return tlo <= lo and hi <= thi


def _random_range_cases(n: int = 3000, seed: int = 1234):
    rng = random.Random(seed)
    cases = []
    for _ in range(n):
        bits = rng.choice([1, 2, 3, 5, 8, 16, 31, 32, 33, 62, 63, 64, 65, 90])
        a = rng.randint(-(2**bits), 2**bits)
        b = rng.randint(-(2**bits), 2**bits)
        if rng.random() < 0.3:
            a, b = abs(a), abs(b)
        if rng.random() < 0.1:  # exact powers of two and their neighbours
            a = rng.choice([-1, 0, 1]) * 2 ** rng.randint(0, 70) + rng.choice([-1, 0, 1])
        cases.append((min(a, b), max(a, b), rng.randint(-8, 24)))
    return cases


def test_type_for_range_random():
    edges = [
        (0, 0, 0),
        (0, 1, 0),
        (1, 1, 3),
        (-1, -1, 0),
        (-1, 0, 2),
        (-128, 127, 4),
        (-129, 0, 0),
        (0, 255, -3),
        (-1, 255, 0),
        (-(2**70), 2**70, 5),
        (0, 2**80 - 1, 10),
    ]
    for lo, hi, frac in edges + _random_range_cases():
        t = type_for_range(lo, hi, frac)
        assert t.frac == frac
        assert t.signed == (lo < 0)
        assert _holds(t.width, t.signed, lo, hi), (lo, hi, t)
        assert t.contains(np.array([lo, hi], dtype=object))
        if t.width > 1:
            assert not _holds(t.width - 1, t.signed, lo, hi), (lo, hi, t)
            narrower = FixedType(t.width - 1, t.integer - 1, t.signed)
            assert not narrower.contains(np.array([lo, hi], dtype=object))
        if not t.signed and hi > 0:  # a signed type of the same width would not do either
            assert not _holds(t.width, True, lo, hi)


def test_type_for_range_accepts_numpy_and_rejects_empty():
    assert type_for_range(np.int64(-3), np.int64(3), 1) == FixedType(3, 2, True)
    with pytest.raises(ValueError, match=r"^empty range$"):
        type_for_range(2, 1, 0)


# ------------------------------------------------------------------------------------------------
# SAT_SYM details (documented choice; see the module docstring)
# ------------------------------------------------------------------------------------------------


def test_sat_sym_never_produces_most_negative_code():
    t = FixedType(4, 4, True, "TRN", "SAT_SYM")
    assert as_ints(cast([-8, -9, -100, -7, 8], 0, t)) == [-7, -7, -7, -7, 7]
    assert as_ints(t.quantize([-8.0, -7.5, -8.5])) == [-7, -7, -7]
    # a 1-bit signed type holds {-1, 0}; with the most negative code excluded only 0 remains
    t1 = FixedType(1, 1, True, "TRN", "SAT_SYM")
    assert as_ints(cast([-1, -5, 0, 3], 0, t1)) == [0, 0, 0, 0]
    # unsigned SAT_SYM is plain SAT
    u = FixedType(4, 4, False, "TRN", "SAT_SYM")
    assert as_ints(cast([-1, 0, 15, 16], 0, u)) == [0, 0, 15, 15]


def test_rounding_carry_then_overflow():
    # Rounding up past the maximum overflows afterwards, as in ap_fixed.
    t = FixedType(4, 4, True, "RND", "WRAP")
    assert as_ints(cast([15], 1, t)) == [-8]  # 7.5 -> 8 -> wraps to -8
    assert as_ints(cast([15], 1, t.with_modes(overflow="SAT"))) == [7]
    assert as_ints(cast([15], 1, t.with_modes(overflow="SAT_ZERO"))) == [0]
    assert as_ints(cast([-17], 1, t.with_modes("RND_MIN_INF", "SAT_SYM"))) == [-7]


def test_regressions_found_by_this_file():
    # -0.49999999999999994 is below half an LSB: every nearest mode gives 0 (v - floor(v) is
    # inexact for -1 < v < 0, which used to report a tie here).
    v = float(np.nextafter(-0.5, 0.0))
    for mode in ("RND", "RND_ZERO", "RND_MIN_INF", "RND_INF", "RND_CONV"):
        assert as_ints(FixedType(4, 4, True, mode).quantize([v])) == [0], mode
    # finite floats whose scaled value overflows float64 saturate instead of raising
    assert as_ints(FixedType(16, 6, True, "TRN", "SAT").quantize([1.7e308, -1.7e308])) == [
        2**15 - 1,
        -(2**15),
    ]
    # negative values whose scaled value underflows float64 still floor to -1
    assert as_ints(FixedType(4, 1100).quantize([-1.0, 1.0])) == [-1, 0]
    # right shifts by more than 62 bits of int64 inputs
    assert as_ints(round_shift(np.array([-5, 5], dtype=np.int64), 70, "RND")) == [0, 0]
    assert as_ints(round_shift(np.array([-5, 5], dtype=np.int64), 70)) == [-1, 0]
    # saturating int64 mantissas into a type wider than 62 bits
    t = FixedType(80, 80, True, "TRN", "SAT")
    assert as_ints(overflow(np.array([-5, 5], dtype=np.int64), t)) == [-5, 5]
    # uint64 inputs beyond int64 are not wrapped
    assert as_ints(int_array(np.array([2**64 - 1], dtype=np.uint64))) == [2**64 - 1]
    # a negative upper bound needs no extra bit
    assert type_for_range(-1, -1, 0) == FixedType(1, 1, True)
    assert type_for_range(-8, -8, 0) == FixedType(4, 4, True)
    assert type_for_range(-8, -5, 2) == FixedType(4, 2, True)


def test_no_float_conversions_in_results():
    got = cast(np.array([3 * 2**70 + 1], dtype=object), 3, FixedType(80, 80, True, "RND", "WRAP"))
    assert re.fullmatch(r"\d+", str(int(got[0])))
    assert int(got[0]) == ref_cast(3 * 2**70 + 1, 3, FixedType(80, 80, True, "RND", "WRAP"))


@pytest.mark.parametrize("signed", [True, False])
@pytest.mark.parametrize("rounding", ROUNDING_MODES)
@pytest.mark.parametrize("overflow_mode", OVERFLOW_MODES)
def test_per_lane_requant_all_lanes_at_once(rounding, overflow_mode, signed):
    """The golden model's per-lane requantization (HGQ2) equals cast + align lane by lane, for
    lanes that shift right, shift left, keep their grid or are always zero."""
    from rtlgen.golden import run_node
    from rtlgen.ir import Graph, Node, Requant, Tensor

    rng = np.random.default_rng(len(rounding) * 7 + len(overflow_mode))
    src = FixedType(14, 5, True)
    lanes, types = [], []
    for c in range(24):
        if c % 7 == 6:
            lanes.append(None)
            continue
        t = FixedType(int(rng.integers(2, 12)), int(rng.integers(-2, 8)), signed, rounding, overflow_mode)
        lanes.append(str(t))
        types.append(t)
    frac = max(t.frac for t in types)
    integer = max(t.integer for t in types) + 1
    op = Requant(FixedType(frac + integer, integer, True), lanes)
    g = Graph("g")
    g.tensors["x"] = Tensor("x", (24,), src)
    g.tensors["y"] = Tensor("y", (24,), op.type)
    node = Node("q", op, ["x"], ["y"])
    x = rng.integers(src.min_mantissa, src.max_mantissa + 1, (500, 24))
    want = np.zeros_like(x)
    for c, t in enumerate(op.lane_types()):
        if t is not None:
            want[:, c] = align(cast(x[:, c], src, t), t.frac, op.type.frac)
    assert np.array_equal(run_node(g, node, x), want)
    assert (op._golden_lanes(src, x) is not None) == (rounding in ("TRN", "RND", "RND_CONV"))
