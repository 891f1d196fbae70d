"""The unrolled schedule of a recurrent layer as Verilog text.

Amaranth lowers the cell of every time step on its own, which took minutes for a 20-step LSTM and
most of an hour for larger ones. Here the cell is one text module, written once and instantiated at
every step, and the chain around it (the valid shift register, the later steps' inputs and the
earlier steps' outputs travelling along the pipeline) is a second one. The cell is cycle for cycle
and bit for bit what :class:`rtlgen.layers._recurrent._Cell` builds in the unrolled schedule: the
adder graphs and activation tables are their own text modules, the casts round and saturate as
:func:`rtlgen.layers.requantize` does. Every arithmetic value is a signed wire as wide as its exact
range (kept as integer bounds), so Verilog's sizing rules keep every sum and product exact.

The per-lane cell of HGQ2 and QKeras models (``lane_types``) stays in Amaranth.
"""

from __future__ import annotations

from rtlgen.fixed import FixedType
from rtlgen.ir.ops.recurrent import LSTM, SimpleRNN, activation_op
from rtlgen.plan.recurrent import ADDER_LEVELS, cell_graphs, cell_latency

from ._verilog import _V, _lit, _Text, signed_const, stream_ports

__all__ = ["unrolled_verilog"]


def _graph_out_width(cg) -> int:
    """The lane width of a cell graph's outputs: signed, as wide as their exact range needs."""
    from rtlgen.plan.adders import _bits

    g = cg.graph
    bounds = [(0, 0)]
    for ref in g.outputs:
        if ref is not None:
            s, sh, sign = ref
            lo, hi = g.lo[s] << sh, g.hi[s] << sh
            bounds.append((lo, hi) if sign > 0 else (-hi, -lo))
    return max(_bits(lo, hi)[0] + (lo >= 0) for lo, hi in bounds)


