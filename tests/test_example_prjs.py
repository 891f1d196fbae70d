"""hls4ml's single-layer example projects: every one builds, and the golden model stays within the
worst-case error the build itself reports against the float model, on the stored Keras outputs."""

import glob

import numpy as np
import pytest

import rtlgen
from conftest import MODELS, check_rtl
from rtlgen.sim.runner import available_simulators

BASE = MODELS / "hls4ml-history" / "example-prjs"
NAMES = sorted(p.name for p in BASE.iterdir()) if BASE.exists() else []
CONFIG = {"Model": {"Precision": "fixed<16,6>"}, "LayerType": {"Conv": {"Precision": {"accum": "auto"}}}}


def reported_bound(design) -> float:
    """The build's own worst-case error of the network output against the float model."""
    assert design.graph.error_bound is not None, design.graph.notes
    return design.graph.error_bound


def _build(name):
    folder = BASE / name
    full = [f for f in glob.glob(str(folder / "*.h5")) if not f.endswith("_weights.h5")]
    design = rtlgen.convert(full[0] if full else glob.glob(str(folder / "*.json"))[0], CONFIG)
    x = np.loadtxt(folder / "tb_input_features.dat", ndmin=2)
    y = np.loadtxt(folder / "tb_output_predictions.dat", ndmin=2)
    return design, x, y


@pytest.mark.skipif(not NAMES, reason="../shared/models is absent")
@pytest.mark.parametrize("name", NAMES)
def test_example_project_within_reported_bound(name):
    design, x, y = _build(name)
    pred = design.predict(x).reshape(len(x), -1)
    y = y.reshape(pred.shape)
    bound = reported_bound(design)
    # The stored outputs are Keras float32 results printed with 8 significant digits: a relative
    # slack of 1e-6 covers both; everything else is the reported bound.
    assert np.all(np.abs(pred - y) <= bound + 1e-6 * np.maximum(1.0, np.abs(y)))


@pytest.mark.skipif(not NAMES, reason="../shared/models is absent")
@pytest.mark.parametrize(
    "name", [n if n in ("sigmoid", "softmax", "prelu") else pytest.param(n, marks=pytest.mark.slow) for n in NAMES]
)
def test_example_project_rtl(name, tmp_path):
    if "verilator" not in available_simulators():
        pytest.skip("verilator is not available")
    design, x, _ = _build(name)
    check_rtl(design, n_random=300, work_dir=tmp_path)
