"""Every pass of the default pipeline leaves the network's output unchanged, exactly.

Passes only annotate or re-plan (reuse factors, adder-graph input sets, cost notes); the golden
integers before and after each one must be equal. Each model below makes its pass do real work
(checked), so an annotation that changed arithmetic would show here.
"""

from pathlib import Path

import numpy as np
import pytest

from conftest import shared_model
from rtlgen import golden
from rtlgen.config import Config
from rtlgen.importers import from_keras, from_onnx
from rtlgen.ir import Conv, Dense
from rtlgen.passes import (
    ApplyReuse,
    CheckConfigNames,
    CheckParameterRanges,
    EstimateArithmetic,
    InferValueSets,
    default_passes,
)

DATA = Path(__file__).parent / "data" / "qkeras"


def _outputs(graph, x):
    return golden.run(graph, golden.quantize_input(graph, x))


def _run_each(graph, config, x):
    """Apply the default passes one at a time; the output after each equals the imported graph's."""
    y0 = _outputs(graph, x)
    seen = []
    for p in default_passes(config):
        graph = p.run(graph)
        graph.verify()
        assert np.array_equal(_outputs(graph, x), y0), f"{p} changed the network's output"
        seen.append(type(p))
    assert seen == [CheckConfigNames, CheckParameterRanges, ApplyReuse, InferValueSets, EstimateArithmetic]
    return graph


def _inputs(graph, n=300, seed=5):
    t = graph.tensors[graph.inputs[0]]
    rng = np.random.default_rng(seed)
    lo, hi = t.type.to_float(t.type.min_mantissa), t.type.to_float(t.type.max_mantissa)
    return rng.uniform(lo, hi, size=(n, *t.shape)) * t.scale


def test_binary_network_passes_keep_outputs():
    """InferValueSets turns bipolar lanes into single bits: the arithmetic changes, the output does not."""
    graph = from_keras(DATA / "qkeras_bnn.h5")
    out = _run_each(graph, Config(), _inputs(graph))
    assert any(isinstance(n.op, Dense) and n.op.in_values for n in out.nodes)


def test_resource_reuse_passes_keep_outputs():
    """ApplyReuse sets (and rounds) reuse factors for dense and convolution layers."""
    config = Config.from_dict({"Model": {"ReuseFactor": 3, "Strategy": "Resource"}})
    graph = from_keras(DATA / "qkeras_cnn.h5", config=config)
    out = _run_each(graph, config, _inputs(graph, n=60))
    assert any(isinstance(n.op, Conv) and n.op.reuse_factor > 1 for n in out.nodes)
    assert any(isinstance(n.op, Dense) and n.op.reuse_factor > 1 for n in out.nodes)


def test_heterogeneous_lanes_passes_keep_outputs():
    """HGQ per-lane types become per-lane input ranges of the next dense layer."""
    path = shared_model("hls4ml-example-models", "keras", "hgq_jet_classifier.h5")
    graph = from_keras(path)
    out = _run_each(graph, Config(), _inputs(graph))
    assert any(isinstance(n.op, Dense) and n.op.in_ranges for n in out.nodes)


@pytest.mark.parametrize("reuse", [1, 4])
def test_qonnx_passes_keep_outputs(reuse):
    path = shared_model("qonnx-model-zoo", "TFC", "TFC_2W2A.onnx")
    config = Config.from_dict({"Model": {"ReuseFactor": reuse}})
    graph = from_onnx(path, config=config)
    out = _run_each(graph, config, _inputs(graph, n=100))
    assert any("Dense" in s and "CSD digits" in s for s in out.notes)
