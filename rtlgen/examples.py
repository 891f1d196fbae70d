"""Bundled example models, built deterministically so no binary model files are shipped.

``jet-tagger``: a QONNX MLP shaped like the LHC jet-substructure tagger (16-64-32-32-5) with 6-bit
power-of-two-scaled weights and activations, ReLU, biases, and float logits out.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["EXAMPLES", "qonnx_mlp", "example_model"]

QONNX_DOMAIN = "qonnx.custom_op.general"


def qonnx_mlp(
    sizes=(16, 64, 32, 32, 5),
    *,
    weight_bits=6,
    act_bits=6,
    input_bits=8,
    seed=0,
    name="mlp",
    relu_before_quant=True,
) -> onnx.ModelProto:
    """A QONNX MLP: input Quant, then per layer MatMul + Add + Relu + Quant (none on the last)."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []

    def const(name, value):
        inits.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
        return name

    def quant(x, out, scale, bits, signed, narrow=0, rounding="ROUND"):
        n = len(nodes)
        nodes.append(
            helper.make_node(
                "Quant",
                [x, const(f"q{n}_scale", scale), const(f"q{n}_zp", 0.0), const(f"q{n}_bits", bits)],
                [out],
                name=f"Quant_{n}",
                domain=QONNX_DOMAIN,
                signed=signed,
                narrow=narrow,
                rounding_mode=rounding,
            )
        )
        return out

    x = quant("input", "x_q", 2.0**-3, input_bits, 1)
    for li, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        wscale = 2.0 ** -(weight_bits - 2)
        w = rng.normal(0, 1.0 / np.sqrt(n_in), (n_in, n_out)) * 1.5
        wq = quant(const(f"fc{li}_w", w), f"fc{li}_wq", wscale, weight_bits, 1, narrow=1)
        # Biases on a 2**-6 grid are exactly representable, as a trained and quantized bias is.
        b = np.round(rng.normal(0, 0.25, n_out) * 64) / 64
        nodes.append(helper.make_node("MatMul", [x, wq], [f"fc{li}_mm"], name=f"fc{li}"))
        nodes.append(helper.make_node("Add", [f"fc{li}_mm", const(f"fc{li}_b", b)], [f"fc{li}_add"], name=f"fc{li}_bias"))
        if li == len(sizes) - 2:
            last = f"fc{li}_add"
            break
        nodes.append(helper.make_node("Relu", [f"fc{li}_add"], [f"fc{li}_relu"], name=f"relu{li}"))
        x = quant(f"fc{li}_relu", f"act{li}", 2.0 ** -(act_bits - 3), act_bits, 0)
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, sizes[0]])],
        [helper.make_tensor_value_info(last, TensorProto.FLOAT, [1, sizes[-1]])],
        initializer=inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(QONNX_DOMAIN, 1)],
        producer_name="rtlgen.examples",
    )
    model.ir_version = 8
    return model


EXAMPLES = {
    "jet-tagger": lambda: qonnx_mlp((16, 64, 32, 32, 5), name="jet_tagger"),
}


def example_model(name: str) -> onnx.ModelProto:
    from .errors import RtlgenError

    if name not in EXAMPLES:
        raise RtlgenError(f"example {name!r} does not exist; examples are: {', '.join(EXAMPLES)}")
    return EXAMPLES[name]()
