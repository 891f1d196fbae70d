"""Spatial ops on channels-last tensors ``(H, W, C)`` (1-D layers use ``H = 1``): convolution,
pooling, and lane gathers (flatten orders, padding, cropping, upsampling, permutations).

Golden models work on flattened lanes ``(batch, H*W*C)`` in row-major (H, W, C) order, which is
also the lane order of the hardware payloads. In ``io_parallel`` form every op is a fixed wiring of
input lanes into per-output-lane sums, maxima or copies.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from rtlgen.fixed import FixedType, cast, int_array, overflow, round_shift
from rtlgen.ir.graph import register_op

from ._base import Op
from ._bounds import weights_error
from .dense import sum_of_products_magnitude

__all__ = ["Conv", "Pool", "Gather", "Reshape", "conv_output_shape", "same_padding"]


def same_padding(size: int, k: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """Keras/TensorFlow 'same' padding (the extra pixel goes at the end)."""
    eff = (k - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + eff - size, 0)
    return total // 2, total - total // 2


def conv_output_shape(in_hw, kernel, stride, padding, dilation=(1, 1)):
    out = []
    for size, k, s, (a, b), d in zip(in_hw, kernel, stride, padding, dilation):
        eff = (k - 1) * d + 1
        out.append((size + a + b - eff) // s + 1)
    return tuple(out)


def _windows(in_shape, kernel, stride, padding, dilation):
    """Input lane index (or -1 for padding) of every (output position, tap, channel): (P, T, C)."""
    H, W, C = in_shape
    (pt, pb), (pl, pr) = padding
    OH, OW = conv_output_shape((H, W), kernel, stride, padding, dilation)
    oy, ox = np.meshgrid(np.arange(OH), np.arange(OW), indexing="ij")
    ky, kx = np.meshgrid(np.arange(kernel[0]), np.arange(kernel[1]), indexing="ij")
    iy = oy.reshape(-1, 1) * stride[0] - pt + ky.reshape(1, -1) * dilation[0]
    ix = ox.reshape(-1, 1) * stride[1] - pl + kx.reshape(1, -1) * dilation[1]
    inside = (iy >= 0) & (iy < H) & (ix >= 0) & (ix < W)
    base = (iy * W + ix) * C
    idx = base[:, :, None] + np.arange(C)[None, None, :]
    return np.where(inside[:, :, None], idx, -1), (OH, OW)


@register_op
@dataclass
class Conv(Op):
    """2-D convolution (1-D with a kernel height of 1), channels last, exact accumulation.

    ``weight`` is ``(kh, kw, cin, cout)`` mantissas (depthwise: ``(kh, kw, cin, multiplier)``, output
    channel ``c * multiplier + m``); ``bias`` is at the output's fractional bits. ``accum`` and
    ``product_shift`` have the meaning they have for :class:`rtlgen.ir.Dense` (hls4ml's accum_t).
    """

    weight: np.ndarray
    bias: np.ndarray | None = None
    stride: tuple = (1, 1)
    padding: tuple = ((0, 0), (0, 0))
    dilation: tuple = (1, 1)
    depthwise: bool = False
    in_shape: tuple = ()
    reuse_factor: int = 1
    accum: FixedType | None = None
    product_shift: int = 0
    adder_levels: int = 3

    def __post_init__(self):
        self.stride = tuple(self.stride)
        self.dilation = tuple(self.dilation)
        self.padding = tuple(tuple(p) for p in self.padding)
        self.in_shape = tuple(self.in_shape)

    @property
    def out_shape(self) -> tuple:
        kh, kw, cin, c2 = self.weight.shape
        oh, ow = conv_output_shape(self.in_shape[:2], (kh, kw), self.stride, self.padding, self.dilation)
        return (oh, ow, cin * c2 if self.depthwise else c2)

    def terms(self) -> list:
        """Per output lane, the ``(input lane, weight)`` pairs of its dot product."""
        kh, kw, cin, c2 = self.weight.shape
        win, _ = _windows(self.in_shape, (kh, kw), self.stride, self.padding, self.dilation)
        w = self.weight.reshape(kh * kw, cin, c2)
        out = []
        for p in range(win.shape[0]):
            if self.depthwise:
                for c in range(cin):
                    for mlt in range(c2):
                        out.append([(int(win[p, t, c]), int(w[t, c, mlt])) for t in range(kh * kw) if win[p, t, c] >= 0])
            else:
                for co in range(c2):
                    out.append(
                        [(int(win[p, t, c]), int(w[t, c, co])) for t in range(kh * kw) for c in range(cin) if win[p, t, c] >= 0]
                    )
        return out

    def bias_lanes(self):
        if self.bias is None:
            return None
        oh, ow, co = self.out_shape
        return np.tile(np.asarray(self.bias, dtype=np.int64), oh * ow)

    def error_bound(self, ctx, node, errs):
        g = ctx.graph
        return weights_error(ctx, node, self, g.tensors[node.inputs[0]], g.tensors[node.outputs[0]], errs[0])

    def built_magnitude(self, ctx, node, own, m_in):
        return sum_of_products_magnitude(self, ctx, node, own, m_in)

    def golden(self, x, src, dst):
        from rtlgen.fixed import int_array

        kh, kw, cin, c2 = self.weight.shape
        win, (OH, OW) = _windows(self.in_shape, (kh, kw), self.stride, self.padding, self.dilation)
        x = int_array(x)
        w = self.weight.reshape(kh * kw, cin, c2).astype(np.int64)
        # Exact int64 while every sum stays below 2**62; Python integers beyond.
        bound = int(np.abs(x).max(initial=0)) * int(np.abs(w).astype(object).sum(axis=(0, 1)).max(initial=0))
        if x.dtype == object or bound >= 1 << 62:
            x, w = x.astype(object), w.astype(object)
        xp = np.concatenate([x, np.zeros((len(x), 1), dtype=x.dtype)], axis=1)
        cols = xp[:, np.where(win >= 0, win, xp.shape[1] - 1)]  # (N, P, T, C); padding reads the zero
        N, P, T, C = cols.shape
        if self.accum is not None and self.product_shift > 0:
            # Every product is rounded on its own, so there is no matrix product: a few million
            # products at a time (a whole batch's can take gigabytes and minutes of swapping).
            flat = cols.reshape(N * P, T, C)
            shift, mode = self.product_shift, self.accum.rounding
            # Products that fit int32 (the usual 16-bit operands) are rounded in int32, in blocks
            # that stay in the core's cache: half the memory traffic of int64. Floor-based modes
            # only (truncation, half up): their rounding is one add and one shift.
            pmax = int(np.abs(x).max(initial=0)) * int(np.abs(w).max(initial=0)) + (1 << shift)
            narrow = x.dtype != object and pmax < 1 << 31 and mode in ("TRN", "RND")
            if narrow:
                flat, w = flat.astype(np.int32), w.astype(np.int32)
            rows = max(1, (1 << (18 if narrow else 21)) // max(T * C * w.shape[2], 1))
            parts = []
            for r0 in range(0, N * P, rows):
                prods = flat[r0 : r0 + rows, ..., None] * w[None]
                if narrow:
                    prods = (prods + (1 << (shift - 1)) if mode == "RND" else prods) >> shift
                else:
                    prods = round_shift(prods, shift, mode)
                parts.append(prods.sum(axis=1, dtype=prods.dtype if prods.dtype == object else np.int64) if self.depthwise
                             else prods.sum(axis=(1, 2), dtype=prods.dtype if prods.dtype == object else np.int64))  # fmt: skip
            y = np.concatenate(parts) if parts else np.zeros((0,) + (w.shape[1:] if self.depthwise else w.shape[2:]), dtype=x.dtype)
            y = y.reshape((N, P) + y.shape[1:])
        elif self.depthwise:
            y = np.stack([np.dot(cols[:, :, :, c], w[:, c, :]) for c in range(C)], axis=2)  # (N, P, C, M)
        else:
            y = np.dot(cols.reshape(N, P, T * C), w.reshape(T * C, c2))
        y = y.reshape(N, -1)
        if self.bias is not None:
            y = y + self.bias_lanes()
        return int_array(overflow(y, self.accum)) if self.accum is not None else int_array(y)

    def reuse_terms(self) -> tuple[np.ndarray, np.ndarray]:
        """The layer position by position, for :class:`rtlgen.layers._conv.ConvReuse`: ``lanes``
        ``(positions, channels or 1, keys)`` (input lane, ``-1`` for padding) and ``weights``
        ``(channels, keys)``. Keys are ``(tap, input channel)``, or taps when depthwise."""
        kh, kw, cin, c2 = self.weight.shape
        win, _ = _windows(self.in_shape, (kh, kw), self.stride, self.padding, self.dilation)  # (P, T, C)
        P, T = win.shape[:2]
        w = self.weight.reshape(T, cin, c2).astype(np.int64)
        if self.depthwise:
            lanes = np.repeat(win.transpose(0, 2, 1), c2, axis=1)  # (P, C*M, T): channel c*M + m reads c
            weights = w.transpose(1, 2, 0).reshape(cin * c2, T)
        else:
            lanes = win.reshape(P, 1, T * cin)
            weights = w.reshape(T * cin, c2).T
        return lanes, weights

    def reuse_shape(self) -> tuple[int, int]:
        """``(output positions, kernel terms per output)``: the reuse factor ranges over 1..their product."""
        kh, kw, cin, _ = self.weight.shape
        oh, ow, _ = self.out_shape
        return oh * ow, kh * kw * (1 if self.depthwise else cin)


@register_op
@dataclass
class Pool(Op):
    """Max or average pooling (``kind``), channels last.

    An average divides each window's sum by its number of values (padding excluded, as Keras and
    ONNX's default ``count_include_pad=0`` do; with ``count_include_pad`` by the full window).
    When every divisor is a power of two the average is exact: the sum, scaled by a power of two
    per lane, on a grid ``extra_frac`` bits finer than the input. Otherwise ``recip_frac`` is set
    and each lane computes ``cast(sum * r, in_frac + recip_frac, out_type)`` with the constant
    ``r = floor(2**recip_frac / divisor)`` and the output type's rounding and overflow: the same
    integers in golden and hardware, within :meth:`average_error` of the true average.
    """

    kind: str = "max"
    pool: tuple = (2, 2)
    stride: tuple = (2, 2)
    padding: tuple = ((0, 0), (0, 0))
    in_shape: tuple = ()
    adder_levels: int = 3
    count_include_pad: bool = False
    recip_frac: int | None = None

    def __post_init__(self):
        self.pool, self.stride = tuple(self.pool), tuple(self.stride)
        self.padding = tuple(tuple(p) for p in self.padding)
        self.in_shape = tuple(self.in_shape)
        if self.kind not in ("max", "avg"):
            raise ValueError(f"pooling kind must be 'max' or 'avg', not {self.kind!r}")

    @property
    def out_shape(self) -> tuple:
        oh, ow = conv_output_shape(self.in_shape[:2], self.pool, self.stride, self.padding)
        return (oh, ow, self.in_shape[2])

    def groups(self) -> list:
        """Per output lane, the input lanes of its window (padding excluded)."""
        win, _ = _windows(self.in_shape, self.pool, self.stride, self.padding, (1, 1))
        C = self.in_shape[2]
        return [[int(i) for i in win[p, :, c] if i >= 0] for p in range(win.shape[0]) for c in range(C)]

    def divisors(self) -> list:
        """Per output lane, what its window sum is divided by."""
        full = self.pool[0] * self.pool[1]
        return [full if self.count_include_pad else len(g) for g in self.groups()]

    @property
    def exact(self) -> bool:
        """Max pooling, or an average whose every divisor is a power of two."""
        return self.kind == "max" or all(n & (n - 1) == 0 for n in self.divisors())

    @property
    def extra_frac(self) -> int:
        """Fractional bits an exact average adds (0 for max pooling).

        Raises ValueError when the average is not exact in fixed point (it then needs ``recip_frac``)."""
        if self.kind == "max":
            return 0
        if not self.exact:
            raise ValueError(f"average pooling over {max(self.divisors())} values is not exact in fixed point; it needs a reciprocal (recip_frac)")
        return max(self.divisors()).bit_length() - 1

    def reciprocals(self) -> list:
        """Per output lane, ``floor(2**recip_frac / divisor)``: rounded toward zero, so a product is
        never further from zero than the true average and cannot overflow where the average fits."""
        return [(1 << self.recip_frac) // n for n in self.divisors()]

    def _lane_weights(self) -> list:
        big = max(self.divisors())
        return [big // n for n in self.divisors()]

    def error_bound(self, ctx, node, errs):
        return errs[0] + ctx.local.get(node.name, 0.0)

    def built_magnitude(self, ctx, node, own, m_in):
        return min(own, m_in) if self.recip_frac is None else own

    def golden(self, x, src, dst):
        x = int_array(np.asarray(x))
        out = np.empty((len(x), 0), dtype=np.int64)
        groups = self.groups()
        if not groups:
            return out
        if self.kind == "max":
            return np.stack([x[:, g].max(axis=1) for g in groups], axis=1)
        sums = np.stack([x[:, g].sum(axis=1) for g in groups], axis=1)
        if self.recip_frac is None:
            return int_array(sums * np.array(self._lane_weights(), dtype=np.int64))
        r = np.array(self.reciprocals(), dtype=object)
        return int_array(cast(sums.astype(object) * r, src.type.frac + self.recip_frac, dst.type))

    def average_error(self, src_type: FixedType, out_type: FixedType, lo: int, hi: int) -> tuple[float, bool]:
        """``(worst-case |output - true average|, whether the output type may overflow)`` in real
        units, for input mantissas in ``[lo, hi]`` (exact path: 0). Over every reachable window sum
        when there are at most 2**20 of them per window size, else a bound from the reciprocal's
        error and the output rounding; overflowing sums are left out of the maximum."""
        if self.kind == "max" or self.recip_frac is None:
            return 0.0, False
        fi, F, fo = src_type.frac, self.recip_frac, out_type.frac
        worst, overflows = Fraction(0), False
        lanes = {(len(g), n, r) for g, n, r in zip(self.groups(), self.divisors(), self.reciprocals())}
        for m, n, r in sorted(lanes):
            s_lo, s_hi = m * min(lo, 0), m * max(hi, 0)
            # In units of 2**-(fi + fo) / n: the true average is s * 2**fo, the output y * n * 2**fi.
            lo_ok, hi_ok = out_type.min_mantissa * n * 2**fi, out_type.max_mantissa * n * 2**fi
            if s_lo * 2**fo < lo_ok or s_hi * 2**fo > hi_ok:
                overflows = True
            if s_hi - s_lo <= 1 << 18:
                sums = np.arange(s_lo, s_hi + 1).astype(object)
                y = cast(sums * r, fi + F, out_type).astype(object)
                true = sums * 2**fo
                inside = (true >= lo_ok) & (true <= hi_ok)
                err = np.abs(y * (n * 2**fi) - true)[inside]
                worst = max(worst, Fraction(int(err.max(initial=0)), n * 2 ** (fi + fo)))
            else:
                recip = abs(Fraction(r, 2**F) - Fraction(1, n)) * Fraction(max(-s_lo, s_hi), 2**fi)
                rnd = Fraction(1, 2**fo) if out_type.rounding in ("TRN", "TRN_ZERO") else Fraction(1, 2 ** (fo + 1))
                worst = max(worst, recip + rnd)
        return float(worst), overflows


@register_op
@dataclass
class Gather(Op):
    """Output lane ``j`` copies input lane ``index[j]`` (``-1``: zero). Flatten orders, padding,
    cropping, nearest upsampling and permutations are all gathers: wires, latency 0."""

    index: np.ndarray

    def error_bound(self, ctx, node, errs):
        return errs[0]

    def built_magnitude(self, ctx, node, own, m_in):
        return min(own, m_in)

    def golden(self, x, src, dst):
        x = np.asarray(x)
        xp = np.concatenate([x, np.zeros((len(x), 1), dtype=x.dtype)], axis=1)
        return xp[:, np.where(self.index >= 0, self.index, xp.shape[1] - 1)]


@register_op
@dataclass
class Reshape(Op):
    """A new shape for the same lanes in the same order (e.g. flattening channels-last data)."""

    shape: tuple = ()

    def error_bound(self, ctx, node, errs):
        return errs[0]

    def built_magnitude(self, ctx, node, own, m_in):
        return min(own, m_in)

    def golden(self, x, src, dst):
        return np.asarray(x)
