"""Recurrent layers (SimpleRNN, LSTM, GRU) in two schedules.

The cell (one time step) computes exactly what :mod:`rtlgen.ir.ops.recurrent` specifies, as a
pipeline: the input and recurrent products of every gate are one constant matrix-vector product,
an adder graph with a register every few adder levels (:mod:`rtlgen.plan.recurrent`); then the
pre-activations cast to the accumulator, activation tables as asynchronous ROM reads (in the
Verilog one module per table, instantiated by every lookup) or clipped affine activations, and the exact products of two
signals cast to the state and cell types, with registers between the elementwise products. The
cell takes ``cell_latency`` cycles from ``(x, state)`` to the registered new state. With the op's
``lane_types`` (HGQ2, QKeras quantizers per lane) the cell is :meth:`_Cell.step_lanes` instead:
combinational (``cell_latency`` 1), exact sums and constant products, and the framework's
quantizers lane by lane.

* ``"unrolled"``: one cell per time step, all in one pipeline with one stall signal;
  ``latency`` = steps * cell_latency, ``initiation_interval`` = 1 (a new sequence every cycle).
* ``"reused"``: one cell and counters over the time steps and the cell's cycles; the sequence is
  latched on accept, ``initiation_interval`` = steps * cell_latency, ``latency`` = that + 1.
"""

from __future__ import annotations

from fractions import Fraction

from amaranth.hdl import Const, Module, Mux, Signal, signed
from amaranth.lib.memory import Memory

from rtlgen.fixed import FixedType
from rtlgen.ir.ops.recurrent import GRU, LSTM, SimpleRNN, activation_op, is_relu
from rtlgen.plan.recurrent import (
    ADDER_LEVELS,
    cell_graphs,
    cell_latency,
    cell_reuse,
    shared_multipliers,
)

from ._activation import PwlLayer
from ._adders import AdderGraphLayer
from ._common import Layer, drive_lanes, shape_of
from ._dense import DenseReuse, _acc_shape, _product, _select
from ._elementwise import requantize
from ._recurrent_text import _graph_out_width
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


class _Table(Layer):
    """``o = table[i]``, combinational: one activation lookup of the cell (``i`` the index).

    In the network's Verilog every lookup instantiates one module per table, written as text,
    so the table's values appear once however many lanes and steps read it, and each lookup is
    its own single-port ROM for synthesis (one shared multi-port ROM is costly to map)."""

    def __init__(self, table: list, bits: int, out_type: FixedType):
        self.table = table
        super().__init__(FixedType(bits, bits, False), 1, out_type, 1)

    def elaborate(self, platform):
        from ._verilog import TextModules

        if isinstance(platform, TextModules):
            return platform.instance(self, "table", self.verilog)
        m = Module()
        mem = Memory(shape=shape_of(self.out_type), depth=len(self.table), init=self.table)
        m.submodules.rom = mem
        port = mem.read_port(domain="comb")
        m.d.comb += [port.addr.eq(self.i.payload[0]), self.o.payload[0].eq(port.data)]
        m.d.comb += [self.o.valid.eq(self.i.valid), self.i.ready.eq(self.o.ready)]
        return m

    def verilog(self, name: str) -> str:
        """This lookup as a Verilog module ``name`` (the ports of every text module)."""
        b, w, n = self.in_type.width, self.out_type.width, len(self.table)
        init = [f"    rom[{k}] = {w}'h{v % (1 << w):x};" for k, v in enumerate(self.table)]
        return "\n".join([
            f"module {name}(clk, rst, i_valid, i_ready, i_payload, o_valid, o_ready, o_payload);",
            "  /*verilator no_inline_module*/",
            "  input clk;", "  input rst;", "  input i_valid;", "  output i_ready;", f"  input [{b - 1}:0] i_payload;",
            "  output o_valid;", "  input o_ready;", f"  output [{w - 1}:0] o_payload;",
            f"  reg [{w - 1}:0] rom [0:{n - 1}];", "  initial begin", *init, "  end",
            "  assign i_ready = o_ready;", "  assign o_valid = i_valid;", "  assign o_payload = rom[i_payload];",
            "endmodule", "",
        ])  # fmt: skip


