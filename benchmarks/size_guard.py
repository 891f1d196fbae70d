"""The size guard and large builds: hls4ml's KERAS_conv1d-sized network (input 100x7, three Conv1D
of 32 filters x 40 taps, 'same') with the default configuration (refused, with the message), and
built in io_stream at a reuse factor that fits; a 1M-parameter dense network at a fitting reuse
factor. Prints the guard's message and the build times.

    python benchmarks/size_guard.py [--skip-dense]

``--calibrate [DESIGN ...]`` synthesizes the calibration designs with Yosys (xc7) and prints the
size model's estimate beside the counts; ``--table`` prints the model against the stored counts
(``YOSYS``, held by tests/test_size.py within 1.5x). The fit (rtlgen.size, 2026-12):

    design                             LUT est / yosys    FF est / yosys  DSP est / yosys  ratio LUT  FF   DSP
    dense parallel 16-32-16-5           9,772 /  9,230     3,974 / 4,044      0 / 0              1.06  0.98  -
    conv2d io_stream 2x8x8              3,604 /  3,758     2,298 / 2,126      0 / 0              0.96  1.08  -
    conv1d io_parallel reuse 4, 2x16    4,536 /  4,071     2,916 / 2,902    122 / 89             1.11  1.00  1.37
    dense reuse 16, 64-64-10            5,112 /  4,026     3,756 / 4,368    296 / 296            1.27  0.86  1.00
    conv2d io_parallel 1x6x6           18,669 / 13,632     6,908 / 5,733      0 / 0              1.37  1.20  -
    conv1d io_stream 4x32               5,235 /  5,220     3,268 / 2,959      0 / 0              1.00  1.10  -
    lstm unrolled, 2 steps of 6x16     44,977 / 37,755    21,989 / 21,086    96 / 80             1.19  1.04  1.20
    lstm reused 20, 20 steps of 6x16    5,056 /  5,195     6,336 / 6,675    176 / 176            0.97  0.95  1.00
    lstm unrolled, 20 steps of 6x16   574,709 / 594,661  272,213 / 311,840  960 / 960           0.97  0.87  1.00
    gru unrolled, 3 steps of 4x8       24,388 / 23,174    12,628 / 11,310    72 / 64             1.05  1.12  1.13
    gru reused 6, 3 steps of 4x8        1,760 /  1,500     1,960 / 2,141     88 / 88             1.17  0.92  1.00
    gru reset before, unrolled, ...    24,388 / 23,437    13,780 / 11,218    72 / 56             1.04  1.23  1.29
    gru reset before, reused 6, ...     1,760 /  1,752     2,344 / 2,496     88 / 88             1.00  0.94  1.00
    simplernn unrolled, 3 steps of 4x16 24,003 / 25,735  11,989 / 11,721     0 / 0              0.93  1.02  -
    simplernn reused 5, 3 steps of 4x16 7,238 /  7,254     1,472 / 1,484     64 / 64             1.00  0.99  1.00

The LSTM, GRU and SimpleRNN rows are the full ``synth_xilinx`` with DSPs of rtlgen.synth
(``Design.synthesize``; benchmarks/recurrent_schedules.py ``--dsp`` for the LSTM), except the
20-step unrolled LSTM, ``--calibrate``'s (7 minutes, 3 GB); the unrolled cell alone (general state,
no zero first step) is 26,072 LUTs, 13,931 FFs, 48 DSPs, 24 BRAM36, from which the recurrent
coefficients were fitted. The unrolled LSTM rows predate the activation tables' window (each lookup
now clamps its index: about 28 LUTs more, measured on the reused LSTM and the GRUs). The GRUs
and the SimpleRNN have random weights (``_keras_rnn``); the reused SimpleRNN's table is logic, not a
block RAM (its cast to the state sits between the table and the register).

Before the fit the LUT estimates were 2.2x (dense parallel), 2.1x and 2.2x (conv io_stream) and
2.6x (conv io_parallel) too high, the DSPs of the reusing convolution 2.6x, and flip-flops were not
estimated. Not measured yet: the largest calibration designs ("dense parallel 16-64-32-32-5",
"dense reuse 4, ...", "conv2d io_stream reuse 9, ..."), whose Yosys runs take longer.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml


def conv1d_model(path: Path):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    keras.utils.set_random_seed(0)
    x = keras.Input((100, 7))
    h = x
    for i in range(3):
        h = keras.layers.Conv1D(32, 40, padding="same", activation="relu", name=f"conv1d_{i + 1}")(h)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(5, name="dense_1")(h)
    keras.Model(x, h).save(path)


def dense_model(path: Path):
    """A 1M-parameter float MLP as ONNX: 1024-512-512-512-256-10 (~1.0M weights)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    sizes = [1024, 512, 512, 512, 256, 10]
    nodes, inits, cur = [], [], "x"
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        inits.append(numpy_helper.from_array(rng.normal(0, 1 / np.sqrt(a), (a, b)).astype(np.float32), f"w{i}"))
        inits.append(numpy_helper.from_array(rng.normal(0, 0.1, b).astype(np.float32), f"b{i}"))
        nodes.append(helper.make_node("Gemm", [cur, f"w{i}", f"b{i}"], [f"h{i}"], name=f"fc{i}"))
        cur = f"h{i}"
        if i < len(sizes) - 2:
            nodes.append(helper.make_node("Relu", [cur], [f"r{i}"], name=f"relu{i}"))
            cur = f"r{i}"
    g = helper.make_graph(nodes, "dense1m", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, sizes[0]])],
                          [helper.make_tensor_value_info(cur, TensorProto.FLOAT, [1, sizes[-1]])], initializer=inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), path)
    return sum(a * b + b for a, b in zip(sizes, sizes[1:]))


