"""``io_stream`` hardware: line buffers, (de)serializers, FIFOs and the streaming top level.

A tensor travels one position (all channels) per transfer; see :mod:`rtlgen.stream` for the timing
rules every block here follows and for how FIFO depths are derived from them.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from rtlgen.ir import Graph, Tensor
from rtlgen.plan import stream as sched

from ._common import Layer, vector_stream
from ._elementwise import ForkLayer
from ._verilog import stream_ports

__all__ = ["WindowBuffer", "Deserializer", "Serializer", "BeatFifo", "StreamNetwork"]


def _lane_width(t) -> int:
    return t.width


class WindowBuffer(Layer):
    """Line buffer: pixels in (``C`` lanes), complete ``kh x kw`` windows out (lanes in
    ``(ky, kx, c)`` order).

    A shift register as long as ``(kh - 1) * dy`` padded rows plus ``(kw - 1) * dx + 1`` pixels
    holds the recent positions of the padded image; the window taps sit at fixed offsets, so
    there is no addressing, and Xilinx tools map the register to SRLs. Padding positions are
    stepped through without input, one per cycle, and hold ``pad_value`` (a mantissa) in every
    lane: 0 for convolutions and counted-padding averages, the type's minimum for max pooling, so
    that padding never wins. Latency 1.
    """

    latency = 1

    def __init__(self, t, in_shape, kernel, stride=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1), pad_value=0):
        H, W, C = in_shape
        if not t.min_mantissa <= pad_value <= t.max_mantissa:
            raise ValueError(f"pad value {pad_value} does not fit {t}")
        self.pad_value = int(pad_value)
        self.in_shape, self.kernel, self.stride = tuple(in_shape), tuple(kernel), tuple(stride)
        self.padding, self.dilation = tuple(tuple(p) for p in padding), tuple(dilation)
        (pt, pb), (pl, pr) = self.padding
        self.Hp, self.Wp = H + pt + pb, W + pl + pr
        self.pad, self.emit = sched.window_steps((H, W), self.kernel, self.stride, self.padding, self.dilation)
        kh, kw = self.kernel
        super().__init__(t, C, t, kh * kw * C)

    @property
    def _pad_pixel(self) -> int:
        """The padding pixel as raw bits: ``pad_value`` in two's complement in every lane."""
        w = self.in_type.width
        lane = self.pad_value & ((1 << w) - 1)
        return sum(lane << (c * w) for c in range(self.n_in))

    @property
    def initiation_interval(self) -> int:
        return self.Hp * self.Wp

    @property
    def settle_cycles(self) -> int:
        """Padding steps before the first real pixel of the first image (taken after reset)."""
        return int(np.argmax(~self.pad))

    def elaborate(self, platform):
        from ._verilog import TextModules

        if isinstance(platform, TextModules):
            return platform.instance(self, "window", self.verilog)
        return self._amaranth()

    def verilog(self, name: str) -> str:
        """This line buffer as a Verilog module ``name``, cycle for cycle the same as the Amaranth
        form (a window is tens of thousands of bits wide, which Amaranth lowers bit by bit)."""
        (H, W, C), (kh, kw), (dy, dx), (sy, sx) = self.in_shape, self.kernel, self.dilation, self.stride
        (pt, _), (pl, _) = self.padding
        Hp, Wp = self.Hp, self.Wp
        pix = C * self.in_type.width
        offsets = [(kh - 1 - ky) * dy * Wp + (kw - 1 - kx) * dx for ky in range(kh) for kx in range(kw)]
        depth = max(offsets)
        ry0, rx0 = (-(kh - 1) * dy) % sy, (-(kw - 1) * dx) % sx
        vyw, vxw = max(Hp - 1, 1).bit_length(), max(Wp - 1, 1).bit_length()
        ryw, rxw = max(sy - 1, 1).bit_length(), max(sx - 1, 1).bit_length()
        window = "{" + ", ".join("pixel" if d == 0 else f"line{d - 1}" for d in reversed(offsets)) + "}"
        pad = [f"(vy < {pt})" if pt else "", f"(vy >= {pt + H})", f"(vx < {pl})" if pl else "", f"(vx >= {pl + W})"]
        # No comparison with 0 (a 1-D kernel's row): always true, which lint refuses.
        emit = [f"(vy >= {(kh - 1) * dy})" if kh > 1 else "", f"(vx >= {(kw - 1) * dx})" if kw > 1 else "", "(ry == 0)", "(rx == 0)"]
        emit = [e for e in emit if e]
        return "\n".join([
            *stream_ports(name, pix, len(offsets) * pix),
            "  reg valid = 1'b0;", f"  reg [{len(offsets) * pix - 1}:0] out = {len(offsets) * pix}'d0;",
            *[f"  reg [{pix - 1}:0] line{j} = {pix}'d0;" for j in range(depth)],
            f"  reg [{vyw - 1}:0] vy = {vyw}'d0;", f"  reg [{vxw - 1}:0] vx = {vxw}'d0;",
            f"  reg [{ryw - 1}:0] ry = {ryw}'d{ry0};", f"  reg [{rxw - 1}:0] rx = {rxw}'d{rx0};",
            "  wire is_pad, emit, step, step_ok;", f"  wire [{pix - 1}:0] pixel;",
            f"  assign is_pad = {' | '.join(p for p in pad if p)};",
            f"  assign emit = {' & '.join(emit)};",
            f"  assign pixel = is_pad ? {pix}'d{self._pad_pixel} : i_payload;",
            "  assign step_ok = ~valid | o_ready;", "  assign i_ready = step_ok & ~is_pad;",
            "  assign step = step_ok & (is_pad | i_valid);", "  assign o_valid = valid;", "  assign o_payload = out;",
            "  always @(posedge clk) begin",
            "    if (step) begin",
            *(["      line0 <= pixel;"] if depth else []), *[f"      line{j} <= line{j - 1};" for j in range(1, depth)],
            "      valid <= emit;", f"      out <= {window};",
            f"      if (vx == {Wp - 1}) begin",
            f"        vx <= {vxw}'d0;", f"        rx <= {rxw}'d{rx0};",
            f"        if (vy == {Hp - 1}) begin", f"          vy <= {vyw}'d0;", f"          ry <= {ryw}'d{ry0};",
            "        end else begin", f"          vy <= vy + {vyw}'d1;", f"          ry <= (ry == {sy - 1}) ? {ryw}'d0 : ry + {ryw}'d1;", "        end",
            "      end else begin",
            f"        vx <= vx + {vxw}'d1;", f"        rx <= (rx == {sx - 1}) ? {rxw}'d0 : rx + {rxw}'d1;", "      end",
            "    end else if (o_ready) valid <= 1'b0;",
            "    if (rst) begin",
            "      valid <= 1'b0;", f"      vy <= {vyw}'d0;", f"      vx <= {vxw}'d0;", f"      ry <= {ryw}'d{ry0};", f"      rx <= {rxw}'d{rx0};",
            "    end",
            "  end",
            "endmodule", "",
        ])  # fmt: skip

    def _amaranth(self):
        m = Module()
        (H, W, C), (kh, kw), (dy, dx), (sy, sx) = self.in_shape, self.kernel, self.dilation, self.stride
        (pt, _), (pl, _) = self.padding
        Hp, Wp = self.Hp, self.Wp
        pix = C * self.in_type.width
        offsets = [(kh - 1 - ky) * dy * Wp + (kw - 1 - kx) * dx for ky in range(kh) for kx in range(kw)]
        line = [Signal(pix, name=f"line{j}", reset_less=True) for j in range(max(offsets))]
        vy, vx = Signal(range(Hp), name="vy"), Signal(range(Wp), name="vx")
        # Stride phases of the window's bottom-right position, counted alongside it.
        ry0, rx0 = (-(kh - 1) * dy) % sy, (-(kw - 1) * dx) % sx
        ry = Signal(range(max(sy, 2)), init=ry0, name="ry")
        rx = Signal(range(max(sx, 2)), init=rx0, name="rx")
        is_pad, emit, step, new = Signal(), Signal(), Signal(), Signal(pix)
        step_ok = ~self.o.valid | self.o.ready
        m.d.comb += [
            # (no comparison with a zero pad: a counter is never below 0)
            is_pad.eq(
                ((vy < pt) if pt else Const(0, 1)) | (vy >= pt + H) | ((vx < pl) if pl else Const(0, 1)) | (vx >= pl + W)
            ),
            emit.eq((vy >= (kh - 1) * dy) & (vx >= (kw - 1) * dx) & (ry == 0) & (rx == 0)),
            new.eq(Mux(is_pad, Const(self._pad_pixel, pix), self.i.payload.as_value())),
            self.i.ready.eq(step_ok & ~is_pad),
            step.eq(step_ok & (is_pad | self.i.valid)),
        ]
        window = Cat(*[new if d == 0 else line[d - 1] for d in offsets])
        out = Signal(len(window), reset_less=True)
        m.d.comb += self.o.payload.as_value().eq(out)
        with m.If(step):
            if line:
                m.d.sync += [line[0].eq(new)] + [line[j].eq(line[j - 1]) for j in range(1, len(line))]
            m.d.sync += [self.o.valid.eq(emit), out.eq(window)]
            with m.If(vx == Wp - 1):
                m.d.sync += [vx.eq(0), rx.eq(rx0)]
                with m.If(vy == Hp - 1):
                    m.d.sync += [vy.eq(0), ry.eq(ry0)]
                with m.Else():
                    m.d.sync += [vy.eq(vy + 1), ry.eq(Mux(ry == sy - 1, 0, ry + 1))]
            with m.Else():
                m.d.sync += [vx.eq(vx + 1), rx.eq(Mux(rx == sx - 1, 0, rx + 1))]
        with m.Elif(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        return m


class Deserializer(Layer):
    """``n`` beats of ``lanes`` in, one vector of ``n * lanes`` out (beat 0 in the low lanes).

    A new sample's first beat may be taken in the cycle the finished vector leaves. Latency 1."""

    latency = 1

    def __init__(self, t, lanes, n):
        self.beats = n
        super().__init__(t, lanes, t, lanes * n)

    @property
    def initiation_interval(self) -> int:
        return self.beats

    def elaborate(self, platform):
        from ._verilog import TextModules

        if isinstance(platform, TextModules):
            return platform.instance(self, "deserializer", self.verilog)
        return self._amaranth()

    def verilog(self, name: str) -> str:
        """This block as a Verilog module ``name``, cycle for cycle the same as the Amaranth form."""
        n, w = self.beats, self.n_in * self.in_type.width
        cw = max(n - 1, 1).bit_length()
        return "\n".join([
            *stream_ports(name, w, n * w),
            "  reg valid = 1'b0;", f"  reg [{cw - 1}:0] count = {cw}'d0;", *[f"  reg [{w - 1}:0] slot{j} = {w}'d0;" for j in range(n)],
            "  assign o_valid = valid;", "  assign i_ready = ~valid | o_ready;",
            "  assign o_payload = {" + ", ".join(f"slot{j}" for j in reversed(range(n))) + "};",
            "  always @(posedge clk) begin",
            "    if (valid & o_ready) valid <= 1'b0;",
            "    if (i_valid & i_ready) begin",
            *[f"      if (count == {cw}'d{j}) slot{j} <= i_payload;" for j in range(n)],
            f"      if (count == {cw}'d{n - 1}) begin", f"        count <= {cw}'d0;", "        valid <= 1'b1;",
            f"      end else count <= count + {cw}'d1;",
            "    end",
            "    if (rst) begin", "      valid <= 1'b0;", f"      count <= {cw}'d0;", "    end",
            "  end",
            "endmodule", "",
        ])  # fmt: skip

    def _amaranth(self):
        m = Module()
        n, w = self.beats, self.n_in * self.in_type.width
        slots = [Signal(w, name=f"slot{j}", reset_less=True) for j in range(n)]
        count = Signal(range(max(n, 2)))
        m.d.comb += [
            self.o.payload.as_value().eq(Cat(*slots)),
            self.i.ready.eq(~self.o.valid | self.o.ready),
        ]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(self.i.valid & self.i.ready):
            for j in range(n):
                with m.If(count == j):
                    m.d.sync += slots[j].eq(self.i.payload.as_value())
            with m.If(count == n - 1):
                m.d.sync += [count.eq(0), self.o.valid.eq(1)]
            with m.Else():
                m.d.sync += count.eq(count + 1)
        return m


class Serializer(Layer):
    """One vector of ``n * lanes`` in, ``n`` beats of ``lanes`` out on consecutive cycles; the next
    vector is taken in the cycle the last beat leaves. Latency 1 (to the first beat)."""

    latency = 1

    def __init__(self, t, lanes, n):
        self.beats = n
        super().__init__(t, lanes * n, t, lanes)

    @property
    def initiation_interval(self) -> int:
        return self.beats

    def elaborate(self, platform):
        m = Module()
        n, w = self.beats, self.n_out * self.out_type.width
        buf = Signal(n * w, reset_less=True)
        count = Signal(range(max(n, 2)))
        last = count == n - 1
        m.d.comb += [
            self.o.payload.as_value().eq(buf[:w]),
            self.i.ready.eq(~self.o.valid | (self.o.ready & last)),
        ]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [buf.eq(self.i.payload.as_value()), count.eq(0), self.o.valid.eq(1)]
        with m.Elif(self.o.valid & self.o.ready):
            with m.If(last):
                m.d.sync += self.o.valid.eq(0)
            with m.Else():
                m.d.sync += [buf.eq(buf >> w), count.eq(count + 1)]
        return m


class BeatFifo(Layer):
    """``depth`` beats of buffering; a beat written in cycle ``t`` is readable from ``t + 1``, and
    a full FIFO refuses writes (the rule :func:`rtlgen.stream.fifo_depth` assumes). ``level``
    (unless ``level=False``): the number of stored beats, for simulations that measure it."""

    latency = 1

    def __init__(self, t, lanes, depth, *, level=True):
        self.depth = depth
        super().__init__(t, lanes, t, lanes)
        self.level = Signal(range(depth + 1)) if level else None

    def verilog(self, name: str) -> str:
        """This FIFO as a Verilog module ``name`` (see :func:`._verilog.fifo_verilog`)."""
        from ._verilog import fifo_verilog

        return fifo_verilog(name, self.n_in * self.in_type.width, self.depth, level=self.level is not None)

    def elaborate(self, platform):
        from ._verilog import TextModules

        if isinstance(platform, TextModules):
            ports = {} if self.level is None else {"o_level": self.level}
            return platform.instance(self, "fifo", self.verilog, **ports)
        width = Shape.cast(self.i.payload.shape()).width
        m = Module()
        m.submodules.fifo = fifo = SyncFIFO(width=width, depth=self.depth)
        m.d.comb += [
            fifo.w_data.eq(self.i.payload.as_value()),
            fifo.w_en.eq(self.i.valid),
            self.i.ready.eq(fifo.w_rdy),
            self.o.payload.as_value().eq(fifo.r_data),
            self.o.valid.eq(fifo.r_rdy),
            fifo.r_en.eq(self.o.ready),
        ]
        if self.level is not None:
            m.d.comb += self.level.eq(fifo.level)
        return m


# -- per-beat forms of element-wise ops ------------------------------------------------------------

# Fields that hold one value per lane of the whole tensor.
_LANE_FIELDS = {
    "Relu": (),
    "Requant": ("lanes",),
    "Threshold": ("thresholds", "increasing"),
    "Lut": (),
    "Pwl": ("slope_hi", "bias_hi", "slope_lo", "bias_lo", "knot", "lower", "upper"),
    "Merge": (),
    "Concat": (),
}


def _per_beat(op, shape, beats, lanes):
    """The op restricted to one beat, or ``None`` when its per-lane parameters differ between
    positions (then the layer runs on whole tensors)."""
    kind = type(op).__name__
    if kind not in _LANE_FIELDS:
        return None
    changes = {}
    for name in _LANE_FIELDS[kind]:
        v = getattr(op, name)
        if v is None or np.ndim(v) == 0:
            continue
        if kind == "Requant":
            rows = [list(v[b * lanes : (b + 1) * lanes]) for b in range(beats)]
            if any(r != rows[0] for r in rows):
                return None
            changes[name] = rows[0]
            continue
        a = np.asarray(v)
        if kind == "Threshold":
            per = a.reshape((beats, lanes) + a.shape[1:])
        else:
            per = np.broadcast_to(a, tuple(shape)).reshape(beats, lanes)
        if not (per == per[:1]).all():
            return None
        changes[name] = per[0].copy()
    return dataclasses.replace(op, **changes) if changes else op


def _beat_tensor(t: Tensor, lanes: int) -> Tensor:
    return Tensor(t.name, (lanes,), t.type, t.scale)


def _build(op, srcs, dst):
    from ._registry import hardware

    return hardware(op, srcs, dst)


# -- the streaming top level -----------------------------------------------------------------------


@dataclasses.dataclass
class _Block:
    name: str
    layer: object
    kind: str  # beat | deser | ser | window
    sources: list  # per input port: a tensor name (graph level) or an int (block in the same node)
    items: int  # input beats per sample
    model: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class _Unit:
    """What the report shows for one IR node in ``io_stream``."""

    latency: int
    initiation_interval: int
    blocks: list


class StreamNetwork(wiring.Component):
    """The whole network in ``io_stream`` form: the input tensor arrives one position per beat and
    the output leaves the same way (a 1-D tensor is one beat).

    Convolutions and pooling over images run on line buffers (:class:`WindowBuffer`) followed by
    the layer's one-window datapath; element-wise layers and merges work beat by beat; any other
    layer collects its whole input (:class:`Deserializer`), runs in parallel form and streams its
    result out again (:class:`Serializer`). FIFO depths come from :mod:`rtlgen.stream`.
    ``fifo_depths`` overrides computed depths by FIFO name (for experiments: a depth below
    ``min_depth`` can deadlock). ``monitor`` adds an output ``level_<fifo>`` per FIFO so a
    simulation can measure how full each one gets.
    """

    SAMPLES = 3

    def __init__(self, graph: Graph, fifo_depths: dict | None = None, monitor: bool = False):
        self.graph = graph
        self.blocks: list[_Block] = []
        self.units: dict[str, _Unit] = {}
        self.out_block: dict[str, int] = {}  # tensor -> index of the block producing it
        for node in graph.nodes:
            self._lower(node)
        self.in_beats, self.in_lanes = sched.stream_form(graph.tensors[graph.inputs[0]].shape)
        self.out_beats, self.out_lanes = sched.stream_form(graph.tensors[graph.outputs[0]].shape)
        self._schedule(fifo_depths or {})
        # Latency and interval are asked of networks that are never elaborated.
        for obj in [self] + [b.layer for b in self.blocks]:
            obj._MustUse__silence = True
        tin, tout = graph.tensors[graph.inputs[0]], graph.tensors[graph.outputs[0]]
        members = {"i": In(vector_stream(tin.type, self.in_lanes)), "o": Out(vector_stream(tout.type, self.out_lanes))}
        self.monitor = monitor
        if monitor:
            members.update({f"level_{f['name']}": Out(range(f["depth"] + 1)) for f in self.fifos})
        super().__init__(members)

    # -- lowering ----------------------------------------------------------------------------------

    def _add(self, name, layer, kind, sources, items, **model) -> int:
        self.blocks.append(_Block(name, layer, kind, sources, items, model))
        return len(self.blocks) - 1

    def _lower(self, node):
        g = self.graph
        srcs = [g.tensors[t] for t in node.inputs]
        dst = g.tensors[node.outputs[0]]
        forms = [sched.stream_form(t.shape) for t in srcs]
        ob, ol = sched.stream_form(dst.shape)
        first = len(self.blocks)
        op = node.hardware_op()
        kind = type(op).__name__
        beat_op = None
        if all(b == ob for b, _ in forms) and ob > 1:
            beat_op = _per_beat(op, srcs[0].shape, ob, forms[0][1])
        if all(b == 1 for b, _ in forms) and ob == 1:
            layer = _build(op, srcs, dst)
            self._add(node.name, layer, "beat", list(node.inputs), 1)
        elif beat_op is not None:
            layer = _build(beat_op, [_beat_tensor(t, lanes) for t, (_, lanes) in zip(srcs, forms)], _beat_tensor(dst, ol))
            self._add(node.name, layer, "beat", list(node.inputs), ob)
        elif kind in ("Conv", "Pool") and len(srcs) == 1 and self._windowed(op, forms[0][0], ob):
            H, W, C = op.in_shape
            kernel = op.weight.shape[:2] if kind == "Conv" else op.pool
            dilation = op.dilation if kind == "Conv" else (1, 1)
            # Max pooling pads with the smallest value, so a padding tap never wins over a real one.
            pad_value = srcs[0].type.min_mantissa if kind == "Pool" and op.kind == "max" else 0
            buf = WindowBuffer(srcs[0].type, op.in_shape, kernel, op.stride, op.padding, dilation, pad_value)
            w = self._add(f"{node.name}_window", buf, "window", [node.inputs[0]], H * W, pad=buf.pad, emit=buf.emit)
            inner = dataclasses.replace(op, in_shape=(kernel[0], kernel[1], C), stride=(1, 1), padding=((0, 0), (0, 0)))
            if kind == "Conv":
                inner = dataclasses.replace(inner, dilation=(1, 1))
            wt = Tensor(f"{node.name}_window", (kernel[0] * kernel[1] * C,), srcs[0].type)
            self._add(node.name, _build(inner, [wt], _beat_tensor(dst, ol)), "beat", [w], ob)
        else:
            ports = []
            for t, (b, lanes) in zip(node.inputs, forms):
                if b > 1:
                    ports.append(self._add(f"{node.name}_collect_{t}", Deserializer(g.tensors[t].type, lanes, b), "deser", [t], b, n=b))
                else:
                    ports.append(t)
            core = self._add(f"{node.name}_core" if ob > 1 else node.name, _build(op, srcs, dst), "beat", ports, 1)
            if ob > 1:
                self._add(node.name, Serializer(dst.type, ol, ob), "ser", [core], 1, n=ob)
        self.out_block[node.outputs[0]] = len(self.blocks) - 1
        self.units[node.name] = _Unit(0, 1, list(range(first, len(self.blocks))))

    @staticmethod
    def _windowed(op, in_beats, out_beats) -> bool:
        if len(op.in_shape) != 3 or op.in_shape[0] * op.in_shape[1] != in_beats:
            return False
        # The per-window datapath is the same at every position: an average that leaves padding
        # out of its divisor differs between edge and inner windows, so it runs on whole tensors.
        if type(op).__name__ == "Pool" and op.kind == "avg" and len(set(op.divisors())) > 1:
            return False
        return op.out_shape[0] * op.out_shape[1] == out_beats

    # -- schedule ----------------------------------------------------------------------------------

    def _demand(self, b: _Block) -> int:
        if b.kind == "window":
            return b.layer.initiation_interval
        if b.kind == "ser":
            return b.model["n"]
        if b.kind == "deser":
            return b.items
        return b.items * getattr(b.layer, "initiation_interval", 1)

    def _schedule(self, overrides):
        g = self.graph
        S = self.SAMPLES
        self.interval = max((self._demand(b) for b in self.blocks), default=self.in_beats)
        self.interval = max(self.interval, self.in_beats, self.out_beats)
        P = self.interval
        base = np.arange(S, dtype=np.int64) * P
        readers: dict[str, list] = {}
        for bi, b in enumerate(self.blocks):
            for port, src in enumerate(b.sources):
                if isinstance(src, str):
                    readers.setdefault(src, []).append((bi, port))
        readers.setdefault(g.outputs[0], []).append(("out", 0))
        self.readers = readers
        times: dict = {}  # ("t", tensor) or ("b", block) -> output valid cycles
        x_in = g.inputs[0]
        times[("t", x_in)] = (base[:, None] + np.arange(self.in_beats)[None, :]).ravel()
        self.fifos: list[dict] = []
        self.edge_fifo: dict = {}  # (block, port) -> fifo record
        self.first_accept = 0
        for bi, b in enumerate(self.blocks):
            arrivals = []
            for src in b.sources:
                arrivals.append(times[("b", src)] if isinstance(src, int) else times[("t", src)])
            elastic = [isinstance(s, str) and s == x_in and len(readers[s]) == 1 for s in b.sources]
            eff = [a.copy() for a in arrivals]
            with_fifo = [False] * len(eff)
            for _ in range(len(eff) + 1):
                accs, out = self._model(b, eff, base, elastic)
                grow = [p for p in range(len(eff)) if not with_fifo[p] and not elastic[p] and np.any(accs[p] != eff[p])]
                if not grow:
                    break
                for p in grow:
                    with_fifo[p], eff[p] = True, arrivals[p] + 1
            for p, has in enumerate(with_fifo):
                if has:
                    self._add_fifo(bi, p, arrivals[p], accs[p], overrides)
            if any(isinstance(s, str) and s == x_in for s in b.sources):
                p = [isinstance(s, str) and s == x_in for s in b.sources].index(True)
                self.first_accept = int(accs[p][0]) if elastic[p] else 0
            b.model["accept"], b.model["out"] = accs, out
            times[("b", bi)] = out
            for t, ob in self.out_block.items():
                if ob == bi:
                    times[("t", t)] = out
        out = times[("t", g.outputs[0])].reshape(S, self.out_beats)
        self.latency = int(out[0, -1] - self.first_accept)
        self.settle_cycles = max((b.layer.settle_cycles for b in self.blocks if b.kind == "window"), default=0)
        steady = np.diff(out[:, -1])
        self.periodic = bool(np.all(steady == P))
        self._deadlock_bounds()
        for unit in self.units.values():
            first, last = self.blocks[unit.blocks[0]], self.blocks[unit.blocks[-1]]
            start = min(int(a.reshape(S, -1)[0, 0]) for a in first.model["accept"])
            unit.latency = int(last.model["out"].reshape(S, -1)[0, -1] - start)
            unit.initiation_interval = max(self._demand(self.blocks[k]) for k in unit.blocks)

    def _block_need(self, b) -> np.ndarray:
        """Per output beat of one sample, the last input beat (of each port) it depends on."""
        if b.kind == "deser":
            return np.array([b.model["n"] - 1])
        if b.kind == "ser":
            return np.zeros(b.model["n"], dtype=np.int64)
        if b.kind == "window":
            real_index = np.cumsum(~b.model["pad"]) - 1
            return real_index[b.model["emit"]]
        return np.arange(b.items)

    def _deadlock_bounds(self):
        """``min_depth`` of every FIFO: below it a fork can block on the full FIFO while the other
        input of the same join still needs beats from that fork (see :mod:`rtlgen.stream`)."""
        forks = [t for t, uses in self.readers.items() if len(uses) > 1]
        needs = []
        for f in forks:
            need: dict = {("t", f): np.arange(sched.stream_form(self.graph.tensors[f].shape)[0])}
            for bi, b in enumerate(self.blocks):
                own = self._block_need(b)
                parts = [need.get(("b", s) if isinstance(s, int) else ("t", s)) for s in b.sources]
                parts = [p_[own] for p_ in parts if p_ is not None]
                if parts:
                    need[("b", bi)] = np.max(parts, axis=0)
                    for t, ob in self.out_block.items():
                        if ob == bi:
                            need[("t", t)] = need[("b", bi)]
            needs.append(need)
        for (bi, port), (rec, _) in self.edge_fifo.items():
            b = self.blocks[bi]
            rec["min_depth"], rec["why"] = 1, "absorbs bursts only (no reconvergent path)"
            if len(b.sources) < 2:
                continue
            key = lambda s: ("b", s) if isinstance(s, int) else ("t", s)  # noqa: E731
            for f, need in zip(forks, needs):
                mine = need.get(key(b.sources[port]))
                others = [need.get(key(s)) for q, s in enumerate(b.sources) if q != port]
                others = [o for o in others if o is not None]
                if mine is None or not others:
                    continue
                lead = int(max((o - mine).max() for o in others))
                if lead + 1 > rec["min_depth"]:
                    rec["min_depth"] = lead + 1
                    rec["why"] = (
                        f"joins '{b.name}' with a path that needs up to {lead} more beats of "
                        f"'{f}' before it delivers the matching beat"
                    )

    def _model(self, b, arrivals, base, elastic):
        S = len(base)
        if b.kind == "window":
            acc, out = sched.window_times(arrivals[0], S, b.model["pad"], b.model["emit"], elastic_base=base if elastic[0] else None)
            return [acc], out
        if b.kind == "deser":
            acc, out = sched.deser_times(arrivals[0], b.model["n"])
            return [acc], out
        if b.kind == "ser":
            acc, out = sched.ser_times(arrivals[0], b.model["n"])
            return [acc], out
        a = arrivals[0]
        for other in arrivals[1:]:
            a = np.maximum(a, other)
        acc, out = sched.beat_times(a, b.layer.latency, b.layer.initiation_interval)
        return [acc] * len(arrivals), out

    def _add_fifo(self, bi, port, writes, reads, overrides):
        b = self.blocks[bi]
        src = b.sources[port]
        name = f"fifo_{_ident(b.name)}_in{port}"
        depth = sched.fifo_depth(writes, reads)
        if isinstance(src, str):
            t = self.graph.tensors[src]
            lanes = sched.stream_form(t.shape)[1]
        else:
            t = self.blocks[src].layer
            lanes = t.n_out
        ftype = t.type if isinstance(t, Tensor) else t.out_type
        rec = {"name": name, "depth": int(overrides.get(name, depth)), "computed_depth": depth, "lanes": int(lanes), "width": int(ftype.width), "reader": b.name}
        self.fifos.append(rec)
        self.edge_fifo[(bi, port)] = (rec, ftype)

    # -- report hooks ------------------------------------------------------------------------------

    @property
    def layers(self):
        return [(node.name, self.units[node.name]) for node in self.graph.nodes]

    @property
    def initiation_interval(self) -> int:
        return self.interval

    def elaborate(self, platform):
        from ._verilog import TextModules

        m = Module()
        alive = Signal()
        m.d.sync += alive.eq(1)
        g = self.graph
        fifos = {key: BeatFifo(ftype, rec["lanes"], rec["depth"], level=self.monitor) for key, (rec, ftype) in self.edge_fifo.items()}
        chains = self._chains(platform, fifos) if isinstance(platform, TextModules) else []
        chained = {bi for blocks, _ in chains for bi in blocks}
        inner, head_fifos = set(), set()  # block inputs fed inside their chain; FIFOs that start one
        for blocks, members in chains:
            inner.update((bi, 0) for bi in blocks[1:])
            if members[0][1] is fifos.get((blocks[0], 0)):
                head_fifos.add((blocks[0], 0))
            m.submodules[_ident(self.blocks[blocks[-1]].name)] = platform.chain(members)
        for bi, b in enumerate(self.blocks):
            if bi not in chained:
                m.submodules[_ident(b.name)] = b.layer
        ports = {}
        for bi, b in enumerate(self.blocks):
            lay = b.layer
            ins = [lay.a, lay.b] if len(b.sources) > 1 else [lay.i]
            for p, port in enumerate(ins):
                ports[(bi, p)] = port
        # Producers: tensors (graph level, possibly forked) and in-node blocks.
        produced = {g.inputs[0]: wiring.flipped(self.i)}
        for t, bi in self.out_block.items():
            produced[t] = self.blocks[bi].layer.o
        sources = {}
        for t, uses in self.readers.items():
            tt = g.tensors[t]
            if len(uses) > 1:
                fork = ForkLayer(tt.type, sched.stream_form(tt.shape)[1], len(uses))
                m.submodules[f"fork_{_ident(t)}"] = fork
                wiring.connect(m, produced[t], fork.i)
                for use, o in zip(uses, fork.outputs()):
                    sources[use] = o
            else:
                sources[uses[0]] = produced[t]
        for bi, b in enumerate(self.blocks):
            for p, src in enumerate(b.sources):
                if isinstance(src, int):
                    sources[(bi, p)] = self.blocks[src].layer.o
        for key, src in sources.items():
            dst = wiring.flipped(self.o) if key[0] == "out" else ports[key]
            if key in inner:
                continue
            if key in head_fifos:
                wiring.connect(m, src, fifos[key].i)
                continue
            if key in fifos:
                rec, fifo = self.edge_fifo[key][0], fifos[key]
                m.submodules[rec["name"]] = fifo
                if self.monitor:
                    m.d.comb += getattr(self, f"level_{rec['name']}").eq(fifo.level)
                wiring.connect(m, src, fifo.i)
                src = fifo.o
            wiring.connect(m, src, dst)
        return m

    def _chains(self, platform, fifos) -> list[tuple[list[int], list[tuple[str, object]]]]:
        """Runs of blocks with text forms where each feeds the next alone (through its FIFO, if
        any), each as ``(blocks, members)`` with ``members`` the ``(instance name, component)``
        of its blocks and FIFOs in stream order; runs of one component are left out. A run becomes
        one text module (:meth:`._verilog.TextModules.chain`), so the wide streams inside it (a line
        buffer's windows, a deserialized tensor) never become Amaranth signals. It is instantiated
        under its last block's name; per-layer synthesis splits it into its members again
        (:func:`rtlgen.synth.synthesize_layers`)."""
        text = [len(b.sources) == 1 and platform.text_form(b.layer) is not None for b in self.blocks]
        fifo_text = {key: platform.text_form(f) is not None for key, f in fifos.items()}
        follows = {}  # block -> the block it reads from, when both are text and nothing else reads that
        for bi, b in enumerate(self.blocks):
            src = b.sources[0]
            if not text[bi] or isinstance(src, str) and (len(self.readers[src]) > 1 or src == self.graph.inputs[0]):
                continue
            src = src if isinstance(src, int) else self.out_block[src]
            if text[src] and fifo_text.get((bi, 0), True):
                follows[bi] = src
        nxt = {src: bi for bi, src in follows.items()}
        runs = []
        for head in range(len(self.blocks)):
            if not text[head] or head in follows:
                continue
            blocks = [head]
            while blocks[-1] in nxt:
                blocks.append(nxt[blocks[-1]])
            members = []
            for bi in blocks:
                if (bi, 0) in fifos and fifo_text[(bi, 0)]:
                    members.append((self.edge_fifo[(bi, 0)][0]["name"], fifos[(bi, 0)]))
                members.append((_ident(self.blocks[bi].name), self.blocks[bi].layer))
            if len(members) > 1:
                runs.append((blocks, members))
        for _, members in runs:
            for _, c in members:
                c._MustUse__silence = True  # inside a text module: never elaborated
        return runs


def _ident(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name)
