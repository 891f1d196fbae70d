"""Model file to verified Verilog: RTL == golden == qonnx, with measured latency and interval."""

import json

import numpy as np
import onnx
import pytest

import rtlgen
from conftest import check_rtl, execute_qonnx, shared_model
from rtlgen.examples import qonnx_mlp
from rtlgen.sim.runner import available_simulators


def _needs(sim="verilator"):
    if sim not in available_simulators():
        pytest.skip(f"{sim} is not available")


@pytest.fixture(scope="module")
def jet_model():
    return qonnx_mlp((16, 64, 32, 32, 5), seed=11, name="jet6")


@pytest.mark.parametrize("reuse", [1, 2, 4, 16])
def test_jet_tagger_rtl_bit_exact(jet_model, reuse, tmp_path):
    _needs()
    design = rtlgen.convert(jet_model, {"Model": {"ReuseFactor": reuse}})
    # Golden equals the qonnx executor on float inputs (the quantizers included).
    x = np.random.default_rng(reuse).uniform(-20, 20, (60, 16)).astype(np.float32)
    assert np.array_equal(design.predict(x).astype(np.float32), execute_qonnx(jet_model, x))
    # RTL equals golden on random in-range mantissas, with random gaps and backpressure.
    check_rtl(design, n_random=1500, stall="random" if reuse in (1, 4) else "none", seed=reuse, work_dir=tmp_path)
    expected_interval = {1: 1, 2: 2, 4: 4, 16: 16}[reuse]
    assert design.initiation_interval == expected_interval


@pytest.mark.slow
def test_tfc_rtl_bit_exact(tmp_path):
    _needs()
    path = shared_model("qonnx-model-zoo", "TFC", "TFC_2W2A.onnx")
    design = rtlgen.convert(path)
    vec = shared_model("finn", "mnist-vectors")
    x = np.load(vec / "input_4.npy")
    check_rtl(design, x, work_dir=tmp_path / "mnist", stall="none")
    assert design.predict(x).argmax(axis=1).tolist() == np.load(vec / "expected_output_4.npy").ravel().tolist()
    assert np.array_equal(design.predict(x), execute_qonnx(onnx.load(path), x))


@pytest.mark.slow
def test_tfc_rtl_10000_random(tmp_path):
    _needs()
    design = rtlgen.convert(shared_model("qonnx-model-zoo", "TFC", "TFC_2W2A.onnx"))
    check_rtl(design, n_random=10000, work_dir=tmp_path)


def test_icarus_agrees(tmp_path):
    _needs("icarus")
    design = rtlgen.convert(qonnx_mlp((8, 6, 4), seed=5), {"Model": {"ReuseFactor": 2}})
    check_rtl(design, n_random=300, simulator="icarus", work_dir=tmp_path)


def test_build_is_byte_identical(tmp_path):
    model = qonnx_mlp((8, 6, 4), seed=5)
    a = rtlgen.convert(model).write(tmp_path / "a")
    b = rtlgen.convert(model).write(tmp_path / "b")
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for f in files:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
    report = json.loads((a / "report.json").read_text())
    assert report["latency_cycles"] == sum(layer["latency"] for layer in report["layers"])


def test_binary_network_rtl(tmp_path):
    """Bipolar weights and activations: RTL == golden == qonnx."""
    _needs()
    from test_onnx_import import _binary_trunc_model

    rng = np.random.default_rng(9)
    model = _binary_trunc_model(rng, with_trunc=False)
    design = rtlgen.convert(model)
    x = rng.normal(0, 1, (300, 10)).astype(np.float32)
    assert np.array_equal(design.predict(x).astype(np.float32), execute_qonnx(model, x))
    check_rtl(design, x, work_dir=tmp_path)