class _Cell:
    """Builds the pipelined cell into a module; every activation lookup is a :class:`_Table`.

    ``enable``: the stall signal of the pipeline registers (the unrolled schedule), or None for
    registers that load every cycle (the reused schedule holds the cell's inputs instead).
    ``start(k)``: in the reused schedule, a signal that is high in the step's cycle ``k``; at a
    reuse factor above 1 it starts the products on shared multipliers."""

    def __init__(self, op, in_type: FixedType, enable=None, start=None):
        self.op, self.in_type, self.enable, self.start = op, in_type, enable, start
        self.graphs = cell_graphs(op, in_type)
        self.reuse = cell_reuse(op)
        self.latency = cell_latency(op, in_type)
        self.roms: dict = {}
        self.w = None
        self.m = None

    def reg(self, *groups):
        """Each group of values (lists) registered once; constants pass through. Datapath
        registers have no reset, so synthesis may map delay lines to shift-register LUTs."""
        out, stmts = [], []
        for vs in groups:
            row = []
            for v in vs:
                if isinstance(v, Const):
                    row.append(v)
                    continue
                r = Signal(v.shape(), name=f"{self.prefix}p{self.stage}_{self.nreg}", reset_less=True)
                self.nreg += 1
                stmts.append(r.eq(v))
                row.append(r)
            out.append(row)
        if self.enable is None:
            self.m.d.sync += stmts
        else:
            with self.m.If(self.enable):
                self.m.d.sync += stmts
        self.stage += 1
        return out

    def graph(self, k: int, lanes: list, *carry):
        """Product ``k``'s exact outputs for the input ``lanes``, and the ``carry`` groups delayed
        by as many registers as the product takes cycles."""
        cg = self.graphs[k]
        n_out = cg.weight.shape[1]
        w_in = max(len(v) + (not v.shape().signed) for v in lanes)
        t_in = FixedType(w_in, w_in, True)
        if self.reuse > 1:
            w_out = _acc_shape(cg.weight, t_in, cg.bias).width
            layer = DenseReuse(t_in, FixedType(w_out, w_out - cg.frac, True), weight=cg.weight, bias=cg.bias, reuse_factor=min(self.reuse, cg.weight.size))
            # The inputs hold from this cycle of the step on and the outputs stay registered
            # until the next step's product completes: one start per step, no handshake.
            valid, ready = self.start(self.stage), 1
        else:
            g = cg.graph
            w_out = _graph_out_width(cg)
            layer = AdderGraphLayer(t_in, FixedType(w_out, w_out - cg.frac, True), g, n_in=len(lanes), adder_levels=ADDER_LEVELS)
            # The graph's own handshake always holds data and stalls with the cell: its pipeline
            # is full from its first `stages` cycles on, long before the cell's output can stall.
            valid, ready = 1, 1 if self.enable is None else self.enable
        assert layer.latency == cg.stages(self.reuse)
        self.m.submodules[f"{self.prefix}graph{k}"] = layer
        drive_lanes(self.m, layer.i.payload, lanes)
        self.m.d.comb += [layer.i.valid.eq(valid), layer.o.ready.eq(ready)]
        for _ in range(layer.latency):
            carry = self.reg(*carry)
        return [self.w(layer.o.payload[o]) for o in range(n_out)], *carry

    def _act(self, spec, key, x, src: FixedType, dst: FixedType):
        a = activation_op(spec)
        x = self.w(x)
        if spec["kind"] == "pwl":
            c = a.constants((1,))
            layer = PwlLayer(src, dst, 1, const_frac=a.const_type.frac, **c)
            layer._MustUse__silence = True
            return self.w(layer.lane(x, 0))
        table = self.roms.get(key)
        if table is None:
            table = self.roms[key] = [int(v) for v in a.table]
        n = len(table)
        q = x >> a.shift if a.shift else x
        d = q - a.offset if a.offset else q
        if (src.min_mantissa >> a.shift) - a.offset < 0:
            d = Mux(d < 0, 0, d)
        if (src.max_mantissa >> a.shift) - a.offset > n - 1:
            d = Mux(d > n - 1, n - 1, d)
        bits = max((n - 1).bit_length(), 1)
        rom = _Table(table, bits, dst)
        self.m.submodules[f"{self.prefix}{key}{self.nrom}"] = rom
        self.nrom += 1
        self.m.d.comb += [rom.i.payload[0].eq(d.as_unsigned()[:bits]), rom.i.valid.eq(1), rom.o.ready.eq(1)]
        return self.w(rom.o.payload[0])

    def _c(self, v, frac, dst):
        """A cast of a named value, itself named."""
        return self.w(_cast(self.w(v), frac, dst))

    def _acts(self, spec, key, pre, frac):
        op = self.op
        return [self._act(spec, key, self._c(v, frac, op.accum), op.accum, op.table) for v in pre]

    def step(self, m, x, state, prefix, carry=()):
        """The new state from the input lanes ``x`` and the state (a tuple of lane lists), after
        ``cell_latency - 1`` registers (the caller registers it), and the ``carry`` lane lists
        delayed alike."""
        self.m, self.prefix, self.stage, self.nreg, self.nrom = m, prefix, 0, 0, 0
        self.w = w = _Wires(m, prefix)
        x = [w(v) for v in x]
        state = tuple([v if isinstance(v, Const) else w(v) for v in vs] for vs in state)
        op = self.op
        if op.lane_types is not None:
            return self.step_lanes(x, state), carry
        u, tt = op.units, op.table
        F = self.graphs[0].frac
        if isinstance(op, SimpleRNN):
            (h,) = state
            pre, *carry = self.graph(0, x + h, *carry)
            a = self._acts(op.activation, "act", pre, F)
            new = ([self._c(v, tt.frac, op.state) for v in a],)
        elif isinstance(op, LSTM):
            h, c = state
            pre, c, *carry = self.graph(0, x + h, c, *carry)
            i, f, o = (self._acts(op.recurrent_activation, "ract", pre[k * u : (k + 1) * u], F) for k in (0, 1, 3))
            g = self._acts(op.activation, "act", pre[2 * u : 3 * u], F)
            i, f, g, o, c, *carry = self.reg(i, f, g, o, c, *carry)
            Fc = 2 * tt.frac + op.cell.frac
            c2 = [self._c(_align(f[j] * c[j], tt.frac + op.cell.frac, Fc) + _align(i[j] * g[j], 2 * tt.frac, Fc), Fc, op.cell) for j in range(u)]
            c2, o, *carry = self.reg(c2, o, *carry)
            a = [self._act(op.cell_activation, "cact", v, op.cell, tt) for v in c2]
            new = ([self._c(o[j] * a[j], 2 * tt.frac, op.state) for j in range(u)], c2)
        else:
            new, carry = self._gru(x, state, carry, F)
        assert self.stage == self.latency - 1, (self.stage, self.latency)
        return new, carry

    def _gru(self, x, state, carry, F):
        op = self.op
        u, acc, tt = op.units, op.accum, op.table
        (h,) = state
        pre, h, *carry = self.graph(0, x + h, h, *carry)
        z, r = (self._acts(op.recurrent_activation, "ract", pre[k * u : (k + 1) * u], F) for k in (0, 1))
        mx = pre[2 * u : 3 * u]
        if op.reset_after:
            hz = [self._c(v, F, acc) for v in pre[3 * u :]]
            z, r, hz, mx, h, *carry = self.reg(z, r, hz, mx, h, *carry)
            Fp = max(F, tt.frac + acc.frac)
            cand = [self._c(_align(mx[j], F, Fp) + _align(r[j] * hz[j], tt.frac + acc.frac, Fp), Fp, acc) for j in range(u)]
        else:
            z, r, mx, h, *carry = self.reg(z, r, mx, h, *carry)
            rh = [self._c(r[j] * h[j], tt.frac + op.state.frac, op.state) for j in range(u)]
            z, rh, mx, h, *carry = self.reg(z, rh, mx, h, *carry)
            ph, z, mx, h, *carry = self.graph(1, rh, z, mx, h, *carry)
            F1 = self.graphs[1].frac
            Fp = max(F, F1)
            cand = [self._c(_align(mx[j], F, Fp) + _align(ph[j], F1, Fp), Fp, acc) for j in range(u)]
        hh = [self._act(op.activation, "act", v, acc, tt) for v in cand]
        z, hh, h, *carry = self.reg(z, hh, h, *carry)
        one = Const(1 << tt.frac, signed(tt.width + 2))
        fs = tt.frac + op.state.frac
        Fh = max(fs, 2 * tt.frac)
        h2 = [self._c(_align(z[j] * h[j], fs, Fh) + _align((one - z[j]) * hh[j], 2 * tt.frac, Fh), Fh, op.state) for j in range(u)]
        return (h2,), carry

    # -- per-lane quantizers (HGQ2, QKeras): the same arithmetic as the op's golden model ----------

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

    def _quantize(self, point, vals):
        """Quantizer ``point`` on lane values ``[(value, frac)]``: ``(values, frac)`` as
        :meth:`rtlgen.ir.ops.recurrent.Recurrent.quantize_point`."""
        if point not in self.op.lane_types:
            frac = max(f for _, f in vals)
            return [_align(v, f, frac) for v, f in vals], frac  # no quantizer: exact
        q = self.op.lane_types[point]
        types = [FixedType.parse(t) if t is not None else None for t in q["lanes"]]
        f = max([t.frac for t in types if t is not None] + [0])
        out = [Const(0, 1) if t is None else _align(self._c(v, vf, t), t.frac, f) for (v, vf), t in zip(vals, types)]
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
            return ([self._c(*self._exact_act(op.activation, v, f), op.state) for v in a],)
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
            out.append(self._c(v, fg + fm, op.state))
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
        h = [self._c(o[j] * a[j], fg + fa, op.state) for j in range(u)]
        return h, [self._c(v, fn, op.cell) for v in c_new]


