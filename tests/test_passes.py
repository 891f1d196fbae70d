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
from rtlgen.fixed import FixedType
from rtlgen.importers import from_keras, from_onnx
from rtlgen.ir import Conv, Dense, Graph, Node, Relu, Requant, Tensor
from rtlgen.passes import (
    ApplyReuse,
    CheckConfigNames,
    CheckParameterRanges,
    EstimateArithmetic,
    FoldRounding,
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
    assert seen == [CheckConfigNames, CheckParameterRanges, ApplyReuse, FoldRounding, InferValueSets, EstimateArithmetic]
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


def _fold_graph(rounding, relu, lanes, bias):
    """x (int<6>, 3 lanes) -> Dense -> [Relu] -> Requant dropping 1..3 bits with ``rounding``."""
    src = FixedType(6, 6, True)
    acc = FixedType(12, 9, True)
    w = np.array([[1, -2, 3], [2, 1, -1], [-3, 1, 2]])
    g = Graph("g")
    g.tensors["x"] = Tensor("x", (3,), src)
    g.tensors["y"] = Tensor("y", (3,), acc)
    g.add_node(Node("d", Dense(w, None if bias is None else np.array(bias)), ["x"], ["y"]))
    last = "y"
    if relu:
        g.tensors["r"] = Tensor("r", (3,), FixedType(11, 8, False))
        g.add_node(Node("relu", Relu(), ["y"], ["r"]))
        last = "r"
    if lanes:
        types = [str(FixedType(8, 8 - f, False, rounding)) for f in (2, 1, 0)]
        op = Requant(FixedType(9, 7, True), types)
    else:
        op = Requant(FixedType(8, 7, True, rounding, "SAT"))
    g.tensors["q"] = Tensor("q", (3,), op.type)
    g.add_node(Node("q", op, [last], ["q"]))
    g.inputs, g.outputs = ["x"], ["q"]
    return g


@pytest.mark.parametrize("rounding", ["RND", "RND_MIN_INF"])
@pytest.mark.parametrize("relu", [True, False])
@pytest.mark.parametrize("lanes", [True, False])
def test_fold_rounding_exhaustive(rounding, relu, lanes):
    """The hardware's ops (rounding moved into the bias) give the requantization's integers on
    every input (all 2**18 of them), ties and the values just below zero included; the graph
    itself (what the golden model, traces and profiles run) is unchanged."""
    g = _fold_graph(rounding, relu, lanes, [5, -7, 0])
    v = np.arange(-32, 32)
    x = np.stack(np.meshgrid(v, v, v, indexing="ij"), -1).reshape(-1, 3)
    want = golden.run(g, x)
    FoldRounding().run(g)
    g.verify()
    assert g.node("q").attrs["rounding_folded"] == "d"
    assert np.array_equal(g.node("d").op.bias, [5, -7, 0]) and np.array_equal(golden.run(g, x), want)
    hw = g.node("d").hardware_op()
    assert not np.array_equal(hw.bias, [5, -7, 0])
    assert all(t.rounding == "TRN" for t in g.node("q").hardware_op().lane_types())
    for n in g.nodes:
        n.op = n.hardware_op()
    assert np.array_equal(golden.run(g, x), want)


def test_fold_rounding_leaves_what_it_cannot_prove():
    """Not folded: a dense output read twice, a rounding to even, or sums the half would overflow."""
    g = _fold_graph("RND_CONV", True, False, None)
    FoldRounding().run(g)
    assert "rounding_folded" not in g.node("q").attrs
    g = _fold_graph("RND", False, False, [2040, 0, 0])  # 2040 + 6 * 31 + 4 > the 12-bit sum type
    FoldRounding().run(g)
    assert "rounding_folded" not in g.node("q").attrs
    g = _fold_graph("RND", True, False, None)
    g.outputs.append("y")
    FoldRounding().run(g)
    assert "rounding_folded" not in g.node("q").attrs


@pytest.mark.parametrize("reuse", [1, 4])
def test_qonnx_passes_keep_outputs(reuse):
    path = shared_model("qonnx-model-zoo", "TFC", "TFC_2W2A.onnx")
    config = Config.from_dict({"Model": {"ReuseFactor": reuse}})
    graph = from_onnx(path, config=config)
    out = _run_each(graph, config, _inputs(graph, n=100))
    assert any("Dense" in s and "CSD digits" in s for s in out.notes)
