"""Fixed-point numbers: the single numeric specification of rtlgen.

A :class:`FixedType` has the meaning of Xilinx ``ap_fixed<W, I, Q, O>``: ``width`` bits in all,
``integer`` of them above the binary point (the sign bit included when signed), so a value is an
integer *mantissa* ``m`` times ``2 ** -frac`` with ``frac = width - integer``.

Values travel as integer mantissas in numpy ``int64`` arrays. Every operation here is exact: when a
result might not fit in 63 bits the arrays are ``object`` arrays of Python integers instead, never
floats.

Rounding modes (applied when fractional bits are dropped):

==============  =========================================================
``TRN``         towards minus infinity (floor); the default
``TRN_ZERO``    towards zero
``RND``         to nearest, ties towards plus infinity
``RND_ZERO``    to nearest, ties towards zero
``RND_MIN_INF`` to nearest, ties towards minus infinity
``RND_INF``     to nearest, ties away from zero
``RND_CONV``    to nearest, ties to even (convergent)
==============  =========================================================

Overflow modes (applied when the value does not fit):

============  =========================================================
``WRAP``      keep the low ``width`` bits (two's complement); the default
``SAT``       clamp to the representable range
``SAT_ZERO``  any value out of range becomes zero
``SAT_SYM``   clamp to ``[-max, max]`` when signed (the most negative code is
              never produced, as in a narrow-range quantizer); ``SAT`` when unsigned
============  =========================================================
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

__all__ = [
    "FixedType",
    "ROUNDING_MODES",
    "OVERFLOW_MODES",
    "FixedTypeError",
    "round_shift",
    "overflow",
    "cast",
    "align",
    "float_carrier",
    "float_round_shift",
    "float_shift",
    "float_overflow",
    "type_for_range",
    "int_array",
]

ROUNDING_MODES = ("TRN", "TRN_ZERO", "RND", "RND_ZERO", "RND_INF", "RND_MIN_INF", "RND_CONV")
OVERFLOW_MODES = ("WRAP", "SAT", "SAT_ZERO", "SAT_SYM")

# Mantissas beyond this many bits (sign included) leave int64 for exact Python integers.
_INT64_BITS = 62


class FixedTypeError(ValueError):
    """A fixed-point type string or parameter is invalid."""


_TYPE_RE = re.compile(
    r"^\s*(?:ap_)?(u?fixed|u?int)\s*<\s*([^>]*)>\s*$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class FixedType:
    """A fixed-point type ``(width, integer, signed, rounding, overflow)`` with ap_fixed meaning."""

    width: int
    integer: int
    signed: bool = True
    rounding: str = "TRN"
    overflow: str = "WRAP"

    def __post_init__(self):
        if not isinstance(self.width, (int, np.integer)) or isinstance(self.width, bool) or self.width < 1:
            raise FixedTypeError(f"Fixed-point width must be a positive integer, not {self.width!r}")
        if not isinstance(self.integer, (int, np.integer)) or isinstance(self.integer, bool):
            raise FixedTypeError(f"Fixed-point integer bits must be an integer, not {self.integer!r}")
        if self.rounding not in ROUNDING_MODES:
            raise FixedTypeError(
                f"Rounding mode must be one of {', '.join(ROUNDING_MODES)}, not {self.rounding!r}"
            )
        if self.overflow not in OVERFLOW_MODES:
            raise FixedTypeError(
                f"Overflow mode must be one of {', '.join(OVERFLOW_MODES)}, not {self.overflow!r}"
            )
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "integer", int(self.integer))
        object.__setattr__(self, "signed", bool(self.signed))

    # -- text form ------------------------------------------------------------------------------

    @classmethod
    def parse(cls, text: str) -> FixedType:
        """Parse an hls4ml precision string: ``fixed<16,6>``, ``ufixed<8,0,RND,SAT>``, ``int<8>``.

        The ``ap_`` prefixes (``ap_fixed<16,6>``, ``ap_uint<4>``) are accepted too.
        """
        if isinstance(text, FixedType):
            return text
        if not isinstance(text, str):
            raise FixedTypeError(f"Precision must be a string such as 'fixed<16,6>', not {text!r}")
        match = _TYPE_RE.match(text)
        if not match:
            raise FixedTypeError(
                f"Precision {text!r} is not a fixed-point type; expected e.g. 'fixed<16,6>', "
                f"'ufixed<8,0,RND,SAT>' or 'int<8>'"
            )
        kind = match.group(1).lower()
        args = [a.strip() for a in match.group(2).split(",")]
        signed = not kind.startswith("u")
        try:
            if kind.endswith("int"):
                if len(args) != 1:
                    raise ValueError
                width = int(args[0])
                return cls(width, width, signed)
            if len(args) == 5:
                # hls4ml writes ap_fixed's fifth parameter (saturation bits); only 0 means plain SAT.
                if args[4] != "0":
                    raise FixedTypeError(
                        f"Precision {text!r} uses {args[4]} saturation bits; only 0 is supported"
                    )
                args = args[:4]
            if len(args) < 2 or len(args) > 4:
                raise ValueError
            width, integer = int(args[0]), int(args[1])
        except ValueError:
            raise FixedTypeError(
                f"Precision {text!r} is malformed; expected 'fixed<W,I>', 'fixed<W,I,ROUNDING>', "
                f"'fixed<W,I,ROUNDING,OVERFLOW>' or 'int<W>'"
            ) from None
        rounding = args[2].upper() if len(args) > 2 else "TRN"
        overflow_ = args[3].upper() if len(args) > 3 else "WRAP"
        # hls4ml writes AP_RND / AP_SAT as well as RND / SAT.
        rounding = rounding.removeprefix("AP_")
        overflow_ = overflow_.removeprefix("AP_")
        return cls(width, integer, signed, rounding, overflow_)

    def __str__(self) -> str:
        prefix = "" if self.signed else "u"
        if self.frac == 0 and self.rounding == "TRN" and self.overflow == "WRAP":
            return f"{prefix}int<{self.width}>"
        extra = ""
        if self.rounding != "TRN" or self.overflow != "WRAP":
            extra = f",{self.rounding}"
            if self.overflow != "WRAP":
                extra += f",{self.overflow}"
        return f"{prefix}fixed<{self.width},{self.integer}{extra}>"

    # -- derived facts ----------------------------------------------------------------------------

    @property
    def frac(self) -> int:
        """Number of fractional bits (may be negative or exceed ``width``)."""
        return self.width - self.integer

    @property
    def min_mantissa(self) -> int:
        return -(1 << (self.width - 1)) if self.signed else 0

    @property
    def max_mantissa(self) -> int:
        return (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1

    @property
    def lsb(self) -> Fraction:
        """The value of one mantissa step."""
        return Fraction(2) ** -self.frac

    @property
    def min(self) -> Fraction:
        return self.min_mantissa * self.lsb

    @property
    def max(self) -> Fraction:
        return self.max_mantissa * self.lsb

    def with_modes(self, rounding: str | None = None, overflow: str | None = None) -> FixedType:
        return FixedType(
            self.width,
            self.integer,
            self.signed,
            rounding or self.rounding,
            overflow or self.overflow,
        )

    # -- conversions ------------------------------------------------------------------------------

    def quantize(self, x) -> np.ndarray:
        """Real values (floats, exactly as given) to mantissas of this type."""
        x = np.asarray(x, dtype=np.float64)
        fast = self._quantize_float(x)
        if fast is not None:
            return fast
        if not np.all(np.isfinite(x)):
            raise FixedTypeError(f"Cannot quantize non-finite values to {self}")
        # Every finite float is a dyadic rational, so scaling by 2**frac is exact unless it leaves
        # the float64 range, and ``floor`` is exact. The remainder ``v - floor(v)`` is NOT always
        # exact (for -1 < v < 0 it is 1 - |v|, which rounds), so ``v`` is compared with
        # ``floor(v) + 0.5`` instead, which is exact while |v| < 2**52; larger values are integers.
        with np.errstate(over="ignore", under="ignore"):
            v = np.ldexp(x, self.frac)
        # Underflow: a nonzero value scaled below the float range still rounds as a tiny number
        # of its own sign (only its sign and being nonzero matter), so keep it nonzero. Only a
        # negative ``frac`` scales down.
        if self.frac < 0:
            tiny = np.finfo(np.float64).smallest_subnormal
            v = np.where((v == 0) & (x != 0), np.copysign(tiny, x), v)
        # Overflow: the scaled value is a huge integer (this needs frac > 0); computed below.
        huge = np.isinf(v)
        if huge.any():
            v = np.where(huge, 0.0, v)
        fl = np.floor(v)
        big = huge | (np.abs(fl) >= 2.0**_INT64_BITS)
        if np.any(big):
            flat = [int(f) for f in fl.ravel()]
            xs = x.ravel()
            for i in np.flatnonzero(huge):
                n, d = float(xs[i]).as_integer_ratio()
                flat[i] = (n << self.frac) // d  # exact: d divides n * 2**frac here
            q = np.array(flat, dtype=object).reshape(fl.shape)
        else:
            q = fl.astype(np.int64)
        if self.rounding != "TRN":
            half = fl + 0.5
            nonzero = v != fl
            q = _round_from_remainder(q, v > half, nonzero & (v == half), nonzero, self.rounding)
        return overflow(q, self)

    def _quantize_float(self, x: np.ndarray):
        """:meth:`quantize` in a few float64 passes (the network inputs of every prediction go
        through it), or None when the general path is needed: other rounding modes, a type too
        wide for float64, scaling down (tiny values could underflow), values beyond 2**52 or not
        finite. Scaling up by 2**frac is exact; ``floor``, ``trunc`` and ``rint`` round the exact
        value; ``floor(v) + 0.5`` is exact below 2**52, so comparing with it decides the ties."""
        if self.frac < 0 or self.width > 52 or self.rounding not in ("TRN", "TRN_ZERO", "RND_CONV", "RND", "RND_MIN_INF"):
            return None
        with np.errstate(over="ignore", invalid="ignore"):
            v = np.ldexp(x.reshape(-1), self.frac)  # 1-d: numpy makes 0-d results scalars
            if not v.size or not (max(v.max(), -v.min()) < 2.0**52):  # also False for NaN
                return None
        r = self.rounding
        if r in ("TRN", "RND", "RND_MIN_INF"):
            q = np.floor(v)
            if r != "TRN":
                half = q + 0.5
                q += (v >= half) if r == "RND" else (v > half)
        else:
            q = np.trunc(v) if r == "TRN_ZERO" else np.rint(v)
        return float_overflow(q, self.min_mantissa, self.max_mantissa, self.overflow, self.signed).astype(np.int64).reshape(x.shape)

    def to_float(self, m) -> np.ndarray:
        """Mantissas to float64 values (exact when ``width <= 53``)."""
        m = np.asarray(m)
        return np.ldexp(m.astype(np.float64), -self.frac)

    def to_fraction(self, m: int) -> Fraction:
        return int(m) * self.lsb

    def contains(self, m) -> bool:
        m = np.asarray(m)
        return bool(np.all((m >= self.min_mantissa) & (m <= self.max_mantissa)))


def int_array(m) -> np.ndarray:
    """An exact integer array: int64 when every value fits, else Python integers."""
    m = np.asarray(m)
    if m.dtype == object:
        if m.size == 0:
            return m.astype(np.int64)
        lo, hi = min(m.ravel()), max(m.ravel())
        if -(1 << _INT64_BITS) <= lo and hi < (1 << _INT64_BITS):
            return m.astype(np.int64)
        return m
    if m.dtype.kind not in "iub":
        raise TypeError(f"Mantissas must be integers, not {m.dtype}")
    if m.dtype == np.uint64 and m.size and int(m.max()) >= 1 << _INT64_BITS:
        return m.astype(object)  # uint64 values that int64 would wrap
    return m.astype(np.int64, copy=False)


def _round_from_remainder(q, above_half, at_half, nonzero, mode):
    """Adjust floor ``q`` given how the dropped remainder compares with one half."""
    neg = q < 0  # floor is negative exactly when the value is negative
    if mode == "TRN":
        up = np.zeros(np.shape(q), dtype=bool)
    elif mode == "TRN_ZERO":
        up = neg & nonzero
    elif mode == "RND":
        up = above_half | at_half
    elif mode == "RND_MIN_INF":
        up = above_half
    elif mode == "RND_ZERO":
        up = above_half | (at_half & neg)
    elif mode == "RND_INF":
        up = above_half | (at_half & ~neg)
    elif mode == "RND_CONV":
        up = above_half | (at_half & ((q & 1) == 1))
    else:
        raise FixedTypeError(f"Rounding mode must be one of {', '.join(ROUNDING_MODES)}, not {mode!r}")
    if q.dtype == object:
        return q + up.astype(np.int64).astype(object)
    return q + up.astype(np.int64)


def round_shift(m, shift: int, mode: str = "TRN") -> np.ndarray:
    """Exact ``m * 2**-shift`` rounded to an integer with ``mode`` (a left shift when negative)."""
    m = int_array(m)
    if shift <= 0:
        return _shl(m, -shift)
    promoted = m.dtype != object and shift > _INT64_BITS
    if promoted:
        # The remainder mask and the half below do not fit in int64; the result always does.
        m = m.astype(object)
    half = 1 << (shift - 1)
    if m.dtype != object and mode in FAST_ROUNDING and m.size and int(m.max()) < (1 << _INT64_BITS) - 2 * half:
        return shift_round(m, shift, mode)
    q = m >> shift
    r = m & ((1 << shift) - 1)
    q = _round_from_remainder(q, r > half, r == half, r != 0, mode)
    return int_array(q) if promoted else q


FAST_ROUNDING = ("TRN", "RND", "RND_CONV")


def shift_round(m: np.ndarray, shift, mode: str) -> np.ndarray:
    """``round_shift`` in one pass for int64 ``m``, ``shift >= 0`` (a number, or an array that
    broadcasts against ``m``: one shift per lane) and a mode of ``FAST_ROUNDING``: floor of
    ``m / 2**shift`` with the rounding folded into an added constant. The caller makes sure that
    ``m`` plus ``2**shift`` stays inside int64."""
    if mode == "TRN":
        return m >> shift
    cut = np.asarray(shift) > 0
    half = np.where(cut, np.left_shift(1, np.maximum(np.asarray(shift) - 1, 0)), 0)
    if mode == "RND":
        return (m + half) >> shift
    # Round half to even: r > half rounds up, r == half rounds up exactly when q is odd.
    return (m + half - cut + (((m >> shift) & 1) & cut)) >> shift


def _shl(m, n):
    if n == 0:
        return m
    if m.dtype != object:
        bound = max(abs(int(m.min())), abs(int(m.max()))) if m.size else 0
        if bound.bit_length() + n > _INT64_BITS:
            m = m.astype(object)
    return int_array(m << n) if m.dtype == object else m << n


def overflow(m, dst: FixedType) -> np.ndarray:
    """Bring integer mantissas into ``dst``'s range with ``dst.overflow``."""
    m = int_array(m)
    lo, hi = dst.min_mantissa, dst.max_mantissa
    mode = dst.overflow
    if m.dtype != object and dst.width >= 63:
        m = m.astype(object)  # the type's bounds and mask may not fit in int64
    if mode == "WRAP":
        mask = (1 << dst.width) - 1
        w = m & mask
        if dst.signed:
            w = np.where(w > hi, w - (1 << dst.width), w)
        return int_array(w)
    if mode == "SAT_SYM" and dst.signed:
        lo = -hi
    if mode in ("SAT", "SAT_SYM"):
        if m.dtype != object:
            return np.clip(m, lo, hi)
        return int_array(np.where(m < lo, lo, np.where(m > hi, hi, m)))
    # SAT_ZERO
    return int_array(np.where((m < lo) | (m > hi), 0, m))


