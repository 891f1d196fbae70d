"""Worst-case error of the built network against the model it came from, as an interval bound.

The reference is the source model computed exactly in real numbers: float layers with their float
weights and functions, quantized layers (QKeras, HGQ2, QONNX quantizers) with their own quantizers.
rtlgen adds error in a few places only: float inputs rounded to the input type, float weights and
biases quantized by the configuration, products rounded onto an ``accum`` grid, results cast to a
configured type, lookup tables, inexact averages. Each tensor gets a bound ``e`` on
``|built value - reference value|`` over all its lanes, propagated node by node:

* sums of products: ``sum |dw| * (|x| + e_x) + sum |w| * e_x + |db| + terms * product rounding``,
  with ``|x|`` from the tensor's exact mantissa bounds;
* casts: ``e + rounding step`` (a configured cast) or ``e + output step`` (a model's own quantizer,
  0 while its input is exact); thresholds stay exact only on exact inputs;
* functions: ``Lipschitz constant * e + the table's or constants' own worst-case error`` (plus the
  jump of a discontinuous function);
* pooling, layout, ReLU and max/min merges keep ``e``; sums and averages combine them.

The bound holds for float inputs within the input type's range and as long as no value overflows
its type (saturating or wrapping casts are not modelled).
"""

from __future__ import annotations

import math
import re

import numpy as np

from rtlgen.fixed import FixedType
from rtlgen.ir import Dense, Graph, Relu, Requant, Threshold

__all__ = ["ErrorBounds", "rounding_error"]


def rounding_error(src_frac: int | None, dst: FixedType) -> float:
    """Worst-case error of casting a value with ``src_frac`` fractional bits (None: a real number) to ``dst``."""
    if src_frac is not None and dst.frac >= src_frac:
        return 0.0
    step = 2.0**-dst.frac
    if dst.rounding in ("TRN", "TRN_ZERO"):
        return step - (2.0**-src_frac if src_frac is not None else 0.0)
    return step / 2


