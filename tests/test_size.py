"""The size model (rtlgen.size) against Yosys: its estimates of the calibration designs of
``benchmarks/size_guard.py`` stay within a stated factor of the stored Yosys counts."""

import importlib.util
from pathlib import Path

import pytest

import rtlgen
from rtlgen.size import estimate

# LUTs and flip-flops within this factor either way; DSPs too where Yosys uses any.
FACTOR = 1.5


def _size_guard():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "size_guard.py"
    spec = importlib.util.spec_from_file_location("size_guard", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


SG = _size_guard()


@pytest.mark.parametrize("name", sorted(SG.YOSYS))
def test_estimate_within_factor_of_yosys(name):
    model, cfg = SG.CALIBRATION[name]()
    design = rtlgen.convert(model, cfg)
    costs = estimate(design.graph, design.config.io_type)
    est = {"lut": sum(c.lut for c in costs), "ff": sum(c.ff for c in costs), "dsp": sum(c.dsp for c in costs)}
    got = SG.YOSYS[name]
    for k in ("lut", "ff", "dsp"):
        if got[k] == 0:
            assert est[k] == 0, (k, est, got)
        else:
            assert 1 / FACTOR <= est[k] / got[k] <= FACTOR, (k, est, got)
