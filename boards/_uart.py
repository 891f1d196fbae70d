"""A UART (8N1) receiver and transmitter, and the bridge that feeds a network from them.

The frames, the window and the status codes are specified in :mod:`rtlgen.boards.uart`; this
module is their hardware. Everything runs in the ``sync`` domain; ``divisor`` is clock cycles per
bit (the board clock over the baud rate).
"""

from __future__ import annotations

from amaranth.hdl import Cat, ClockSignal, Const, Instance, Module, Mux, ResetSignal, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .uart import _CRC, CHECKSUM, DROPPED, FRAMING, OK, OVERRUN, SYNC

__all__ = ["UARTReceiver", "UARTTransmitter", "UARTBridge", "BridgedCore", "crc8_step"]


def _check_divisor(divisor):
    if not isinstance(divisor, int) or divisor < 4:
        raise ValueError(f"UART divisor must be an integer of at least 4 clock cycles per bit, not {divisor!r}")


def crc8_step(crc, byte):
    """CRC-8/SMBUS (polynomial 0x07) of ``crc`` extended by ``byte``: combinational.

    The CRC of one byte is linear in ``crc ^ byte``: each result bit is the XOR of the input bits
    whose one-hot table entry has that bit set."""
    v = (crc ^ byte)[:8]
    bits = []
    for i in range(8):
        taps = [v[j] for j in range(8) if _CRC[1 << j] >> i & 1]
        x = taps[0]
        for t in taps[1:]:
            x = x ^ t
        bits.append(x)
    return Cat(*bits)


