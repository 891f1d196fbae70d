"""Write a float jet tagger (16-64-32-32-5 MLP, ONNX) and data to sweep it with.

    python examples/sweeps/make_jet_tagger.py examples/sweeps/data
    rtlgen sweep examples/sweeps/data/jet_tagger_float.onnx examples/sweeps/jet-tagger.yml -o sweep-jet

A float network takes the configured ``Precision`` (a quantized QONNX model fixes its own types), so
the sweep shows what narrower types cost in accuracy. No published jet-tagging vectors exist: the
inputs are Gaussian and the labels are the float network's own classes, so ``accuracy`` is the
fixed-point design's agreement with the float network.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper


def float_mlp(sizes=(16, 64, 32, 32, 5), seed: int = 0) -> onnx.ModelProto:
    """MatMul + Add (+ Relu between layers) with seeded random weights, float logits out."""
    rng = np.random.default_rng(seed)
    nodes, inits, x = [], [], "input"
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        w = (rng.normal(0, 1 / np.sqrt(n_in), (n_in, n_out)) * 1.5).astype(np.float32)
        b = rng.normal(0, 0.25, n_out).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"fc{i}_w"), numpy_helper.from_array(b, f"fc{i}_b")]
        nodes.append(helper.make_node("MatMul", [x, f"fc{i}_w"], [f"fc{i}_mm"], name=f"fc{i}"))
        nodes.append(helper.make_node("Add", [f"fc{i}_mm", f"fc{i}_b"], [f"fc{i}_add"], name=f"fc{i}_bias"))
        x = f"fc{i}_add"
        if i < len(sizes) - 2:
            nodes.append(helper.make_node("Relu", [x], [f"relu{i}"], name=f"relu{i}"))
            x = f"relu{i}"
    graph = helper.make_graph(
        nodes, "jet_tagger_float",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, sizes[0]])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, sizes[-1]])],
        initializer=inits,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="rtlgen.examples")
    model.ir_version = 8
    return model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out", type=Path, help="folder for jet_tagger_float.onnx, x.npy and y.npy")
    p.add_argument("--samples", type=int, default=5000)
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    model = float_mlp()
    onnx.save(model, args.out / "jet_tagger_float.onnx")
    x = np.random.default_rng(1).normal(0, 1, (args.samples, 16)).astype(np.float32)
    sess = ort.InferenceSession(model.SerializeToString())
    logits = np.concatenate([sess.run(None, {"input": row[None]})[0] for row in x])
    np.save(args.out / "x.npy", x)
    np.save(args.out / "y.npy", logits.argmax(1))
    print(f"wrote {args.out / 'jet_tagger_float.onnx'}, x.npy {x.shape} and y.npy (classes {np.bincount(logits.argmax(1), minlength=5).tolist()})")


if __name__ == "__main__":
    main()
