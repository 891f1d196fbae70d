"""The size model (rtlgen.size) against Yosys: its estimates of the calibration designs of
``benchmarks/size_guard.py`` stay within a stated factor of the stored Yosys counts."""

import importlib.util
from pathlib import Path

import numpy as np
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
    if name.startswith("lstm") and not SG.SHARED_MODELS.exists():
        pytest.skip("the published models (../shared/models) are absent")
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


def _lstm(units, steps, features, cfg=None):
    """A Keras LSTM with random weights, as the design ``cfg`` converts it."""
    keras = pytest.importorskip("keras")
    model = keras.Sequential([keras.Input((steps, features)), keras.layers.LSTM(units, name="lstm")])
    rng = np.random.default_rng(0)
    model.set_weights([rng.uniform(-0.6, 0.6, w.shape).astype("float32") for w in model.get_weights()])
    return rtlgen.convert(model, {"Model": {"Precision": "fixed<16,6>"}, **(cfg or {})})


@pytest.mark.parametrize("lstm", [{}, {"ReuseFactor": 4}, {"Strategy": "Resource"}])
def test_recurrent_estimate_counts_the_layers_multipliers(lstm):
    """A recurrent layer's DSPs are its multipliers (the elementwise products of every cell, and
    the shared ones of the reused schedule); the unrolled schedule costs about a cell per step."""
    from rtlgen.layers import hardware

    design = _lstm(8, 6, 3, {"LayerType": {"LSTM": lstm}})
    (node,) = design.graph.nodes
    src, dst = (design.graph.tensors[t] for t in (node.inputs[0], node.outputs[0]))
    (cost,) = estimate(design.graph, "io_parallel")
    layer = hardware(node.op, [src], dst)
    layer._MustUse__silence = True
    assert cost.dsp == layer.multipliers > 0 and cost.kind == "LSTM" and cost.ff > 0
    if node.op.schedule == "reused":
        node.op.schedule, node.op.reuse_factor = "unrolled", 1
        (unrolled,) = estimate(design.graph, "io_parallel")
        assert unrolled.dsp == 6 * 3 * 8 and unrolled.lut > 4 * cost.lut


def test_size_guard_suggests_the_reused_schedule_for_a_huge_unrolled_lstm():
    from rtlgen.errors import DesignError
    from rtlgen.size import check_size

    design = _lstm(16, 1000, 4)
    assert design.graph.nodes[0].op.schedule == "unrolled"
    with pytest.raises(DesignError, match=r"layer 'lstm' \(LSTM 16 units over 1000 steps of 4, unrolled schedule\)") as e:
        check_size(design.graph, design.config)
    msg = str(e.value)
    assert "at the unrolled schedule in io_parallel" in msg and "(the reused schedule: one cell over the time steps)" in msg
    setting = msg.split("settings that fit: ")[1].split(" for ")[0]
    key, value = setting.split()
    # The suggestion fits: the same network with that setting passes the guard.
    fixed = _lstm(16, 1000, 4, {"LayerType": {"LSTM": {key: int(value) if key == "ReuseFactor" else value}}})
    assert fixed.graph.nodes[0].op.schedule == "reused"
    check_size(fixed.graph, fixed.config)


@pytest.fixture
def no_planning(monkeypatch):
    """Planning any adder graph fails: it takes minutes for the layers below."""
    import rtlgen.plan.adders as adders
    import rtlgen.plan.recurrent as recurrent

    def refuse(*args, **kwargs):
        raise AssertionError("an adder graph was planned")

    monkeypatch.setattr(adders, "plan_adder_graph", refuse)
    monkeypatch.setattr(recurrent, "plan_adder_graph", refuse)


def test_a_too_large_recurrent_model_is_refused_before_its_cell_is_planned(no_planning, tmp_path):
    from rtlgen.errors import DesignError

    design = _lstm(64, 20, 8)
    note = next(n for n in design.graph.notes if "schedule" in n)
    assert "unrolled (20 cells): 3840 multipliers, latency ?, interval 1" in note and "CSD digits) planned" in note
    with pytest.raises(DesignError, match=r"LSTM 64 units over 20 steps of 8, unrolled schedule.*settings that fit: Strategy Resource"):
        design.write(tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_reused_schedule_does_not_plan_a_large_unrolled_cell_for_its_note(no_planning):
    design = _lstm(64, 20, 8, {"LayerType": {"LSTM": {"ReuseFactor": 4}}})
    note = next(n for n in design.graph.notes if "schedule" in n)
    assert "unrolled (20 cells): 3840 multipliers, latency ?, interval 1; reused (1 cell)" in note
    design.check_size()


def test_too_large_dense_layers_are_refused_before_they_are_planned(no_planning, tmp_path):
    """Five layers under EstimateArithmetic's planning limit (about 147,000 CSD digits each),
    together beyond the guard."""
    from rtlgen.errors import DesignError
    from rtlgen.examples import qonnx_mlp

    design = rtlgen.convert(qonnx_mlp((320,) * 6, weight_bits=8, act_bits=8, input_bits=8, name="mlp"), {})
    assert sum("latency: at most" in n for n in design.graph.notes) == 5
    with pytest.raises(DesignError, match=r"\(Dense 320x320\) needs about .* at reuse factor 1 in io_parallel.*reuse factor 46"):
        design.write(tmp_path / "out")