def qonnx_cnn(shape=(2, 8, 8), filters=(4, 4), n_out=5, *, bits=6, seed=0):
    """A QONNX CNN: input Quant, per filter count a 3x3 'same' convolution + ReLU + Quant (a 2x2
    max pooling after the first), then flatten and a dense layer (1-D kernels of 3 on a 2-D shape)."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    d = "qonnx.custom_op.general"
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    one_d = len(shape) == 2

    def const(v, dtype=np.float32):
        inits.append(numpy_helper.from_array(np.asarray(v, dtype=dtype), f"c{len(inits)}"))
        return inits[-1].name

    def quant(x, scale, signed, narrow=0):
        nodes.append(helper.make_node("Quant", [x, const(scale), const(0.0), const(bits)], [f"q{len(nodes)}"], domain=d,
                                      signed=signed, narrow=narrow, rounding_mode="ROUND", name=f"Quant_{len(nodes)}"))
        return nodes[-1].output[0]

    x, c, sp = quant("x", 2.0**-3, 1), shape[0], list(shape[1:])
    k = [3] * len(sp)
    for i, f in enumerate(filters):
        w = quant(const(rng.normal(0, 1.5 / np.sqrt(9 * c), (f, c, *k))), 2.0 ** -(bits - 2), 1, 1)
        nodes.append(helper.make_node("Conv", [x, w, const(np.round(rng.normal(0, 0.25, f) * 16) / 16)], [f"conv{i}_out"],
                                      name=f"conv{i}", kernel_shape=k, pads=[1] * 2 * len(k)))
        nodes.append(helper.make_node("Relu", [f"conv{i}_out"], [f"relu{i}"], name=f"relu{i}"))
        x, c = quant(f"relu{i}", 2.0 ** -(bits - 3), 0), f
        if i == 0:
            nodes.append(helper.make_node("MaxPool", [x], ["pool"], name="pool", kernel_shape=[2] * len(sp), strides=[2] * len(sp)))
            x, sp = "pool", [s // 2 for s in sp]
    flat = c * int(np.prod(sp))
    nodes.append(helper.make_node("Reshape", [x, const([-1, flat], np.int64)], ["flat"], name="flatten"))
    w = quant(const(rng.normal(0, 1.5 / np.sqrt(flat), (flat, n_out))), 2.0 ** -(bits - 2), 1, 1)
    nodes.append(helper.make_node("MatMul", ["flat", w], ["y"], name="fc"))
    g = helper.make_graph(nodes, "cnn" + ("1d" if one_d else "2d"), [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, *shape])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n_out])], initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(d, 1)])
    m.ir_version = 8
    return m


def _mlp(sizes, bits=6):
    from rtlgen.examples import qonnx_mlp

    return qonnx_mlp(sizes, weight_bits=bits, act_bits=bits, input_bits=8, name="mlp")


def _published_lstm(steps):
    """hls4ml's published LSTM(16) alone over ``steps`` time steps (benchmarks/recurrent_schedules.py)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("recurrent_schedules", Path(__file__).with_name("recurrent_schedules.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.lstm_only(Path(tempfile.mkdtemp(prefix="rtlgen-lstm-")), steps)


