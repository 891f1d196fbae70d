"""Verilog for a network: Amaranth composes the design; wide arithmetic writes its own text.

Amaranth lowers every bit of every operation into its netlist before Yosys turns it into Verilog,
which costs seconds for the thousands of adders of a dense layer. An adder graph is already a plain
list of additions, so it writes itself as a Verilog module directly (milliseconds), and the network
instantiates that module. Amaranth's own form of the same component stays what simulation and
tests in Python use; the generated testbenches check the text form against the golden model.
Connections cost Amaranth as much per bit, so in io_stream a run of text modules (a line buffer,
its FIFO and the convolution it feeds) becomes one text module whose wide streams are plain wires.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, NamedTuple

from amaranth.back import rtlil, verilog
from amaranth.hdl import ClockSignal, Instance, Module, ResetSignal, Shape

if TYPE_CHECKING:
    from rtlgen.fixed import FixedType

__all__ = ["TextModules", "to_verilog", "fifo_verilog", "amaranth_verilog"]


def amaranth_verilog(top, name: str, platform=None) -> str:
    """``amaranth.back.verilog.convert(top, name=name, emit_src=False, platform=platform)``, with
    the RTLIL turned into Verilog by the native Yosys (``pyosys``) when it is installed.

    Amaranth's built-in Yosys is WebAssembly: starting it costs about half a second per call, which
    was a third of a small network's build (the core and its AXI wrapper are two calls). The native
    library runs the same passes in milliseconds, in a forked child: a Yosys error ends the process
    it runs in, so it must not be this one. ``RTLGEN_YOSYS=yowasp`` keeps Amaranth's own path."""
    text = rtlil.convert(top, name=name, emit_src=False, platform=platform)
    if (
        not hasattr(os, "fork")
        or os.environ.get("RTLGEN_YOSYS", "").strip().lower() == "yowasp"
        or importlib.util.find_spec("pyosys") is None
    ):
        return verilog._convert_rtlil_text(text)
    with tempfile.TemporaryDirectory(prefix="rtlgen-verilog-") as tmp:
        work = Path(tmp)
        (work / "in.il").write_text(text)
        # Amaranth's own script (amaranth.back.verilog._convert_rtlil_text).
        (work / "run.ys").write_text("read_rtlil in.il\nproc -nomux -norom\nmemory_collect\nwrite_verilog -norename out.v\n")
        pid = os.fork()
        if pid == 0:  # the child: relative paths, so no quoting of the directory's name
            code = 1
            try:
                os.chdir(work)
                from pyosys import libyosys as ys

                ys.Pass.call(ys.Design(), "tee -q -o log.txt script run.ys")
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        out = work / "out.v"
        if os.waitstatus_to_exitcode(status) != 0 or not out.is_file():
            log = (work / "log.txt").read_text(errors="replace") if (work / "log.txt").is_file() else ""
            tail = "\n".join(log.strip().splitlines()[-5:]) or "no log"
            raise verilog.YosysError(f"Yosys could not write Verilog for {name!r}: {tail}")
        return out.read_text()