class RecurrentLayer(Layer):
    """A SimpleRNN, LSTM or GRU over a whole sequence (``steps * n_in`` input lanes, time-major)
    in the op's ``schedule`` (see the module docstring for latency and interval)."""

    def __init__(self, op, in_type: FixedType, n_lanes: int, out_type: FixedType, n_out: int):
        self.op = op
        self.steps = n_lanes // op.n_in
        self.schedule = op.schedule
        self.cell_latency = cell_latency(op, in_type)
        super().__init__(in_type, n_lanes, out_type, n_out)

    @property
    def latency(self) -> int:
        cycles = self.steps * self.cell_latency
        return cycles if self.schedule == "unrolled" else cycles + 1

    @property
    def initiation_interval(self) -> int:
        return 1 if self.schedule == "unrolled" else self.steps * self.cell_latency

    @property
    def multipliers(self) -> int:
        cells = self.steps if self.schedule == "unrolled" else 1
        return cells * self.op.cell_multipliers() + shared_multipliers(self.op, self.in_type)

    @property
    def adders(self) -> int:
        if cell_reuse(self.op) > 1:
            return 0
        cells = self.steps if self.schedule == "unrolled" else 1
        return cells * sum(g.graph.n_adders for g in cell_graphs(self.op, self.in_type))

    def _zero_state(self):
        op = self.op
        h = [Const(0, shape_of(op.state)) for _ in range(op.units)]
        return (h, [Const(0, shape_of(op.cell)) for _ in range(op.units)]) if op.cell is not None else (h,)

    def _state_signals(self, name, **kw):
        op = self.op
        h = [Signal(shape_of(op.state), name=f"{name}_h{j}", **kw) for j in range(op.units)]
        if op.cell is None:
            return (h,)
        return h, [Signal(shape_of(op.cell), name=f"{name}_c{j}", **kw) for j in range(op.units)]

    def _out(self, h):
        return [_cast(v, self.op.state.frac, self.out_type) for v in h]

    def elaborate(self, platform):
        from ._verilog import TextModules

        if isinstance(platform, TextModules) and self.schedule == "unrolled" and self.op.lane_types is None:
            from ._recurrent_text import unrolled_verilog

            return platform.instance(self, "rnn", lambda name: unrolled_verilog(self, platform, name))
        m = Module()
        if self.schedule == "unrolled":
            self._unrolled(m)
        else:
            self._reused(m)
        return m

    def _unrolled(self, m):
        T, F, L = self.steps, self.op.n_in, self.cell_latency
        seq = self.op.return_sequences
        x = [self.i.payload[k] for k in range(self.n_in)]
        valid = [Signal(name=f"valid{s}") for s in range(T * L)]
        enable = Signal()
        m.d.comb += [enable.eq(~valid[-1] | self.o.ready), self.i.ready.eq(enable), self.o.valid.eq(valid[-1])]
        with m.If(enable):
            m.d.sync += valid[0].eq(self.i.valid)
            for s in range(1, T * L):
                m.d.sync += valid[s].eq(valid[s - 1])
        cell = _Cell(self.op, self.in_type, enable)
        state = self._zero_state()
        outs = []
        for t in range(T):
            # The later steps' inputs and the earlier steps' outputs travel along the pipeline.
            new, (rest, outs) = cell.step(m, x[:F], state, f"t{t}_", (x[F:], outs))
            ys = outs + self._out(new[0]) if (seq or t == T - 1) else []
            regs = self._state_signals(f"s{t}", reset_less=True)
            ys_r = [Signal(shape_of(self.out_type), name=f"s{t}_y{k}", reset_less=True) for k in range(len(ys))]
            rest_r = [Signal(v.shape(), name=f"s{t}_x{k}", reset_less=True) for k, v in enumerate(rest)]
            with m.If(enable):
                for rr, vv in zip(regs, new):
                    m.d.sync += [r.eq(v) for r, v in zip(rr, vv)]
                m.d.sync += [r.eq(v) for r, v in zip(ys_r + rest_r, ys + rest)]
            state, outs, x = regs, ys_r, rest_r
        drive_lanes(m, self.o.payload, outs)

    def _reused(self, m):
        T, F, u, L = self.steps, self.op.n_in, self.op.units, self.cell_latency
        seq = self.op.return_sequences
        xs = [Signal(shape_of(self.in_type), name=f"x{k}") for k in range(self.n_in)]
        state = self._state_signals("st")
        ys = [Signal(shape_of(self.out_type), name=f"y{k}") for k in range(T * u if seq else 0)]
        out = [Signal(shape_of(self.out_type), name=f"out{k}") for k in range(self.n_out)]
        busy, done, last, out_free, advance = Signal(), Signal(), Signal(), Signal(), Signal()
        cnt = Signal(range(max(T, 2)))
        phase = Signal(range(max(L, 2)))
        m.d.comb += [
            done.eq(busy & (phase == L - 1)),  # the cell's result for step cnt is valid
            last.eq(done & (cnt == T - 1)),
            out_free.eq(~self.o.valid | self.o.ready),
            advance.eq(done & (~last | out_free)),
            self.i.ready.eq(~busy | (last & out_free)),
        ]
        xt = [_select([xs[t * F + f] for t in range(T)], cnt) if T > 1 else xs[f] for f in range(F)]
        # The cell's inputs hold for the L cycles of a step, so its registers need no stall.
        new, _ = _Cell(self.op, self.in_type, start=lambda k: busy & (phase == k)).step(m, xt, state, "cell_")
        h_out = self._out(new[0])
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(busy & ~done):
            m.d.sync += phase.eq(phase + 1)
        with m.If(advance):
            m.d.sync += [cnt.eq(cnt + 1), phase.eq(0)]
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
            m.d.sync += [busy.eq(1), cnt.eq(0), phase.eq(0)]
            for rr in state:
                m.d.sync += [r.eq(0) for r in rr]
        m.d.comb += [self.o.payload[k].eq(o) for k, o in enumerate(out)]


@register(SimpleRNN, LSTM, GRU)
def _recurrent_factory(op, inputs, output):
    src = inputs[0]
    return RecurrentLayer(op, src.type, src.size, output.type, output.size)
