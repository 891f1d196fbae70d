"""Recurrent layers (SimpleRNN, LSTM, GRU) on mantissas, over a time axis.

The input is a sequence of ``steps`` vectors of ``n_in`` values (tensor shape ``(steps, n_in)`` or
``(1, steps, n_in)``), the output the last state ``(units,)`` or, with ``return_sequences``, every
step's state ``(steps, units)``. The initial state is zero. One step of the cell, with ``@`` an
exact sum of products and ``cast`` a fixed-point cast (rounding, then overflow):

* every gate's pre-activation ``z = x @ kernel + h @ recurrent_kernel + bias`` is summed exactly
  and cast once to ``accum`` (hls4ml's ``accum_t``);
* activations map ``accum`` to ``table`` (hls4ml's ``table_t``): a lookup table (sigmoid, tanh) or
  an exact clipped affine function (relu, hard_sigmoid, linear), each a :class:`Lut` or
  :class:`Pwl` spec stored as a plain dict;
* LSTM (gates ``i, f, c, o``, Keras' order): ``c = cast(f * c + i * g, cell)``,
  ``h = cast(o * act_c(c), state)`` with ``act_c`` the activation's table on the cell type;
* GRU (gates ``z, r, h``): ``h = cast(z * h + (1 - z) * hh, state)`` where the candidate ``hh``
  applies the reset gate after the recurrent product (``reset_after``, PyTorch's and ONNX's
  ``linear_before_reset``: ``r * cast(h @ U_h + recurrent_bias_h, accum)``) or before it
  (``cast(r * h, state) @ U_h``);
* SimpleRNN: ``h = cast(act(z), state)``.

``state`` (hls4ml's state) is separate from the output type: each output step is
``cast(h, output type)``. Every product of two signals is exact before its cast.

With ``lane_types`` (the quantizers of HGQ2, per unit, or of QKeras) the cell follows the
framework's arithmetic instead: sums and products are exact, and each quantizer casts every unit
to its own type (see :meth:`Recurrent.quantize_point`):

* ``state`` (``sq``) reads the stored state each step; the stored state and the output are exact;
* SimpleRNN: ``h = act(Q_pre(x W + Q_state(h) U + b))``;
* GRU: ``z, r = Q_gate(act_r(x W + Q_state(h) U + b))``; the candidate
  ``hh = Q_cand(act(x W_h + b_h + r * Q_reset(Q_state(h) U_h + b_rh)))`` (``reset_after``) or
  ``act(x W_h + b_h + Q_reset(r * Q_state(h)) U_h)``; ``h = z Q_state(h) + (1 - z) hh``;
* LSTM (QKeras): ``i, f, o = Q_gate(act_r(...))``, ``g = Q_cand(act(...))``,
  ``c = f Q_state(c) + i g``, ``h = o Q_cand(act(c))``.

A point without a quantizer passes its exact value on; activations are ``linear``, ``relu`` or a
clipped affine map with a power-of-two slope (QKeras's ``hard_sigmoid``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from rtlgen.fixed import FixedType, align, cast, int_array
from rtlgen.ir.graph import GraphError, Tensor, register_op

from ._base import Op
from .activation import Lut, Pwl
from .dense import matmul_exact

__all__ = ["Recurrent", "SimpleRNN", "LSTM", "GRU", "activation_op", "exact_activation", "is_relu", "SCHEDULES"]

SCHEDULES = ("unrolled", "reused")


def activation_op(spec: dict):
    """The :class:`Lut` or :class:`Pwl` an activation spec describes."""
    spec = dict(spec)
    kind = spec.pop("kind")
    if kind == "lut":
        spec["table"] = np.asarray(spec["table"], dtype=np.int64)
        return Lut(**spec)
    return Pwl(**spec)


def apply_activation(spec: dict, x, src: FixedType, dst: FixedType):
    """Golden model of one activation on mantissas ``x`` (any shape) of ``src`` into ``dst``."""
    op = activation_op(spec)
    x = int_array(x)
    shape = x.shape
    flat = x.reshape(len(x), -1) if x.ndim > 1 else x.reshape(1, -1)
    n = flat.shape[1]
    y = op.golden(flat, Tensor("x", (n,), src), Tensor("y", (n,), dst))
    return int_array(y).reshape(shape)


def _activation_error(spec: dict, src: FixedType, dst: FixedType, e: float, reach: float) -> tuple[float, float, float]:
    """``(Lipschitz constant, own error, largest output magnitude)`` of an activation spec on
    inputs of magnitude at most ``reach`` known within ``e``."""
    from ._bounds import lipschitz, rounding_error

    top = max(abs(float(dst.min)), abs(float(dst.max)))
    if spec["kind"] == "lut":
        own = spec.get("fit_error")
        own = spec.get("max_error") if own is None else own
        table = np.asarray(spec["table"], dtype=np.float64) * 2.0**-dst.frac
        mag = float(np.abs(table).max())
        own = math.inf if own is None else float(own)
        L = lipschitz(spec.get("function", ""), reach + e)
        # A bounded function's error never exceeds its table's spread plus the table's own error.
        if e > 0 and L * e > float(table.max() - table.min()):
            L = float(table.max() - table.min()) / e
        return L, own, mag
    op = activation_op(spec)
    t = op.const_type
    q = 2.0 ** -(t.frac + 1)
    slope = max(abs(float(op.slope_hi)), abs(float(op.slope_lo)))
    own = q * (reach + abs(float(op.knot)) + 1) + q + rounding_error(src.frac, dst)
    if op.slope_hi != op.slope_lo or op.bias_hi != op.bias_lo:
        own += abs(float(op.bias_hi) - float(op.bias_lo)) if e > 0 else 0.0
    mag = slope * (reach + abs(float(op.knot))) + max(abs(float(op.bias_hi)), abs(float(op.bias_lo))) + own
    if op.lower is not None and op.upper is not None:
        mag = min(mag, max(abs(float(op.lower)), abs(float(op.upper))))
    return slope, own, min(top, mag)


@dataclass
class Recurrent(Op):
    """Fields shared by the recurrent ops; see the module docstring for the arithmetic.

    ``kernel`` ``(n_in, gates * units)`` has ``kernel_frac`` fractional bits, ``recurrent_kernel``
    ``(units, gates * units)`` ``recurrent_frac``, ``bias`` and ``recurrent_bias`` (GRU with
    ``reset_after``; else folded into ``bias``) ``bias_frac``. ``schedule``: ``"unrolled"`` (one cell
    per time step, a new sequence every cycle) or ``"reused"`` (one cell over the time steps).

    ``lane_types`` (HGQ2, QKeras): quantization point (``state``, ``pre``, ``gate``, ``reset``, ``cand``)
    -> ``{"lanes": [type string or None per unit], "affine": [scale, shift] or None}``; ``accum``
    and ``table`` are then only the exact types of the pre-activations and gates, and ``state``
    holds the exact new state.
    """

    units: int
    kernel: np.ndarray
    recurrent_kernel: np.ndarray
    bias: np.ndarray
    kernel_frac: int
    recurrent_frac: int
    bias_frac: int
    accum: FixedType
    table: FixedType
    state: FixedType
    activation: dict
    recurrent_activation: dict | None = None
    return_sequences: bool = False
    recurrent_bias: np.ndarray | None = None
    cell: FixedType | None = None
    cell_activation: dict | None = None
    reset_after: bool = True
    schedule: str = "unrolled"
    reuse_factor: int = 1
    lane_types: dict | None = None

    gates = 1

    def steps_of(self, src) -> int:
        return src.size // self.n_in

    @property
    def n_in(self) -> int:
        return self.kernel.shape[0]

    def verify(self, name, ins, out):
        i = ins[0]
        g = self.gates * self.units
        if self.kernel.ndim != 2 or self.kernel.shape[1] != g:
            raise GraphError(f"node {name!r}: kernel must have shape (n_in, {g}), not {self.kernel.shape}")
        if self.recurrent_kernel.shape != (self.units, g):
            raise GraphError(f"node {name!r}: recurrent kernel must have shape ({self.units}, {g}), not {self.recurrent_kernel.shape}")
        if np.shape(self.bias) != (g,):
            raise GraphError(f"node {name!r}: bias must have shape ({g},), not {np.shape(self.bias)}")
        if self.recurrent_bias is not None and np.shape(self.recurrent_bias) != (g,):
            raise GraphError(f"node {name!r}: recurrent bias must have shape ({g},), not {np.shape(self.recurrent_bias)}")
        if i.size % self.n_in or i.shape[-1] != self.n_in:
            raise GraphError(f"node {name!r}: input {i.shape} is not a sequence of vectors of {self.n_in} values")
        steps = self.steps_of(i)
        want = (steps, self.units) if self.return_sequences else (self.units,)
        if out.shape != want:
            raise GraphError(f"node {name!r}: output shape {out.shape} should be {want}")
        if self.schedule not in SCHEDULES:
            raise GraphError(f"node {name!r}: schedule must be one of {', '.join(SCHEDULES)}, not {self.schedule!r}")
        if self.lane_types is not None:
            self._verify_lanes(name)

    def _verify_lanes(self, name):
        want = {"state": self.units, "pre": self.units, "gate": (self.gates - 1) * self.units, "reset": self.units, "cand": self.units}
        for point, q in self.lane_types.items():
            if point not in want or len(q["lanes"]) != want[point]:
                raise GraphError(f"node {name!r}: quantizer {point!r} must be one of {', '.join(want)} with one type per lane")
            if q.get("affine") is not None:
                scale = Fraction(q["affine"][0])
                if scale <= 0 or scale.numerator & (scale.numerator - 1) or scale.denominator & (scale.denominator - 1):
                    raise GraphError(f"node {name!r}: quantizer {point!r} scales by {q['affine'][0]}, not a power of two")
        for spec in (self.activation, self.recurrent_activation, self.cell_activation):
            if spec is not None and _exact_kind(spec) is None:
                raise GraphError(f"node {name!r}: with per-lane quantizers the activations must be linear, relu or a clipped power-of-two affine map")

    # -- golden model ------------------------------------------------------------------------------

    def _pre(self, x, xf, h, k: int, bias=True, hf=None):
        """Gate ``k``'s exact pre-activation ``(mantissas, frac)`` from ``x`` and ``h`` (at ``hf``
        fractional bits, the state's by default)."""
        u = self.units
        hf = self.state.frac if hf is None else hf
        cols = slice(k * u, (k + 1) * u)
        parts = []
        if x is not None:
            parts.append((matmul_exact(x, self.kernel[:, cols]), xf + self.kernel_frac))
        if h is not None:
            parts.append((matmul_exact(h, self.recurrent_kernel[:, cols]), hf + self.recurrent_frac))
        if bias is True:
            parts.append((np.broadcast_to(int_array(self.bias[cols]), (len(parts[0][0]), u)), self.bias_frac))
        elif bias is not None:
            parts.append((np.broadcast_to(int_array(bias[cols]), (len(parts[0][0]), u)), self.bias_frac))
        f = max(p[1] for p in parts)
        return sum(align(int_array(m), pf, f) for m, pf in parts), f

    def _z(self, x, xf, h, k):
        m, f = self._pre(x, xf, h, k)
        return cast(m, f, self.accum)

    def step(self, x, xf, state):
        raise NotImplementedError  # pragma: no cover

    # -- per-lane quantizers (HGQ2, QKeras) --------------------------------------------------------

    def quantize_point(self, point: str, m, frac: int):
        """``(mantissas, frac)`` of quantizer ``point`` on ``m`` (lanes along the last axis): each lane
        cast to its own type (``None``: zero), on the finest grid among them, then the exact
        affine map (``x * scale + shift``, scale a power of two) HGQ2 applies after a quantizer.
        A point without a quantizer passes ``m`` on exactly."""
        m = int_array(m)
        if point not in self.lane_types:
            return m, frac  # no quantizer there: the exact value goes on
        q = self.lane_types[point]
        types = [FixedType.parse(t) if t is not None else None for t in q["lanes"]]
        f = max([t.frac for t in types if t is not None] + [0])
        out = np.zeros(m.shape, dtype=m.dtype)
        for c, t in enumerate(types):
            if t is not None:
                out[:, c] = align(cast(m[:, c], frac, t), t.frac, f)
        return affine(out, f, q.get("affine"))

    def read_state(self, h):
        """The state as the cell reads it: through ``Q_state`` when there is one."""
        if "state" in self.lane_types:
            return self.quantize_point("state", h, self.state.frac)
        return h, self.state.frac

    def error_bound_lanes(self, errs) -> float:
        # The framework's arithmetic is reproduced exactly: no error of its own on an exact input.
        return 0.0 if errs[0] == 0 else math.inf

    products = 0  # products of two signals per unit and step

    def cell_multipliers(self) -> int:
        """Multipliers of one cell: the elementwise products of two signals (the constant weights
        are adder graphs, :mod:`rtlgen.plan.recurrent`)."""
        return self.products * self.units

    def schedule_costs(self, steps: int, cell_latency: int = 1) -> dict:
        """Cells, multipliers, latency and interval of both schedules for ``steps`` time steps of
        a cell pipelined over ``cell_latency`` cycles."""
        cell, n = self.cell_multipliers(), steps * cell_latency
        return {
            "unrolled": {"cells": steps, "multipliers": steps * cell, "latency": n, "interval": 1},
            "reused": {"cells": 1, "multipliers": cell, "latency": n + 1, "interval": n},
        }

    def initial(self, n):
        z = np.zeros((n, self.units), dtype=np.int64)
        return (z, z.copy()) if self.cell is not None else (z,)

    def run_sequence(self, x, src, dst):
        """Every step of the cell over the sequence, from the zero state; the output steps cast to
        the output type."""
        x = int_array(x).reshape(len(x), -1)
        steps = self.steps_of(src)
        xf = src.type.frac
        st = self.initial(len(x))
        outs = []
        for t in range(steps):
            st = self.step(x[:, t * self.n_in : (t + 1) * self.n_in], xf, st)
            if self.return_sequences or t == steps - 1:
                outs.append(cast(st[0], self.state, dst.type))
        return int_array(np.concatenate(outs, axis=1))

    # -- error bound -------------------------------------------------------------------------------
    #
    # Per step, the largest magnitudes of the state (``h``, ``c``) and the bound on their error are
    # carried forward: pre-activations from the input's and state's magnitudes and errors (float
    # weights quantized included), activations by their Lipschitz constant and own error, products
    # of two inexact values by ``|a| e_b + |b| e_a + e_a e_b``, every cast by its rounding step.

    def error_bound(self, ctx, node, errs):
        from ._bounds import rounding_error

        if self.lane_types is not None:
            return self.error_bound_lanes(errs)
        g = ctx.graph
        src, dst = g.tensors[node.inputs[0]], g.tensors[node.outputs[0]]
        e_x = errs[0]
        lo, hi = ctx.bounds[node.inputs[0]]
        lane = np.maximum(np.abs(np.asarray(lo, dtype=np.float64)), np.abs(np.asarray(hi, dtype=np.float64)))
        x_mag = float(min(lane.max(initial=0.0) * 2.0**-src.type.frac * src.scale, ctx.mag[node.inputs[0]]))
        dw, du, db = ctx.weights.get(node.name, (None, None, None))
        W = np.abs(self.kernel.astype(np.float64)) * 2.0**-self.kernel_frac
        U = np.abs(self.recurrent_kernel.astype(np.float64)) * 2.0**-self.recurrent_frac
        B = np.abs(self.bias.astype(np.float64)) * 2.0**-self.bias_frac
        if self.recurrent_bias is not None:
            B = B + np.abs(self.recurrent_bias.astype(np.float64)) * 2.0**-self.bias_frac
        acc_round = rounding_error(None, self.accum)
        acc_top = max(abs(float(self.accum.min)), abs(float(self.accum.max)))

        def pre(e_h, h_mag):
            """Per gate lane: the pre-activations' error bound and largest magnitude."""
            ez = W.sum(axis=0) * e_x + U.sum(axis=0) * e_h + acc_round
            zm = W.sum(axis=0) * x_mag + U.sum(axis=0) * h_mag + B
            if dw is not None:
                ez = ez + dw.sum(axis=0) * (x_mag + e_x) + du.sum(axis=0) * (h_mag + e_h) + db
            return ez, np.minimum(zm, acc_top)

        s = {"e_h": 0.0, "e_c": 0.0, "h": 0.0, "c": 0.0}
        worst = 0.0
        for _ in range(self.steps_of(src)):
            ez, zm = pre(s["e_h"], s["h"])
            self.step_error(s, ez, zm)
            if not math.isfinite(s["e_h"]):
                return math.inf  # the state's error outgrew every bound: no bound against the model
            worst = max(worst, s["e_h"])
        out = (worst if self.return_sequences else s["e_h"]) + rounding_error(self.state.frac, dst.type)
        return float(out)

    def _act(self, spec, ez, zm, src=None):
        """Error bound and magnitude of an activation over lanes with errors ``ez`` and magnitudes ``zm``."""
        src = src or self.accum
        e, reach = float(np.max(ez)), float(np.max(zm))
        L, own, mag = _activation_error(spec, src, self.table, e, reach)
        return L * e + own, mag