class TextModules:
    """The ``platform`` seen by ``elaborate`` during :func:`to_verilog`: collects the modules that
    components write as text. Modules with the same text are written once."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.texts: dict[str, str] = {}  # module name -> text
        self._by_body: dict[str, str] = {}
        self._probing = False
        self._named: dict[int, tuple] = {}  # id(layer) -> (layer, module name): each text written once

    def module(self, stem: str, write) -> str:
        """The name of the module ``write(name)`` writes (added unless the same text already is)."""
        body = write("MODULE_NAME")
        name = self._by_body.get(body)
        if name is None:
            name = f"{self.prefix}__{stem}{len(self.texts)}"
            self._by_body[body] = name
            self.texts[name] = body.replace("MODULE_NAME", name, 1)
        return name

    def instance(self, layer, stem: str, write, **ports) -> Module:
        """A module that instantiates ``write(name)``'s text for ``layer`` (a :class:`Layer`: one
        ``i`` and one ``o`` vector stream, ``clk`` and ``rst``; ``ports``: more connections, in
        :class:`~amaranth.hdl.Instance`'s ``o_name=signal`` form)."""
        known = self._named.get(id(layer))
        name = known[1] if known else self.module(stem, write)
        self._named[id(layer)] = (layer, name)
        if self._probing:
            return _TextForm(name, bool(ports))
        m = Module()
        m.submodules.text = Instance(
            name,
            i_clk=ClockSignal(),
            i_rst=ResetSignal(),
            i_i_valid=layer.i.valid,
            o_i_ready=layer.i.ready,
            i_i_payload=layer.i.payload.as_value(),
            o_o_valid=layer.o.valid,
            i_o_ready=layer.o.ready,
            o_o_payload=layer.o.payload.as_value(),
            **ports,
        )
        return m

    def text_form(self, layer) -> str | None:
        """The name of ``layer``'s text module when it has one with a layer's ports and no more,
        else None (Amaranth elaborates it). Text forms are the components with a ``verilog``
        method, whose ``elaborate`` only instantiates it; a sum of products is its ``impl``'s."""
        from ._dense import SumOfProducts

        if isinstance(layer, SumOfProducts):
            layer = layer.impl
        if not callable(getattr(layer, "verilog", None)):
            return None
        self._probing = True
        try:
            form = layer.elaborate(self)
        finally:
            self._probing = False
        return form.name if isinstance(form, _TextForm) and not form.more_ports else None

    def chain(self, members: list[tuple[str, object]]) -> Module:
        """A module that runs the text modules of ``members`` (``(instance name, component)``,
        each with a text form, in stream order) one after the other, as one layer from the first
        component's ``i`` to the last one's ``o``. Instance names take a ``u_`` prefix: a layer
        may be named like a Verilog keyword or start with a digit.

        A wide stream between two text modules then never becomes an Amaranth signal: Amaranth
        lowers every bit of a connection, which cost seconds for beats tens of thousands of bits
        wide."""
        parts = [(inst, self.text_form(c), Shape.cast(c.o.payload.shape()).width) for inst, c in members]
        in_bits = Shape.cast(members[0][1].i.payload.shape()).width

        def write(name):
            lines = stream_ports(name, in_bits, parts[-1][2])
            for k, (_, _, bits) in enumerate(parts[:-1]):
                lines += [f"  wire s{k}_valid;", f"  wire s{k}_ready;", f"  wire [{bits - 1}:0] s{k}_payload;"]
            for k, (inst, mod, _) in enumerate(parts):
                src = "i" if k == 0 else f"s{k - 1}"
                dst = "o" if k == len(parts) - 1 else f"s{k}"
                lines.append(
                    f"  {mod} u_{inst}(.clk(clk), .rst(rst), .i_valid({src}_valid), .i_ready({src}_ready), "
                    f".i_payload({src}_payload), .o_valid({dst}_valid), .o_ready({dst}_ready), .o_payload({dst}_payload));"
                )
            return "\n".join([*lines, "endmodule", ""])

        ends = SimpleNamespace(i=members[0][1].i, o=members[-1][1].o)
        return self.instance(ends, "chain", write)


class _TextForm:
    """What :meth:`TextModules.instance` returns while :meth:`TextModules.text_form` asks."""

    def __init__(self, name: str, more_ports: bool):
        self.name, self.more_ports = name, more_ports


def to_verilog(top, name: str) -> str:
    """Verilog of the Amaranth component ``top`` as module ``name``, with the text modules of its
    components appended."""
    mods = TextModules(name)
    text = amaranth_verilog(top, name, mods)
    return text + "".join(mods.texts.values())


def stream_ports(name: str, in_bits: int, out_bits: int, outputs: dict[str, int] | None = None) -> list[str]:
    """The header of a text module with a layer's ports (clock, reset, one stream in, one out),
    as every text module of the network is instantiated; ``outputs`` adds output ports by name
    and width."""
    extra = outputs or {}
    return [
        f"module {name}({', '.join(['clk', 'rst', 'i_valid', 'i_ready', 'i_payload', 'o_valid', 'o_ready', 'o_payload', *extra])});",
        "  input clk;", "  input rst;", "  input i_valid;", "  output i_ready;",
        f"  input [{in_bits - 1}:0] i_payload;", "  output o_valid;", "  input o_ready;",
        f"  output [{out_bits - 1}:0] o_payload;", *[f"  output [{w - 1}:0] {k};" for k, w in extra.items()],
    ]  # fmt: skip


