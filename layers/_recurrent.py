"""Recurrent layers (SimpleRNN, LSTM, GRU) in two schedules.

The cell (one time step) is combinational logic that computes exactly what
:mod:`rtlgen.ir.ops.recurrent` specifies: constant products (shifts where the weight is a power of
two), exact sums cast once to the accumulator, activation tables as asynchronous ROM reads (one
ROM per table, shared by every lane and step), clipped affine activations, exact products of two
signals cast to the state and cell types. With the op's ``lane_types`` (HGQ2, QKeras) the cell is
:meth:`_Cell.step_lanes` instead: exact sums and products, and the framework's quantizers lane by lane.

* ``"unrolled"``: one cell per time step with a register stage after each; ``latency`` = steps,
  ``initiation_interval`` = 1 (a new sequence every cycle).
* ``"reused"``: one cell and a counter over the time steps; the sequence is latched on accept,
  ``initiation_interval`` = steps, ``latency`` = steps + 1.
"""

from __future__ import annotations

from fractions import Fraction

from amaranth.hdl import Const, Module, Mux, Signal, signed
from amaranth.lib.memory import Memory

from rtlgen.fixed import FixedType
from rtlgen.ir.ops.recurrent import GRU, LSTM, SimpleRNN, activation_op, is_relu

from ._activation import PwlLayer
from ._common import Layer, shape_of
from ._dense import _product, _select
from ._elementwise import requantize
from ._registry import register

__all__ = ["RecurrentLayer"]


def _typed(v, frac: int) -> FixedType:
    s = v.shape()
    return FixedType(s.width, s.width - frac, s.signed)


def _cast(v, frac: int, dst: FixedType):
    return requantize(v, _typed(v, frac), dst)


class _Wires:
    """Names intermediate values: an expression used more than once is then computed once in
    the Verilog instead of being repeated at every use."""

    def __init__(self, m, prefix: str):
        self.m, self.prefix, self.n = m, prefix, 0

    def __call__(self, v):
        s = Signal(v.shape(), name=f"{self.prefix}w{self.n}")
        self.n += 1
        self.m.d.comb += s.eq(v)
        return s


def _align(v, frac: int, to: int):
    return v << (to - frac) if to > frac else v