class UARTReceiver(wiring.Component):
    """8N1 receiver on ``rx`` (synchronized here). Each byte appears on ``o`` for one cycle with
    ``framing_error`` set when its stop bit was low; a UART cannot hold its sender, so ``o`` has no
    ready. A byte is delivered half a bit after the middle of its last data bit.
    """

    def __init__(self, *, divisor: int):
        _check_divisor(divisor)
        self.divisor = divisor
        layout = data.StructLayout({"data": 8, "framing_error": 1})
        super().__init__({"rx": In(1, init=1), "o": Out(stream.Signature(layout, always_ready=True))})

    def elaborate(self, platform):
        m = Module()
        d = self.divisor
        sync = Signal(2, init=0b11)
        m.d.sync += sync.eq(Cat(self.rx, sync[0]))
        rx = sync[1]
        timer = Signal(range(d))
        bit = Signal(range(8))
        shreg = Signal(8)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(~rx):
                    m.d.sync += timer.eq(d // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(timer == 0):
                    m.d.sync += [timer.eq(d - 1), bit.eq(0)]
                    # A low line in the middle of the start bit; otherwise a glitch.
                    m.next = "DATA"
                    with m.If(rx):
                        m.next = "IDLE"
                with m.Else():
                    m.d.sync += timer.eq(timer - 1)
            with m.State("DATA"):
                with m.If(timer == 0):
                    m.d.sync += [shreg.eq(Cat(shreg[1:], rx)), timer.eq(d - 1), bit.eq(bit + 1)]
                    with m.If(bit == 7):
                        m.next = "STOP"
                with m.Else():
                    m.d.sync += timer.eq(timer - 1)
            with m.State("STOP"):
                with m.If(timer == 0):
                    m.d.comb += [
                        self.o.valid.eq(1),
                        self.o.payload.data.eq(shreg),
                        self.o.payload.framing_error.eq(~rx),
                    ]
                    m.next = "IDLE"
                    with m.If(~rx):
                        m.next = "BREAK"
                with m.Else():
                    m.d.sync += timer.eq(timer - 1)
            with m.State("BREAK"):
                # No stop bit: wait for the idle line before looking for a start bit again.
                with m.If(rx):
                    m.next = "IDLE"
        return m


class UARTTransmitter(wiring.Component):
    """8N1 transmitter: takes a byte from ``i`` whenever idle and shifts it out on ``tx`` (held
    high when idle). One byte every ``10 * divisor`` cycles at most."""

    def __init__(self, *, divisor: int):
        _check_divisor(divisor)
        self.divisor = divisor
        super().__init__({"i": In(stream.Signature(8)), "tx": Out(1, init=1)})

    def elaborate(self, platform):
        m = Module()
        d = self.divisor
        shreg = Signal(10, init=0x3FF)
        timer = Signal(range(d))
        count = Signal(range(11))
        m.d.comb += self.tx.eq(shreg[0])
        with m.If(count == 0):
            m.d.comb += self.i.ready.eq(1)
            with m.If(self.i.valid):
                m.d.sync += [shreg.eq(Cat(Const(0, 1), self.i.payload, Const(1, 1))), count.eq(10), timer.eq(d - 1)]
        with m.Elif(timer == 0):
            m.d.sync += [shreg.eq(Cat(shreg[1:], Const(1, 1))), count.eq(count - 1), timer.eq(d - 1)]
        with m.Else():
            m.d.sync += timer.eq(timer - 1)
        return m


class UARTBridge(wiring.Component):
    """Frames from ``rx`` to the network's input beats on ``samples``; the network's output beats
    from ``results`` to frames on ``tx`` (protocol: :mod:`rtlgen.boards.uart`).

    ``in_beat_bytes``/``out_beat_bytes``: bytes per transfer of the network's byte-aligned streams
    (an AXI4-Stream ``tdata``); ``in_beats``/``out_beats``: transfers per sample. ``window``: the
    frames the host may keep unanswered; the receive buffer (one memory, block RAM on an iCE40)
    holds that many whole frames, and a frame enters it only when its checksum is right, so a
    rejected frame never reaches ``samples``.
    """

    def __init__(self, *, in_beat_bytes: int, in_beats: int, out_beat_bytes: int, out_beats: int, divisor: int, window: int):
        for name, v in (("in_beat_bytes", in_beat_bytes), ("in_beats", in_beats), ("out_beat_bytes", out_beat_bytes),
                        ("out_beats", out_beats), ("window", window)):  # fmt: skip
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"UART bridge {name} must be a positive integer, not {v!r}")
        if window > 255:
            raise ValueError(f"UART bridge window must be at most 255 frames, not {window}")
        _check_divisor(divisor)
        self.in_beat_bytes, self.in_beats = in_beat_bytes, in_beats
        self.out_beat_bytes, self.out_beats = out_beat_bytes, out_beats
        self.divisor, self.window = divisor, window
        # Sequence number and sample of every frame in the window, plus one free slot.
        self.frame_bytes = 1 + in_beat_bytes * in_beats
        self.buffer_depth = 1 << (window * self.frame_bytes).bit_length()
        super().__init__({
            "rx": In(1, init=1),
            "tx": Out(1, init=1),
            "samples": Out(stream.Signature(8 * in_beat_bytes)),
            "results": In(stream.Signature(8 * out_beat_bytes)),
        })  # fmt: skip

    def elaborate(self, platform):
        m = Module()
        m.submodules.rxd = rxd = UARTReceiver(divisor=self.divisor)
        m.submodules.txd = txd = UARTTransmitter(divisor=self.divisor)
        m.d.comb += [rxd.rx.eq(self.rx), self.tx.eq(txd.tx)]
        m.submodules.buf = buf = Memory(shape=8, depth=self.buffer_depth, init=[])
        wr = buf.write_port()
        rd = buf.read_port()
        m.submodules.errors = errors = fifo.SyncFIFOBuffered(width=10, depth=self.window)
        m.submodules.seqs = seqs = fifo.SyncFIFOBuffered(width=8, depth=self.window)
        aw = (self.buffer_depth - 1).bit_length()
        wptr, cptr, rptr = Signal(aw), Signal(aw), Signal(aw)
        dropped = Signal()  # a rejection that could not be queued for reporting
        set_dropped = Signal()

        # -- receive: frames into the buffer, committed only when whole and correct -------------
        byte, got = rxd.o.payload.data, rxd.o.valid
        seq_in, crc_in = Signal(8), Signal(8)
        count = Signal(range(max(self.frame_bytes, 2)))
        overrun, framing = Signal(), Signal()
        full = (wptr + 1)[:aw] == rptr
        m.d.comb += [wr.addr.eq(wptr), wr.data.eq(byte)]

        def store():
            with m.If(full):
                m.d.sync += overrun.eq(1)
            with m.Else():
                m.d.comb += wr.en.eq(1)
                m.d.sync += wptr.eq(wptr + 1)
            m.d.sync += [crc_in.eq(crc8_step(crc_in, byte)), framing.eq(framing | rxd.o.payload.framing_error)]

        with m.FSM(name="receive"):
            with m.State("HUNT"):
                with m.If(got & (byte == SYNC) & ~rxd.o.payload.framing_error):
                    m.d.sync += [crc_in.eq(0), overrun.eq(0), framing.eq(0), count.eq(0)]
                    m.next = "SEQ"
            with m.State("SEQ"):
                with m.If(got):
                    m.d.sync += seq_in.eq(byte)
                    store()
                    m.next = "SAMPLE"
            with m.State("SAMPLE"):
                with m.If(got):
                    store()
                    m.d.sync += count.eq(count + 1)
                    with m.If(count == self.frame_bytes - 2):
                        m.next = "CHECK"
            with m.State("CHECK"):
                with m.If(got):
                    bad = framing | rxd.o.payload.framing_error | overrun | (crc_in != byte)
                    code = Mux(framing | rxd.o.payload.framing_error, FRAMING, Mux(overrun, OVERRUN, CHECKSUM))
                    with m.If(bad):
                        m.d.sync += wptr.eq(cptr)
                        m.d.comb += [errors.w_data.eq(Cat(seq_in, code[:2])), errors.w_en.eq(1)]
                        with m.If(~errors.w_rdy):
                            m.d.comb += set_dropped.eq(1)
                    with m.Else():
                        m.d.sync += cptr.eq(wptr)
                    m.next = "HUNT"

        # -- committed frames to the network, one beat at a time ---------------------------------
        beat = Signal(8 * self.in_beat_bytes)
        bidx = Signal(range(self.in_beat_bytes))
        nbeat = Signal(range(self.in_beats))
        head = Signal(init=1)
        m.d.comb += [rd.addr.eq(rptr), seqs.w_data.eq(rd.data)]
        with m.FSM(name="feed"):
            with m.State("FETCH"):
                with m.If((rptr != cptr) & (~head | seqs.w_rdy)):
                    m.d.sync += rptr.eq(rptr + 1)
                    m.next = "GOT"
            with m.State("GOT"):
                with m.If(head):
                    m.d.comb += seqs.w_en.eq(1)
                    m.d.sync += head.eq(0)
                    m.next = "FETCH"
                with m.Else():
                    m.d.sync += beat.eq(Cat(beat[8:], rd.data) if self.in_beat_bytes > 1 else rd.data)
                    m.d.sync += bidx.eq(Mux(bidx == self.in_beat_bytes - 1, 0, bidx + 1))
                    m.next = "FETCH"
                    with m.If(bidx == self.in_beat_bytes - 1):
                        m.next = "PRESENT"
            with m.State("PRESENT"):
                m.d.comb += [self.samples.valid.eq(1), self.samples.payload.eq(beat)]
                with m.If(self.samples.ready):
                    with m.If(nbeat == self.in_beats - 1):
                        m.d.sync += [nbeat.eq(0), head.eq(1)]
                    with m.Else():
                        m.d.sync += nbeat.eq(nbeat + 1)
                    m.next = "FETCH"

        # -- replies: rejections first, then outputs in order -------------------------------------
        status, seq_out, crc_out = Signal(8), Signal(8), Signal(8)
        is_output = Signal()
        obeat = Signal(8 * self.out_beat_bytes)
        obidx = Signal(range(self.out_beat_bytes))
        onbeat = Signal(range(self.out_beats))
        tx_byte = Signal(8)
        m.d.comb += txd.i.payload.eq(tx_byte)
        sent = txd.i.valid & txd.i.ready
        with m.FSM(name="reply"):
            with m.State("IDLE"):
                with m.If(errors.r_rdy):
                    m.d.comb += errors.r_en.eq(1)
                    m.d.sync += [status.eq(errors.r_data[8:] | Mux(dropped, DROPPED, 0)), seq_out.eq(errors.r_data[:8]),
                                 is_output.eq(0), dropped.eq(0)]  # fmt: skip
                    m.next = "SYNC"
                with m.Elif(self.results.valid & seqs.r_rdy):
                    m.d.comb += seqs.r_en.eq(1)
                    m.d.sync += [status.eq(Mux(dropped, DROPPED | OK, OK)), seq_out.eq(seqs.r_data), is_output.eq(1), dropped.eq(0)]
                    m.next = "SYNC"
            with m.State("SYNC"):
                m.d.comb += [tx_byte.eq(SYNC), txd.i.valid.eq(1)]
                with m.If(sent):
                    m.d.sync += crc_out.eq(0)
                    m.next = "STATUS"
            with m.State("STATUS"):
                m.d.comb += [tx_byte.eq(status), txd.i.valid.eq(1)]
                with m.If(sent):
                    m.d.sync += crc_out.eq(crc8_step(crc_out, status))
                    m.next = "SEQ"
            with m.State("SEQ"):
                m.d.comb += [tx_byte.eq(seq_out), txd.i.valid.eq(1)]
                with m.If(sent):
                    m.d.sync += crc_out.eq(crc8_step(crc_out, seq_out))
                    m.next = "CRC"
                    with m.If(is_output):
                        m.next = "TAKE"
            with m.State("TAKE"):
                m.d.comb += self.results.ready.eq(1)
                with m.If(self.results.valid):
                    m.d.sync += obeat.eq(self.results.payload)
                    m.next = "BYTES"
            with m.State("BYTES"):
                m.d.comb += [tx_byte.eq(obeat[:8]), txd.i.valid.eq(1)]
                with m.If(sent):
                    m.d.sync += [crc_out.eq(crc8_step(crc_out, obeat[:8])), obeat.eq(obeat >> 8)]
                    with m.If(obidx == self.out_beat_bytes - 1):
                        m.d.sync += obidx.eq(0)
                        with m.If(onbeat == self.out_beats - 1):
                            m.d.sync += onbeat.eq(0)
                            m.next = "CRC"
                        with m.Else():
                            m.d.sync += onbeat.eq(onbeat + 1)
                            m.next = "TAKE"
                    with m.Else():
                        m.d.sync += obidx.eq(obidx + 1)
            with m.State("CRC"):
                m.d.comb += [tx_byte.eq(crc_out), txd.i.valid.eq(1)]
                with m.If(sent):
                    m.next = "IDLE"
        # After the reply FSM's clear, so that a rejection in the same cycle is not lost.
        with m.If(set_dropped):
            m.d.sync += dropped.eq(1)
        return m


