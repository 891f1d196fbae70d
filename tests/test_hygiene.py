"""Hardware hygiene: the Verilog of every layer kind passes ``verilator --lint-only -Wall`` and
Yosys ``check -assert`` (no latches, combinational loops or multiple drivers).

Verilator warnings that Amaranth's netlists raise by construction are turned off, each for a
reason:

* UNUSEDSIGNAL: unused bits of intermediate values and ports (a lane's sign that a ReLU never
  reads, the low bits a rounding drops);
* DECLFILENAME: one file holds every module of a design;
* PROCASSINIT: Amaranth gives every register its reset value as a declaration initializer
  (``reg [7:0] r = 8'h0;``), which FPGAs load at configuration;
* WIDTHEXPAND, WIDTHTRUNC: Yosys' Verilog writer leaves operand extension and result truncation
  to Verilog's sizing rules, which are exactly the semantics of the cells it writes (each
  operand extended by its own signedness; the golden model is checked against this RTL).
"""

import shutil
import subprocess
import sys

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import rtlgen
from rtlgen.examples import qonnx_mlp

WAIVED = ["-Wno-UNUSEDSIGNAL", "-Wno-DECLFILENAME", "-Wno-PROCASSINIT", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC"]


def _verilator():
    from rtlgen.sim.runner import _tb_runner

    env = _tb_runner().sim_environ("verilator")
    exe = shutil.which("verilator", path=env["PATH"])
    if exe is None:
        pytest.skip("verilator is not installed")
    return exe, env


def _float_model(nodes, inits, in_shape, name):
    g = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))],
                          [helper.make_tensor_value_info(nodes[-1].output[0], TensorProto.FLOAT, None)],
                          initializer=[numpy_helper.from_array(np.asarray(v, dtype=np.float32), k) for k, v in inits.items()])  # fmt: skip
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


def _cnn(pool):
    rng = np.random.default_rng(3)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node(pool, ["r"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
    ]
    return _float_model(nodes, {"w": rng.normal(0, 0.5, (2, 2, 3, 3))}, (1, 2, 4, 4), "cnn")


def _activations():
    rng = np.random.default_rng(4)
    nodes = [
        helper.make_node("Gemm", ["x", "w"], ["h"], name="fc"),
        helper.make_node("Sigmoid", ["h"], ["s"], name="sig"),
        helper.make_node("Add", ["s", "h"], ["a"], name="add"),
        helper.make_node("Max", ["a", "h"], ["m"], name="max"),
    ]
    return _float_model(nodes, {"w": rng.normal(0, 0.5, (6, 5))}, (1, 6), "acts")


def _conv1d():
    """KERAS_conv1d's form, small: two 'same' Conv1D with ReLU, flatten, dense."""
    rng = np.random.default_rng(5)
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], name="c1", kernel_shape=[5], pads=[2, 2]),
        helper.make_node("Relu", ["c1"], ["r1"], name="r1"),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], name="c2", kernel_shape=[5], pads=[2, 2]),
        helper.make_node("Relu", ["c2"], ["r2"], name="r2"),
        helper.make_node("Flatten", ["r2"], ["f"], name="fl"),
        helper.make_node("Gemm", ["f", "wd"], ["y"], name="fc"),
    ]
    inits = {"w1": rng.normal(0, 0.5, (3, 2, 5)), "w2": rng.normal(0, 0.5, (3, 3, 5)), "wd": rng.normal(0, 0.5, (24, 2))}
    return _float_model(nodes, inits, (1, 2, 8), "conv1d")


_REUSE = {"LayerName": {"c1": {"ReuseFactor": 2}, "c2": {"ReuseFactor": 3}, "fc": {"ReuseFactor": 4}}}

def _recurrent(kind):
    keras = pytest.importorskip("keras")
    layer = {
        "lstm": lambda: keras.layers.LSTM(3, recurrent_activation="hard_sigmoid", return_sequences=True),
        "gru": lambda: keras.layers.GRU(3, reset_after=False),
    }[kind]()
    model = keras.Sequential([keras.Input((3, 2)), layer])
    rng = np.random.default_rng(5)
    model.set_weights([rng.uniform(-0.6, 0.6, w.shape).astype("float32") for w in model.get_weights()])
    return model