@register_op
@dataclass
class SimpleRNN(Recurrent):
    """Keras' SimpleRNN: ``h = act(x W + h U + b)``."""

    gates = 1

    def golden(self, x, src, dst):
        return self.run_sequence(x, src, dst)

    def step(self, x, xf, state):
        (h,) = state
        if self.lane_types is not None:
            hq, hf = self.read_state(h)
            m, f = exact_activation(self.activation, *self.quantize_point("pre", *self._pre(x, xf, hq, 0, hf=hf)))
            return (cast(m, f, self.state),)
        a = apply_activation(self.activation, self._z(x, xf, h, 0), self.accum, self.table)
        return (cast(a, self.table, self.state),)

    def step_error(self, s, ez, zm):
        from ._bounds import rounding_error

        e, m = self._act(self.activation, ez, zm)
        top = max(abs(float(self.state.min)), abs(float(self.state.max)))
        s["e_h"], s["h"] = e + rounding_error(self.table.frac, self.state), min(top, m)


@register_op
@dataclass
class LSTM(Recurrent):
    """LSTM with gates in Keras' order ``i, f, c, o``; the cell state has its own type ``cell``."""

    gates = 4
    products = 3

    def golden(self, x, src, dst):
        return self.run_sequence(x, src, dst)

    def verify(self, name, ins, out):
        super().verify(name, ins, out)
        if self.cell is None or self.cell_activation is None or self.recurrent_activation is None:
            raise GraphError(f"node {name!r}: an LSTM needs a cell type, a cell activation and a recurrent activation")

    def step(self, x, xf, state):
        h, c = state
        if self.lane_types is not None:
            return self._step_lanes(x, xf, h, c)
        tt = self.table
        i, f, o = (apply_activation(self.recurrent_activation, self._z(x, xf, h, k), self.accum, tt) for k in (0, 1, 3))
        g = apply_activation(self.activation, self._z(x, xf, h, 2), self.accum, tt)
        fc = align(f * c, tt.frac + self.cell.frac, 2 * tt.frac + self.cell.frac)
        ig = align(i * g, 2 * tt.frac, 2 * tt.frac + self.cell.frac)
        c = cast(fc + ig, 2 * tt.frac + self.cell.frac, self.cell)
        a = apply_activation(self.cell_activation, c, self.cell, tt)
        h = cast(o * a, 2 * tt.frac, self.state)
        return h, c

    def _step_lanes(self, x, xf, h, c):
        """QKeras's QLSTM cell with per-lane quantizers: ``Q_state`` reads both states, ``Q_cand``
        follows the activation of the candidate and of the new cell state (one activation
        quantizer in QKeras), the products and sums are exact."""
        u = self.units
        hq, hf = self.read_state(h)
        cq, cf = self.quantize_point("state", c, self.cell.frac)
        gates = [exact_activation(self.recurrent_activation, *self._pre(x, xf, hq, k, hf=hf)) for k in (0, 1, 3)]
        f = max(p[1] for p in gates)
        g3, fg = self.quantize_point("gate", np.concatenate([align(m, pf, f) for m, pf in gates], axis=1), f)
        i, fo, o = g3[:, :u], g3[:, u : 2 * u], g3[:, 2 * u :]
        g, fc = self.quantize_point("cand", *exact_activation(self.activation, *self._pre(x, xf, hq, 2, hf=hf)))
        fn = fg + max(cf, fc)
        c_new = align(fo * cq, fg + cf, fn) + align(i * g, fg + fc, fn)
        a, fa = self.quantize_point("cand", *exact_activation(self.cell_activation, c_new, fn))
        return cast(o * a, fg + fa, self.state), cast(c_new, fn, self.cell)

    def step_error(self, s, ez, zm):
        from ._bounds import rounding_error

        u = self.units
        gate = [self._act(self.recurrent_activation, ez[k * u : (k + 1) * u], zm[k * u : (k + 1) * u]) for k in range(4)]
        (e_i, m_i), (e_f, m_f), _, (e_o, m_o) = gate
        e_g, m_g = self._act(self.activation, ez[2 * u : 3 * u], zm[2 * u : 3 * u])
        c_top = max(abs(float(self.cell.min)), abs(float(self.cell.max)))
        e_c, m_c = s["e_c"], s["c"]
        e_c = _prod_error(m_f, e_f, m_c, e_c) + _prod_error(m_i, e_i, m_g, e_g) + rounding_error(2 * self.table.frac + self.cell.frac, self.cell)
        m_c = min(c_top, m_f * s["c"] + m_i * m_g)
        e_a, m_a = self._act(self.cell_activation, np.array([e_c]), np.array([m_c]), self.cell)
        s["e_c"], s["c"] = e_c, m_c
        top = max(abs(float(self.state.min)), abs(float(self.state.max)))
        s["e_h"] = _prod_error(m_o, e_o, m_a, e_a) + rounding_error(2 * self.table.frac, self.state)
        s["h"] = min(top, m_o * m_a)