def fifo_verilog(name: str, width: int, depth: int, *, buffered: bool = False, level: bool = False) -> str:
    """A first-in first-out queue of ``depth`` words of ``width`` bits as a Verilog module ``name``
    with a layer's ports (``level``: also an output ``level``, the number of stored words), cycle
    for cycle the same as Amaranth's ``SyncFIFO`` (``buffered``: ``SyncFIFOBuffered``).

    ``SyncFIFO`` reads its memory asynchronously: a word written in cycle ``t`` leaves from
    ``t + 1``. ``SyncFIFOBuffered`` keeps ``depth - 1`` words in a synchronously read memory and
    one in its output register, a cycle later from an empty queue. A full queue refuses writes
    even while it is read. Stream FIFOs carry beats thousands of bits wide, which Amaranth lowers
    bit by bit; this text is written in microseconds."""
    if buffered and depth < 2:
        raise ValueError(f"a buffered FIFO's depth must be at least 2, not {depth}")
    if depth < 1:
        raise ValueError(f"a FIFO's depth must be at least 1, not {depth}")
    store = depth - 1 if buffered else depth  # words in the memory
    pw, sw, lw = max(store - 1, 1).bit_length(), store.bit_length(), depth.bit_length()
    if buffered:
        # The output register holds the oldest word; it is refilled whenever it is free or read.
        reads = [
            f"  reg [{width - 1}:0] data = {width}'d0;", "  reg full_out = 1'b0;",
            "  assign o_valid = full_out;", "  assign o_payload = data;",
            f"  assign take = (count != {sw}'d0) & (~full_out | o_ready);",
            "  always @(posedge clk) if (take) data <= mem[consume];",
        ]
        levels = [f"  assign level = {{{lw - sw}'d0, count}} + {{{lw - 1}'d0, full_out}};" if lw > sw else
                  f"  assign level = count + {{{lw - 1}'d0, full_out}};"]  # fmt: skip
        out_reg = ["    if (take) full_out <= 1'b1;", "    else if (o_ready) full_out <= 1'b0;"]
    else:
        reads = [f"  assign o_valid = count != {sw}'d0;", "  assign o_payload = mem[consume];", "  assign take = o_valid & o_ready;"]
        levels, out_reg = ["  assign level = count;"], []
    return "\n".join([
        *stream_ports(name, width, width, {"level": lw} if level else None),
        f"  reg [{width - 1}:0] mem [0:{store - 1}];",
        f"  reg [{pw - 1}:0] produce = {pw}'d0;", f"  reg [{pw - 1}:0] consume = {pw}'d0;", f"  reg [{sw - 1}:0] count = {sw}'d0;",
        "  wire put, take;", f"  assign i_ready = count != {sw}'d{store};", "  assign put = i_valid & i_ready;",
        *reads, *(levels if level else []),
        "  always @(posedge clk) if (put) mem[produce] <= i_payload;",
        "  always @(posedge clk) begin",
        f"    if (put) produce <= (produce == {pw}'d{store - 1}) ? {pw}'d0 : produce + {pw}'d1;",
        f"    if (take) consume <= (consume == {pw}'d{store - 1}) ? {pw}'d0 : consume + {pw}'d1;",
        f"    if (put & ~take) count <= count + {sw}'d1;", f"    else if (take & ~put) count <= count - {sw}'d1;",
        *out_reg,
        "    if (rst) begin",
        f"      produce <= {pw}'d0;", f"      consume <= {pw}'d0;", f"      count <= {sw}'d0;", *(["      full_out <= 1'b0;"] if buffered else []),
        "    end",
        "  end",
        "endmodule", "",
    ])  # fmt: skip


def round_up_bit(p: str, width: int, shift: int, rounding: str) -> str:
    """The Verilog bit that rounds the signed wire ``p`` (``width`` bits) up after dropping its
    ``shift`` low bits, in hls4ml's rounding mode ``rounding`` (the value is ``(p >>> shift) + bit``),
    as :func:`rtlgen.layers.requantize` rounds."""
    rem, half = f"{p}[{shift - 1}:0]", 1 << (shift - 1)
    neg = f"{p}[{width - 1}]"
    above, at, nz = f"({rem} > {shift}'d{half})", f"({rem} == {shift}'d{half})", f"({rem} != 0)"
    return {
        "TRN": "1'b0", "TRN_ZERO": f"{neg} & {nz}", "RND": f"{above} | {at}", "RND_MIN_INF": above,
        "RND_ZERO": f"{above} | ({at} & {neg})", "RND_INF": f"{above} | ({at} & ~{neg})",
        "RND_CONV": f"{above} | ({at} & {p}[{shift}])",
    }[rounding]  # fmt: skip


def signed_width(lo: int, hi: int) -> int:
    """Bits of a signed wire holding every integer in ``[lo, hi]``."""
    return max(lo.bit_length() if lo >= 0 else (-lo - 1).bit_length(), hi.bit_length() if hi >= 0 else (-hi - 1).bit_length()) + 1


def signed_const(v: int) -> str:
    """``v`` as a signed Verilog literal as wide as it needs."""
    w = signed_width(v, v)
    return f"{w}'sh{v % (1 << w):x}"


class _V(NamedTuple):
    """A value: a signed wire (or literal) ``e`` of ``w`` bits holding an integer in ``[lo, hi]``."""

    e: str
    lo: int
    hi: int
    w: int


def _lit(v: int) -> _V:
    return _V(signed_const(v), v, v, signed_width(v, v))