def _keras_rnn(kind, units, steps, features, **kw):
    """A Keras ``kind`` (GRU, SimpleRNN) with seeded random weights, alone in a model."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import numpy as np

    model = keras.Sequential([keras.Input((steps, features)), getattr(keras.layers, kind)(units, name="rnn", **kw)])
    rng = np.random.default_rng(0)
    model.set_weights([rng.uniform(-0.6, 0.6, w.shape).astype("float32") for w in model.get_weights()])
    return model


# hls4ml's published models (the recurrent calibration designs read their LSTM).
SHARED_MODELS = Path(__file__).resolve().parents[2] / "shared" / "models"
LSTM_CONFIG = {"Model": {"Precision": "fixed<16,6>"}}

# The designs the size model is calibrated on: (model, configuration) by name.
CALIBRATION = {
    "dense parallel 16-32-16-5": lambda: (_mlp((16, 32, 16, 5)), {}),
    "dense parallel 16-64-32-32-5": lambda: (_mlp((16, 64, 32, 32, 5)), {}),
    "dense reuse 4, 16-64-32-32-5": lambda: (_mlp((16, 64, 32, 32, 5)), {"Model": {"ReuseFactor": 4, "Strategy": "Resource"}}),
    "dense reuse 16, 64-64-10": lambda: (_mlp((64, 64, 10)), {"Model": {"ReuseFactor": 16, "Strategy": "Resource"}}),
    "conv2d io_parallel 1x6x6": lambda: (qonnx_cnn((1, 6, 6), (3, 3)), {}),
    "conv2d io_stream 2x8x8": lambda: (qonnx_cnn(), {"IOType": "io_stream"}),
    "conv2d io_stream reuse 9, 3x16x16": lambda: (qonnx_cnn((3, 16, 16), (8, 8)), {"IOType": "io_stream", "Model": {"ReuseFactor": 9}}),
    "conv1d io_stream 4x32": lambda: (qonnx_cnn((4, 32), (8, 8)), {"IOType": "io_stream"}),
    "conv1d io_parallel reuse 4, 2x16": lambda: (qonnx_cnn((2, 16), (4, 4)), {"Model": {"ReuseFactor": 4}}),
    "lstm unrolled, 2 steps of 6x16": lambda: (_published_lstm(2), LSTM_CONFIG),
    "lstm unrolled, 20 steps of 6x16": lambda: (_published_lstm(20), LSTM_CONFIG),
    "lstm reused 20, 20 steps of 6x16": lambda: (_published_lstm(20), {**LSTM_CONFIG, "LayerType": {"LSTM": {"ReuseFactor": 20}}}),
    "gru unrolled, 3 steps of 4x8": lambda: (_keras_rnn("GRU", 8, 3, 4), LSTM_CONFIG),
    "gru reused 6, 3 steps of 4x8": lambda: (_keras_rnn("GRU", 8, 3, 4), {**LSTM_CONFIG, "Model": {**LSTM_CONFIG["Model"], "ReuseFactor": 6}}),
    "gru reset before, unrolled, 3 steps of 4x8": lambda: (_keras_rnn("GRU", 8, 3, 4, reset_after=False), LSTM_CONFIG),
    "gru reset before, reused 6, 3 steps of 4x8": lambda: (
        _keras_rnn("GRU", 8, 3, 4, reset_after=False), {**LSTM_CONFIG, "Model": {**LSTM_CONFIG["Model"], "ReuseFactor": 6}}),
    "simplernn unrolled, 3 steps of 4x16": lambda: (_keras_rnn("SimpleRNN", 16, 3, 4), LSTM_CONFIG),
    "simplernn reused 5, 3 steps of 4x16": lambda: (_keras_rnn("SimpleRNN", 16, 3, 4), {**LSTM_CONFIG, "Model": {**LSTM_CONFIG["Model"], "ReuseFactor": 5}}),
}


def synth_layers(design, work: Path) -> dict:
    """Yosys xc7 counts per layer instance, and of the whole design under ``"total"``: the mapped
    netlist before the flatten (no timing analysis, which costs more than the mapping)."""
    from rtlgen.synth import _classify, _read_stat, _run_yosys, _stage_sources, _tree_counts

    work.mkdir(parents=True, exist_ok=True)
    src = work / f"{design.top_name}.v"
    src.write_text(design.verilog)
    top = design.top_name
    (source,) = _stage_sources([src], work)
    script = [f'read_verilog "{source}"', f"hierarchy -top {top}", "proc", "splitnets",
              f"synth_xilinx -family xc7 -top {top} -noiopad -noclkbuf -run :check", f"tee -q -o stat.json stat -json -top {top}"]
    (work / "synth.ys").write_text("\n".join(script) + "\n")
    _run_yosys(work, "synth.ys", "yosys.log", ["stat.json"], top, None, None)
    stat = _read_stat(work, "stat.json", "yosys.log")
    _, total = _tree_counts(stat)
    children = [k.lstrip("\\") for k in stat["modules"][f"\\{top}"]["num_cells_by_type"] if k.lstrip("\\") in total]
    out = {c.removeprefix(top + "."): _classify("xc7", total[c]) for c in children}
    out["total"] = _classify("xc7", total[top])
    return out


def calibrate(names, work: Path):
    """The size model's estimate against Yosys for each calibration design: per layer and in all."""
    import json

    import rtlgen
    from rtlgen.size import estimate

    rows = []
    for name in names:
        model, cfg = CALIBRATION[name]()
        design = rtlgen.convert(model, cfg)
        est = estimate(design.graph, design.config.io_type)
        t0 = time.perf_counter()
        got = synth_layers(design, work / name.replace(" ", "_").replace(",", ""))
        layers = {c.name: {"kind": c.kind, "lut": c.lut, "ff": c.ff, "dsp": c.dsp, "yosys": got.get(c.name)} for c in est}
        total = got["total"]
        row = {"design": name, "lut": sum(c.lut for c in est), "ff": sum(c.ff for c in est), "dsp": sum(c.dsp for c in est),
               "yosys": {k: total[k] for k in ("lut", "ff", "dsp")}, "layers": layers, "seconds": round(time.perf_counter() - t0)}
        rows.append(row)
        y = row["yosys"]
        print(f"{name:36s} estimate {row['lut']:7,} LUT {row['ff']:7,} FF {row['dsp']:4} DSP | yosys {y['lut']:7,} LUT "
              f"{y['ff']:7,} FF {y['dsp']:4} DSP | LUT ratio {row['lut'] / max(y['lut'], 1):.2f}", flush=True)
        (work / "calibration.json").write_text(json.dumps(rows, indent=1))
    return rows