class ErrorBounds:
    """What the importers know about inexact steps, and the propagation over the finished graph."""

    def __init__(self):
        self.inputs: dict[str, float] = {}  # input tensor -> rounding error of the float input
        self.weights: dict[str, tuple] = {}  # node -> (|weight error| array, |bias error| per channel)
        self.local: dict[str, float] = {}  # node -> error it adds by itself (inexact averages)

    def propagate(self, graph: Graph, bounds: dict) -> dict[str, float]:
        """``tensor -> bound`` for every tensor of the graph."""
        err = {t: self.inputs.get(t, 0.0) for t in graph.inputs}
        # Largest magnitude of each tensor's built values where nothing overflows: a wrapping cast's
        # bounds are its whole type, but without overflow it cannot exceed its input (plus a step).
        self.mag = {t: _magnitude(graph.tensors[t], bounds) for t in graph.inputs}
        for node in graph.nodes:
            ins = [err[t] for t in node.inputs]
            err[node.outputs[0]] = self._node(graph, bounds, node, ins)
            self.mag[node.outputs[0]] = self._node_magnitude(graph, bounds, node)
        return err

    def _node_magnitude(self, graph, bounds, node) -> float:
        from rtlgen.ir.ops.spatial import Conv, Gather, Pool, Reshape

        op = node.op
        dst = graph.tensors[node.outputs[0]]
        own = _magnitude(dst, bounds)
        m_in = self.mag[node.inputs[0]]
        if isinstance(op, Requant):
            return min(own, m_in + 2.0**-op.type.frac * dst.scale)
        if isinstance(op, (Relu, Gather, Reshape)) or (isinstance(op, Pool) and op.recip_frac is None):
            return min(own, m_in)
        if isinstance(op, (Dense, Conv)) and op.accum is None:
            src = graph.tensors[node.inputs[0]]
            scale = 2.0 ** -(dst.type.frac - src.type.frac)
            w = np.abs(np.asarray(op.weight, dtype=np.float64)) * scale
            per_out = w.sum(axis=0) if isinstance(op, Dense) else w.sum(axis=(0, 1) if op.depthwise else (0, 1, 2)).reshape(-1)
            b = np.abs(np.asarray(op.bias if op.bias is not None else 0.0, dtype=np.float64)) * 2.0**-dst.type.frac
            return min(own, float(np.max(per_out * m_in + b, initial=0.0)) * dst.scale)
        return own

    def notes(self, graph: Graph, bounds: dict) -> list[str]:
        err = self.propagate(graph, bounds)
        out = []
        for node in graph.nodes:
            if node.name in self.weights:
                out.append(f"{node.name}: float weights quantized; output within {_up(err[node.outputs[0]])} of the float model")
        tin = graph.tensors[graph.inputs[0]]
        e = err[graph.outputs[0]]
        cond = f"float inputs rounded to {tin.type}" if self.inputs.get(graph.inputs[0]) else "inputs quantized by the model itself"
        if math.isinf(e):
            out.append(f"output {graph.outputs[0]}: no error bound against the model (a quantizer or threshold follows an inexact value)")
        else:
            tail = " before the float tail that runs on the host" if graph.post is not None and e > 0 else ""
            out.append(f"output {graph.outputs[0]}: worst-case error {_up(e)} against the model{tail} ({cond}; no value overflowing its type)")
        return out

    # -- one node ---------------------------------------------------------------------------------

    def _node(self, graph, bounds, node, ins):
        from rtlgen.ir.ops.activation import Lut, Pwl
        from rtlgen.ir.ops.merge import Concat, Merge
        from rtlgen.ir.ops.softmax import Softmax
        from rtlgen.ir.ops.spatial import Conv, Gather, Pool, Reshape

        op = node.op
        e = ins[0]
        src = graph.tensors[node.inputs[0]]
        dst = graph.tensors[node.outputs[0]]
        if isinstance(op, (Dense, Conv)):
            return self._weights(node, op, src, dst, bounds, e)
        if isinstance(op, Requant):
            if node.attrs.get("source", "config") == "config":
                return e + rounding_error(src.type.frac, op.type) * src.scale
            # The model's own quantizer: exact on an exact input, else at most one step further.
            step = max((2.0**-t.frac for t in op.lane_types() if t is not None), default=0.0) if op.lanes else 2.0**-op.type.frac
            return 0.0 if e == 0 else e + step * dst.scale
        if isinstance(op, Threshold):
            return 0.0 if e == 0 else math.inf
        if isinstance(op, (Relu, Gather, Reshape)):
            return e
        if isinstance(op, Pool):
            return e + self.local.get(node.name, 0.0)
        if isinstance(op, Lut):
            own = op.fit_error if op.fit_error is not None else op.max_error
            return _lipschitz(op.function, _magnitude(src, bounds) + e) * e + (math.inf if own is None else own)
        if isinstance(op, Pwl):
            return _pwl_error(op, src, dst, bounds, e)
        if isinstance(op, Softmax):
            # Softmax is 1/2-Lipschitz in the maximum norm: row i of its Jacobian sums to 2 s_i (1 - s_i).
            return 0.5 * e + float(op.max_error)
        if isinstance(op, Merge):
            a, b = ins
            if op.kind in ("add", "sub"):
                return a + b
            if op.kind == "avg":
                return (a + b) / 2
            if op.kind in ("max", "min"):
                return max(a, b)
            ma = _magnitude(graph.tensors[node.inputs[0]], bounds)
            mb = _magnitude(graph.tensors[node.inputs[1]], bounds)
            return ma * b + mb * a + a * b
        if isinstance(op, Concat):
            return max(ins)
        return 0.0 if all(v == 0 for v in ins) else math.inf

    def _weights(self, node, op, src, dst, bounds, e):
        w = np.abs(np.asarray(op.weight, dtype=np.float64))
        wfrac = dst.type.frac - src.type.frac + op.product_shift
        lo, hi = bounds[node.inputs[0]]
        step = 2.0**-src.type.frac * src.scale
        lanes = np.maximum(np.abs(np.asarray(lo, dtype=np.float64)), np.abs(np.asarray(hi, dtype=np.float64))) * step
        mag = np.minimum(lanes, self.mag[node.inputs[0]]) + e
        if op.accum is not None and op.product_shift > 0:
            prod = rounding_error(None, op.accum)
        else:
            prod = 0.0
        dw, db = self.weights.get(node.name, (None, None))
        if isinstance(op, Dense):
            total = (w * 2.0**-wfrac).sum(axis=0) * e + np.count_nonzero(op.weight, axis=0) * prod
            if dw is not None:
                total = total + (dw * mag[:, None]).sum(axis=0)
        else:
            kh, kw, cin, c2 = op.weight.shape
            axes = (0, 1) if op.depthwise else (0, 1, 2)
            total = (w * 2.0**-wfrac).sum(axis=axes).reshape(-1) * e + np.count_nonzero(op.weight, axis=axes).reshape(-1) * prod
            if dw is not None:
                total = total + dw.sum(axis=axes).reshape(-1) * float(mag.max(initial=0.0))
        if db is not None:
            total = total + db
        return float(np.max(total, initial=0.0))


