# amaranth: UnusedElaboratable=no
"""The AXI4-Stream top level for boards: the one tdata packing module, batch TLAST, padded buses.

Batch mode in Amaranth's simulator (fast): random input gaps and output stalls, input packets of
random sizes, and the cores that stress the flag logic (a combinational one, one that finishes
its output before reading all of its input, a flag FIFO of depth 1). The cocotb regression of a
board package's top level (``tb/``) runs the same under cocotbext-axi.
"""

# No "from __future__ import annotations": Amaranth reads Component annotations at runtime.
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

import rtlgen
from rtlgen import golden
from rtlgen.fixed import OVERFLOW_MODES, ROUNDING_MODES, FixedType
from rtlgen.layers import Network
from rtlgen.layers._axis import AxisTop, dma_width, samples_in_flight
from rtlgen.sim import tdata
from rtlgen.sim.tdata import Layout, TdataError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_ip import SumBeats, SumIn, SumOut, elementwise_network, sum_beats_expected  # noqa: E402

# -- the tdata module ---------------------------------------------------------------------------------


def test_tdata_module_imports_only_numpy():
    """It is copied verbatim into tb/ and driver/: nothing of rtlgen may leak into it."""
    src = Path(tdata.__file__).read_text()
    imports = [ln.strip() for ln in src.splitlines() if ln.startswith(("import ", "from "))]
    assert imports == ["from __future__ import annotations", "from dataclasses import asdict, dataclass", "import numpy as np"]


def test_tdata_pack_is_little_endian_lanes_sign_extended_and_padded():
    lay = Layout(lanes=5, beats=1, width=14, signed=True, beat_bytes=16)
    assert (lay.lane_bytes, lay.tdata_bytes, lay.sample_bytes) == (2, 10, 16)
    m = np.array([[-1, 2, -8192, 8191, 0], [3, -4, 5, -6, 7]])
    b = lay.pack(m)
    assert b.shape == (2, 16)
    assert b[0].tobytes() == np.array([-1, 2, -8192, 8191, 0], "<i2").tobytes() + bytes(6)
    assert np.array_equal(lay.unpack(b.tobytes()), m)
    # The old rule of the regression (int64 bytes cut to lane bytes) gives the same bytes.
    old = np.asarray(m).astype("<i8").view(np.uint8).reshape(2, -1, 8)[:, :, :2].reshape(2, -1)
    assert np.array_equal(b[:, :10], old)


def test_tdata_multibeat_unsigned_and_three_byte_lanes():
    lay = Layout(lanes=3, beats=4, width=20, signed=False, beat_bytes=16)
    rng = np.random.default_rng(0)
    m = rng.integers(0, (1 << 20) - 1, size=(7, 12), endpoint=True)
    b = lay.pack(m)
    assert b.shape == (7, 64) and not b.reshape(7, 4, 16)[:, :, 9:].any()
    # element b*lanes + k is lane k of beat b
    assert int.from_bytes(b[2, 16 * 3 + 3 : 16 * 3 + 6].tobytes(), "little") == m[2, 3 * 3 + 1]
    assert np.array_equal(lay.unpack(b), m)


def test_tdata_refuses_what_the_rule_forbids():
    lay = Layout(lanes=2, beats=1, width=6, signed=True, beat_bytes=4)
    with pytest.raises(TdataError, match=r"^pack: values \[-33, 5\] do not fit signed 6-bit lanes \[-32, 31\]$"):
        lay.pack(np.array([[-33, 5]]))
    good = lay.pack(np.array([[-3, 5]])).tobytes()
    assert good == bytes([0xFD, 0x05, 0, 0])
    # Lane bits beyond the width must be the sign extension; padding must be zero.
    with pytest.raises(TdataError, match=r"sample 0, element 0: bits 6\.\.7 of the lane are not the sign extension"):
        lay.unpack(bytes([0x3D, 0x05, 0, 0]))
    with pytest.raises(TdataError, match=r"padding bytes 2\.\.3 of a beat are not zero"):
        lay.unpack(bytes([0xFD, 0x05, 1, 0]))
    assert lay.unpack(bytes([0x3D, 0x05, 1, 0]), check=False).tolist() == [[-3, 5]]
    with pytest.raises(TdataError, match="cannot hold"):
        Layout(lanes=4, beats=1, width=8, signed=True, beat_bytes=2)


