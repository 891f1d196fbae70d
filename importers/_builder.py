"""Graph construction shared by the importers: tensors with exact per-lane mantissa bounds.

Bounds are what make accumulator widths exact: every IR tensor records the least and greatest
mantissa each lane can take, derived from the input types and the constant weights.
"""

from __future__ import annotations

import numpy as np

from rtlgen.errors import UnsupportedOpError
from rtlgen.fixed import FixedType, cast, type_for_range
from rtlgen.ir import Dense, Graph, Node, Relu, Requant, Tensor

from ._errors import ErrorBounds, _up

__all__ = ["GraphBuilder", "reachable", "dense_bounds", "cast_bounds"]


def reachable(t: FixedType) -> tuple[int, int]:
    """The mantissa range a value of type ``t`` can take (SAT_SYM never makes the lowest code)."""
    lo = -t.max_mantissa if (t.signed and t.overflow == "SAT_SYM") else t.min_mantissa
    return lo, t.max_mantissa


def dense_bounds(weight, lo_in, hi_in, bias=None):
    w = weight.astype(object)
    lo_in = np.asarray(lo_in, dtype=object)[:, None]
    hi_in = np.asarray(hi_in, dtype=object)[:, None]
    a, b = w * lo_in, w * hi_in
    lo = np.minimum(a, b).sum(axis=0)
    hi = np.maximum(a, b).sum(axis=0)
    if bias is not None:
        lo, hi = lo + bias.astype(object), hi + bias.astype(object)
    return lo, hi


def cast_bounds(lo, hi, src: FixedType, dst: FixedType):
    # Casts are monotonic except under WRAP, where the whole range may be reached.
    if dst.overflow == "WRAP":
        n = len(lo)
        lo2, hi2 = reachable(dst)
        return np.full(n, lo2, dtype=object), np.full(n, hi2, dtype=object)
    lo = cast(np.asarray(lo, dtype=object), src, dst).astype(object)
    hi = cast(np.asarray(hi, dtype=object), src, dst).astype(object)
    return lo, hi