@register_op
@dataclass
class GRU(Recurrent):
    """GRU with gates in Keras' order ``z, r, h`` (ONNX's ``zrh``); ``reset_after`` as Keras'
    (``linear_before_reset`` in ONNX)."""

    gates = 3
    products = 3

    def golden(self, x, src, dst):
        return self.run_sequence(x, src, dst)

    def verify(self, name, ins, out):
        super().verify(name, ins, out)
        if self.recurrent_activation is None:
            raise GraphError(f"node {name!r}: a GRU needs a recurrent activation")

    def step(self, x, xf, state):
        (h,) = state
        if self.lane_types is not None:
            return self._step_lanes(x, xf, h)
        tt, acc = self.table, self.accum
        z, r = (apply_activation(self.recurrent_activation, self._z(x, xf, h, k), acc, tt) for k in (0, 1))
        if self.reset_after:
            mx, fx = self._pre(x, xf, None, 2)
            rb = self.recurrent_bias
            mh, fh = self._pre(None, xf, h, 2, bias=rb if rb is not None else None)
            hz = cast(mh, fh, acc)
            f = max(fx, tt.frac + acc.frac)
            pre = align(mx, fx, f) + align(r * hz, tt.frac + acc.frac, f)
            hh_z = cast(pre, f, acc)
        else:
            rh = cast(r * h, tt.frac + self.state.frac, self.state)
            mx, fx = self._pre(x, xf, None, 2)
            mh, fh = self._pre(None, xf, rh, 2, bias=None)
            f = max(fx, fh)
            hh_z = cast(align(mx, fx, f) + align(mh, fh, f), f, acc)
        hh = apply_activation(self.activation, hh_z, acc, tt)
        one = 1 << tt.frac
        fs = tt.frac + self.state.frac
        f = max(fs, 2 * tt.frac)
        v = align(z * h, fs, f) + align((one - z) * hh, 2 * tt.frac, f)
        return (cast(v, f, self.state),)

    def _step_lanes(self, x, xf, h):
        """HGQ2's QGRU cell (see the module docstring), exactly."""
        u = self.units
        hq, hf = self.read_state(h)
        zr = [self._pre(x, xf, hq, k, hf=hf) for k in (0, 1)]
        f = max(p[1] for p in zr)
        pre = np.concatenate([align(m, pf, f) for m, pf in zr], axis=1)
        g, fg = self.quantize_point("gate", *exact_activation(self.recurrent_activation, pre, f))
        z, r = g[:, :u], g[:, u:]
        if self.reset_after:
            rb = self.recurrent_bias
            rh, fr = self.quantize_point("reset", *self._pre(None, xf, hq, 2, bias=rb if rb is not None else None, hf=hf))
            rec, frec = r * rh, fg + fr
        else:
            rh, fr = self.quantize_point("reset", r * hq, fg + hf)
            rec, frec = self._pre(None, xf, rh, 2, bias=None, hf=fr)
        mx, fx = self._pre(x, xf, None, 2)
        f = max(fx, frec)
        hh, fc = self.quantize_point("cand", *exact_activation(self.activation, align(mx, fx, f) + align(rec, frec, f), f))
        fm = max(hf, fc)
        v = z * align(hq, hf, fm) + ((1 << fg) - z) * align(hh, fc, fm)
        return (cast(v, fg + fm, self.state),)

    def step_error(self, s, ez, zm):
        from ._bounds import rounding_error

        u = self.units
        (e_z, m_z), (e_r, m_r) = (self._act(self.recurrent_activation, ez[k * u : (k + 1) * u], zm[k * u : (k + 1) * u]) for k in (0, 1))
        e_h, m_h = s["e_h"], s["h"]
        zh, eh = zm[2 * u :], ez[2 * u :]
        Uh = np.abs(self.recurrent_kernel[:, 2 * u :].astype(np.float64)).sum(axis=0) * 2.0**-self.recurrent_frac
        if self.reset_after:
            # r * cast(h U_h + b_h): the recurrent part's magnitude times the gate's error.
            rb = 0.0 if self.recurrent_bias is None else np.abs(self.recurrent_bias[2 * u :].astype(np.float64)) * 2.0**-self.bias_frac
            ez_h = eh + e_r * (Uh * m_h + rb + eh) + m_r * rounding_error(None, self.accum) + rounding_error(None, self.accum)
        else:
            ez_h = eh + Uh * (e_r * (m_h + e_h) + rounding_error(None, self.state))
        e_a, m_a = self._act(self.activation, ez_h, zh)
        top = max(abs(float(self.state.min)), abs(float(self.state.max)))
        lo, hi = _range(self.recurrent_activation, self.table)
        if lo >= 0 and hi <= 1:
            # z h + (1 - z) hh is a convex combination (1 - z is exact from z).
            s["e_h"] = max(e_h, e_a) + e_z * (m_h + m_a) + rounding_error(None, self.state)
            s["h"] = min(top, max(m_h, m_a))
        else:
            s["e_h"] = _prod_error(m_z, e_z, m_h, e_h) + _prod_error(1 + m_z, e_z, m_a, e_a) + rounding_error(None, self.state)
            s["h"] = min(top, m_z * m_h + (1 + m_z) * m_a)