def cast(m, src: FixedType | int, dst: FixedType) -> np.ndarray:
    """Mantissas of ``src`` (a type, or just its number of fractional bits) converted to ``dst``.

    Rounds with ``dst.rounding`` when fractional bits are dropped, then applies ``dst.overflow``.
    """
    src_frac = src.frac if isinstance(src, FixedType) else int(src)
    return overflow(round_shift(m, src_frac - dst.frac, dst.rounding), dst)


def align(m, src_frac: int, dst_frac: int) -> np.ndarray:
    """Exactly re-express mantissas with more fractional bits (``dst_frac >= src_frac``)."""
    if dst_frac < src_frac:
        raise ValueError("align() only adds fractional bits; use cast() to drop them")
    return _shl(int_array(m), dst_frac - src_frac)


def type_for_range(lo: int, hi: int, frac: int) -> FixedType:
    """The narrowest type with ``frac`` fractional bits holding every mantissa in ``[lo, hi]``."""
    lo, hi = int(lo), int(hi)
    if lo > hi:
        raise ValueError("empty range")
    if lo >= 0:
        width = max(hi.bit_length(), 1)
        return FixedType(width, width - frac, signed=False)
    # A signed width w holds [-2**(w-1), 2**(w-1) - 1].
    # (``hi`` may be negative too: then it needs no bits of its own beyond those of ``lo``.)
    width = max(max(hi, 0).bit_length() + 1, (-lo - 1).bit_length() + 1)
    return FixedType(width, width - frac, signed=True)