class BridgedCore(wiring.Component):
    """A network's AXI4-Stream top level (the module ``rtl/<top>_axis.v`` of a build, instantiated
    by name as ``axis_module``) behind a :class:`UARTBridge`: the pins ``rx`` and ``tx`` are the
    whole interface. The core runs on the ``sync`` clock and is reset with it.

    ``in_tdata_width``/``out_tdata_width``: the module's ``s_axis_tdata``/``m_axis_tdata`` widths
    (whole bytes); ``in_beats``/``out_beats``: transfers per sample.
    """

    def __init__(self, axis_module: str, *, in_tdata_width: int, in_beats: int, out_tdata_width: int, out_beats: int,
                 divisor: int, window: int):  # fmt: skip
        for name, w in (("in_tdata_width", in_tdata_width), ("out_tdata_width", out_tdata_width)):
            if not isinstance(w, int) or w < 8 or w % 8:
                raise ValueError(f"{name} must be a positive multiple of 8 bits, not {w!r}")
        self.axis_module = str(axis_module)
        self.in_tdata_width, self.out_tdata_width = in_tdata_width, out_tdata_width
        self.bridge = UARTBridge(
            in_beat_bytes=in_tdata_width // 8, in_beats=in_beats, out_beat_bytes=out_tdata_width // 8,
            out_beats=out_beats, divisor=divisor, window=window,
        )  # fmt: skip
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.bridge = bridge = self.bridge
        m.d.comb += [bridge.rx.eq(self.rx), self.tx.eq(bridge.tx)]
        m.submodules.core = Instance(
            self.axis_module,
            i_aclk=ClockSignal(),
            i_aresetn=~ResetSignal(),
            i_s_axis_tdata=bridge.samples.payload,
            i_s_axis_tvalid=bridge.samples.valid,
            o_s_axis_tready=bridge.samples.ready,
            i_s_axis_tlast=Const(0, 1),
            o_m_axis_tdata=bridge.results.payload,
            o_m_axis_tvalid=bridge.results.valid,
            i_m_axis_tready=bridge.results.ready,
            o_m_axis_tlast=Signal(name="m_axis_tlast_unused"),
        )
        return m