def test_tdata_is_the_testbench_copy_and_the_driver_copy(tmp_path):
    """The files written beside the regression and the driver are this module, byte for byte."""
    d = rtlgen.convert(rtlgen.examples.qonnx_mlp((6, 3), name="tiny"))
    out = d.write(tmp_path / "o", n_vectors=20, boards=["pynq-z2"])
    src = Path(tdata.__file__).read_bytes()
    for rel in ("tb/tdata.py", "boards/pynq-z2/tb/tdata.py", "boards/pynq-z2/driver/tdata.py"):
        assert (out / rel).read_bytes() == src, rel
    # And the cocotb regression loads it (no packing code of its own).
    text = (out / "tb" / "test_axis.py").read_text()
    assert "tdata_module().Layout" in text and "astype(\"<i8\")" not in text


def test_dma_width_and_in_flight():
    assert [dma_width(b) for b in (1, 8, 9, 24, 48, 80, 128, 129, 1024)] == [8, 8, 16, 32, 64, 128, 128, 256, 1024]
    assert dma_width(1600) == 2048  # callers refuse it
    assert samples_in_flight(10, 1) == 14 and samples_in_flight(36, 36, 16, 1) == 4


def test_driver_quantize_equals_rtlgen_for_every_mode():
    """The PYNQ driver quantizes floats without rtlgen: it must agree with FixedType.quantize for
    every rounding and overflow mode, ties and out-of-range values included."""
    import rtlgen.boards

    spec = importlib.util.spec_from_file_location(
        "drv_template", Path(rtlgen.boards.__file__).resolve().parent / "templates" / "driver" / "rtlgen_net.py"
    )
    drv = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(drv)
    rng = np.random.default_rng(0)
    for width, integer, signed_ in ((8, 5, True), (6, 2, False), (12, -2, True), (20, 25, True)):
        base = FixedType(width, integer, signed_)
        # Every tie and quarter around the range (mantissas up to 3x beyond it), random values,
        # and (separately: they take the exact integer path) values far out and far below an LSB.
        span = 1 << min(width, 9)
        k = np.arange(-3 * span, 3 * span + 1) / 2.0
        x = np.ldexp(np.concatenate([k, k + 0.25, k - 0.25]), -base.frac)
        x = np.concatenate([x, rng.normal(0, 2.0**integer, 500)])
        extreme = np.array([1e300, -1e300, 5e-324, -5e-324, 0.0, 2.0**70, -(2.0**70) - 2.0**18])
        for r in ROUNDING_MODES:
            for o in OVERFLOW_MODES:
                t = FixedType(width, integer, signed_, r, o)
                td = {"text": str(t), "width": t.width, "frac": t.frac, "signed": t.signed, "rounding": r, "overflow": o}
                for v in (x, extreme):
                    assert np.array_equal(drv.quantize(v, td), t.quantize(v).astype(np.int64)), str(t)


# -- batch TLAST in Amaranth's simulator -----------------------------------------------------------------


class EarlyOut(wiring.Component):
    """A core that gives a sample's output after its *first* input beat and drops the rest: the
    output sample can end before its input sample does (a strided 'valid' convolution that ignores
    the last rows does this). Output = first beat's lanes + 1."""

    def __init__(self, lanes, in_beats):
        self.lanes, self.in_beats = lanes, in_beats
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(signed(SumIn.width), lanes))),
            "o": Out(stream.Signature(data.ArrayLayout(signed(SumOut.width), lanes))),
        })  # fmt: skip

    latency = 1
    initiation_interval = 1

    def elaborate(self, platform):
        m = Module()
        cnt = Signal(range(self.in_beats))
        full = Signal()
        held = [Signal(signed(SumOut.width), name=f"h{k}") for k in range(self.lanes)]
        first = cnt == 0
        o_fire = self.o.valid & self.o.ready
        # Later beats are always taken; the first waits for a free output register.
        m.d.comb += self.i.ready.eq(~first | ~full | o_fire)
        m.d.comb += self.o.valid.eq(full)
        for k in range(self.lanes):
            m.d.comb += self.o.payload[k].eq(held[k])
        with m.If(o_fire):
            m.d.sync += full.eq(0)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += cnt.eq(Mux(cnt == self.in_beats - 1, 0, cnt + 1))
            with m.If(first):
                m.d.sync += [held[k].eq(self.i.payload[k] + 1) for k in range(self.lanes)]
                m.d.sync += full.eq(1)
        return m


def _packets(n, rng, max_size):
    out, i = [], 0
    while i < n:
        k = int(rng.integers(1, max_size + 1))
        out.append(list(range(i, min(n, i + k))))
        i += k
    return out