def _dyadic(v) -> bool:
    return v is None or Fraction(v).denominator & (Fraction(v).denominator - 1) == 0


def _exact_kind(spec: dict) -> str | None:
    """``"linear"``, ``"relu"`` or ``"affine"`` (``clip(x * slope + bias, lower, upper)``, slope a
    power of two, the rest dyadic: QKeras's hard_sigmoid) when the spec is one of them, exact on any
    grid; else None."""
    if spec.get("kind") != "pwl":
        return None
    slope, bias = spec["slope_hi"], spec["bias_hi"]
    if spec.get("lower") is None and spec.get("upper") is None and (bias, spec["bias_lo"], spec["knot"]) == (0.0, 0.0, 0.0) and slope == 1.0:
        return {1.0: "linear", 0.0: "relu"}.get(spec["slope_lo"])
    f = Fraction(slope)
    pow2 = f > 0 and f.numerator & (f.numerator - 1) == 0 and f.denominator & (f.denominator - 1) == 0
    if pow2 and (slope, bias) == (spec["slope_lo"], spec["bias_lo"]) and all(_dyadic(spec.get(k)) for k in ("bias_hi", "lower", "upper")):
        return "affine"
    return None


def is_relu(spec: dict) -> bool:
    return _exact_kind(spec) == "relu"


