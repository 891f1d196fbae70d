"""The golden model run block by block on threads equals the same graph run in one piece."""

from __future__ import annotations

import numpy as np
import pytest

from rtlgen import golden
from rtlgen.fixed import FixedType, align, cast
from rtlgen.ir import Graph, Node, Requant, Tensor


def _per_lane_graph(signed: bool, overflow: str, rounding: str, *, all_lanes: bool):
    rng = np.random.default_rng(3)
    src = FixedType(14, 5, True)
    lanes = []
    for c in range(12):
        if not all_lanes and c % 5 == 4:
            lanes.append(None)
            continue
        lanes.append(str(FixedType(int(rng.integers(2, 10)), int(rng.integers(-1, 6)), signed, rounding, overflow)))
    types = [FixedType.parse(t) for t in lanes if t is not None]
    frac = max(t.frac for t in types)
    integer = max(t.integer for t in types) + 1
    op = Requant(FixedType(frac + integer, integer, True), lanes)
    g = Graph("g")
    g.tensors["x"] = Tensor("x", (12,), src)
    g.tensors["y"] = Tensor("y", (12,), op.type)
    g.add_node(Node("q", op, ["x"], ["y"]))
    g.inputs, g.outputs = ["x"], ["y"]
    return g, src, op


@pytest.mark.parametrize("all_lanes", [True, False])
@pytest.mark.parametrize("overflow", ["WRAP", "SAT", "SAT_SYM", "SAT_ZERO"])
@pytest.mark.parametrize("signed", [True, False])
def test_per_lane_requant_blocks(signed, overflow, all_lanes):
    """Per-lane requantization equals cast + align lane by lane, whether every lane has a type or
    some are always zero, and the same block by block on two threads as in one piece."""
    g, src, op = _per_lane_graph(signed, overflow, "RND_CONV", all_lanes=all_lanes)
    x = np.random.default_rng(5).integers(src.min_mantissa, src.max_mantissa + 1, (3000, 12))
    want = np.zeros_like(x)
    for c, t in enumerate(op.lane_types()):
        if t is not None:
            want[:, c] = align(cast(x[:, c], src, t), t.frac, op.type.frac)
    assert op._golden_lanes(src, x) is not None
    assert np.array_equal(golden.run(g, x), want)
    blocks = golden.map_blocks(lambda b: golden.run(g, b), x, rows=257, workers=2)
    assert np.array_equal(blocks, want)


def test_map_blocks_joins_dicts_and_wide_values():
    """Traces (dicts of tensors) join key by key; blocks that hold Python integers (values past
    int64) join with int64 blocks exactly."""
    x = np.arange(10, dtype=np.int64).reshape(10, 1)

    def fn(b):
        y = b.astype(object) * (1 << 70) if b[0, 0] >= 5 else b * 2
        return {"a": b, "y": y}

    out = golden.map_blocks(fn, x, rows=5, workers=2)
    assert np.array_equal(out["a"], x)
    assert [int(v) for v in out["y"].ravel()] == [2 * v for v in range(5)] + [v << 70 for v in range(5, 10)]


def test_paper_model_predict_blocks(tmp_path):
    """A published HGQ2 jet tagger: predict on many blocks on two threads == one block."""
    import rtlgen
    from conftest import shared_model

    d = rtlgen.convert(shared_model("da4ml-ae", "jsc", "jsc_cernbox_75.16.keras"))
    x = np.random.default_rng(0).uniform(-4, 4, (5000, 16)).astype(np.float32)
    whole = golden.map_blocks(lambda b: d.predict(b), x, rows=len(x))
    assert np.array_equal(golden.map_blocks(d.predict, x, rows=97, workers=2), whole)
    assert np.array_equal(d.predict(x), whole)