def _axis_batch_run(top, x_frames, packets, *, gaps, stalls, seed=1, max_cycles=20000, tlast_mid=False):
    """Drive ``top`` with the samples of ``packets`` (s_axis_tlast on each packet's last beat, or
    with ``tlast_mid`` on its last sample's first beat); return the output beats as
    ``[(tdata int, tlast)]`` and whether the handshake rules held."""
    in_bytes = top.in_tdata_width // 8
    beats = []
    for pk in packets:
        for j, s in enumerate(pk):
            fr = x_frames[s]
            nb = len(fr) // in_bytes
            for b in range(nb):
                last = (j == len(pk) - 1) and (b == (0 if tlast_mid else nb - 1))
                beats.append((int.from_bytes(fr[b * in_bytes : (b + 1) * in_bytes], "little"), last))
    got, rules = [], []
    rng = np.random.default_rng(seed)
    total_out = sum(len(pk) for pk in packets) * top.out_beats

    async def clock(ctx):
        while True:
            ctx.set(top.aclk, 0)
            await ctx.delay(5e-9)
            ctx.set(top.aclk, 1)
            await ctx.delay(5e-9)

    async def bench(ctx):
        ctx.set(top.aresetn, 0)
        for _ in range(3):
            await ctx.posedge(top.aclk)
        ctx.set(top.aresetn, 1)
        i, presenting, held = 0, False, None
        for _ in range(max_cycles):
            await ctx.delay(1e-9)
            if not presenting and i < len(beats) and not (gaps and rng.random() < 0.4):
                presenting = True
                ctx.set(top.s_axis_tdata, beats[i][0] | ((1 << top.in_tdata_width) - (1 << top.in_lanes_width)))
                ctx.set(top.s_axis_tlast, beats[i][1])
            ctx.set(top.s_axis_tvalid, presenting)
            r = not (stalls and rng.random() < 0.5)
            ctx.set(top.m_axis_tready, r)
            await ctx.delay(1e-9)
            mv = ctx.get(top.m_axis_tvalid)
            beat = (ctx.get(top.m_axis_tdata), ctx.get(top.m_axis_tlast)) if mv else None
            if held is not None and beat != held:
                rules.append("m_axis_tvalid withdrawn or tdata/tlast changed before the handshake")
            if presenting and ctx.get(top.s_axis_tready):
                presenting = False
                i += 1
            if mv and r:
                got.append(beat)
                held = None
            else:
                held = beat
            await ctx.posedge(top.aclk)
            if len(got) >= total_out and i >= len(beats):
                break

    sim = Simulator(top)
    sim.add_process(clock)
    sim.add_testbench(bench)
    sim.run_until((max_cycles + 10) * 1e-8)
    return got, rules


def _check_batches(got, y_frames, packets, top):
    """Output beats against the expected samples: data, padding and one tlast per packet, at its end."""
    out_bytes = top.out_tdata_width // 8
    flat = [s for pk in packets for s in pk]
    assert len(got) == len(flat) * top.out_beats
    data_bytes = b"".join(v.to_bytes(out_bytes, "little") for v, _ in got)
    assert data_bytes == b"".join(y_frames[s] for s in flat)
    ends = {(len(flat[: flat.index(pk[-1]) + 1]) * top.out_beats) - 1 for pk in packets}
    assert [k for k, (_, last) in enumerate(got) if last] == sorted(ends)


@pytest.mark.parametrize("in_beats,out_beats", [(4, 2), (2, 5), (1, 1)])
def test_batch_tlast_multibeat_core_padded_buses(in_beats, out_beats):
    """SumBeats in batch mode with both buses padded to DMA widths, random packets, gaps, stalls;
    input padding bits driven high are ignored, output padding is zero."""
    lanes = 3
    top = AxisTop(SumBeats(lanes, in_beats, out_beats), SumIn, lanes, in_beats, SumOut, lanes, out_beats,
                  tlast="batch", in_tdata_width=32, out_tdata_width=128)  # fmt: skip
    assert (top.in_lanes_width, top.out_lanes_width) == (24, 72)
    rng = np.random.default_rng(in_beats)
    n = 60
    x = rng.integers(-64, 63, size=(n, in_beats * lanes), endpoint=True)
    y = sum_beats_expected(x, lanes, in_beats, out_beats)
    lin = Layout(lanes=lanes, beats=in_beats, width=7, signed=True, beat_bytes=4)
    lout = Layout(lanes=lanes, beats=out_beats, width=20, signed=True, beat_bytes=16)
    packets = _packets(n, rng, 7)
    got, rules = _axis_batch_run(top, lin.sample_frames(x), packets, gaps=True, stalls=True)
    assert rules == []
    _check_batches(got, lout.sample_frames(y), packets, top)


