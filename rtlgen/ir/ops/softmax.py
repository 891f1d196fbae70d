"""Softmax over the lanes of a vector, in integer arithmetic with lookup tables.

:func:`make_softmax` builds a :class:`Softmax` op for one input type and vector length: it fills the
exp and inverse tables (evaluated in float64, then quantized to ``exp_table_t``/``inv_table_t``) and
derives ``max_error``, a bound on ``|output - float softmax|`` over all inputs. The op's golden model
(:meth:`Softmax.golden`) is the specification its hardware (:class:`rtlgen.layers._softmax.SoftmaxLayer`)
matches bit for bit; ``docs/softmax.md`` derives the bound and lists measured figures.

Arithmetic, per vector ``x`` of ``n`` mantissas (``implementation``):

``stable``
    ``d = max(x) - x`` (exact); ``e = exp_table[min(ceil(d / 2**exp_shift), len - 1)]`` (only the
    maximum lane reads entry 0, exp(0) = 1); ``S = sum(e)`` (exact); ``p`` = position of the
    leading one of ``S``, ``r = inv_table[the inv_bits bits of S below it]`` (``r`` ~ ``2**p / S``,
    in ``(1/2, 1]``); ``y = cast(e * r, frac = inv_frac + p)`` to the output type.
``latency``
    hls4ml's cheaper form, without the maximum: ``e = exp_table[clip((x - exp_base) >> exp_shift)]``
    on ``x`` itself, then as ``stable``. The exp table saturates and underflows, so the result can
    be far from softmax (``max_error`` says how far).
``argmax``
    one-hot: the output type's 1.0 (saturated) at the first maximum lane, 0 elsewhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rtlgen.fixed import FixedType, cast, int_array
from rtlgen.ir.graph import register_op

from ._base import Op

__all__ = ["Softmax", "make_softmax", "float_softmax", "measure_max_error", "IMPLEMENTATIONS", "DEFAULT_OUT_TYPE"]

IMPLEMENTATIONS = ("stable", "latency", "argmax")

DEFAULT_OUT_TYPE = FixedType.parse("ufixed<16,0,RND,SAT>")
# exp(-d) lies in (0, 1]: one integer bit, 17 fractional bits (1 more than the default output).
_DEFAULT_EXP_STABLE = "ufixed<18,1,RND,SAT>"
# hls4ml's default table type; the latency form exponentiates x itself, so it needs integer bits.
_DEFAULT_EXP_LATENCY = "fixed<18,8,RND,SAT>"
# The table holds 2**p / S for a mantissa of S in [1, 2): values in (1/2, 1].
_DEFAULT_INV = "ufixed<18,0,RND,SAT>"


def _is_pow2(v) -> bool:
    return isinstance(v, (int, np.integer)) and v >= 1 and (v & (v - 1)) == 0


def _bitlen(v: int) -> int:
    return int(v).bit_length()


@register_op
@dataclass
class Softmax(Op):
    """Softmax over the ``n`` lanes of a vector of ``src_type`` mantissas, to ``out_type``.

    Build it with :func:`make_softmax`. ``exp_table``/``inv_table`` are mantissas of
    ``exp_table_t``/``inv_table_t`` (unused by ``argmax``). The exp table is indexed by
    ``clip((z - exp_base) >> exp_shift, 0, len - 1)`` where ``z = max(x) - x`` (``stable``) or
    ``z = x`` (``latency``); the inverse table by the ``log2(inv_table_size)`` bits of the exp sum
    below its leading one. ``tree_levels`` comparator or adder levels sit between pipeline
    registers. ``max_error`` bounds ``|output - softmax(x)|`` over every input (real values).
    """

    src_type: FixedType
    out_type: FixedType
    n: int
    implementation: str = "stable"
    exp_table: np.ndarray | None = None
    inv_table: np.ndarray | None = None
    exp_table_t: FixedType | None = None
    inv_table_t: FixedType | None = None
    exp_table_size: int = 1024
    inv_table_size: int = 1024
    exp_shift: int = 0
    exp_base: int = 0
    tree_levels: int = 3
    max_error: float | None = None

    def __post_init__(self):
        self.src_type = FixedType.parse(self.src_type)
        self.out_type = FixedType.parse(self.out_type)
        if self.implementation not in IMPLEMENTATIONS:
            raise ValueError(
                f"softmax implementation must be one of {', '.join(IMPLEMENTATIONS)}, not {self.implementation!r}"
            )
        if not isinstance(self.n, (int, np.integer)) or self.n < 1:
            raise ValueError(f"softmax length must be a positive integer, not {self.n!r}")
        self.n = int(self.n)
        if not isinstance(self.tree_levels, (int, np.integer)) or self.tree_levels < 1:
            raise ValueError(f"tree_levels must be a positive integer, not {self.tree_levels!r}")
        if self.src_type.width > 40:
            raise ValueError(f"softmax input type must be at most 40 bits wide, not {self.src_type}")
        if self.implementation == "argmax":
            return
        if not _is_pow2(self.exp_table_size):
            raise ValueError(f"exp table size must be a power of two, not {self.exp_table_size}")
        if not _is_pow2(self.inv_table_size):
            raise ValueError(f"inverse table size must be a power of two, not {self.inv_table_size}")
        for name in ("exp_table_t", "inv_table_t"):
            t = getattr(self, name)
            if t is None:
                raise ValueError(f"softmax implementation {self.implementation!r} needs {name}")
            t = FixedType.parse(t)
            setattr(self, name, t)
        if self.exp_table_t.width + self.inv_table_t.width > 62:
            # Their product is an exact int64 in the golden model.
            raise ValueError(
                f"exp_table_t and inv_table_t must together be at most 62 bits wide, not "
                f"{self.exp_table_t.width} + {self.inv_table_t.width}"
            )
        if self.exp_table is None or self.inv_table is None:
            raise ValueError("softmax tables are missing; build the op with make_softmax()")
        self.exp_table = int_array(np.asarray(self.exp_table)).astype(np.int64)
        self.inv_table = int_array(np.asarray(self.inv_table)).astype(np.int64)
        if not 1 <= len(self.exp_table) <= self.exp_table_size:
            raise ValueError(f"exp table must have 1 to {self.exp_table_size} entries, not {len(self.exp_table)}")
        if len(self.inv_table) != self.inv_table_size:
            raise ValueError(f"inverse table has {len(self.inv_table)} entries, not {self.inv_table_size}")
        if self.exp_table.min() < 0:
            raise ValueError(f"exp table type {self.exp_table_t} makes exp values negative; use SAT overflow")
        if self.inv_table.min() <= 0:
            raise ValueError(f"inverse table type {self.inv_table_t} cannot hold values in (1/2, 1]")
        if self.exp_shift < 0:
            raise ValueError(f"exp_shift must be non-negative, not {self.exp_shift}")
        if self.implementation == "stable" and self.exp_base > 0:
            # max(x) - x - exp_base must stay non-negative: the hardware indexes with its bits.
            raise ValueError(f"stable exp_base must not be positive, not {self.exp_base}")
        if self.implementation == "stable" and self.exp_table[0] == 0:
            raise ValueError(f"exp table type {self.exp_table_t} rounds exp(0) to zero")

    # -- facts shared by the golden model and the hardware ----------------------------------------

    @property
    def inv_bits(self) -> int:
        return self.inv_table_size.bit_length() - 1

    def sum_range(self) -> tuple[int, int]:
        """The smallest and largest possible exp sum ``S`` (mantissas of ``exp_table_t``)."""
        t = self.exp_table
        lo, hi = int(t.min()), int(t.max())
        if self.implementation == "stable":
            # The maximum lane always reads entry 0 (d = 0).
            return int(t[0]) + (self.n - 1) * lo, int(t[0]) + (self.n - 1) * hi
        return self.n * lo, self.n * hi

    def lead_range(self) -> tuple[int, int]:
        """Possible positions ``p`` of the leading one of ``S`` (``S = 0`` counts as the lowest)."""
        s_min, s_max = self.sum_range()
        return max(_bitlen(s_min) - 1, 0), max(_bitlen(s_max) - 1, 0)

    def one(self) -> int:
        """The mantissa argmax writes for 1.0 (the output type's overflow mode applied)."""
        return int(self.out_type.quantize(1.0))

    def _check(self, src, dst):
        if src.type != self.src_type or dst.type != self.out_type:
            raise ValueError(
                f"softmax was built for {self.src_type} -> {self.out_type}, not {src.type} -> {dst.type}"
            )
        if src.size != self.n or dst.size != self.n:
            raise ValueError(f"softmax was built for {self.n} lanes, not {src.size} -> {dst.size}")

    # -- models -------------------------------------------------------------------------------------

    def error_bound(self, ctx, node, errs):
        # Softmax is 1/2-Lipschitz in the maximum norm: row i of its Jacobian sums to 2 s_i (1 - s_i).
        return 0.5 * errs[0] + float(self.max_error)

    def golden(self, x, src, dst):
        """Output mantissas ``(batch, n)`` of ``dst.type`` for input mantissas ``(batch, n)``."""
        self._check(src, dst)
        return self.compute(x)

    def compute(self, x) -> np.ndarray:
        """The golden model on mantissas ``(batch, n)`` of ``src_type``."""
        x = int_array(np.asarray(x)).astype(np.int64)
        shape = x.shape
        x = x.reshape(-1, self.n)
        if self.implementation == "argmax":
            out = np.zeros(x.shape, dtype=np.int64)
            out[np.arange(len(x)), np.argmax(x, axis=1)] = self.one()  # first maximum wins ties
            return out.reshape(shape)
        last = len(self.exp_table) - 1
        if self.implementation == "stable":
            z = x.max(axis=1, keepdims=True) - x
        else:
            z = x
        idx = np.clip((z - self.exp_base) >> self.exp_shift, 0, last)
        e = self.exp_table[idx]
        s = e.sum(axis=1)
        p_lo, p_hi = self.lead_range()
        p = np.full(s.shape, p_lo, dtype=np.int64)
        for q in range(p_lo + 1, p_hi + 1):
            p = np.where(s >= 1 << q, q, p)
        b = self.inv_bits
        norm = np.where(p >= b, s >> np.maximum(p - b, 0), s << np.maximum(b - p, 0))
        r = self.inv_table[norm & (self.inv_table_size - 1)]
        prod = e * r[:, None]
        out = np.zeros(x.shape, dtype=np.int64)
        frac = self.inv_table_t.frac
        for q in np.unique(p):
            rows = p == q
            out[rows] = cast(prod[rows], frac + int(q), self.out_type)
        return out.reshape(shape)


# -- building the op ------------------------------------------------------------------------------


def float_softmax(x_real) -> np.ndarray:
    """The reference: softmax over the last axis in float64."""
    x = np.asarray(x_real, dtype=np.float64)
    ex = np.exp(x - x.max(axis=-1, keepdims=True))
    return ex / ex.sum(axis=-1, keepdims=True)


def _buckets(z_min: int, z_max: int, base: int, shift: int, size: int):
    """Integer ranges ``[lo, hi]`` of ``z`` per table entry for ``clip((z - base) >> shift)``."""
    length = min(size, ((z_max - base) >> shift) + 1)
    k = np.arange(length, dtype=np.int64)
    lo = base + (k << shift)
    hi = lo + (1 << shift) - 1
    lo[0] = min(lo[0], z_min)
    hi[-1] = z_max
    return np.maximum(lo, z_min), np.minimum(hi, z_max)


def _exp_table(lo, hi, sign: int, lsb: float, shift: int, table_t: FixedType):
    """Entries for exp(sign * z * lsb) over each bucket, and the exps at the bucket ends."""
    with np.errstate(over="ignore"):
        u_lo = np.exp(sign * lo * lsb)
        u_hi = np.exp(sign * hi * lsb)
    # An ordinary bucket takes the value with equal relative error at both ends (the harmonic
    # mean); a bucket stretched to the end of the input range takes the midpoint, which bounds
    # its absolute error (its far end is ~0 or saturates).
    stretched = (hi - lo + 1) > (1 << shift)
    with np.errstate(over="ignore", invalid="ignore"):
        harmonic = 2 * u_lo * u_hi / (u_lo + u_hi)
    value = np.where(stretched | ~np.isfinite(harmonic), (u_lo + u_hi) / 2, harmonic)
    value = np.minimum(value, 2.0**1000)  # quantize() needs finite values; SAT clamps anyway
    return table_t.quantize(value), u_lo, u_hi


def _fit_candidates(t, u_a, u_b):
    """``(eps, tau)`` pairs with ``|t - u| <= eps * u + tau`` for every entry ``t`` and every true
    exp ``u`` of its bucket (checking the bucket ends suffices: ``|t - u|`` is convex in ``u``).
    Any pair is valid; the ``eps`` tried are the entries' own relative errors."""
    t = np.concatenate([t, t])
    u = np.concatenate([u_a, u_b])
    err = np.abs(t - u)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(u > 0, err / u, np.inf)
    eps = np.unique(np.concatenate([[0.0], rel[np.isfinite(rel) & (rel < 1)]]))
    if len(eps) > 256:
        eps = np.unique(np.concatenate([eps[:: max(len(eps) // 256, 1)], eps[-32:]]))
    tau = np.concatenate(
        [np.maximum(err[None, :] - c[:, None] * u[None, :], 0).max(axis=1) for c in np.array_split(eps, max(1, len(eps) // 64))]
    )
    return eps[:, None], tau[:, None]


def _grid_max(f, lo: float, hi: float, lipschitz: float, points: int = 4097) -> float:
    """An upper bound on ``max f`` over ``[lo, hi]`` (``f`` vectorized, ``|f'| <= lipschitz``)."""
    x = np.linspace(lo, hi, points)
    with np.errstate(divide="ignore", invalid="ignore"):
        v = f(x)
    return v.max(axis=-1) + lipschitz * (hi - lo) / (points - 1) / 2


def _exp_term_stable(t, u_a, u_b, n: int) -> float:
    """Bound on ``|e_i / sum(e) - u_i / sum(u)|`` for the stable form (docs/softmax.md, "exp term").

    The maximum lane has ``u = 1`` and reads entry 0 (error ``eps0``); every lane obeys
    ``|e - u| <= eps u + tau``. With ``m = 1 / sum(u)``, ``p = u_i m`` and
    ``D(m) = 1 - eps0 m - eps (1 - m) - (n - 1) tau m`` (a lower bound on ``sum(e) / sum(u)``):

    * the maximum lane: ``((eps0 + eps) m (1 - m) + (n - 1) tau m**2) / D(m)``, ``m`` in ``[1/n, 1]``;
    * any other lane: ``(eps p (2 - 2p - m) + tau m (1 + (n - 3) p) + eps0 p m) / D(m)``, ``p`` in
      ``[0, 1/2]``, ``m`` in ``[max(p, (1 - p) / (n - 1)), 1 - p]`` (a ratio of linear functions
      of ``m``: its maximum is at an end).
    """
    if n == 1:
        return 0.0  # one lane: both sides are exactly 1
    eps0 = abs(float(t[0]) - 1.0)
    eps, tau = _fit_candidates(t, u_a, u_b)
    k = n - 1
    d_min = 1 - np.maximum(eps0, eps) - k * tau
    ok = d_min[:, 0] > 0
    eps, tau, d_min = eps[ok], tau[ok], d_min[ok]
    if not len(eps):
        return math.inf

    def den(m):
        return 1 - eps0 * m - eps * (1 - m) - k * tau * m

    def top(m):
        return ((eps0 + eps) * m * (1 - m) + k * tau * m * m) / den(m)

    def other_at(p, m):
        return (eps * p * (2 - 2 * p - m) + tau * m * (1 + (n - 3) * p) + eps0 * p * m) / den(m)

    def other(p):
        return np.maximum(other_at(p, np.maximum(p, (1 - p) / k)), other_at(p, 1 - p))

    # Crude bounds on the numerators and their slopes give the Lipschitz constants of the ratios.
    num_max = 2 * eps + eps0 + n * tau
    den_slope = eps + eps0 + k * tau
    lip_top = ((eps0 + eps) + 2 * k * tau) / d_min + num_max * den_slope / d_min**2
    lip_other = (3 * eps + 2 * n * tau + 2 * eps0) / d_min + num_max * den_slope / d_min**2
    bound = np.maximum(
        _grid_max(top, 1 / n, 1.0, lip_top[:, 0]),
        _grid_max(other, 0.0, 0.5, lip_other[:, 0]),
    )
    return float(bound.min())


def _exp_term(t, u_a, u_b, n: int, u_min: float) -> float:
    """Bound on ``|e_i / sum(e) - u_i / sum(u)|`` with no lane known exactly (the latency form).

    With ``|e - u| <= eps u + tau`` for every lane, ``sum(u) >= u_min`` and ``tau' = tau / u_min``:
    ``|q - p| <= (eps / 2 + (n - 1) tau') / (1 - eps - (n - 2) tau')``.
    """
    if n == 1:
        return 0.0
    if not (np.all(np.isfinite(u_a)) and np.all(np.isfinite(u_b))):
        return math.inf  # exps beyond float64: the table saturates far below them
    eps, tau = _fit_candidates(t, u_a, u_b)
    tau = tau / u_min
    den = 1 - eps - (n - 2) * tau
    with np.errstate(divide="ignore", invalid="ignore"):
        bound = np.where(den > 0, (eps / 2 + (n - 1) * tau) / den, np.inf)
    return float(bound.min())


def _inv_table(size: int, table_t: FixedType):
    """Entries ~ 1/m for a normalized sum ``m`` in ``[1 + j/size, 1 + (j+1)/size]``, and their
    largest relative error ``|r * m - 1|`` over the bucket."""
    j = np.arange(size, dtype=np.float64)
    m_lo, m_hi = 1 + j / size, 1 + (j + 1) / size
    r = table_t.quantize(2 / (m_lo + m_hi))  # equal relative error at both ends
    rv = table_t.to_float(r)
    rho = float(np.maximum(np.abs(rv * m_lo - 1), np.abs(rv * m_hi - 1)).max())
    return r, rho


def _output_bound(e_bound: float, out: FixedType) -> float:
    """``|y - p|`` for ``y`` = ``v`` cast to ``out``, given ``|v - p| <= e_bound``, ``0 <= v <= 1 + e_bound``."""
    saturates = out.overflow in ("SAT", "SAT_SYM")
    # Saturated outputs stay in [0, max]; wrapped ones anywhere in the type's range.
    trivial = max(1.0, float(out.max)) if saturates else max(1.0 - float(out.min), float(out.max))
    rnd = float(out.lsb) if out.rounding in ("TRN", "TRN_ZERO") else float(out.lsb) / 2
    gap = max(0.0, 1.0 - float(out.max))  # a probability near 1 above the largest code
    if not saturates and float(out.max) < 1.0 + e_bound + rnd:
        return trivial  # wraps (or zeroes) values near 1
    return min(max(e_bound + rnd, gap), trivial)


def _margin(bound: float) -> float:
    # The bound is evaluated in float64 from float64 exps: pad it by far more than their rounding.
    return bound * (1 + 1e-9) + 1e-12


def make_softmax(
    src_type: FixedType,
    n: int,
    *,
    implementation: str = "stable",
    out_type: FixedType = DEFAULT_OUT_TYPE,
    exp_table_size: int = 1024,
    inv_table_size: int = 1024,
    exp_table_t: FixedType | None = None,
    inv_table_t: FixedType | None = None,
) -> Softmax:
    """A :class:`Softmax` for ``n`` lanes of ``src_type``, its tables filled and ``max_error`` derived.

    ``exp_table_t`` defaults to ``ufixed<18,1,RND,SAT>`` (``stable``) or hls4ml's
    ``fixed<18,8,RND,SAT>`` (``latency``); ``inv_table_t`` to ``ufixed<18,0,RND,SAT>``. For
    ``stable`` the exp table's step (``2**exp_shift`` input steps) is the one that minimizes the
    bound; for ``latency`` the table spans the inputs whose exp the table type resolves.
    """
    src_type = FixedType.parse(src_type)
    out_type = FixedType.parse(out_type)
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"softmax implementation must be one of {', '.join(IMPLEMENTATIONS)}, not {implementation!r}")
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"softmax length must be a positive integer, not {n!r}")
    if not _is_pow2(exp_table_size):
        raise ValueError(f"exp table size must be a power of two, not {exp_table_size}")
    if not _is_pow2(inv_table_size):
        raise ValueError(f"inverse table size must be a power of two, not {inv_table_size}")
    if implementation == "argmax":
        op = Softmax(src_type, out_type, n, "argmax", exp_table_size=exp_table_size, inv_table_size=inv_table_size)
        one = float(out_type.to_float(op.one()))
        if one <= 0:
            raise ValueError(f"output type {out_type} cannot represent 1.0 (it wraps to {one})")
        # Attained in the limit: all lanes equal (one - 1/n), two tied lanes (1/2), one lane ~1.
        worst = abs(1 - one) if n == 1 else max(one - 1 / n, 0.5, 1 - one)
        op.max_error = _margin(worst)
        return op

    default_exp = _DEFAULT_EXP_STABLE if implementation == "stable" else _DEFAULT_EXP_LATENCY
    exp_t = FixedType.parse(exp_table_t if exp_table_t is not None else default_exp)
    inv_t = FixedType.parse(inv_table_t if inv_table_t is not None else _DEFAULT_INV)
    lsb = float(src_type.lsb)
    inv, rho = _inv_table(inv_table_size, inv_t)
    lo_m, hi_m = src_type.min_mantissa, src_type.max_mantissa

    if implementation == "stable":
        d_max = hi_m - lo_m
        # The coarsest useful step covers every difference; finer steps clamp large ones.
        s_full = max(_bitlen(d_max) - (exp_table_size.bit_length() - 1) + 1, 0)
        best = None
        for shift in range(s_full + 1):
            # Entry 0 holds d = 0 alone (index = ceil(d / step)): the maximum lane is the only one
            # to read exp(0), so near-ties never collapse into equal outputs and argmax survives.
            base = 1 - (1 << shift)
            lo, hi = _buckets(0, d_max, base, shift, exp_table_size)
            table, u_a, u_b = _exp_table(lo, hi, -1, lsb, shift, exp_t)
            term = _exp_term_stable(exp_t.to_float(table), u_a, u_b, n)
            if best is None or term < best[0]:
                best = (term, shift, base, table)
        term, shift, base, table = best
    else:
        # Inputs whose exp rounds to zero, or saturates, all share the first (last) entry.
        x_lo = math.log(float(exp_t.lsb) / 2)
        x_hi = math.log(float(exp_t.max)) if exp_t.max > 0 else 0.0
        base = int(min(max(math.floor(x_lo / lsb), lo_m), hi_m))
        top = int(max(min(math.ceil(x_hi / lsb), hi_m), base))
        shift = 0
        while ((top - base) >> shift) + 1 > exp_table_size:
            shift += 1
        lo, hi = _buckets(lo_m, hi_m, base, shift, exp_table_size)
        table, u_a, u_b = _exp_table(lo, hi, 1, lsb, shift, exp_t)
        # sum(exp(x)) >= n * exp(smallest input): the absolute table error matters relative to it.
        u_min = n * math.exp(lo_m * lsb)
        term = _exp_term(exp_t.to_float(table), u_a, u_b, n, u_min) if u_min > 0 else math.inf

    op = Softmax(
        src_type, out_type, n, implementation,
        exp_table=table, inv_table=inv, exp_table_t=exp_t, inv_table_t=inv_t,
        exp_table_size=exp_table_size, inv_table_size=inv_table_size,
        exp_shift=shift, exp_base=base,
    )  # fmt: skip
    # |v - p| <= |q - p| + q * rho with q = e_i / S <= 1 (docs/softmax.md).
    op.max_error = _margin(_output_bound(term + rho, out_type))
    return op


# -- measuring ------------------------------------------------------------------------------------


def _adversarial(op: Softmax, rng, count: int) -> np.ndarray:
    """Inputs that probe table bucket edges, near ties, the clamped tail and saturation."""
    t, n = op.src_type, op.n
    lo, hi = t.min_mantissa, t.max_mantissa
    if op.implementation == "argmax":
        edges, tail = np.array([0, 1, 2], dtype=np.int64), 3
    else:
        z_min, z_max = (0, hi - lo) if op.implementation == "stable" else (lo, hi)
        b_lo, b_hi = _buckets(z_min, z_max, op.exp_base, op.exp_shift, len(op.exp_table))
        edges = np.unique(np.concatenate([b_lo, b_hi]))
        tail = int(b_lo[-1])  # the first input (difference) of the shared last entry
    rows = []
    for _ in range(count):
        kind = rng.integers(5)
        top = rng.integers(lo + (hi - lo) // 2, hi + 1)
        if kind == 0 and op.implementation == "latency":  # lanes at the table's own edges
            x = rng.choice(edges, n)
        elif kind == 0:  # lanes at bucket edges below a common maximum
            x = top - rng.choice(edges[: rng.integers(2, len(edges) + 1)], n)
        elif kind == 1:  # two near-tied leaders over a tail at the clamp start or far away
            x = np.where(rng.random(n) < rng.random(), lo, top - tail)
            x[rng.integers(n)] = top
            x[rng.integers(n)] = top - rng.choice(edges[:64])
        elif kind == 2:  # extremes
            x = rng.choice(np.array([lo, hi, 0]), n)
        elif kind == 3:  # all equal
            x = np.full(n, top)
        else:  # uniformly random
            x = rng.integers(lo, hi + 1, n)
        rows.append(np.clip(x, lo, hi))
    return np.array(rows, dtype=np.int64)


def measure_max_error(op: Softmax, *, samples: int = 100_000, seed: int = 0, climb: int = 200) -> dict:
    """Largest ``|output - float softmax|`` seen on random, adversarial and hill-climbed inputs.

    Returns ``{"random": ..., "adversarial": ..., "worst_input": mantissas}``.
    """
    rng = np.random.default_rng(seed)
    t, n = op.src_type, op.n

    def err(x):
        y = op.out_type.to_float(op.compute(x))
        return np.abs(y - float_softmax(t.to_float(x))).max(axis=1)

    rand = rng.integers(t.min_mantissa, t.max_mantissa + 1, (samples, n))
    e_rand = err(rand)
    adv = _adversarial(op, rng, samples)
    e_adv = err(adv)
    # Hill-climb from the worst adversarial inputs: move one lane by a random amount.
    order = np.argsort(e_adv)[-16:]
    best_x, best_e = adv[order].copy(), e_adv[order].copy()
    for _ in range(climb):
        cand = np.repeat(best_x, 8, axis=0)
        lane = rng.integers(n, size=len(cand))
        # Steps of every scale, from one input step to a quarter of the range.
        mag = np.exp2(rng.uniform(0, max(t.width - 2, 1), len(cand))).astype(np.int64)
        delta = np.where(rng.random(len(cand)) < 0.5, -mag, mag)
        cand[np.arange(len(cand)), lane] = np.clip(cand[np.arange(len(cand)), lane] + delta, t.min_mantissa, t.max_mantissa)
        ec = err(cand).reshape(len(best_x), 8)
        j = ec.argmax(axis=1)
        better = ec[np.arange(len(best_x)), j] > best_e
        best_x[better] = cand.reshape(len(best_x), 8, n)[better, j[better]]
        best_e[better] = ec[better, j[better]]
    worst = int(np.argmax(best_e))
    return {
        "random": float(e_rand.max()),
        "adversarial": float(max(e_adv.max(), best_e.max())),
        "worst_input": best_x[worst] if best_e.max() >= e_adv.max() else adv[int(np.argmax(e_adv))],
    }
