"""Numerical profiling (overflow and underflow counts, suggested types) and golden-vs-framework traces."""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml

import rtlgen
from rtlgen import profiling
from rtlgen.examples import example_model
from rtlgen.fixed import FixedType

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
NARROW = {"Model": {"Precision": "fixed<10,3>"}}  # 7 fractional bits, values in [-4, 4)


@pytest.fixture(scope="module")
def keras_mlp():
    """A float Keras MLP whose inputs and sums reach well beyond +-4."""
    keras = pytest.importorskip("keras")
    inp = keras.Input((8,), name="x")
    h = keras.layers.Dense(16, activation="relu", name="fc1")(inp)
    h = keras.layers.Dense(8, name="fc2")(h)
    h = keras.layers.Activation("relu", name="act2")(h)
    out = keras.layers.Dense(3, name="out")(h)
    model = keras.Model(inp, out)
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(0, 0.6, w.shape).astype("float32") for w in model.get_weights()])
    x = rng.normal(0, 2, (300, 8)).astype("float32")
    return model, x


def _site(prof, layer, kind):
    (s,) = [s for s in prof.sites if s.layer == layer and s.kind == kind]
    return s


def test_overflows_are_counted_exactly(keras_mlp):
    model, x = keras_mlp
    prof = profiling.numerical(model, NARROW, x)
    t = FixedType.parse("fixed<10,3>")
    # Input: TRN rounding floors onto the 2**-7 grid, so exactly the values outside [-4, 4) overflow.
    s = _site(prof, "x", "input")
    assert s.overflows == np.count_nonzero((x < -4) | (x >= 4)) > 0
    # Flooring takes positive values below one step to zero (negative ones go to -1 step).
    assert s.underflows == np.count_nonzero((x > 0) & (x < 2**-7))
    assert s.config_key == ("LayerName", "x", "Precision", "result") and s.suggested == FixedType.parse("fixed<11,4>")
    # fc1's accumulator, recomputed here from the design's own integers: products floored from
    # 14 to 7 fractional bits (hls4ml's accum_t), summed, plus the bias, compared with the range.
    design = prof.design
    op = design.graph.node("fc1").op
    assert op.accum == t and op.product_shift == 7
    xm = design.quantize_input(x)
    sums = (xm[:, :, None] * op.weight[None] >> 7).sum(axis=1) + op.bias
    acc = _site(prof, "fc1", "accum")
    assert acc.overflows == np.count_nonzero((sums < -512) | (sums > 511)) > 0
    width = next(w for w in range(2, 64) if -(2 ** (w - 1)) <= sums.min() and sums.max() < 2 ** (w - 1))
    assert acc.needed == acc.suggested == FixedType(width, width - 7)
    # Float weights are profiled against the configured weight type, with the framework's values.
    w = _site(prof, "fc1", "weight")
    assert w.source == "framework" and w.count == 8 * 16 and w.overflows == 0
    assert prof.overflows == sum(s.overflows for s in prof.sites)
    text = prof.table()
    assert "fc1" in text and "accum" in text and str(acc.suggested) in text


def test_suggested_config_removes_overflows_proven_by_trace(keras_mlp, tmp_path):
    model, x = keras_mlp
    before = rtlgen.convert(model, NARROW)
    tr0 = profiling.trace(before, x, model)
    cfg, rounds = profiling.suggest(model, NARROW, x)
    assert rounds[0].overflows > 0 and rounds[-1].overflows == 0 and len(rounds) > 1
    # The configuration is an ordinary one: it loads, names real layers, keeps the model default.
    path = tmp_path / "cfg.yml"
    path.write_text(yaml.safe_dump(cfg))
    after = rtlgen.convert(model, str(path))
    assert cfg["Model"]["Precision"] == "fixed<10,3>"
    assert profiling.numerical(after, x=x).overflows == 0
    tr1 = profiling.trace(after, x, model)
    assert tr1.framework_name == "keras" and set(tr1.framework) >= {"x", "fc2", "out"}
    out0 = {r["tensor"]: r for r in tr0.compare()}["out"]
    out1 = {r["tensor"]: r for r in tr1.compare()}["out"]
    # Against float Keras: with overflows the outputs are off by tens; without them only the
    # rounding of 7-fraction-bit weights and inputs remains, summed over 8 + 16 + 8 terms.
    assert out0["max_abs_diff"] > 10
    assert out1["max_abs_diff"] < 1.5
    # Every cast now holds its values: the golden model's tensors stay inside their types.
    for name, v in after.trace(x).items():
        t = after.graph.tensors[name].type
        assert float(t.min) <= v.min() and v.max() <= float(t.max)


def test_apply_merges_into_existing_config():
    cfg = {"Model": {"Precision": "fixed<10,3>"}, "LayerName": {"fc1": {"Precision": "fixed<9,2>", "ReuseFactor": 2}}}
    merged = profiling.merge_config(cfg, {"LayerName": {"fc1": {"Precision": {"accum": "fixed<12,5>"}}, "x": {"Precision": {"result": "fixed<11,4>"}}}})
    assert merged["LayerName"]["fc1"] == {"Precision": {"default": "fixed<9,2>", "accum": "fixed<12,5>"}, "ReuseFactor": 2}
    assert merged["LayerName"]["x"] == {"Precision": {"result": "fixed<11,4>"}}
    assert cfg["LayerName"]["fc1"]["Precision"] == "fixed<9,2>"  # the input is not modified
    rtlgen.load_config(merged)


