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