def exact_activation(spec: dict, m, frac: int) -> tuple:
    """``(mantissas, frac)`` of a linear, relu or clipped power-of-two affine activation on exact
    mantissas at ``frac`` fractional bits, exactly."""
    kind = _exact_kind(spec)
    if kind == "relu":
        return np.maximum(m, 0), frac
    if kind == "linear":
        return m, frac
    m, f = affine(m, frac, [spec["slope_hi"], spec["bias_hi"]])
    for bound, pick in (("lower", np.maximum), ("upper", np.minimum)):
        if spec.get(bound) is not None:
            b = Fraction(spec[bound])
            bf = b.denominator.bit_length() - 1
            if bf > f:
                m, f = align(m, f, bf), bf
            m = pick(m, int(b * 2**f))
    return m, f


def affine(m, frac: int, aff) -> tuple:
    """``(mantissas, frac)`` of ``m * scale + shift`` for ``aff = [scale, shift]`` (``None``: ``m``),
    exactly: the scale is a power of two and the shift dyadic."""
    if aff is None:
        return m, frac
    scale, shift = Fraction(aff[0]), Fraction(aff[1])
    e = scale.numerator.bit_length() - scale.denominator.bit_length()  # scale = 2**e
    f = frac - e
    if f < 0:
        m, f = align(m, 0, -f), 0
    sf = max(shift.denominator.bit_length() - 1, f)
    return align(m, f, sf) + int(shift * 2**sf), sf


def _range(spec: dict, dst: FixedType) -> tuple[float, float]:
    """Smallest and largest output of an activation spec (its table, or its clipping bounds)."""
    if spec["kind"] == "lut":
        t = np.asarray(spec["table"], dtype=np.float64) * 2.0**-dst.frac
        return float(t.min()), float(t.max())
    lo = -math.inf if spec.get("lower") is None else float(spec["lower"])
    hi = math.inf if spec.get("upper") is None else float(spec["upper"])
    return lo, hi


def _prod_error(ma: float, ea: float, mb: float, eb: float) -> float:
    """Error of ``a * b`` from bounds on ``|a|``, ``|b|`` (built values) and their errors."""
    return ma * eb + mb * ea + ea * eb
