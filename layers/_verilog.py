"""Verilog for a network: Amaranth composes the design; wide arithmetic writes its own text.

Amaranth lowers every bit of every operation into its netlist before Yosys turns it into Verilog,
which costs seconds for the thousands of adders of a dense layer. An adder graph is already a plain
list of additions, so it writes itself as a Verilog module directly (milliseconds), and the network
instantiates that module. Amaranth's own form of the same component stays what simulation and
tests in Python use; the generated testbenches check the text form against the golden model.
"""

from __future__ import annotations

from amaranth.back import verilog
from amaranth.hdl import ClockSignal, Instance, Module, ResetSignal

__all__ = ["TextModules", "to_verilog"]


class TextModules:
    """The ``platform`` seen by ``elaborate`` during :func:`to_verilog`: collects the modules that
    components write as text. Modules with the same text are written once."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.texts: dict[str, str] = {}  # module name -> text
        self._by_body: dict[str, str] = {}

    def module(self, stem: str, write) -> str:
        """The name of ``write(name)``'s module (for a text module that instantiates others)."""
        body = write("MODULE_NAME")
        name = self._by_body.get(body)
        if name is None:
            name = f"{self.prefix}__{stem}{len(self.texts)}"
            self._by_body[body] = name
            self.texts[name] = body.replace("MODULE_NAME", name, 1)
        return name

    def instance(self, layer, stem: str, write) -> Module:
        """A module that instantiates ``write(name)``'s text for ``layer`` (a :class:`Layer`: one
        ``i`` and one ``o`` vector stream, ``clk`` and ``rst``)."""
        name = self.module(stem, write)
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
        )
        return m


def to_verilog(top, name: str) -> str:
    """Verilog of the Amaranth component ``top`` as module ``name``, with the text modules of its
    components appended."""
    mods = TextModules(name)
    text = verilog.convert(top, name=name, emit_src=False, platform=mods)
    return text + "".join(mods.texts.values())


def stream_ports(name: str, in_bits: int, out_bits: int) -> list[str]:
    """The header of a text module with a layer's ports (clock, reset, one stream in, one out),
    as every text module of the network is instantiated."""
    return [
        f"module {name}(clk, rst, i_valid, i_ready, i_payload, o_valid, o_ready, o_payload);",
        "  input clk;", "  input rst;", "  input i_valid;", "  output i_ready;",
        f"  input [{in_bits - 1}:0] i_payload;", "  output o_valid;", "  input o_ready;",
        f"  output [{out_bits - 1}:0] o_payload;",
    ]  # fmt: skip


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