class _CellText:
    """The cell of the unrolled schedule as a text module (see :meth:`_Cell.step`): ports ``clk``,
    ``rst``, ``en`` (the pipeline's stall), the input lanes ``x`` and the state ``h`` (and ``c``),
    and the new state ``h_o`` (and ``c_o``) after ``cell_latency`` registers."""

    def __init__(self, op, in_type: FixedType, platform):
        self.op, self.in_type, self.platform = op, in_type, platform
        self.graphs = cell_graphs(op, in_type)
        self.latency = cell_latency(op, in_type, "unrolled")
        self.t = _Text()
        self.stage = 0
        self.inst: list[str] = []

    def reg(self, *groups):
        self.stage += 1
        return self.t.reg(*groups)

    def graph(self, k: int, lanes: list, *carry):
        """Graph ``k``'s exact outputs for ``lanes`` and the ``carry`` groups, delayed alike."""
        from ._adders import AdderGraphLayer

        t, cg = self.t, self.graphs[k]
        g = cg.graph
        w_in = max(v.w for v in lanes)
        w_out = _graph_out_width(cg)
        layer = AdderGraphLayer(FixedType(w_in, w_in, True), FixedType(w_out, w_out - cg.frac, True), g, n_in=len(lanes), adder_levels=ADDER_LEVELS)
        layer._MustUse__silence = True  # only its text is used
        assert layer.latency == cg.stages(1)
        mod = self.platform.module("adder_graph", layer.verilog)
        nm = t.name("g")
        n_out = len(g.outputs)
        ins = []
        for j, v in enumerate(lanes):
            t.decl.append(f"  wire signed [{w_in - 1}:0] {nm}_x{j};")
            t.body.append(f"  assign {nm}_x{j} = {v.e};")
            ins.append(f"{nm}_x{j}")
        t.decl += [f"  wire [{len(lanes) * w_in - 1}:0] {nm}_i;", f"  wire [{n_out * w_out - 1}:0] {nm}_o;", f"  wire {nm}_ir, {nm}_ov;"]
        t.body.append(f"  assign {nm}_i = {{{', '.join(reversed(ins))}}};")
        self.inst.append(f"  {mod} {nm}(.clk(clk), .rst(rst), .i_valid(1'b1), .i_ready({nm}_ir), .i_payload({nm}_i), "
                         f".o_valid({nm}_ov), .o_ready(en), .o_payload({nm}_o));")  # fmt: skip
        outs = []
        for o, ref in enumerate(g.outputs):
            if ref is None:
                outs.append(_lit(0))
                continue
            s, sh, sign = ref
            lo, hi = g.lo[s] << sh, g.hi[s] << sh
            lo, hi = (lo, hi) if sign > 0 else (-hi, -lo)
            outs.append(t.wire(f"{nm}_o[{(o + 1) * w_out - 1}:{o * w_out}]", lo, hi))
        for _ in range(layer.latency):
            carry = self.reg(*carry)
        return outs, *carry

    def act(self, spec: dict, x: _V, src: FixedType, dst: FixedType) -> _V:
        """One activation of ``x`` (a value of ``src``) into ``dst``: a table lookup (its own
        module) or the exact piecewise-linear function (as :class:`PwlLayer`)."""
        from ._activation import PwlLayer

        t = self.t
        a = activation_op(spec)
        if spec["kind"] == "pwl":
            c = PwlLayer(src, dst, 1, const_frac=a.const_type.frac, **a.constants((1,)))
            c._MustUse__silence = True
            return self._pwl(c, x)
        table = [int(v) for v in a.table]
        n = len(table)
        q = t.wire(f"{x.e} >>> {a.shift}", x.lo >> a.shift, x.hi >> a.shift) if a.shift else x
        d = t.sub(q, _lit(a.offset)) if a.offset else q
        below = (src.min_mantissa >> a.shift) - a.offset < 0
        above = (src.max_mantissa >> a.shift) - a.offset > n - 1
        d = t.clamp(d, 0 if below else None, n - 1 if above else None)
        bits = max((n - 1).bit_length(), 1)
        if not d.e[0].isalpha() or d.w < bits:
            d = t.wire(d.e, d.lo, d.hi, bits)
        from ._recurrent import _Table

        rom = _Table(table, bits, dst)
        rom._MustUse__silence = True  # only its text is used
        mod = self.platform.module("table", rom.verilog)
        nm = t.name("t")
        t.decl += [f"  wire [{dst.width - 1}:0] {nm}_o;", f"  wire {nm}_ir, {nm}_ov;"]
        self.inst.append(f"  {mod} {nm}(.clk(clk), .rst(rst), .i_valid(1'b1), .i_ready({nm}_ir), .i_payload({d.e}[{bits - 1}:0]), "
                         f".o_valid({nm}_ov), .o_ready(1'b1), .o_payload({nm}_o));")  # fmt: skip
        v = t.bits(f"{nm}_o", dst.width, dst.signed)
        return v._replace(lo=min(table), hi=max(table))

    def _pwl(self, layer, x: _V) -> _V:
        t = self.t
        fs, fc = layer.in_type.frac, layer.const_frac
        g = max(fs, fc)
        f = g + fc
        knot = layer.knot[0]
        d = t.shl(x, g - fs)
        if knot:
            d = t.sub(d, _lit(knot << (g - fc)))

        def piece(slope, bias):
            b = bias << (f - fc)
            if slope == 0:
                return _lit(b)
            mag = abs(slope)
            if mag & (mag - 1) == 0:
                p = t.shl(d, mag.bit_length() - 1)
                p = t.wire(f"-{p.e}", -p.hi, -p.lo) if slope < 0 else p
            else:
                p = t.mul(d, _lit(slope))
            return t.add(p, _lit(b)) if b else p

        hi = (layer.slope_hi[0], layer.bias_hi[0])
        lo = (layer.slope_lo[0], layer.bias_lo[0])
        v = piece(*hi)
        if lo != hi:
            kx = (knot << max(fs - fc, 0)) >> max(fc - fs, 0)
            w = piece(*lo)
            v = t.wire(f"{x.e} > {signed_const(kx)} ? {v.e} : {w.e}", min(v.lo, w.lo), max(v.hi, w.hi))
        low = None if layer.lower is None else layer.lower[0] << (f - fc)
        high = None if layer.upper is None else layer.upper[0] << (f - fc)
        v = t.clamp(v, low, None)  # in PwlLayer's order: the lower bound first
        v = t.clamp(v, None, high)
        return t.cast(v, f, layer.out_type)

    def acts(self, spec, pre, frac):
        op = self.op
        return [self.act(spec, self.t.cast(v, frac, op.accum), op.accum, op.table) for v in pre]

    def verilog(self, name: str) -> str:
        op, t = self.op, self.t
        u, F, tt = op.units, op.n_in, op.table
        wi, ws = self.in_type.width, op.state.width
        x = [t.bits(f"x[{(k + 1) * wi - 1}:{k * wi}]", wi, self.in_type.signed) for k in range(F)]
        h = [t.bits(f"h[{(j + 1) * ws - 1}:{j * ws}]", ws, op.state.signed) for j in range(u)]
        Fg = self.graphs[0].frac
        ports = ["x", "h"]
        if isinstance(op, SimpleRNN):
            (pre,) = self.graph(0, x + h)
            new = ([t.cast(v, tt.frac, op.state) for v in self.acts(op.activation, pre, Fg)],)
        elif isinstance(op, LSTM):
            ports.append("c")
            wc = op.cell.width
            c = [t.bits(f"c[{(j + 1) * wc - 1}:{j * wc}]", wc, op.cell.signed) for j in range(u)]
            pre, c = self.graph(0, x + h, c)
            i, f, o = (self.acts(op.recurrent_activation, pre[k * u : (k + 1) * u], Fg) for k in (0, 1, 3))
            g = self.acts(op.activation, pre[2 * u : 3 * u], Fg)
            i, f, g, o, c = self.reg(i, f, g, o, c)
            Fc = 2 * tt.frac + op.cell.frac
            c2 = [
                t.cast(t.add(t.align(t.mul(f[j], c[j]), tt.frac + op.cell.frac, Fc), t.align(t.mul(i[j], g[j]), 2 * tt.frac, Fc)), Fc, op.cell)
                for j in range(u)
            ]
            c2, o = self.reg(c2, o)
            a = [self.act(op.cell_activation, v, op.cell, tt) for v in c2]
            new = ([t.cast(t.mul(o[j], a[j]), 2 * tt.frac, op.state) for j in range(u)], c2)
        else:
            new = self._gru(x, h, Fg)
        assert self.stage == self.latency - 1, (self.stage, self.latency)
        outs = []
        for k, vs in enumerate(new):
            typ = op.state if k == 0 else op.cell
            port = "h_o" if k == 0 else "c_o"
            w = typ.width
            for j, v in enumerate(vs):
                t.decl.append(f"  reg [{w - 1}:0] {port}{j} = {w}'d0;")
                t.regs.append(f"      {port}{j} <= {v.e};")
            outs.append(f"  assign {port} = {{{', '.join(f'{port}{j}' for j in reversed(range(u)))}}};")
        widths = {"x": F * wi, "h": u * ws, "c": u * (op.cell.width if op.cell is not None else 0)}
        return "\n".join([
            "/* verilator lint_off WIDTH */",
            f"module {name}(clk, rst, en, {', '.join(ports)}, {', '.join(p + '_o' for p in ports[1:])});",
            "  /*verilator no_inline_module*/",
            "  input clk;", "  input rst;", "  input en;",
            *[f"  input [{widths[p] - 1}:0] {p};" for p in ports],
            *[f"  output [{widths[p] - 1}:0] {p}_o;" for p in ports[1:]],
            *t.decl, *t.body, *self.inst,
            "  always @(posedge clk)", "    if (en) begin", *t.regs, "    end",
            *outs,
            "endmodule", "/* verilator lint_on WIDTH */", "",
        ])  # fmt: skip

    def _gru(self, x, h, F):
        op, t = self.op, self.t
        u, acc, tt = op.units, op.accum, op.table
        pre, h = self.graph(0, x + h, h)
        z, r = (self.acts(op.recurrent_activation, pre[k * u : (k + 1) * u], F) for k in (0, 1))
        mx = pre[2 * u : 3 * u]
        if op.reset_after:
            hz = [t.cast(v, F, acc) for v in pre[3 * u :]]
            z, r, hz, mx, h = self.reg(z, r, hz, mx, h)
            Fp = max(F, tt.frac + acc.frac)
            cand = [t.cast(t.add(t.align(mx[j], F, Fp), t.align(t.mul(r[j], hz[j]), tt.frac + acc.frac, Fp)), Fp, acc) for j in range(u)]
        else:
            z, r, mx, h = self.reg(z, r, mx, h)
            rh = [t.cast(t.mul(r[j], h[j]), tt.frac + op.state.frac, op.state) for j in range(u)]
            z, rh, mx, h = self.reg(z, rh, mx, h)
            ph, z, mx, h = self.graph(1, rh, z, mx, h)
            F1 = self.graphs[1].frac
            Fp = max(F, F1)
            cand = [t.cast(t.add(t.align(mx[j], F, Fp), t.align(ph[j], F1, Fp)), Fp, acc) for j in range(u)]
        hh = [self.act(op.activation, v, acc, tt) for v in cand]
        z, hh, h = self.reg(z, hh, h)
        one = _lit(1 << tt.frac)
        fs = tt.frac + op.state.frac
        Fh = max(fs, 2 * tt.frac)
        h2 = [t.cast(t.add(t.align(t.mul(z[j], h[j]), fs, Fh), t.align(t.mul(t.sub(one, z[j]), hh[j]), 2 * tt.frac, Fh)), Fh, op.state) for j in range(u)]
        return (h2,)