# -- integers carried in floats -------------------------------------------------------------------
#
# The golden model may carry mantissas in float32 arrays between ops whose every intermediate value
# is an integer below 2**23: float32 holds those exactly, their sums and products below 2**24 are
# exact, scaling by a power of two is exact, and floor, ceil, trunc and rint are exact. BLAS then
# does the matrix products on arrays half the size of int64, which is where most of the golden
# model's time goes.


def float_carrier(bound: int):
    """float32 when integers up to ``bound`` in magnitude, and every value half a step either side
    of them scaled down by a power of two, are exact in it; else None (the integer path: float64
    would save neither memory nor time over int64, whose matrix products already use BLAS)."""
    return np.float32 if bound < 1 << 23 else None


def float_shift(v: np.ndarray, n) -> np.ndarray:
    """``v * 2**n`` in ``v``'s own dtype (``n`` a number or per-lane array)."""
    n = np.asarray(n)
    if np.abs(n).max(initial=0) > 100:  # powers of two beyond float32's normal range
        return np.ldexp(v, n.astype(np.int32)).astype(v.dtype, copy=False)
    # A product with a power of two is exact and several times faster than ldexp.
    return v * np.exp2(n.astype(np.float64)).astype(v.dtype)


def float_round_shift(v: np.ndarray, shift, mode: str) -> np.ndarray:
    """:func:`round_shift` on integer-valued floats, for ``shift >= 0`` (a number or per-lane array).

    ``v * 2**-shift`` is exact, and so is adding one half while ``|v| < 2**(p-1)`` (what
    :func:`float_carrier` guarantees), so each mode is one exact float rounding function. Works
    in place on one new array (fresh arrays cost more than the arithmetic)."""
    # A new array (float_shift's product is one; np.array copies v), even for one value (numpy
    # turns 0-d results into scalars).
    u = np.asarray(float_shift(v, -np.asarray(shift))) if np.any(shift) else np.array(v)
    half = v.dtype.type(0.5)
    if mode == "TRN":
        return np.floor(u, out=u)
    if mode == "TRN_ZERO":
        return np.trunc(u, out=u)
    if mode == "RND_CONV":
        return np.rint(u, out=u)
    if mode == "RND":
        u += half
        return np.floor(u, out=u)
    if mode == "RND_MIN_INF":
        u -= half
        return np.ceil(u, out=u)
    if mode == "RND_ZERO":
        return np.where(u >= 0, np.ceil(u - half), np.floor(u + half))
    if mode == "RND_INF":
        return np.where(u >= 0, np.floor(u + half), np.ceil(u - half))
    raise FixedTypeError(f"Rounding mode must be one of {', '.join(ROUNDING_MODES)}, not {mode!r}")


def float_overflow(v: np.ndarray, lo, hi, mode: str, signed: bool) -> np.ndarray:
    """:func:`overflow` on integer-valued floats into ``[lo, hi]`` (numbers or per-lane arrays;
    ``hi - lo + 1`` is a power of two, or 1 for a lane that is always zero). May change ``v``."""
    # In v's own dtype: an int64 bound would promote float32 to float64.
    lo, hi = np.asarray(lo, dtype=v.dtype), np.asarray(hi, dtype=v.dtype)
    if mode == "WRAP":
        # v minus the multiple of the modulus (a power of two) that brings it into [lo, hi]: every
        # step is exact on integers below the carrier's bound, and far cheaper than a float modulo.
        m = hi - lo + 1
        k = np.subtract(v, lo)
        k *= 1 / m
        np.floor(k, out=k)
        k *= m
        v -= k
        return v
    if mode == "SAT_SYM" and signed:
        lo = -hi
    if mode in ("SAT", "SAT_SYM"):
        return np.clip(v, lo, hi, out=v)
    v[(v < lo) | (v > hi)] = 0
    return v