def test_qonnx_trace_is_bit_exact_and_quantizers_are_not_configurable():
    model = example_model("jet-tagger")
    design = rtlgen.convert(model)
    x = np.random.default_rng(3).normal(0, 4, (60, 16)).astype(np.float32)
    tr = profiling.trace(design, x, model)
    assert tr.framework_name == "onnx"
    rows = tr.compare()
    # Every tensor of the design has its ONNX counterpart, and they agree exactly.
    assert {r["tensor"] for r in rows} == set(design.graph.tensors)
    assert all(r["max_abs_diff"] == 0 and r["equal_fraction"] == 1.0 for r in rows)
    prof = profiling.numerical(design, x=x)
    quant = [s for s in prof.sites if s.kind == "quantizer"]
    assert {s.layer for s in quant} == {"Quant_5", "Quant_10", "Quant_15"}
    assert any(s.overflows for s in quant)  # inputs this wide saturate the 6-bit activations
    assert all(s.config_key is None and s.suggested is None for s in quant)
    assert prof.suggestion() == {} and prof.unconfigurable()
    # The model's quantizer saturates exactly the pre-activation values above its largest step.
    s = [s for s in quant if s.layer == "Quant_5"][0]
    pre = design.trace(x)["fc0_relu"]
    assert s.overflows == np.count_nonzero(pre > 7.875 + 1 / 16)


def test_compare_and_owner_map():
    g = {"a": np.array([[0.0, 0.5], [1.0, 1.5]]), "b": np.zeros((2, 3))}
    f = {"a": np.array([[0.0, 0.25], [1.0, 1.5]]), "c": np.zeros((2, 1))}
    (row,) = profiling.compare(g, f, {"a": FixedType.parse("fixed<8,4>")})
    assert row["tensor"] == "a" and row["max_abs_diff"] == 0.25 and row["max_diff_steps"] == 4.0
    assert row["equal_fraction"] == 0.75
    owners = profiling._owner_map(["dense", "dense_result", "dense_1", "dense_1_relu_result", "other"], ["dense", "dense_1"])
    assert owners == {"dense": "dense", "dense_result": "dense", "dense_1": "dense_1", "dense_1_relu_result": "dense_1"}


def test_profile_plot(keras_mlp, tmp_path):
    if importlib.util.find_spec("matplotlib") is None:
        pytest.skip("matplotlib is not installed")
    model, x = keras_mlp
    prof = profiling.numerical(model, NARROW, x[:50])
    fig = prof.plot(tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 10000
    labels = [t.get_text() for ax in fig.axes for t in ax.get_yticklabels()]
    assert any(lab.startswith("fc1 accum fixed<10,3>") and "over" in lab for lab in labels)
    assert any(lab.startswith("fc1 weight") for lab in labels)


def test_profile_and_trace_cli(keras_mlp, tmp_path):
    model, x = keras_mlp
    path = tmp_path / "mlp.keras"
    model.save(path)
    np.save(tmp_path / "x.npy", x)
    cfg = tmp_path / "narrow.yml"
    cfg.write_text(yaml.safe_dump(NARROW))

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "rtlgen.cli", *map(str, args)], capture_output=True, text=True, timeout=600)

    new = tmp_path / "new.yml"
    proc = cli("profile", path, "--data", tmp_path / "x.npy", "--config", cfg, "--apply", new, "--json", tmp_path / "p.json")
    assert proc.returncode == 0, proc.stderr
    assert "overflowing values" in proc.stdout and "with it: 0 overflowing values" in proc.stdout
    prof = json.loads((tmp_path / "p.json").read_text())
    assert prof["overflows"] > 0 and prof["suggestion"]["LayerName"]["x"] == {"Precision": {"result": "fixed<11,4>"}}
    proc = cli("trace", path, "--data", tmp_path / "x.npy", "--config", new, "-o", tmp_path / "t.npz")
    assert proc.returncode == 0, proc.stderr
    assert "golden model against keras" in proc.stdout and "fc2" in proc.stdout
    arrays = np.load(tmp_path / "t.npz")
    assert {"golden/out", "framework/out"} <= set(arrays.files)
    proc = cli("profile", path, "--data", tmp_path / "missing.npy")
    assert proc.returncode == 2 and proc.stderr == f"error: data file '{tmp_path / 'missing.npy'}' does not exist\n"
    (tmp_path / "bad.npy").write_text("not numpy")
    proc = cli("trace", path, "--data", tmp_path / "bad.npy")
    assert proc.returncode == 2 and proc.stderr.startswith(f"error: data file '{tmp_path / 'bad.npy'}' cannot be read as a .npy array")
    assert "Traceback" not in proc.stderr