# Yosys (xc7, synth_xilinx up to 'check', 2026-12) on the calibration designs: what
# ``--calibrate`` printed, kept so tests/test_size.py holds the model to it without Yosys.
YOSYS = {
    "dense parallel 16-32-16-5": {"lut": 9230, "ff": 4044, "dsp": 0},
    "conv2d io_stream 2x8x8": {"lut": 3758, "ff": 2126, "dsp": 0},
    "conv1d io_parallel reuse 4, 2x16": {"lut": 4071, "ff": 2902, "dsp": 89},
    "dense reuse 16, 64-64-10": {"lut": 4026, "ff": 4368, "dsp": 296},
    "conv2d io_parallel 1x6x6": {"lut": 13632, "ff": 5733, "dsp": 0},
    "conv1d io_stream 4x32": {"lut": 5220, "ff": 2959, "dsp": 0},
    # Full synth_xilinx with DSPs (rtlgen.synth, benchmarks/recurrent_schedules.py --dsp), 2026-12;
    # the unrolled LSTM with the activation tables over the whole accumulator, the others with
    # their tables' windows.
    "lstm unrolled, 2 steps of 6x16": {"lut": 37755, "ff": 21086, "dsp": 80},
    "lstm reused 20, 20 steps of 6x16": {"lut": 5195, "ff": 6675, "dsp": 176},
    "gru unrolled, 3 steps of 4x8": {"lut": 23174, "ff": 11310, "dsp": 64},
    "gru reused 6, 3 steps of 4x8": {"lut": 1500, "ff": 2141, "dsp": 88},
    "gru reset before, unrolled, 3 steps of 4x8": {"lut": 23437, "ff": 11218, "dsp": 56},
    "gru reset before, reused 6, 3 steps of 4x8": {"lut": 1752, "ff": 2496, "dsp": 88},
    "simplernn unrolled, 3 steps of 4x16": {"lut": 25735, "ff": 11721, "dsp": 0},
    "simplernn reused 5, 3 steps of 4x16": {"lut": 7254, "ff": 1484, "dsp": 64},
    # --calibrate's flow (per module, not flattened: the flattened run needs ~100 GB): the cell's
    # tables are ROMs of logic, not block RAM, and the first cell's zero state is not folded.
    "lstm unrolled, 20 steps of 6x16": {"lut": 594661, "ff": 311840, "dsp": 960},
}


