"""AXI4-Stream top level around any valid/ready core (``io_parallel`` and ``io_stream`` alike).

:class:`AxisTop` wraps a component with the ``i``/``o`` stream signature of
:class:`rtlgen.layers.Network` and gives it the ports Vivado infers as AXI4-Stream interfaces:
``aclk``, ``aresetn``, ``s_axis_tdata/tvalid/tready/tlast`` and ``m_axis_tdata/tvalid/tready/tlast``.

``tdata`` packing (the same on both sides; see docs/axi-stream.md):

* every lane of a beat occupies ``B = ceil(w / 8)`` whole bytes, ``w`` the lane's fixed-point width;
  lane ``k`` is ``tdata[8*B*k + 8*B - 1 : 8*B*k]``, lane 0 in the least significant bytes;
* the lane holds the fixed-point mantissa as a ``8*B``-bit integer: two's complement, sign-extended,
  when the type is signed; zero-extended when unsigned. On the input only the low ``w`` bits of
  each lane are read (the extension bits are ignored); on the output they are always driven.
* a sample is ``beats`` consecutive transfers, beat-major: element ``b*lanes + k`` of the flattened
  (channels-last) tensor is lane ``k`` of beat ``b``. Read as bytes in bus order, a sample is exactly
  its elements as ``B``-byte little-endian integers, e.g. ``x.astype("<i2").tobytes()`` for B = 2.

``m_axis_tlast`` is high on the last beat of every output sample (a beat counter).
``s_axis_tlast`` is accepted and ignored: the top counts input beats itself, so one upstream
packet may carry one sample or many (a DMA buffer of N samples with a single ``tlast`` at its end).

The handshakes pass straight through (no registers, no bubbles): the top adds no latency and
accepts a beat in every cycle the core does. While ``aresetn`` is low (a synchronous,
active-low reset of the whole core) ``s_axis_tready`` and ``m_axis_tvalid`` are held low.
"""

from __future__ import annotations

from amaranth.hdl import Cat, ClockDomain, Const, Module, Mux, Shape, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rtlgen.fixed import FixedType

__all__ = ["AxisTop", "lane_bytes", "stream_lanes"]


def lane_bytes(t: FixedType) -> int:
    """Whole bytes one lane of type ``t`` occupies in ``tdata``."""
    return (t.width + 7) // 8


def stream_lanes(port, t: FixedType) -> int:
    """Lanes carried per transfer by the valid/ready stream ``port`` of element type ``t``."""
    width = Shape.cast(port.payload.shape()).width
    if width % t.width:
        raise ValueError(
            f"stream payload of {width} bits is not a whole number of {t.width}-bit lanes ({t})"
        )
    return width // t.width


class AxisTop(wiring.Component):
    """AXI4-Stream slave ``s_axis`` and master ``m_axis`` around ``core`` (see the module docstring).

    ``core``: a component with an ``i`` input and ``o`` output ``amaranth.lib.stream`` port whose
    payloads are ``in_lanes`` lanes of ``in_type`` and ``out_lanes`` lanes of ``out_type``, packed
    lane 0 in the LSBs (as :func:`rtlgen.layers.vector_stream`). One sample is ``in_beats``
    transfers in and ``out_beats`` transfers out. The core runs in the ``sync`` domain, here driven
    by ``aclk`` with the synchronous reset ``~aresetn``.
    """

    def __init__(
        self,
        core,
        in_type: FixedType,
        in_lanes: int,
        in_beats: int,
        out_type: FixedType,
        out_lanes: int,
        out_beats: int,
    ):
        for name, n in (("in_lanes", in_lanes), ("in_beats", in_beats), ("out_lanes", out_lanes),
                        ("out_beats", out_beats)):  # fmt: skip
            if int(n) < 1:
                raise ValueError(f"AxisTop: {name} must be >= 1, not {n}")
        for port, t, lanes in (("i", in_type, in_lanes), ("o", out_type, out_lanes)):
            got = stream_lanes(getattr(core, port), t)
            if got != lanes:
                raise ValueError(
                    f"AxisTop: core port {port!r} carries {got} lanes of {t}, not {lanes}"
                )
        self.core = core
        self.in_type, self.in_lanes, self.in_beats = in_type, int(in_lanes), int(in_beats)
        self.out_type, self.out_lanes, self.out_beats = out_type, int(out_lanes), int(out_beats)
        self.in_bytes = lane_bytes(in_type)
        self.out_bytes = lane_bytes(out_type)
        self.in_tdata_width = 8 * self.in_bytes * self.in_lanes
        self.out_tdata_width = 8 * self.out_bytes * self.out_lanes
        super().__init__(
            {
                "aclk": In(1),
                "aresetn": In(1),
                "s_axis_tdata": In(self.in_tdata_width),
                "s_axis_tvalid": In(1),
                "s_axis_tready": Out(1),
                "s_axis_tlast": In(1),
                "m_axis_tdata": Out(self.out_tdata_width),
                "m_axis_tvalid": Out(1),
                "m_axis_tready": In(1),
                "m_axis_tlast": Out(1),
            }
        )

    @property
    def latency(self) -> int:
        """The core's latency: the top adds no registers on the data path."""
        return getattr(self.core, "latency", 0)

    @property
    def initiation_interval(self) -> int:
        return getattr(self.core, "initiation_interval", 1)

    def elaborate(self, platform):
        m = Module()
        # A local "sync" domain reaches the core (its logic is written for "sync") while the
        # emitted top level keeps the AXI port names aclk/aresetn instead of clk/rst.
        m.domains.sync = cd = ClockDomain("sync", local=True)
        m.d.comb += [cd.clk.eq(self.aclk), cd.rst.eq(~self.aresetn)]
        m.submodules.core = core = self.core
        running = self.aresetn

        wi, bi = self.in_type.width, 8 * self.in_bytes
        m.d.comb += [
            core.i.payload.eq(Cat(*(self.s_axis_tdata[k * bi : k * bi + wi] for k in range(self.in_lanes)))),
            core.i.valid.eq(self.s_axis_tvalid & running),
            self.s_axis_tready.eq(core.i.ready & running),
        ]  # fmt: skip

        wo, bo = self.out_type.width, 8 * self.out_bytes
        flat = core.o.payload.as_value()
        for k in range(self.out_lanes):
            lane = flat[k * wo : (k + 1) * wo]
            lane = lane.as_signed() if self.out_type.signed else lane.as_unsigned()
            m.d.comb += self.m_axis_tdata[k * bo : (k + 1) * bo].eq(lane)  # sign/zero-extends
        m.d.comb += [
            self.m_axis_tvalid.eq(core.o.valid & running),
            core.o.ready.eq(self.m_axis_tready),
        ]

        if self.out_beats == 1:
            m.d.comb += self.m_axis_tlast.eq(1)
        else:
            beat = Signal(unsigned((self.out_beats - 1).bit_length()))
            last = beat == Const(self.out_beats - 1, beat.shape())
            m.d.comb += self.m_axis_tlast.eq(last)
            with m.If(self.m_axis_tvalid & self.m_axis_tready):
                m.d.sync += beat.eq(Mux(last, 0, beat + 1))
        return m

