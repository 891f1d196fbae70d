"""Dense (fully connected) layers on mantissas."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rtlgen.fixed import FixedType, float_carrier, float_overflow, int_array, overflow, round_shift
from rtlgen.ir.graph import GraphError, register_op

from ._base import Op
from ._bounds import weights_error

__all__ = ["Dense", "matmul_exact", "sum_of_products_magnitude"]


@register_op
@dataclass
class Dense(Op):
    """``y = x @ weight + bias`` on mantissas.

    ``weight`` is an int array ``(n_in, n_out)`` and ``bias`` an int array ``(n_out,)`` already at
    the output's fractional bits. Without ``accum`` the output is exact (no rounding, no
    overflow); a following :class:`Requant` narrows it. With ``accum`` (hls4ml's ``accum_t``, WRAP
    only) every product is first rounded by ``product_shift`` bits with the accumulator's rounding
    mode, and the sum wraps to the accumulator's width, as hls4ml's dense layers compute.
    """

    weight: np.ndarray
    bias: np.ndarray | None = None
    reuse_factor: int = 1
    strategy: str = "latency"
    # Adder-tree levels between pipeline registers in the fully parallel form.
    adder_levels: int = 3
    accum: FixedType | None = None
    product_shift: int = 0
    # Per input lane, the only values it can take (None: any value of its type), found by a pass
    # from the producer (e.g. bipolar activations); two-valued lanes enter the adders as bits.
    in_values: list | None = None
    # Per input lane, ``[lo, hi, k]`` (mantissas in [lo, hi], multiples of 2**k) or None, from
    # per-lane quantizers (HGQ2): the adders of a lane are only as wide as its own type.
    in_ranges: list | None = None

    @property
    def n_in(self) -> int:
        return self.weight.shape[0]

    @property
    def n_out(self) -> int:
        return self.weight.shape[1]

    def verify(self, name, ins, out):
        i = ins[0]
        if self.weight.ndim != 2 or self.weight.dtype.kind not in "iO":
            raise GraphError(f"node {name!r}: weight must be a 2-D integer array")
        if i.size != self.n_in or out.shape != (self.n_out,):
            raise GraphError(
                f"node {name!r}: Dense {self.n_in}->{self.n_out} does not match shapes {i.shape}->{out.shape}"
            )
        if self.bias is not None and self.bias.shape != (self.n_out,):
            raise GraphError(f"node {name!r}: bias shape {self.bias.shape} != ({self.n_out},)")

    def error_bound(self, ctx, node, errs):
        g = ctx.graph
        return weights_error(ctx, node, self, g.tensors[node.inputs[0]], g.tensors[node.outputs[0]], errs[0])

    def built_magnitude(self, ctx, node, own, m_in):
        return sum_of_products_magnitude(self, ctx, node, own, m_in)

    def golden(self, x, src, dst):
        if self.accum is not None:
            return self._golden_accum(x)
        y = matmul_exact(x, self.weight)
        if self.bias is not None:
            y = y + self.bias
        return int_array(y)

    def evaluate_float(self, xs, srcs, dst):
        plan = self._float_plan()
        if plan is None:
            return None
        colsum, bmax, weights = plan
        x, src = xs[0], srcs[0].type
        # The float type must hold max|x| * max column sum |w| + max|b| (every partial sum, in any
        # order) exactly; max|x| from the input's type, or when that is too wide from the data
        # at hand (two reductions), which is often far below its type's range.
        for mag in (max(src.max_mantissa, -src.min_mantissa), None):
            if mag is None:
                mag = int(max(float(x.max(initial=0)), -float(x.min(initial=0))))
            bound = mag * colsum + bmax
            # A plain sum only needs its integers exact (below 2**24); wrapping also subtracts the
            # accumulator's lower bound, which needs float_carrier's margin.
            ft = float_carrier(bound if self.accum is not None else bound // 2)
            if ft is not None:
                break
        if ft is None:
            return None
        if ft not in weights:
            weights[ft] = (self.weight_shifted().astype(ft), None if self.bias is None else self.bias.astype(ft))
        wf, bf = weights[ft]
        x = x.astype(ft, copy=False)
        y = np.empty((len(x), self.n_out), dtype=ft)
        rows = _rows(wf)
        for s in range(0, len(x), rows):
            np.matmul(x[s : s + rows], wf, out=y[s : s + rows])
        if bf is not None:
            y += bf
        a = self.accum
        return y if a is None else float_overflow(y, a.min_mantissa, a.max_mantissa, a.overflow, a.signed)

    def weight_shifted(self) -> np.ndarray:
        """The weights on the accumulator's grid when products are exact there (``product_shift <= 0``)."""
        return self.weight << -self.product_shift if self.accum is not None else self.weight

    def _float_plan(self):
        """(max column sum |w|, max |b|, weights by float type) for :meth:`evaluate_float`, or None
        when products are rounded one by one or a value needs Python integers."""
        key = (id(self.weight), id(self.bias), self.accum, self.product_shift)
        cache = self.__dict__.setdefault("_float_plans", {})
        if key not in cache:
            plan = None
            if self.weight.dtype != object and (self.bias is None or self.bias.dtype != object) and (self.accum is None or self.product_shift <= 0):
                w = self.weight_shifted()
                if not w.size or int(np.abs(w).max()) < 1 << 52:
                    b = int(np.abs(self.bias).max(initial=0)) if self.bias is not None else 0
                    plan = (int(np.abs(w).sum(axis=0).max(initial=0)), b, {})
            cache[key] = (self.weight, self.bias, plan)  # keeps the arrays, so their ids stay theirs
        return cache[key][2]

    def _golden_accum(self, x):
        """hls4ml's dense: products rounded to the accumulator grid, sums wrapped to its width."""
        acc_t = self.accum
        bias = self.bias if self.bias is not None else 0
        if self.product_shift <= 0:
            # Products are exact on the accumulator grid; wrapping is modular, so wrap once at the end.
            return overflow(int_array(matmul_exact(x, self.weight << -self.product_shift)) + bias, acc_t)
        out = []
        x = int_array(x)
        for start in range(0, len(x), 512):  # bounds the (batch, n_in, n_out) product block
            xb = x[start : start + 512]
            prods = round_shift(xb[:, :, None] * self.weight[None], self.product_shift, acc_t.rounding)
            out.append(prods.sum(axis=1) + bias)
        return overflow(np.concatenate(out) if out else np.zeros((0, self.n_out), dtype=np.int64), acc_t)