def table():
    """The size model's estimate against the stored Yosys counts (no Yosys run)."""
    import rtlgen
    from rtlgen.size import estimate

    print(f"{'design':36s} {'LUT est/yosys':>17s} {'FF est/yosys':>17s} {'DSP est/yosys':>13s}  ratios LUT FF DSP")
    for name, got in YOSYS.items():
        model, cfg = CALIBRATION[name]()
        design = rtlgen.convert(model, cfg)
        costs = estimate(design.graph, design.config.io_type)
        est = {k: sum(getattr(c, k) for c in costs) for k in ("lut", "ff", "dsp")}
        ratios = " ".join(f"{est[k] / got[k]:.2f}" if got[k] else "-" for k in ("lut", "ff", "dsp"))
        print(f"{name:36s} {est['lut']:>7,} / {got['lut']:>7,} {est['ff']:>7,} / {got['ff']:>7,} {est['dsp']:>5} / {got['dsp']:>5}  {ratios}")


def build(model, out, cfg=None, *extra):
    args = [sys.executable, "-m", "rtlgen.cli", "build", str(model), "-o", str(out), "--vectors", "100", *extra]
    if cfg is not None:
        path = Path(out).parent / (Path(out).name + ".yml")
        path.write_text(yaml.safe_dump(cfg))
        args += ["--config", str(path)]
    t0 = time.perf_counter()
    p = subprocess.run(args, capture_output=True, text=True)
    return p, time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-dense", action="store_true")
    ap.add_argument("--calibrate", nargs="*", metavar="DESIGN", help="compare the size model with Yosys on the calibration designs (all by default)")
    ap.add_argument("--table", action="store_true", help="the size model against the stored Yosys counts")
    ap.add_argument("--work", type=Path, help="keep the calibration's Yosys runs here")
    a = ap.parse_args()
    if a.table:
        table()
        return
    if a.calibrate is not None:
        with tempfile.TemporaryDirectory() as tmp:
            calibrate(a.calibrate or list(CALIBRATION), a.work or Path(tmp))
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = tmp / "conv1d.keras"
        conv1d_model(model)
        p, t = build(model, tmp / "default")
        print(f"conv1d, default configuration (io_parallel, reuse 1): exit {p.returncode} after {t:.1f} s")
        print("  " + p.stderr.strip().replace("\n", "\n  "))
        cfg = {"IOType": "io_stream", "Model": {"ReuseFactor": 40}}
        p, t = build(model, tmp / "stream", cfg)
        print(f"conv1d, io_stream, ReuseFactor 40: exit {p.returncode}, {t:.1f} s")
        print("  " + "\n  ".join(p.stdout.strip().splitlines()[-3:] + p.stderr.strip().splitlines()[-3:]))
        if not a.skip_dense:
            model = tmp / "dense1m.onnx"
            n = dense_model(model)
            for r in (1, 64):
                p, t = build(model, tmp / f"dense_r{r}", {"Model": {"ReuseFactor": r, "Strategy": "Resource"}})
                print(f"dense {n:,} parameters, ReuseFactor {r}: exit {p.returncode}, {t:.1f} s")
                print("  " + "\n  ".join(p.stdout.strip().splitlines()[-2:] + p.stderr.strip().splitlines()[-2:]))


if __name__ == "__main__":
    main()