def test_batch_tlast_combinational_core():
    """A network of element-wise layers only (latency 0): output and input handshakes of a
    sample's last beat happen together, so its flag is taken live from s_axis_tlast."""
    g, x_t, y_t = elementwise_network(4)
    net = Network(g)
    assert net.latency == 0
    top = AxisTop(net, x_t, 4, 3, y_t, 4, 3, tlast="batch", out_tdata_width=64)
    rng = np.random.default_rng(3)
    n = 40
    x = rng.integers(x_t.min_mantissa, x_t.max_mantissa, size=(n, 12), endpoint=True)
    y = golden.run(g, x.reshape(-1, 4)).reshape(n, -1)
    lin = Layout(lanes=4, beats=3, width=12, signed=True)
    lout = Layout(lanes=4, beats=3, width=4, signed=False, beat_bytes=8)
    for gaps, stalls in ((False, False), (True, True)):
        packets = _packets(n, rng, 5)
        got, rules = _axis_batch_run(top, lin.sample_frames(x), packets, gaps=gaps, stalls=stalls, seed=int(gaps))
        assert rules == []
        _check_batches(got, lout.sample_frames(y), packets, top)


def test_batch_tlast_output_ahead_of_input():
    """A core that finishes a sample's output before reading its last input beats: the last output
    beat waits for the flag of its input sample; tlast on the first beat of a sample counts too."""
    lanes, ib = 2, 4
    top = AxisTop(EarlyOut(lanes, ib), SumIn, lanes, ib, SumOut, lanes, 1, tlast="batch", max_in_flight=2)
    rng = np.random.default_rng(5)
    n = 50
    x = rng.integers(-64, 63, size=(n, ib * lanes), endpoint=True)
    y = x[:, :lanes] + 1
    lin = Layout(lanes=lanes, beats=ib, width=7, signed=True)
    lout = Layout(lanes=lanes, beats=1, width=20, signed=True)
    for tlast_mid in (False, True):
        packets = _packets(n, rng, 6)
        got, rules = _axis_batch_run(top, lin.sample_frames(x), packets, gaps=True, stalls=True, seed=7, tlast_mid=tlast_mid)
        assert rules == []
        _check_batches(got, lout.sample_frames(y), packets, top)


def test_batch_tlast_flag_fifo_of_one_pauses_input_only():
    """With room for one flag the input waits for it, and nothing is lost, duplicated or reordered."""
    lanes = 3
    top = AxisTop(SumBeats(lanes, 1, 1), SumIn, lanes, 1, SumOut, lanes, 1, tlast="batch", max_in_flight=1)
    rng = np.random.default_rng(9)
    n = 40
    x = rng.integers(-64, 63, size=(n, lanes), endpoint=True)
    lin = Layout(lanes=lanes, beats=1, width=7, signed=True)
    lout = Layout(lanes=lanes, beats=1, width=20, signed=True)
    packets = _packets(n, rng, 4)
    got, rules = _axis_batch_run(top, lin.sample_frames(x), packets, gaps=True, stalls=True)
    assert rules == []
    _check_batches(got, lout.sample_frames(sum_beats_expected(x, lanes, 1, 1)), packets, top)


def test_per_sample_mode_unchanged_by_packets():
    """The default top ignores s_axis_tlast: packets of several samples still give one output
    packet per sample."""
    lanes = 3
    top = AxisTop(SumBeats(lanes, 2, 2), SumIn, lanes, 2, SumOut, lanes, 2)
    assert top.tlast == "sample" and top.out_tdata_width == 72
    rng = np.random.default_rng(2)
    n = 30
    x = rng.integers(-64, 63, size=(n, 2 * lanes), endpoint=True)
    lin = Layout(lanes=lanes, beats=2, width=7, signed=True)
    lout = Layout(lanes=lanes, beats=2, width=20, signed=True)
    packets = _packets(n, rng, 5)
    got, rules = _axis_batch_run(top, lin.sample_frames(x), packets, gaps=True, stalls=True)
    assert rules == []
    _check_batches(got, lout.sample_frames(sum_beats_expected(x, lanes, 2, 2)), [[s] for s in range(n)], top)