class _Text:
    """Declarations, assignments and registers (loaded on the stall signal) of one module."""

    def __init__(self):
        self.decl: list[str] = []
        self.body: list[str] = []
        self.regs: list[str] = []
        self.n = 0

    def name(self, stem: str) -> str:
        self.n += 1
        return f"{stem}{self.n}"

    def wire(self, expr: str, lo: int, hi: int, at_least: int = 1) -> _V:
        w = max(signed_width(lo, hi), at_least)
        nm = self.name("w")
        self.decl.append(f"  wire signed [{w - 1}:0] {nm};")
        self.body.append(f"  assign {nm} = {expr};")
        return _V(nm, lo, hi, w)

    def bits(self, expr: str, width: int, signed: bool) -> _V:
        """A value from raw bits (a port slice), read as ``signed`` or not."""
        lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)
        return self.wire(expr if signed else f"{{1'b0, {expr}}}", lo, hi)

    def reg(self, *groups):
        """Every value of the groups registered once (literals pass through)."""
        out = []
        for vs in groups:
            row = []
            for v in vs:
                if v.lo == v.hi and not v.e[0].isalpha():
                    row.append(v)
                    continue
                nm = self.name("p")
                self.decl.append(f"  reg signed [{v.w - 1}:0] {nm} = {v.w}'sd0;")
                self.regs.append(f"      {nm} <= {v.e};")
                row.append(_V(nm, v.lo, v.hi, v.w))
            out.append(row)
        return out

    def add(self, a: _V, b: _V) -> _V:
        return self.wire(f"{a.e} + {b.e}", a.lo + b.lo, a.hi + b.hi)

    def sub(self, a: _V, b: _V) -> _V:
        return self.wire(f"{a.e} - {b.e}", a.lo - b.hi, a.hi - b.lo)

    def mul(self, a: _V, b: _V) -> _V:
        p = [a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi]
        return self.wire(f"{a.e} * {b.e}", min(p), max(p))

    def shl(self, a: _V, k: int) -> _V:
        return self.wire(f"{a.e} <<< {k}", a.lo << k, a.hi << k) if k > 0 else a

    def align(self, v: _V, frac: int, to: int) -> _V:
        return self.shl(v, to - frac)

    def clamp(self, v: _V, lo: int | None, hi: int | None) -> _V:
        """``v`` limited to ``[lo, hi]`` (None: no limit); comparisons that cannot hold are left out."""
        e, nlo, nhi = v.e, v.lo, v.hi
        if hi is not None and v.hi > hi:
            e, nlo, nhi = f"{v.e} > {signed_const(hi)} ? {signed_const(hi)} : {e}", min(nlo, hi), hi
        if lo is not None and v.lo < lo:
            e, nlo, nhi = f"{v.e} < {signed_const(lo)} ? {signed_const(lo)} : ({e})", lo, max(nhi, lo)
        return v if e == v.e else self.wire(e, nlo, nhi)

    def cast(self, v: _V, frac: int, dst: FixedType) -> _V:
        """:func:`rtlgen.layers.requantize` of ``v`` (``frac`` fractional bits) into ``dst``."""
        shift = frac - dst.frac
        if shift <= 0:
            q = self.shl(v, -shift)
        else:
            # At least one bit above the dropped ones: the sign and the rounding read it.
            p = v if v.w > shift and v.e[0].isalpha() else self.wire(v.e, v.lo, v.hi, shift + 1)
            up = round_up_bit(p.e, p.w, shift, dst.rounding)
            if up == "1'b0":
                q = self.wire(f"{p.e} >>> {shift}", p.lo >> shift, p.hi >> shift)
            else:
                q = self.wire(f"({p.e} >>> {shift}) + $signed({{1'b0, {up}}})", p.lo >> shift, (p.hi >> shift) + 1)
        lo, hi = dst.min_mantissa, dst.max_mantissa
        if lo <= q.lo and q.hi <= hi:
            return q
        if dst.overflow == "WRAP":
            if not q.e[0].isalpha() or q.w < dst.width:
                q = self.wire(q.e, q.lo, q.hi, dst.width)
            return self.bits(f"{q.e}[{dst.width - 1}:0]", dst.width, dst.signed)
        if dst.overflow == "SAT_SYM" and dst.signed:
            lo = -hi
        if dst.overflow in ("SAT", "SAT_SYM"):
            return self.clamp(q, lo, hi)
        out = " | ".join(c for c, need in ((f"({q.e} < {signed_const(lo)})", q.lo < lo), (f"({q.e} > {signed_const(hi)})", q.hi > hi)) if need)
        return self.wire(f"{out} ? 2'sd0 : {q.e}", min(max(q.lo, lo), 0), max(min(q.hi, hi), 0))  # SAT_ZERO