CASES = {
    "dense_latency": (lambda: qonnx_mlp((6, 5, 3), seed=1, name="mlp"), {}),
    "dense_resource": (lambda: qonnx_mlp((6, 5, 3), seed=1, name="mlp"), {"Model": {"ReuseFactor": 3, "Strategy": "Resource"}}),
    "conv_maxpool": (lambda: _cnn("MaxPool"), {}),
    "conv_reuse_avgpool": (lambda: _cnn("AveragePool"), {"Model": {"ReuseFactor": 4}}),
    "activation_merge": (_activations, {}),
    "stream_cnn": (lambda: _cnn("MaxPool"), {"IOType": "io_stream"}),
    "stream_reuse_cnn": (lambda: _cnn("AveragePool"), {"IOType": "io_stream", "Model": {"ReuseFactor": 2}}),
    "stream_mlp": (lambda: qonnx_mlp((6, 5, 3), seed=1, name="mlp"), {"IOType": "io_stream"}),
    "conv1d_flatten": (_conv1d, _REUSE),
    "stream_conv1d": (_conv1d, {"IOType": "io_stream", **_REUSE}),
    "lstm_unrolled": (lambda: _recurrent("lstm"), {}),
    "gru_unrolled": (lambda: _recurrent("gru"), {}),
}


def _design(case):
    make, cfg = CASES[case]
    design = rtlgen.convert(make(), cfg)
    design.top_name = case  # one module name per case, so one Yosys run can read them all
    return design


@pytest.mark.parametrize("case", sorted(CASES))
def test_verilator_lint(case, tmp_path):
    exe, env = _verilator()
    design = _design(case)
    src = tmp_path / f"{case}.v"
    src.write_text(design.verilog)
    p = subprocess.run([exe, "--lint-only", "-Wall", *WAIVED, "--top-module", case, src.name],
                       cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert p.returncode == 0 and "%Warning" not in p.stderr, p.stderr[-3000:]


def test_yosys_check(tmp_path):
    """Every case in one Yosys run: ``check -assert`` fails on a latch (after ``proc``), a
    combinational loop or a signal with more than one driver."""
    from rtlgen.synth import YOSYS_BACKENDS, yosys_backend

    lines = []
    for case in sorted(CASES):
        (tmp_path / f"{case}.v").write_text(_design(case).verilog)
        lines += ["design -reset", f"read_verilog {case}.v", f"hierarchy -check -top {case}", "proc", "flatten", "opt_clean", "check -assert"]
    (tmp_path / "check.ys").write_text("\n".join(lines) + "\n")
    cmd = [sys.executable, "-c", YOSYS_BACKENDS[yosys_backend()][1], "-q", "-l", "check.log", "-s", "check.ys"]
    p = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    log = (tmp_path / "check.log").read_text() if (tmp_path / "check.log").exists() else ""
    assert p.returncode == 0, log[-3000:] + p.stdout + p.stderr
    assert log.count("Found and reported 0 problems.") == len(CASES), log[-3000:]


def test_fifo_text_lint(tmp_path):
    """Every form of the FIFO text (one word, two, a buffered pair, with and without a level port)."""
    from rtlgen.layers._verilog import fifo_verilog

    exe, env = _verilator()
    forms = [(1, False, True), (2, False, False), (5, False, True), (2, True, False), (3, True, True), (8, True, True)]
    names = [f"fifo_{d}_{int(b)}_{int(lv)}" for d, b, lv in forms]
    wrapper = ["module top(input clk, input rst, input v, input r, input [11:0] d, output [12 * %d - 1:0] q);" % len(forms)]
    for k, (name, (depth, _, level)) in enumerate(zip(names, forms)):
        lw = depth.bit_length()
        wrapper += [f"  wire [{lw - 1}:0] l{k};" if level else "", f"  wire ir{k}, ov{k};",
                    f"  {name} u{k}(.clk(clk), .rst(rst), .i_valid(v), .i_ready(ir{k}), .i_payload(d), .o_valid(ov{k}), "
                    f".o_ready(r), .o_payload(q[{12 * k + 11}:{12 * k}]){f', .level(l{k})' if level else ''});"]  # fmt: skip
    text = "".join(fifo_verilog(n, 12, d, buffered=b, level=lv) for n, (d, b, lv) in zip(names, forms))
    (tmp_path / "fifos.v").write_text(text + "\n".join([*wrapper, "endmodule", ""]))
    p = subprocess.run([exe, "--lint-only", "-Wall", *WAIVED, "--top-module", "top", "fifos.v"],
                       cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert p.returncode == 0 and "%Warning" not in p.stderr, p.stderr[-3000:]