class GraphBuilder:
    """Adds typed tensors and nodes to a graph, keeping every tensor's mantissa bounds."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.bounds: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.errors = ErrorBounds()

    def note_error_bounds(self) -> None:
        """Add the notes with the worst-case error against the source model (see :mod:`._errors`)."""
        self.graph.notes.extend(self.errors.notes(self.graph, self.bounds))

    def tensor(self, name, shape, ftype, scale=1.0, bounds=None) -> str:
        base, i = name, 1
        while name in self.graph.tensors:
            name, i = f"{base}_{i}", i + 1
        self.graph.add_tensor(Tensor(name, tuple(shape), ftype, float(scale)))
        if bounds is None:
            lo, hi = reachable(ftype)
            n = int(np.prod(shape))
            bounds = (np.full(n, lo, dtype=object), np.full(n, hi, dtype=object))
        self.bounds[name] = bounds
        return name

    def dense(self, name, x, weight, wfrac, bias=None, *, out_name=None, accum=None, product_shift=0, attrs=None) -> str:
        """``x @ weight + bias`` with ``weight`` mantissas at ``wfrac`` fractional bits and ``bias``
        mantissas already at the output's fractional bits (input frac + ``wfrac``)."""
        xt = self.graph.tensors[x]
        weight = np.asarray(weight, dtype=np.int64)
        if bias is not None:
            bias = np.asarray(bias, dtype=np.int64)
            if not np.any(bias):
                bias = None
        frac = xt.type.frac + wfrac
        if accum is not None:
            out = self.tensor(out_name or name, (weight.shape[1],), accum, xt.scale)
        else:
            lo, hi = dense_bounds(weight, *self.bounds[x], bias)
            out = self.tensor(out_name or name, (weight.shape[1],), type_for_range(min(lo), max(hi), frac), xt.scale, (lo, hi))
        op = Dense(weight, bias, accum=accum, product_shift=product_shift)
        self.graph.add_node(Node(name, op, [x], [out], dict(attrs or {})))
        return out

    def relu(self, name, x, *, out_name=None, attrs=None) -> str:
        xt = self.graph.tensors[x]
        lo, hi = self.bounds[x]
        lo, hi = np.maximum(lo, 0), np.maximum(hi, 0)
        rtype = type_for_range(0, max(max(hi), 0), xt.type.frac)
        out = self.tensor(out_name or name, xt.shape, rtype, xt.scale, (lo, hi))
        self.graph.add_node(Node(name, Relu(), [x], [out], dict(attrs or {"source": "Relu"})))
        return out

    def requant_lanes(self, name, x, lanes: list, *, attrs=None) -> str:
        """Each lane cast to its own type (``None``: always zero), on one grid that covers them all."""
        xt = self.graph.tensors[x]
        types = [FixedType.parse(t) if t is not None else None for t in lanes]
        frac = max((t.frac for t in types if t is not None), default=0)
        lo_in, hi_in = self.bounds[x]
        lo, hi = [], []
        for c, t in enumerate(types):
            if t is None:
                lo.append(0)
                hi.append(0)
                continue
            a, b = cast_bounds(lo_in[c : c + 1], hi_in[c : c + 1], xt.type, t)
            lo.append(int(a[0]) << (frac - t.frac))
            hi.append(int(b[0]) << (frac - t.frac))
        lo, hi = np.array(lo, dtype=object), np.array(hi, dtype=object)
        out = self.tensor(name, xt.shape, type_for_range(min(lo), max(hi), frac), xt.scale, (lo, hi))
        self.graph.add_node(Node(name, Requant(self.graph.tensors[out].type, list(lanes)), [x], [out], dict(attrs or {})))
        return out

    def threshold(self, name, x, thresholds, *, base: int, step: int, frac: int, attrs=None) -> str:
        """``base + step * #{k : x >= thresholds[k]}`` in every lane (mantissas at ``frac`` bits)."""
        from rtlgen.ir import Threshold

        xt = self.graph.tensors[x]
        th = np.asarray(thresholds, dtype=np.int64).reshape(1, -1)
        levels = th.shape[1]
        th = np.repeat(th, xt.size, axis=0)
        lo, hi = min(base, base + step * levels), max(base, base + step * levels)
        n = xt.size
        out = self.tensor(name, xt.shape, type_for_range(lo, hi, frac), xt.scale, (np.full(n, lo, dtype=object), np.full(n, hi, dtype=object)))
        op = Threshold(th, np.ones(n, dtype=bool), base, step)
        self.graph.add_node(Node(name, op, [x], [out], dict(attrs or {})))
        return out

    def requant(self, name, x, ftype: FixedType, *, out_name=None, attrs=None) -> str:
        xt = self.graph.tensors[x]
        if (xt.type.width, xt.type.frac, xt.type.signed) == (ftype.width, ftype.frac, ftype.signed):
            return x  # same grid and range: nothing to round or saturate
        lo, hi = self.bounds[x]
        out = self.tensor(out_name or name, xt.shape, ftype, xt.scale, cast_bounds(lo, hi, xt.type, ftype))
        self.graph.add_node(Node(name, Requant(ftype), [x], [out], dict(attrs or {})))
        return out


def _lane_range(bounds):
    lo, hi = bounds
    return min(min(lo), 0), max(max(hi), 0)