def _magnitude(t, bounds) -> float:
    lo, hi = bounds[t.name]
    m = max(abs(int(min(lo))), abs(int(max(hi))))
    return m * 2.0**-t.type.frac * t.scale


def _lipschitz(function: str, reach: float) -> float:
    """Largest slope of a table's float function (``reach``: largest input magnitude, for exp)."""
    name = function.split("(")[0]
    alpha = re.search(r"alpha=([-0-9.e+]+)", function)
    alpha = float(alpha.group(1)) if alpha else 1.0
    if name == "sigmoid":
        return 0.25
    if name in ("tanh", "softplus", "softsign", "hard_tanh"):
        return 1.0
    if name == "elu":
        return max(1.0, abs(alpha))
    if name == "selu":
        from rtlgen.ir.ops.activation import _SELU_ALPHA, _SELU_SCALE

        return _SELU_SCALE * _SELU_ALPHA
    if name == "exp":
        return math.exp(reach)
    if name == "hard_sigmoid":
        return 1 / 6 if "keras3" in function or "variant" not in function else 0.2
    return math.inf


def _pwl_error(op, src, dst, bounds, e) -> float:
    """``L * e + max |built - float function|`` over the input grid (+ the jump at the knot if ``e`` > 0)."""
    c = {k: getattr(op, k) for k in ("slope_hi", "bias_hi", "slope_lo", "bias_lo", "knot", "lower", "upper")}
    n = src.size
    arr = {k: (None if v is None else np.broadcast_to(np.asarray(v, dtype=np.float64), src.shape).reshape(-1)) for k, v in c.items()}
    L = float(max(np.abs(arr["slope_hi"]).max(), np.abs(arr["slope_lo"]).max()))
    jump = float(np.abs(arr["bias_hi"] - arr["bias_lo"]).max()) if e > 0 else 0.0
    lo, hi = bounds[src.name]
    lo_m, hi_m = int(min(lo)), int(max(hi))
    if (hi_m - lo_m + 1) * n <= 1 << 22:
        xm = np.arange(lo_m, hi_m + 1, dtype=np.int64)
        X = np.repeat(xm[:, None], n, axis=1)
        y = dst.type.to_float(op.golden(X, src, dst))
        x = src.type.to_float(X)
        d = x - arr["knot"]
        f = np.where(d > 0, arr["slope_hi"] * d + arr["bias_hi"], arr["slope_lo"] * d + arr["bias_lo"])
        if arr["lower"] is not None:
            f = np.maximum(f, arr["lower"])
        if arr["upper"] is not None:
            f = np.minimum(f, arr["upper"])
        own = float(np.abs(y - f).max(initial=0.0))
    else:
        # Constants rounded to const_type move a piece by at most |dslope| * |x - knot| + |dbias|,
        # then the output cast rounds once.
        t = op.const_type
        q = 2.0 ** -(t.frac + 1) if t.rounding not in ("TRN", "TRN_ZERO") else 2.0**-t.frac
        x_max = max(abs(lo_m), abs(hi_m)) * 2.0**-src.type.frac
        k_max = float(np.abs(arr["knot"]).max())
        # A rounded knot can also pick the other piece for inputs between the two knots.
        pieces = float(np.abs(arr["bias_hi"] - arr["bias_lo"]).max()) + float(np.abs(arr["slope_hi"] - arr["slope_lo"]).max()) * q
        own = q * (x_max + k_max + 1) + L * q + q + pieces + rounding_error(None, dst.type)
    return L * e + own + jump


def _up(v: float, digits: int = 3) -> str:
    """``v`` with ``digits`` significant digits, rounded up, so a printed bound still holds."""
    if v <= 0:
        return "0"
    if math.isinf(v):
        return "inf"
    ex = math.floor(math.log10(v)) - digits + 1
    return f"{math.ceil(v / 10.0**ex) * 10.0**ex:.{digits}g}"
