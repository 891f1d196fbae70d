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

``tlast`` has two modes (``tlast=``):

* ``"sample"`` (the default, ``rtl/<top>_axis.v``): ``m_axis_tlast`` is high on the last beat of
  every output sample (a beat counter); ``s_axis_tlast`` is accepted and ignored: the top counts
  input beats itself, so one upstream packet may carry one sample or many.
* ``"batch"`` (the board packages' ``<top>_axis_dma``): ``m_axis_tlast`` is high on the last beat
  of the output sample whose *input* sample carried ``s_axis_tlast`` (on any of its beats), and
  only there: one DMA transfer of N samples in gives one packet of N samples out. A FIFO of one
  flag per sample in flight (:func:`samples_in_flight` deep) carries the flags past the core; when
  it is full the last beat of the next input sample waits (never a loss, only a pause). The last
  beat of an output sample is held back (``m_axis_tvalid`` low) while its flag is unknown, i.e.
  while the core has finished the output of a sample whose last input beat has not yet arrived.

``in_tdata_width``/``out_tdata_width`` pad the buses beyond the lanes (e.g. to the power-of-two
widths an AXI DMA takes): extra input bits are ignored, extra output bits are zero.

The handshakes pass straight through (no registers, no bubbles): the top adds no latency and
accepts a beat in every cycle the core does. While ``aresetn`` is low (a synchronous,
active-low reset of the whole core) ``s_axis_tready`` and ``m_axis_tvalid`` are held low.
"""

from __future__ import annotations

from amaranth.hdl import Cat, ClockDomain, Const, Module, Mux, Shape, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from rtlgen.fixed import FixedType

__all__ = ["AxisTop", "TLAST_MODES", "dma_width", "lane_bytes", "samples_in_flight", "stream_lanes"]

#: ``tlast`` modes of :class:`AxisTop`.
TLAST_MODES = ("sample", "batch")
#: Stream data widths an AXI DMA (PG021) takes: powers of two from 8 to 1024 bits.
DMA_MAX_WIDTH = 1024


def dma_width(bits: int) -> int:
    """The narrowest AXI DMA stream width (a power of two, at least 8) holding ``bits`` bits.

    May exceed :data:`DMA_MAX_WIDTH`; callers check."""
    bits = max(int(bits), 8)
    return 1 << (bits - 1).bit_length()


def samples_in_flight(latency: int, interval: int, in_beats: int = 1, out_beats: int = 1) -> int:
    """Samples a core can hold between taking the last beat of a sample's input and giving the
    last beat of its output, when run at full rate: the depth of batch mode's flag FIFO.

    A sample is accepted every ``interval`` cycles and leaves ``latency`` cycles after its first
    beat entered; two spare entries cover the samples entering and leaving in the same cycle. With
    output back-pressure the core may hold more, and then the input simply waits for a flag slot.
    """
    interval = max(int(interval), 1)
    span = max(int(latency), 0) + int(in_beats) + int(out_beats)
    return -(-span // interval) + 2


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
        *,
        tlast: str = "sample",
        in_tdata_width: int | None = None,
        out_tdata_width: int | None = None,
        max_in_flight: int | None = None,
    ):
        if tlast not in TLAST_MODES:
            raise ValueError(f"AxisTop: tlast must be one of {', '.join(map(repr, TLAST_MODES))}, not {tlast!r}")
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
        self.tlast = tlast
        self.in_lanes_width = 8 * self.in_bytes * self.in_lanes
        self.out_lanes_width = 8 * self.out_bytes * self.out_lanes
        self.in_tdata_width = self._bus("in_tdata_width", in_tdata_width, self.in_lanes_width)
        self.out_tdata_width = self._bus("out_tdata_width", out_tdata_width, self.out_lanes_width)
        if max_in_flight is None:
            max_in_flight = samples_in_flight(self.latency, self.initiation_interval, self.in_beats, self.out_beats)
        if int(max_in_flight) < 1:
            raise ValueError(f"AxisTop: max_in_flight must be >= 1, not {max_in_flight}")
        self.max_in_flight = int(max_in_flight)
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

    @staticmethod
    def _bus(name, width, lanes_width) -> int:
        if width is None:
            return lanes_width
        if int(width) < lanes_width or int(width) % 8:
            raise ValueError(
                f"AxisTop: {name} must be a multiple of 8 of at least {lanes_width} bits, not {width}"
            )
        return int(width)

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
        batch = self.tlast == "batch"

        wi, bi = self.in_type.width, 8 * self.in_bytes
        payload = Cat(*(self.s_axis_tdata[k * bi : k * bi + wi] for k in range(self.in_lanes)))
        m.d.comb += core.i.payload.eq(payload)

        wo, bo = self.out_type.width, 8 * self.out_bytes
        flat = core.o.payload.as_value()
        lanes = []
        for k in range(self.out_lanes):
            lane = flat[k * wo : (k + 1) * wo]
            lane = lane.as_signed() if self.out_type.signed else lane.as_unsigned()
            sized = Signal(bo, name=f"out_lane{k}")
            m.d.comb += sized.eq(lane)  # sign/zero-extends
            lanes.append(sized)
        m.d.comb += self.m_axis_tdata.eq(Cat(*lanes))  # padding bits above the lanes are zero

        o_fire = self.m_axis_tvalid & self.m_axis_tready
        if self.out_beats == 1:
            out_last = Const(1)
        else:
            beat = Signal(unsigned((self.out_beats - 1).bit_length()))
            out_last = beat == Const(self.out_beats - 1, beat.shape())
            with m.If(o_fire):
                m.d.sync += beat.eq(Mux(out_last, 0, beat + 1))

        if not batch:
            m.d.comb += [
                core.i.valid.eq(self.s_axis_tvalid & running),
                self.s_axis_tready.eq(core.i.ready & running),
                self.m_axis_tvalid.eq(core.o.valid & running),
                core.o.ready.eq(self.m_axis_tready),
                self.m_axis_tlast.eq(out_last),
            ]
            return m

        # -- batch mode: carry each input sample's tlast flag to the end of its output sample --
        if self.in_beats == 1:
            in_last = Const(1)
        else:
            ibeat = Signal(unsigned((self.in_beats - 1).bit_length()))
            in_last = ibeat == Const(self.in_beats - 1, ibeat.shape())
        m.submodules.flags = flags = SyncFIFO(width=1, depth=self.max_in_flight)
        cur = Signal()  # tlast seen on an earlier beat of the input sample in progress
        ahead = Signal()  # an output sample finished before its input sample did
        live = cur | self.s_axis_tlast  # the flag of the input sample, were its last beat taken now
        # The last input beat of a sample needs a free flag slot.
        in_ok = ~in_last | flags.w_rdy
        # The flag of the output sample in progress: the oldest stored one or, while the FIFO is
        # empty, that of the input sample whose last beat is being offered now.
        known = flags.r_rdy | (~ahead & self.s_axis_tvalid & in_last & running)
        out_ok = ~out_last | known
        m.d.comb += [
            core.i.valid.eq(self.s_axis_tvalid & running & in_ok),
            self.s_axis_tready.eq(core.i.ready & running & in_ok),
            self.m_axis_tvalid.eq(core.o.valid & running & out_ok),
            core.o.ready.eq(self.m_axis_tready & out_ok),
            self.m_axis_tlast.eq(out_last & Mux(flags.r_rdy, flags.r_data, live)),
        ]
        i_fire = self.s_axis_tvalid & self.s_axis_tready
        in_done = i_fire & in_last
        out_done = o_fire & out_last
        from_live = out_done & ~flags.r_rdy
        m.d.comb += [
            flags.w_data.eq(live),
            flags.w_en.eq(in_done & ~ahead & ~from_live),
            flags.r_en.eq(out_done),
        ]
        with m.If(from_live & ~in_done):
            m.d.sync += ahead.eq(1)
        with m.Elif(in_done):
            m.d.sync += ahead.eq(0)
        with m.If(i_fire):
            m.d.sync += cur.eq(Mux(in_last, 0, live))
            if self.in_beats > 1:
                m.d.sync += ibeat.eq(Mux(in_last, 0, ibeat + 1))
        return m
