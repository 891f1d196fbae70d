from __future__ import annotations

from amaranth.hdl import Cat, Const, Format, Shape, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from rtlgen.fixed import FixedType

__all__ = ["shape_of", "vector_stream", "LaneLayout", "Layer", "drive_lanes"]


def shape_of(t: FixedType) -> Shape:
    return signed(t.width) if t.signed else unsigned(t.width)


class LaneLayout(data.ArrayLayout):
    """``data.ArrayLayout`` whose signals display as one value.

    Amaranth gives every signal of an array layout a display format with one entry per lane and
    a named debug field per lane in the netlist; for layers thousands of lanes wide that work
    dominated elaboration. Lanes are still indexed as in any array layout."""

    def format(self, value, format_spec):
        return Format("{}", Value.cast(value))


def vector_stream(t: FixedType, lanes: int) -> stream.Signature:
    """A stream carrying one whole vector of ``lanes`` fixed-point values per transfer."""
    return stream.Signature(LaneLayout(shape_of(t), lanes))


def drive_lanes(m, payload, values) -> None:
    """``payload[k].eq(values[k])`` for every lane as one combinational assignment.

    Amaranth checks each assignment against every bit of the signal it drives, so lane by lane
    assignments to a wide payload cost lanes x width steps each; one assignment costs one."""
    width = Shape.cast(payload.shape().elem_shape).width
    parts = []
    for v in values:
        v = Value.cast(v)
        n = len(v)
        if n >= width:
            parts.append(v[:width])
        elif v.shape().signed and n:
            parts.append(Cat(v, v[-1].replicate(width - n)))
        else:
            parts.append(Cat(v, Const(0, width - n)))
    m.d.comb += payload.as_value().eq(Cat(*parts))


class Layer(wiring.Component):
    """A streaming layer: ``i`` and ``o`` vector streams with valid/ready handshakes.

    ``latency``: cycles from an input transfer to its result being valid on ``o`` when the layer
    is idle. ``initiation_interval``: cycles between input transfers at full throughput.
    """

    def __init__(self, in_type: FixedType, n_in: int, out_type: FixedType, n_out: int):
        self.in_type, self.n_in = in_type, n_in
        self.out_type, self.n_out = out_type, n_out
        super().__init__({"i": In(vector_stream(in_type, n_in)), "o": Out(vector_stream(out_type, n_out))})

    latency = 0
    initiation_interval = 1