class SpatialBuilder(GraphBuilder):
    """Adds the channels-last spatial ops of :mod:`rtlgen.ir.ops.spatial`."""

    def conv(self, name, x, op, wfrac: int = 0, *, attrs=None) -> str:
        """Add convolution ``op`` on ``x`` (its reuse factor is the passes' business)."""
        from rtlgen.ir.ops.spatial import Conv

        assert isinstance(op, Conv)
        xt = self.graph.tensors[x]
        op.in_shape = tuple(xt.shape)
        out_shape = op.out_shape
        if op.accum is not None:
            t = op.accum
            out = self.tensor(name, out_shape, t, xt.scale)
        else:
            lo_in, hi_in = _lane_range(self.bounds[x])
            kh, kw, cin, c2 = op.weight.shape
            w = op.weight.reshape(kh * kw * (1 if op.depthwise else cin), -1) if not op.depthwise else op.weight.reshape(kh * kw, cin * c2)
            n = w.shape[0]
            lo_c, hi_c = dense_bounds(w, np.full(n, lo_in, dtype=object), np.full(n, hi_in, dtype=object))
            if op.bias is not None:
                lo_c, hi_c = lo_c + op.bias.astype(object), hi_c + op.bias.astype(object)
            # Zero padding can drop any tap, so each channel's range also contains the bias alone.
            bias = op.bias.astype(object) if op.bias is not None else np.zeros(len(lo_c), dtype=object)
            lo_c, hi_c = np.minimum(lo_c, bias), np.maximum(hi_c, bias)
            positions = out_shape[0] * out_shape[1]
            lo, hi = np.tile(lo_c, positions), np.tile(hi_c, positions)
            frac = xt.type.frac + wfrac
            out = self.tensor(name, out_shape, type_for_range(min(lo), max(hi), frac), xt.scale, (lo, hi))
        self.graph.add_node(Node(name, op, [x], [out], dict(attrs or {})))
        return out

    def pool(self, name, x, op, *, out_type=None, attrs=None) -> str:
        """Add pooling ``op`` on ``x``. An average that is not exact in fixed point is rounded into
        ``out_type`` (None: 'auto', a grid ``ceil(log2(window)) + 1`` bits finer than the input,
        rounding to nearest) through a reciprocal accurate to an eighth of the output step, and
        the build notes its worst-case error."""
        from rtlgen.ir.ops.spatial import Pool

        assert isinstance(op, Pool)
        xt = self.graph.tensors[x]
        op.in_shape = tuple(xt.shape)
        groups = op.groups()
        if any(not g for g in groups):
            raise UnsupportedOpError(
                name, "MaxPool" if op.kind == "max" else "AveragePool",
                f"padding {[list(p) for p in op.padding]} leaves a {op.pool[0]}x{op.pool[1]} window with no input "
                "value in it; make every pad smaller than the window (pads >= the kernel are not defined)",
            )  # fmt: skip
        if op.kind == "max":
            lo_in, hi_in = min(self.bounds[x][0]), max(self.bounds[x][1])
            lo = np.array([lo_in] * len(groups), dtype=object)
            hi = np.array([hi_in] * len(groups), dtype=object)
            t = xt.type
        elif op.exact:
            lo_in, hi_in = _lane_range(self.bounds[x])
            scale = [max(op.divisors()) // n for n in op.divisors()]
            lo = np.array([lo_in * len(g) * k for g, k in zip(groups, scale)], dtype=object)
            hi = np.array([hi_in * len(g) * k for g, k in zip(groups, scale)], dtype=object)
            t = type_for_range(min(lo), max(hi), xt.type.frac + op.extra_frac)
        else:
            lo_in, hi_in = _lane_range(self.bounds[x])
            fi = xt.type.frac
            biggest = max(op.divisors())
            if out_type is None:
                fo = fi + (biggest - 1).bit_length() + 1
                out_type = type_for_range(lo_in << (fo - fi), (hi_in << (fo - fi)) + 1, fo).with_modes(rounding="RND")
            most = max(len(g) for g in groups) * max(-lo_in, hi_in, 1)
            # |sum| * 2**-recip_frac, the reciprocal's worst error, stays below an eighth of the output step.
            op.recip_frac = max(most.bit_length() - fi + out_type.frac + 3, biggest.bit_length() + 1)
            # Bounds: the extreme sums rounded (monotonic); any overflow makes the whole type reachable.
            sat = out_type.with_modes(overflow="SAT")
            ends = [
                cast(np.array([b * len(g) * k for g, k in zip(groups, op.reciprocals())], dtype=object), fi + op.recip_frac, sat)
                for b in (lo_in, hi_in)
            ]
            lo, hi = (np.array([int(v) for v in e], dtype=object) for e in ends)
            if out_type.overflow != "SAT" and (min(lo) <= sat.min_mantissa or max(hi) >= sat.max_mantissa):
                a, b = reachable(out_type)
                lo, hi = np.full(len(groups), a, dtype=object), np.full(len(groups), b, dtype=object)
            t = out_type
            err, overflows = op.average_error(xt.type, out_type, lo_in, hi_in)
            self.errors.local[name] = err
            self.graph.notes.append(
                f"{name}: average of {biggest} values as the window sum times {(1 << op.recip_frac) // biggest} * 2**-{op.recip_frac}"
                + (" (fewer at padded edges, each with its own reciprocal)" if len(set(op.divisors())) > 1 else "") + ", "
                f"rounded ({out_type.rounding}) into {out_type}, worst-case error {_up(err)}"
                + (" where the average fits the type (it may overflow)" if overflows else "")
            )
        out = self.tensor(name, op.out_shape, t, xt.scale, (lo, hi))
        attrs = dict(attrs or {})
        if name in self.errors.local:
            attrs["error"] = self.errors.local[name]  # the node's own worst-case error, in real units
        self.graph.add_node(Node(name, op, [x], [out], attrs))
        return out

    def gather(self, name, x, index, shape, *, attrs=None) -> str:
        from rtlgen.ir.ops.spatial import Gather

        xt = self.graph.tensors[x]
        index = np.asarray(index, dtype=np.int64)
        lo_in, hi_in = self.bounds[x]
        lo = np.array([lo_in[i] if i >= 0 else 0 for i in index], dtype=object)
        hi = np.array([hi_in[i] if i >= 0 else 0 for i in index], dtype=object)
        t = xt.type if not np.any(index < 0) or xt.type.contains(0) else type_for_range(min(lo), max(hi), xt.type.frac)
        out = self.tensor(name, shape, t, xt.scale, (lo, hi))
        self.graph.add_node(Node(name, Gather(index), [x], [out], dict(attrs or {})))
        return out

    def reshape(self, name, x, shape, *, attrs=None) -> str:
        from rtlgen.ir.ops.spatial import Reshape

        xt = self.graph.tensors[x]
        shape = tuple(int(d) for d in shape)
        if int(np.prod(shape)) != xt.size:
            raise ValueError(f"cannot reshape {xt.shape} to {shape}")
        if shape == tuple(xt.shape):
            return x
        out = self.tensor(name, shape, xt.type, xt.scale, self.bounds[x])
        self.graph.add_node(Node(name, Reshape(shape), [x], [out], dict(attrs or {})))
        return out

    def merge(self, name, a, b, kind, *, attrs=None) -> str:
        from rtlgen.ir.ops.merge import Concat, Merge

        ta, tb = self.graph.tensors[a], self.graph.tensors[b]
        if ta.scale != tb.scale:
            raise ValueError(f"cannot merge tensors with different scales ({ta.scale} and {tb.scale})")
        (la, ha), (lb, hb) = self.bounds[a], self.bounds[b]
        if kind == "concat":
            f = max(ta.type.frac, tb.type.frac)
            op = Concat()
            sources = op.lane_sources([ta, tb])
            bounds = [(la, ha), (lb, hb)]
            fr = [ta.type.frac, tb.type.frac]
            lo = np.array([int(bounds[k][0][i]) << (f - fr[k]) for k, i in sources], dtype=object)
            hi = np.array([int(bounds[k][1][i]) << (f - fr[k]) for k, i in sources], dtype=object)
            shape = (*ta.shape[:-1], ta.shape[-1] + tb.shape[-1])
        else:
            if ta.shape != tb.shape:
                raise ValueError(f"cannot merge tensors of shapes {ta.shape} and {tb.shape}")
            op = Merge(kind)
            shape = ta.shape
            if kind == "mul":
                f = ta.type.frac + tb.type.frac
                cands = [la * lb, la * hb, ha * lb, ha * hb]
                lo = np.minimum.reduce(cands)
                hi = np.maximum.reduce(cands)
            else:
                f = max(ta.type.frac, tb.type.frac)
                la, ha = la * (1 << (f - ta.type.frac)), ha * (1 << (f - ta.type.frac))
                lb, hb = lb * (1 << (f - tb.type.frac)), hb * (1 << (f - tb.type.frac))
                lo, hi = {
                    "add": (la + lb, ha + hb),
                    "avg": (la + lb, ha + hb),
                    "sub": (la - hb, ha - lb),
                    "max": (np.maximum(la, lb), np.maximum(ha, hb)),
                    "min": (np.minimum(la, lb), np.minimum(ha, hb)),
                }[kind]
                if kind == "avg":
                    f += 1  # the sum is twice the average: one more fractional bit, exactly
        out = self.tensor(name, shape, type_for_range(min(lo), max(hi), f), ta.scale, (lo, hi))
        self.graph.add_node(Node(name, op, [a, b], [out], dict(attrs or {})))
        return out
