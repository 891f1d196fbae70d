"""Small networks for the board-package tests (built from ONNX in memory: no TensorFlow)."""

import numpy as np


def streaming_cnn(seed: int = 3):
    """A quantized channels-first CNN for io_stream: 3-channel 4x4 input (6-bit, 1 byte per lane:
    a 24-bit s_axis, padded to 32 for the DMA), a 3x3 convolution with 4-bit weights, ReLU and a
    5-bit quantizer, 2x2 max pooling, a channels-first flatten and a dense layer to 3 outputs of
    fixed<11,7> (2 bytes each: a 48-bit m_axis, padded to 64). 16 beats in, 1 beat out."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    d = "qonnx.custom_op.general"
    f = lambda a, n: numpy_helper.from_array(np.asarray(a, dtype=np.float32), n)  # noqa: E731
    inits = [
        f(rng.normal(0, 0.5, (4, 3, 3, 3)), "w1"), f(rng.normal(0, 0.3, 4), "b1"),
        f(rng.normal(0, 0.5, (16, 3)), "w3"), f(0.125, "s_in"), f(0.25, "s_w"), f(0.25, "s_a"), f(0.0, "z"),
        f(6.0, "b6"), f(4.0, "b4"), f(5.0, "b5"), numpy_helper.from_array(np.array([1, -1], dtype=np.int64), "shape"),
    ]  # fmt: skip
    q = lambda i, s, b, o, signed=1: helper.make_node("Quant", [i, s, "z", b], [o], domain=d, signed=signed, narrow=0, rounding_mode="ROUND", name="q_" + o)  # noqa: E731
    nodes = [
        q("x", "s_in", "b6", "xq"), q("w1", "s_w", "b4", "w1q"), q("w3", "s_w", "b4", "w3q"),
        helper.make_node("Conv", ["xq", "w1q", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"), q("r1", "s_a", "b5", "a1", signed=0),
        helper.make_node("MaxPool", ["a1"], ["p1"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Reshape", ["p1", "shape"], ["fl"], name="flatten"),
        helper.make_node("MatMul", ["fl", "w3q"], ["y"], name="fc"),
    ]  # fmt: skip
    g = helper.make_graph(nodes, "scnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], initializer=inits)  # fmt: skip
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(d, 1)])
    m.ir_version = 8
    return m