class _Cell:
    """Builds the cell's logic into a module; tables are shared ROMs created on first use."""

    def __init__(self, op, in_type: FixedType):
        self.op, self.in_type = op, in_type
        self.roms: dict = {}
        self.w = None

    def _act(self, m, spec, key, x, src: FixedType, dst: FixedType):
        a = activation_op(spec)
        x = self.w(x)
        if spec["kind"] == "pwl":
            c = a.constants((1,))
            layer = PwlLayer(src, dst, 1, const_frac=a.const_type.frac, **c)
            layer._MustUse__silence = True
            return self.w(layer.lane(x, 0))
        if key not in self.roms:
            table = [int(v) for v in a.table]
            mem = Memory(shape=shape_of(dst), depth=len(table), init=table)
            m.submodules[f"rom_{key}"] = mem
            self.roms[key] = mem
        mem = self.roms[key]
        n = len(a.table)
        q = x >> a.shift if a.shift else x
        d = q - a.offset if a.offset else q
        if (src.min_mantissa >> a.shift) - a.offset < 0:
            d = Mux(d < 0, 0, d)
        if (src.max_mantissa >> a.shift) - a.offset > n - 1:
            d = Mux(d > n - 1, n - 1, d)
        port = mem.read_port(domain="comb")
        m.d.comb += port.addr.eq(d.as_unsigned()[: max((n - 1).bit_length(), 1)])
        return self.w(port.data)

    def _pre(self, x, h, k: int, *, bias=True, hf=None):
        """Exact pre-activation of gate ``k``: per lane ``(value, frac)`` (``h`` at ``hf``
        fractional bits, the state's by default)."""
        op = self.op
        u = op.units
        xf, sf = self.in_type.frac, op.state.frac if hf is None else hf
        out = []
        for j in range(u):
            col = k * u + j
            terms = []
            if x is not None:
                terms.append(([_product(x[i], int(op.kernel[i, col])) for i in range(len(x))], xf + op.kernel_frac))
            if h is not None:
                terms.append(([_product(h[i], int(op.recurrent_kernel[i, col])) for i in range(u)], sf + op.recurrent_frac))
            b = 0
            if bias is True:
                b = int(op.bias[col])
            elif bias is not None:
                b = int(bias[col])
            f = max([t[1] for t in terms] + ([op.bias_frac] if b else []))
            acc = [_align(p, pf, f) for ps, pf in terms for p in ps if p is not None]
            if b:
                acc.append(Const(b << (f - op.bias_frac)))
            out.append((sum(acc[1:], acc[0]) if acc else Const(0, 2), f))
        return out

    def _c(self, args):
        """A cast of a named value, itself named."""
        v, frac, dst = args
        return self.w(_cast(self.w(v), frac, dst))

    def _z(self, x, h, k):
        return [self._c((v, f, self.op.accum)) for v, f in self._pre(x, h, k)]

    def step(self, m, x, state, prefix):
        """New state values from the input lanes ``x`` and the state (a tuple of lane lists)."""
        self.w = _Wires(m, prefix)
        w = self.w
        x = [v if v is None else w(v) for v in x]
        state = tuple([w(v) for v in vs] for vs in state)
        op = self.op
        if op.lane_types is not None:
            return self.step_lanes(x, state)
        acc, tt = op.accum, op.table
        if isinstance(op, SimpleRNN):
            (h,) = state
            a = [self._act(m, op.activation, "act", z, acc, tt) for z in self._z(x, h, 0)]
            return ([self._c((v, tt.frac, op.state)) for v in a],)
        if isinstance(op, LSTM):
            h, c = state
            i, f, o = ([self._act(m, op.recurrent_activation, "ract", z, acc, tt) for z in self._z(x, h, k)] for k in (0, 1, 3))
            g = [self._act(m, op.activation, "act", z, acc, tt) for z in self._z(x, h, 2)]
            F = 2 * tt.frac + op.cell.frac
            c2 = [
                self._c((_align(f[j] * c[j], tt.frac + op.cell.frac, F) + _align(i[j] * g[j], 2 * tt.frac, F), F, op.cell))
                for j in range(op.units)
            ]
            a = [self._act(m, op.cell_activation, "cact", v, op.cell, tt) for v in c2]
            h2 = [self._c((o[j] * a[j], 2 * tt.frac, op.state)) for j in range(op.units)]
            return h2, c2
        (h,) = state
        z, r = ([self._act(m, op.recurrent_activation, "ract", v, acc, tt) for v in self._z(x, h, k)] for k in (0, 1))
        u = op.units
        if op.reset_after:
            px = self._pre(x, None, 2)
            ph = self._pre(None, h, 2, bias=op.recurrent_bias)
            pre = []
            for j in range(u):
                (mx, fx), (mh, fh) = px[j], ph[j]
                hz = self._c((mh, fh, acc))
                F = max(fx, tt.frac + acc.frac)
                pre.append(self._c((_align(mx, fx, F) + _align(r[j] * hz, tt.frac + acc.frac, F), F, acc)))
        else:
            rh = [self._c((r[j] * h[j], tt.frac + op.state.frac, op.state)) for j in range(u)]
            px = self._pre(x, None, 2)
            ph = self._pre(None, rh, 2, bias=None)
            pre = []
            for j in range(u):
                (mx, fx), (mh, fh) = px[j], ph[j]
                F = max(fx, fh)
                pre.append(self._c((_align(mx, fx, F) + _align(mh, fh, F), F, acc)))
        hh = [self._act(m, op.activation, "act", v, acc, tt) for v in pre]
        one = Const(1 << tt.frac, signed(tt.width + 2))
        fs = tt.frac + op.state.frac
        F = max(fs, 2 * tt.frac)
        h2 = [self._c((_align(z[j] * h[j], fs, F) + _align((one - z[j]) * hh[j], 2 * tt.frac, F), F, op.state)) for j in range(u)]
        return (h2,)


    # -- per-lane quantizers (HGQ2, QKeras): the same arithmetic as the op's golden model ----------

    def _quantize(self, point, vals):
        """Quantizer ``point`` on lane values ``[(value, frac)]``: ``(values, frac)`` as
        :meth:`rtlgen.ir.ops.recurrent.Recurrent.quantize_point`."""
        if point not in self.op.lane_types:
            frac = max(f for _, f in vals)
            return [_align(v, f, frac) for v, f in vals], frac  # no quantizer: exact
        q = self.op.lane_types[point]
        types = [FixedType.parse(t) if t is not None else None for t in q["lanes"]]
        f = max([t.frac for t in types if t is not None] + [0])
        out = [Const(0, 1) if t is None else _align(self._c((v, vf, t)), t.frac, f) for (v, vf), t in zip(vals, types)]
        if q.get("affine") is None:
            return [self.w(v) for v in out], f
        scale, shift = Fraction(q["affine"][0]), Fraction(q["affine"][1])
        f -= scale.numerator.bit_length() - scale.denominator.bit_length()  # scale = 2**e: the grid moves
        if f < 0:
            out, f = [v << -f for v in out], 0
        sf = max(shift.denominator.bit_length() - 1, f)
        return [self.w(_align(v, f, sf) + Const(int(shift * 2**sf))) for v in out], sf

    def _exact_act(self, spec, v, frac):
        """``(value, frac)`` of :func:`rtlgen.ir.ops.recurrent.exact_activation`."""
        if is_relu(spec):
            return (self.w(Mux(v < 0, 0, v)) if v.shape().signed else v), frac
        if spec["slope_lo"] == 1.0 and spec["bias_hi"] == 0.0 and spec.get("lower") is None and spec.get("upper") is None:
            return v, frac  # linear
        slope, bias = Fraction(spec["slope_hi"]), Fraction(spec["bias_hi"])
        f = frac - (slope.numerator.bit_length() - slope.denominator.bit_length())
        if f < 0:
            v, f = v << -f, 0
        bf = max(bias.denominator.bit_length() - 1, f)
        v = self.w(_align(v, f, bf) + Const(int(bias * 2**bf)))
        for key in ("lower", "upper"):
            if spec.get(key) is not None:
                b = Fraction(spec[key])
                if b.denominator.bit_length() - 1 > bf:
                    v, bf = _align(v, bf, b.denominator.bit_length() - 1), b.denominator.bit_length() - 1
                c = Const(int(b * 2**bf))
                v = self.w(Mux(v < c, c, v) if key == "lower" else Mux(v > c, c, v))
        return v, bf

    def _read_state(self, h):
        op = self.op
        if "state" in op.lane_types:
            return self._quantize("state", [(v, op.state.frac) for v in h])
        return h, op.state.frac

    def step_lanes(self, x, state):
        """The HGQ2 / QKeras cell with per-lane quantizers (see :mod:`rtlgen.ir.ops.recurrent`)."""
        op = self.op
        u = op.units
        hq, hf = self._read_state(state[0])
        if isinstance(op, SimpleRNN):
            a, f = self._quantize("pre", self._pre(x, hq, 0, hf=hf))
            return ([self._c(self._exact_act(op.activation, v, f) + (op.state,)) for v in a],)
        if isinstance(op, LSTM):
            return self._lstm_lanes(x, hq, hf, state[1])
        zr = self._pre(x, hq, 0, hf=hf) + self._pre(x, hq, 1, hf=hf)
        g, fg = self._quantize("gate", [self._exact_act(op.recurrent_activation, self.w(v), f) for v, f in zr])
        z, r = g[:u], g[u:]
        if op.reset_after:
            rh, fr = self._quantize("reset", self._pre(None, hq, 2, bias=op.recurrent_bias, hf=hf))
            rec = [(self.w(r[j] * rh[j]), fg + fr) for j in range(u)]
        else:
            rh, fr = self._quantize("reset", [(self.w(r[j] * hq[j]), fg + hf) for j in range(u)])
            rec = self._pre(None, rh, 2, bias=None, hf=fr)
        px = self._pre(x, None, 2)
        cand = []
        for (mx, fx), (mr, frec) in zip(px, rec):
            f = max(fx, frec)
            cand.append(self._exact_act(op.activation, self.w(_align(mx, fx, f) + _align(mr, frec, f)), f))
        hh, fc = self._quantize("cand", cand)
        fm = max(hf, fc)
        one = Const(1 << fg, signed(fg + 2))
        out = []
        for j in range(u):
            v = z[j] * _align(hq[j], hf, fm) + (one - z[j]) * _align(hh[j], fc, fm)
            out.append(self._c((v, fg + fm, op.state)))
        return (out,)

    def _lstm_lanes(self, x, hq, hf, c):
        op = self.op
        u = op.units
        cq, cf = self._quantize("state", [(v, op.cell.frac) for v in c])
        pre = [p for k in (0, 1, 3) for p in self._pre(x, hq, k, hf=hf)]
        g3, fg = self._quantize("gate", [self._exact_act(op.recurrent_activation, self.w(v), f) for v, f in pre])
        i, fo, o = g3[:u], g3[u : 2 * u], g3[2 * u :]
        g, fc = self._quantize("cand", [self._exact_act(op.activation, self.w(v), f) for v, f in self._pre(x, hq, 2, hf=hf)])
        fn = fg + max(cf, fc)
        c_new = [self.w(_align(fo[j] * cq[j], fg + cf, fn) + _align(i[j] * g[j], fg + fc, fn)) for j in range(u)]
        a, fa = self._quantize("cand", [self._exact_act(op.cell_activation, v, fn) for v in c_new])
        h = [self._c((o[j] * a[j], fg + fa, op.state)) for j in range(u)]
        return h, [self._c((v, fn, op.cell)) for v in c_new]


