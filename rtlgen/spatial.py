"""Spatial ops on channels-last tensors ``(H, W, C)`` (1-D layers use ``H = 1``): convolution,
pooling, and lane gathers (flatten orders, padding, cropping, upsampling, permutations).

Golden models work on flattened lanes ``(batch, H*W*C)`` in row-major (H, W, C) order, which is
also the lane order of the hardware payloads. In ``io_parallel`` form every op is a fixed wiring of
input lanes into per-output-lane sums, maxima or copies.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .fixed import FixedType, overflow, round_shift
from .ir import register_op

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


@dataclass
class Conv:
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

    def golden(self, x, src, dst):
        from .fixed import int_array

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
            prods = round_shift(cols[..., None] * w[None, None], self.product_shift, self.accum.rounding)
            y = prods.sum(axis=2) if self.depthwise else prods.sum(axis=(2, 3))
        elif self.depthwise:
            y = np.stack([np.dot(cols[:, :, :, c], w[:, c, :]) for c in range(C)], axis=2)  # (N, P, C, M)
        else:
            y = np.dot(cols.reshape(N, P, T * C), w.reshape(T * C, c2))
        y = y.reshape(N, -1)
        if self.bias is not None:
            y = y + self.bias_lanes()
        return int_array(overflow(y, self.accum)) if self.accum is not None else int_array(y)

    def hardware(self, src, dst):
        from rtlgen.layers import SumOfProducts

        if self.reuse_factor != 1:
            raise ValueError("convolutions are fully parallel in io_parallel form (reuse factor 1)")
        return SumOfProducts(
            src.type, src.size, dst.type, terms=self.terms(), bias=self.bias_lanes(),
            adder_levels=self.adder_levels, accum=self.accum, product_shift=self.product_shift,
        )  # fmt: skip


@dataclass
class Pool:
    """Max or average pooling (``kind``), channels last. Average pooling sums the window; the
    division by a power-of-two window size is absorbed into the output's fractional bits."""

    kind: str = "max"
    pool: tuple = (2, 2)
    stride: tuple = (2, 2)
    padding: tuple = ((0, 0), (0, 0))
    in_shape: tuple = ()
    adder_levels: int = 3

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

    @property
    def extra_frac(self) -> int:
        """Fractional bits an average adds (the window sum divided by a power of two), 0 for max.

        Raises ValueError for windows whose average is not exact in fixed point."""
        if self.kind == "max":
            return 0
        count = self.pool[0] * self.pool[1]
        if count & (count - 1) or any(p != (0, 0) for p in self.padding):
            raise ValueError(
                f"average pooling over {count} values with padding {self.padding}: only unpadded "
                f"power-of-two windows are exact; use a 2x2/4x4 window or max pooling"
            )
        return count.bit_length() - 1

    def groups(self) -> list:
        """Per output lane, the input lanes of its window (padding excluded)."""
        win, _ = _windows(self.in_shape, self.pool, self.stride, self.padding, (1, 1))
        C = self.in_shape[2]
        return [[int(i) for i in win[p, :, c] if i >= 0] for p in range(win.shape[0]) for c in range(C)]

    def golden(self, x, src, dst):
        x = np.asarray(x)
        out = np.empty((len(x), 0), dtype=np.int64)
        cols = []
        for g in self.groups():
            v = x[:, g]
            cols.append(v.max(axis=1) if self.kind == "max" else v.sum(axis=1))
        return np.stack(cols, axis=1) if cols else out

    def hardware(self, src, dst):
        from rtlgen.layers import MaxTree, SumOfProducts

        groups = self.groups()
        if self.kind == "max":
            return MaxTree(src.type, src.size, dst.type, groups=groups, adder_levels=self.adder_levels)
        return SumOfProducts(src.type, src.size, dst.type, terms=[[(i, 1) for i in g] for g in groups], adder_levels=self.adder_levels)


@dataclass
class Gather:
    """Output lane ``j`` copies input lane ``index[j]`` (``-1``: zero). Flatten orders, padding,
    cropping, nearest upsampling and permutations are all gathers: wires, latency 0."""

    index: np.ndarray

    def golden(self, x, src, dst):
        x = np.asarray(x)
        xp = np.concatenate([x, np.zeros((len(x), 1), dtype=x.dtype)], axis=1)
        return xp[:, np.where(self.index >= 0, self.index, xp.shape[1] - 1)]

    def hardware(self, src, dst):
        from rtlgen.layers import GatherLayer

        return GatherLayer(src.type, src.size, dst.type, index=self.index)


@dataclass
class Reshape:
    """A new shape for the same lanes in the same order (e.g. flattening channels-last data)."""

    shape: tuple = ()

    def golden(self, x, src, dst):
        return np.asarray(x)

    def hardware(self, src, dst):
        from rtlgen.layers import GatherLayer

        return GatherLayer(src.type, src.size, dst.type, index=np.arange(src.size))


for _op in (Conv, Pool, Gather, Reshape):
    register_op(_op)