def sum_of_products_magnitude(op, ctx, node, own, m_in):
    """Dense and Conv without a wrapping accumulator: at most sum |w| * |x| + |b| per output."""
    if op.accum is not None:
        return own
    src, dst = ctx.graph.tensors[node.inputs[0]], ctx.graph.tensors[node.outputs[0]]
    scale = 2.0 ** -(dst.type.frac - src.type.frac)
    w = np.abs(np.asarray(op.weight, dtype=np.float64)) * scale
    per_out = w.sum(axis=0) if w.ndim == 2 else w.sum(axis=(0, 1) if op.depthwise else (0, 1, 2)).reshape(-1)
    b = np.abs(np.asarray(op.bias if op.bias is not None else 0.0, dtype=np.float64)) * 2.0**-dst.type.frac
    return min(own, float(np.max(per_out * m_in + b, initial=0.0)) * dst.scale)


def _rows(w) -> int:
    """Rows per matrix product: small enough that OpenBLAS stays on one thread (see matmul_exact)."""
    return max(32, (1 << 17) // max(1, w.shape[0] * w.shape[1]))


def matmul_exact(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``x @ w`` on integers, exactly, by the fastest path the magnitudes allow."""
    # int64 matmul is exact while |sum| < 2**63; the bound check picks the exact path otherwise.
    bound = int(np.abs(x).max(initial=0)) * int(np.abs(w).sum(axis=0).max(initial=0))
    if x.dtype == object or w.dtype == object or bound >= 1 << 62:
        return np.dot(x.astype(object), w.astype(object))
    if bound < 1 << 53:
        # Every product and partial sum is an integer below 2**53: float64 (BLAS) is exact too,
        # in any order of summation, and far faster than numpy's integer matmul. Blocks of rows
        # small enough that OpenBLAS stays on one thread: its idle threads spin, which costs more
        # than it gains at these sizes (and competes with the rest of a busy machine).
        # Below 2**24 the same holds for float32, which halves the memory traffic.
        ft = np.float32 if bound < 1 << 24 else np.float64
        xf, wf = x.astype(ft), w.astype(ft)
        y = np.empty((len(x), w.shape[1]), dtype=ft)
        rows = _rows(w)
        for s in range(0, len(x), rows):
            np.matmul(xf[s : s + rows], wf, out=y[s : s + rows])
        return y.astype(np.int64)
    return x @ w