def test_axis_top_rejects_bad_modes_and_widths():
    g, x_t, y_t = elementwise_network(4)
    net = Network(g)
    with pytest.raises(ValueError, match=r"^AxisTop: tlast must be one of 'sample', 'batch', not 'packet'$"):
        AxisTop(net, x_t, 4, 1, y_t, 4, 1, tlast="packet")
    with pytest.raises(ValueError, match=r"^AxisTop: in_tdata_width must be a multiple of 8 of at least 64 bits, not 48$"):
        AxisTop(net, x_t, 4, 1, y_t, 4, 1, in_tdata_width=48)


# -- the board top level of a design, and its cocotb regression -------------------------------------------


def test_dma_variant_geometry_and_component(tmp_path):
    """ipxact's "dma" variant: <top>_axis_dma, buses padded to DMA widths, TLAST_MODE batch."""
    from lxml import etree

    from rtlgen.examples import example_model
    from rtlgen.ipxact import (
        IPXACT_2009_NS,
        axis_geometry,
        find_ipxact_xsd,
        validate_component,
        write_ip,
    )

    d = rtlgen.convert(example_model("jet-tagger"))
    g0, g = axis_geometry(d), axis_geometry(d, "dma")
    assert (g0["in_tdata_width"], g0["out_tdata_width"]) == (128, 80)
    assert (g["in_tdata_width"], g["out_tdata_width"], g["out_beat_bytes"]) == (128, 128, 16)
    paths = write_ip(d, tmp_path / "ip", variant="dma")
    v = paths["axis_hdl"].read_text()
    assert "module jet_tagger_axis_dma(" in v and "output [127:0] m_axis_tdata;" in v
    ns = {"spirit": IPXACT_2009_NS}
    doc = etree.parse(str(paths["component"]))
    assert doc.findtext("spirit:name", namespaces=ns) == "jet_tagger_axis_dma"
    nbytes = {b.findtext("spirit:name", namespaces=ns): b.findtext("spirit:parameters/spirit:parameter/spirit:value", namespaces=ns)
              for b in doc.iterfind("spirit:busInterfaces/spirit:busInterface", ns)}  # fmt: skip
    assert nbytes["s_axis"] == "16" and nbytes["m_axis"] == "16"
    assert "batch mode" in doc.findtext("spirit:description", namespaces=ns)
    if find_ipxact_xsd() is not None:
        validate_component(paths["component"])


def _first_sim():
    from rtlgen.sim import available_simulators

    sims = available_simulators()
    if "verilator" not in sims:
        pytest.skip("verilator is not available")
    pytest.importorskip("cocotbext.axi")
    return "verilator"


def test_board_tb_batch_regression_streaming_cnn(tmp_path):
    """The board package's tb/ (cocotb + cocotbext-axi) on an io_stream CNN's <top>_axis_dma:
    packets of 1-4 samples give as many output packets of as many samples, then every vector in
    one packet gives one output packet with exactly one TLAST, under random gaps and stalls."""
    from board_models import streaming_cnn

    from rtlgen.sim.axis import run_axis

    sim = _first_sim()
    d = rtlgen.convert(streaming_cnn(), {"IOType": "io_stream"})
    out = d.write(tmp_path / "o", n_vectors=80, boards=["pynq-z2"])
    tb = out / "boards" / "pynq-z2" / "tb"
    meta = json.loads((tb / "axis.json").read_text())
    assert meta["tlast"] == "batch" and (meta["in_beat_bytes"], meta["out_beat_bytes"]) == (4, 8)
    res = run_axis(tb, simulator=sim, stall="random", seed=5)
    assert res["passed"], res["failures"]
    assert res["mismatches"] == 0 and res["protocol_errors"] == [] and res["extra_outputs"] == 0
    assert (res["one_packet_samples"], res["one_packet_tlasts"]) == (80, 1)
    assert res["latency_measured"] == d.latency and res["cycles_per_sample_measured"] == d.initiation_interval


@pytest.mark.slow
def test_board_tb_batch_regression_jet_tagger_1000(tmp_path):
    """1,000 jet-tagger samples in one input packet through <top>_axis_dma under random stalls (cocotb)."""
    from rtlgen.examples import example_model
    from rtlgen.sim.axis import run_axis

    sim = _first_sim()
    out = rtlgen.convert(example_model("jet-tagger")).write(tmp_path / "o", n_vectors=1000, boards=["zcu102"])
    res = run_axis(out / "boards" / "zcu102" / "tb", simulator=sim, stall="random", seed=1)
    assert res["passed"], res["failures"]
    assert (res["one_packet_samples"], res["one_packet_tlasts"], res["mismatches"]) == (1000, 1, 0)
    assert res["cycles_per_sample_measured"] == 1