def unrolled_verilog(layer, platform, name: str) -> str:
    """The unrolled schedule of the :class:`RecurrentLayer` ``layer`` as a text module ``name`` with
    the ports of every text module; the cell, graphs and tables are added to ``platform``."""
    op = layer.op
    T, F, u, L = layer.steps, op.n_in, op.units, layer.cell_latency
    seq = op.return_sequences
    cell = _CellText(op, layer.in_type, platform)
    cell_mod = platform.module("rnn_cell", cell.verilog)
    wi, ws, wo = layer.in_type.width, op.state.width, layer.out_type.width
    wc = op.cell.width if op.cell is not None else 0
    t = _Text()
    n = T * L
    lines = [
        "/* verilator lint_off WIDTH */",
        *stream_ports(name, T * F * wi, layer.n_out * wo),
        f"  reg [{n - 1}:0] valid = {n}'d0;",
        "  wire enable;",
        f"  assign enable = ~valid[{n - 1}] | o_ready;",
        "  assign i_ready = enable;",
        f"  assign o_valid = valid[{n - 1}];",
        "  always @(posedge clk)",
        f"    if (rst) valid <= {n}'d0;",
        f"    else if (enable) valid <= {'{' + f'valid[{n - 2}:0], i_valid' + '}' if n > 1 else 'i_valid'};",
    ]
    regs: list[str] = []

    def delay(src: str, width: int, stem: str) -> str:
        """``src`` after ``L`` enabled registers."""
        prev = src
        for k in range(L):
            r = f"{stem}_{k}"
            lines.append(f"  reg [{width - 1}:0] {r} = {width}'d0;")
            regs.append(f"      {r} <= {prev};")
            prev = r
        return prev

    xs, h, c, ys = "i_payload", f"{u * ws}'d0", f"{u * wc}'d0" if wc else "", []
    for s in range(T):
        ports = [f".x({xs}[{F * wi - 1}:0])", f".h({h})"] + ([f".c({c})"] if wc else [])
        lines += [f"  wire [{u * ws - 1}:0] h{s};"] + ([f"  wire [{u * wc - 1}:0] c{s};"] if wc else [])
        ports += [f".h_o(h{s})"] + ([f".c_o(c{s})"] if wc else [])
        lines.append(f"  {cell_mod} cell{s}(.clk(clk), .rst(rst), .en(enable), {', '.join(ports)});")
        rest = (T - 1 - s) * F * wi
        nxt = delay(f"{xs}[{F * wi + rest - 1}:{F * wi}]", rest, f"x{s}") if rest else None
        if seq and ys:
            prev = delay(f"{{{', '.join(reversed(ys))}}}", len(ys) * wo, f"y{s}")
            ys = [f"{prev}[{(k + 1) * wo - 1}:{k * wo}]" for k in range(len(ys))]
        if seq or s == T - 1:
            for j in range(u):
                v = t.bits(f"h{s}[{(j + 1) * ws - 1}:{j * ws}]", ws, op.state.signed)
                y = t.cast(v, op.state.frac, layer.out_type)
                nm = f"out{s}_{j}"
                t.decl.append(f"  wire [{wo - 1}:0] {nm};")
                t.body.append(f"  assign {nm} = {y.e};")
                ys.append(nm)
        xs, h, c = nxt, f"h{s}", f"c{s}"
    return "\n".join([
        *lines, *t.decl, *t.body,
        "  always @(posedge clk)", "    if (enable) begin", *regs, "    end",
        f"  assign o_payload = {{{', '.join(reversed(ys))}}};",
        "endmodule", "/* verilator lint_on WIDTH */", "",
    ])  # fmt: skip