class RecurrentLayer(Layer):
    """A SimpleRNN, LSTM or GRU over a whole sequence (``steps * n_in`` input lanes, time-major)
    in the op's ``schedule`` (see the module docstring for latency and interval)."""

    def __init__(self, op, in_type: FixedType, n_lanes: int, out_type: FixedType, n_out: int):
        self.op = op
        self.steps = n_lanes // op.n_in
        self.schedule = op.schedule
        super().__init__(in_type, n_lanes, out_type, n_out)

    @property
    def latency(self) -> int:
        return self.steps if self.schedule == "unrolled" else self.steps + 1

    @property
    def initiation_interval(self) -> int:
        return 1 if self.schedule == "unrolled" else self.steps

    @property
    def multipliers(self) -> int:
        cells = self.steps if self.schedule == "unrolled" else 1
        return cells * self.op.cell_multipliers()

    def _zero_state(self):
        op = self.op
        h = [Const(0, shape_of(op.state)) for _ in range(op.units)]
        return (h, [Const(0, shape_of(op.cell)) for _ in range(op.units)]) if op.cell is not None else (h,)

    def _state_signals(self, name):
        op = self.op
        h = [Signal(shape_of(op.state), name=f"{name}_h{j}") for j in range(op.units)]
        if op.cell is None:
            return (h,)
        return h, [Signal(shape_of(op.cell), name=f"{name}_c{j}") for j in range(op.units)]

    def _out(self, h):
        return [_cast(v, self.op.state.frac, self.out_type) for v in h]

    def elaborate(self, platform):
        m = Module()
        cell = _Cell(self.op, self.in_type)
        if self.schedule == "unrolled":
            self._unrolled(m, cell)
        else:
            self._reused(m, cell)
        return m

    def _unrolled(self, m, cell):
        T, F, u = self.steps, self.op.n_in, self.op.units
        seq = self.op.return_sequences
        x = [self.i.payload[k] for k in range(self.n_in)]
        valid = [Signal(name=f"valid{t}") for t in range(T)]
        enable = Signal()
        m.d.comb += [enable.eq(~valid[-1] | self.o.ready), self.i.ready.eq(enable), self.o.valid.eq(valid[-1])]
        with m.If(enable):
            m.d.sync += valid[0].eq(self.i.valid)
            for t in range(1, T):
                m.d.sync += valid[t].eq(valid[t - 1])
        state = self._zero_state()
        outs = []
        for t in range(T):
            state = cell.step(m, x[t * F : (t + 1) * F], state, f"t{t}_")
            regs = self._state_signals(f"s{t}")
            ys = [Signal(shape_of(self.out_type), name=f"s{t}_y{k}") for k in range(len(outs) + u)] if (seq or t == T - 1) else []
            rest = [Signal(shape_of(self.in_type), name=f"s{t}_x{k}") for k in range((t + 1) * F, T * F)]
            with m.If(enable):
                for rr, vv in zip(regs, state):
                    m.d.sync += [r.eq(v) for r, v in zip(rr, vv)]
                if ys:
                    new = outs + self._out(state[0])
                    m.d.sync += [y.eq(v) for y, v in zip(ys, new)]
                m.d.sync += [r.eq(x[(t + 1) * F + k]) for k, r in enumerate(rest)]
            state = regs
            outs = ys if seq else []
            x = [None] * ((t + 1) * F) + rest
            if t == T - 1:
                m.d.comb += [self.o.payload[k].eq(y) for k, y in enumerate(ys)]

    def _reused(self, m, cell):
        T, F, u = self.steps, self.op.n_in, self.op.units
        seq = self.op.return_sequences
        xs = [Signal(shape_of(self.in_type), name=f"x{k}") for k in range(self.n_in)]
        state = self._state_signals("st")
        ys = [Signal(shape_of(self.out_type), name=f"y{k}") for k in range(T * u if seq else 0)]
        out = [Signal(shape_of(self.out_type), name=f"out{k}") for k in range(self.n_out)]
        busy, last, out_free, advance = Signal(), Signal(), Signal(), Signal()
        cnt = Signal(range(max(T, 2)))
        m.d.comb += [
            last.eq(busy & (cnt == T - 1)),
            out_free.eq(~self.o.valid | self.o.ready),
            advance.eq(busy & (~last | out_free)),
            self.i.ready.eq(~busy | (last & out_free)),
        ]
        xt = [_select([xs[t * F + f] for t in range(T)], cnt) if T > 1 else xs[f] for f in range(F)]
        new = cell.step(m, xt, state, "cell_")
        h_out = self._out(new[0])
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(advance):
            m.d.sync += cnt.eq(cnt + 1)
            for rr, vv in zip(state, new):
                m.d.sync += [r.eq(v) for r, v in zip(rr, vv)]
            if seq:
                for t in range(T - 1):
                    with m.If(cnt == t):
                        m.d.sync += [ys[t * u + j].eq(h_out[j]) for j in range(u)]
            with m.If(last):
                final = ys[: (T - 1) * u] + h_out if seq else h_out
                m.d.sync += [o.eq(v) for o, v in zip(out, final)]
                m.d.sync += [self.o.valid.eq(1), busy.eq(0), cnt.eq(0)]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [x.eq(self.i.payload[k]) for k, x in enumerate(xs)]
            m.d.sync += [busy.eq(1), cnt.eq(0)]
            for rr in state:
                m.d.sync += [r.eq(0) for r in rr]
        m.d.comb += [self.o.payload[k].eq(o) for k, o in enumerate(out)]


@register(SimpleRNN, LSTM, GRU)
def _recurrent_factory(op, inputs, output):
    src = inputs[0]
    return RecurrentLayer(op, src.type, src.size, output.type, output.size)
