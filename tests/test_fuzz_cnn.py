"""Property-based fuzzing of convolutional networks: random QONNX CNNs against qonnx's executor,
and their RTL against the golden model under random stalls.

Each example is a QONNX network drawn by hypothesis on a 1-D ``(C, L)`` or 2-D ``(C, H, W)``
input: one to three blocks, each a convolution (random kernel, stride, padding, channels, or
depthwise), max pooling (random window, stride, padding), average pooling (power-of-two windows,
padding counted), a global max or average pooling, or a merge of two branches (Add, Sub, Mul, Max,
Min, Concat); then a flatten and a dense layer. Every quantizer has a random width, scale,
signedness, narrow range and QONNX rounding mode; ReLUs are random; every convolution and the
dense layer get a random reuse factor; the interface is io_parallel or io_stream.

The reference is qonnx's executor (onnxruntime for the standard ops), exactly: widths are kept so
every sum stays below 2**24 steps, where float32 is exact. The golden model must equal it on every
output for random inputs that include the input type's extremes, values far beyond them, and
half-way points between steps. A slice of the networks also runs in Verilator under random input
gaps and output backpressure against the golden model.

The default suite runs a seeded, short slice; ``pytest -m slow tests/test_fuzz_cnn.py`` the long run
(``RTLGEN_FUZZ_NETWORKS`` networks, default 200).
"""

import collections
import os
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import rtlgen
from conftest import check_rtl
from rtlgen.passes import valid_reuse_factors

MODES = ["ROUND", "HALF_EVEN", "FLOOR", "CEIL", "DOWN", "HALF_UP", "HALF_DOWN"]
QONNX = "qonnx.custom_op.general"
MERGES = ["Add", "Sub", "Mul", "Max", "Min", "Concat"]
TOTALS = collections.Counter()


class _Net:
    """A QONNX graph under construction: NCHW (or NCL) shapes without the batch dimension."""

    def __init__(self, draw):
        self.draw = draw
        self.nodes, self.inits = [], []
        self.reuse = {}  # layer name -> reuse factor
        self.blocks = []  # what the network was drawn with, for the failure message

    def const(self, value, dtype=np.float32):
        name = f"c{len(self.inits)}"
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def node(self, op, ins, **attrs):
        out = f"t{len(self.nodes)}"
        self.nodes.append(helper.make_node(op, ins, [out], name=attrs.pop("name", f"{op.lower()}{len(self.nodes)}"), **attrs))
        return out

    def quant(self, x, *, bits, scale_exp, signed, weights=False):
        d = self.draw
        out = f"t{len(self.nodes)}"
        self.nodes.append(
            helper.make_node(
                "Quant", [x, self.const(2.0**scale_exp), self.const(0.0), self.const(bits)], [out], domain=QONNX,
                name=f"Quant_{len(self.nodes)}", signed=int(signed), narrow=int(d(st.booleans())),
                rounding_mode=d(st.sampled_from(MODES)),
            )
        )  # fmt: skip
        return out

    def activation(self, x, *, relu=None):
        """Optional ReLU, then an activation quantizer of 2 to 6 bits."""
        d = self.draw
        relu = d(st.booleans()) if relu is None else relu
        if relu:
            x = self.node("Relu", [x])
        bits = d(st.integers(2, 6))
        signed = (not relu) or d(st.booleans())
        # Ranges of about 1 to 8 in magnitude, so that values saturate as often as not.
        return self.quant(x, bits=bits, scale_exp=d(st.integers(1 - bits, 4 - bits)), signed=signed)

    def conv(self, x, shape, *, same=False, cout=None):
        """A convolution with quantized weights and a bias on a 2**-4 grid, then an activation."""
        d = self.draw
        C, *sp = shape
        depthwise = not same and d(st.sampled_from([False, True, True]))
        if same:
            ks = [d(st.sampled_from([1, 3])) for _ in sp]
            strides = [1] * len(sp)
            pads = [(k - 1) // 2 for k in ks] * 2
        else:
            ks = [d(st.integers(1, min(3, s + 1))) for s in sp]
            pads = [d(st.integers(0, k - 1)) for k in ks] + [d(st.integers(0, k - 1)) for k in ks]
            ks = [min(k, s + a + b) for k, s, a, b in zip(ks, sp, pads[: len(sp)], pads[len(sp) :])]
            strides = [d(st.integers(1, 2)) for _ in sp]
        if depthwise:
            mult = d(st.integers(1, 2))
            cout, group, cin_g = C * mult, C, 1
        else:
            cout = cout or d(st.integers(1, 4))
            group, cin_g = 1, C
        wbits = d(st.integers(2, 6))
        rng = np.random.default_rng(d(st.integers(0, 2**16)))
        w = rng.normal(0, 1.0 / np.sqrt(cin_g * np.prod(ks)), (cout, cin_g, *ks)) * 1.5
        wq = self.quant(self.const(w), bits=wbits, scale_exp=-(wbits - 2), signed=True)
        ins = [x, wq]
        if d(st.booleans()):
            ins.append(self.const(np.round(rng.normal(0, 0.5, cout) * 16) / 16))
        name = f"conv{len(self.nodes)}"
        y = self.node("Conv", ins, name=name, kernel_shape=ks, strides=strides, pads=pads, group=group)
        out_sp = [(s + a + b - k) // t + 1 for s, a, b, k, t in zip(sp, pads[: len(sp)], pads[len(sp) :], ks, strides)]
        positions, keys = int(np.prod(out_sp)), int(np.prod(ks)) * cin_g
        # io_stream computes one window at a time: its schedule splits the kernel terms only.
        most = keys if self.io_type == "io_stream" else positions * keys
        self.reuse[name] = min(d(st.sampled_from([1, 1, 2, 3, max(positions // 2, 1), most, d(st.integers(1, most))])), most)
        self.blocks.append(f"conv{'_dw' if depthwise else ''}{len(sp)}d: k{ks} s{strides} p{pads} {C}->{cout} w{wbits} r{self.reuse[name]}")
        return self.activation(y), (cout, *out_sp)

    def max_pool(self, x, shape):
        d = self.draw
        C, *sp = shape
        ks = [d(st.integers(1, min(3, s))) for s in sp]
        strides = [d(st.integers(1, k)) for k in ks]
        pads = [d(st.integers(0, k - 1)) for k in ks] + [d(st.integers(0, k - 1)) for k in ks]
        out_sp = [(s + a + b - k) // t + 1 for s, a, b, k, t in zip(sp, pads[: len(sp)], pads[len(sp) :], ks, strides)]
        self.blocks.append(f"maxpool: k{ks} s{strides} p{pads}")
        return self.node("MaxPool", [x], kernel_shape=ks, strides=strides, pads=pads), (C, *out_sp)

    def avg_pool(self, x, shape):
        """Power-of-two windows only: a quantized model's average must be exact (padding counts)."""
        d = self.draw
        C, *sp = shape
        ks = [d(st.sampled_from([k for k in (1, 2, 4) if k <= s])) for s in sp]
        strides = [d(st.integers(1, k)) for k in ks]
        pads = [d(st.integers(0, k - 1)) for k in ks] + [d(st.integers(0, k - 1)) for k in ks]
        out_sp = [(s + a + b - k) // t + 1 for s, a, b, k, t in zip(sp, pads[: len(sp)], pads[len(sp) :], ks, strides)]
        self.blocks.append(f"avgpool: k{ks} s{strides} p{pads}")
        y = self.node("AveragePool", [x], kernel_shape=ks, strides=strides, pads=pads, count_include_pad=1)
        return (self.activation(y, relu=False) if d(st.booleans()) else y), (C, *out_sp)

    def global_pool(self, x, shape):
        d = self.draw
        C, *sp = shape
        n = int(np.prod(sp))
        op = d(st.sampled_from(["GlobalMaxPool", "GlobalAveragePool"] if n & (n - 1) == 0 else ["GlobalMaxPool"]))
        self.blocks.append(op)
        return self.node(op, [x]), (C, *[1] * len(sp))

    def merge(self, x, shape):
        """Two branches of the same spatial shape ('same' convolutions, or the input itself) merged."""
        d = self.draw
        kind = d(st.sampled_from(MERGES))
        C = shape[0]
        cout = C if kind != "Concat" else None
        a, sa = self.conv(x, shape, same=True, cout=cout)
        if d(st.booleans()):
            b, sb = self.conv(x, shape, same=True, cout=cout if kind != "Concat" else None)
        else:
            b, sb = x, shape
        self.blocks.append(f"merge {kind}:")
        if kind == "Concat":
            y, s = self.node("Concat", [a, b], axis=1), (sa[0] + sb[0], *shape[1:])
        else:
            y, s = self.node(kind, [a, b]), sa
        # A product doubles the widths: requantize so later sums stay exact in float32.
        if kind == "Mul" or d(st.booleans()):
            y = self.activation(y, relu=False)
        return y, s


@st.composite
def cnns(draw, io_type=None):
    """A random QONNX CNN, its input shape (no batch), input quantizer bits, configuration (in
    ``io_type``, or either interface)."""
    net = _Net(draw)
    net.io_type = io_type or draw(st.sampled_from(["io_parallel", "io_stream"]))
    one_d = draw(st.booleans())
    C = draw(st.sampled_from([2, 1, 3]))
    # Powers of two among the sizes: a global average needs a power-of-two number of positions.
    sizes = st.sampled_from([4, 2, 3, 5, 6, 8]) if not one_d else st.sampled_from([8, 4, 3, 5, 6, 7, 12, 16])
    shape = (C, draw(sizes)) if one_d else (C, draw(sizes), draw(sizes))
    in_shape = shape
    in_bits = draw(st.integers(2, 8))
    x = net.quant("x", bits=in_bits, scale_exp=-3, signed=True)
    for _ in range(draw(st.integers(1, 3))):
        kinds = ["conv", "conv", "max_pool", "avg_pool", "merge", "merge"]
        if all(s == 1 for s in shape[1:]):
            kinds = ["conv", "merge"]
        elif draw(st.sampled_from([False] * 5 + [True])):
            kinds = ["global_pool"]
        x, shape = getattr(net, draw(st.sampled_from(kinds)))(x, shape)
    flat = int(np.prod(shape))
    x = net.node("Reshape", [x, net.const([-1, flat], np.int64)])
    n_out = draw(st.integers(1, 4))
    wbits = draw(st.integers(2, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    wq = net.quant(net.const(rng.normal(0, 1.5 / np.sqrt(flat), (flat, n_out))), bits=wbits, scale_exp=-(wbits - 2), signed=True)
    y = net.node("MatMul", [x, wq], name="fc")
    y = net.node("Add", [y, net.const(np.round(rng.normal(0, 0.25, n_out) * 64) / 64)], name="fc_bias")
    r = draw(st.sampled_from(valid_reuse_factors(flat, n_out)))
    names = {k: {"ReuseFactor": v} for k, v in net.reuse.items()}
    names["fc"] = {"ReuseFactor": r, "Strategy": "Resource" if r > 1 else "Latency"}
    cfg = {"IOType": net.io_type, "LayerName": names}
    graph = helper.make_graph(
        net.nodes, "fuzz_cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, *in_shape])],
        [helper.make_tensor_value_info(y, TensorProto.FLOAT, [1, n_out])], initializer=net.inits,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(QONNX, 1)])
    model.ir_version = 8
    return model, in_shape, in_bits, cfg, net.blocks


def _inputs(shape, bits, n, rng):
    """Random inputs around the input quantizer's range (scale 2**-3), its extremes, beyond it,
    and half-way points between steps (where the rounding modes differ)."""
    top = 2.0 ** (bits - 1) * 2.0**-3
    x = rng.uniform(-2 * top, 2 * top, (n, *shape))
    edges = np.array([-top, top - 2.0**-3, 0.0, -4 * top, 4 * top])
    flat = x.reshape(n, -1)
    k = min(n, len(edges))
    flat[:k] = edges[:k, None]
    flat[k : 2 * k] = rng.choice(edges, (min(k, max(n - k, 0)), flat.shape[1]))  # extremes mixed per lane
    flat[2 * k :: 3] = np.round(flat[2 * k :: 3] * 8) / 8 + 2.0**-4
    return flat.reshape(x.shape).astype(np.float32)


def _qonnx_batch(model, x):
    """qonnx's reference executor on the whole batch at once (the batch dimension freed)."""
    import copy

    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.infer_shapes import InferShapes

    m = copy.deepcopy(model)
    m.graph.input[0].type.tensor_type.shape.dim[0].dim_value = len(x)
    m.graph.output[0].type.tensor_type.shape.dim[0].dim_value = len(x)
    mw = ModelWrapper(m).transform(InferShapes())
    return execute_onnx(mw, {mw.graph.input[0].name: x})[mw.graph.output[0].name].reshape(len(x), -1)


def _check(net, n_vectors, rtl_dir, rng, n_rtl=100):
    model, in_shape, in_bits, cfg, blocks = net
    design = rtlgen.convert(model, cfg)
    x = _inputs(in_shape, in_bits, n_vectors, rng)
    got = design.predict(x)
    ref = _qonnx_batch(model, x)
    assert np.array_equal(got, ref), (cfg["IOType"], blocks, np.argwhere(got != ref)[:5])
    kinds = collections.Counter(n.kind for n in design.graph.nodes)
    TOTALS["networks"] += 1
    TOTALS["vectors"] += len(x)
    TOTALS[cfg["IOType"]] += 1
    for k, c in kinds.items():
        TOTALS[f"op:{k}"] += c
    TOTALS["reuse>1"] += sum(getattr(n.op, "reuse_factor", 1) > 1 for n in design.graph.nodes)
    for b in blocks:
        TOTALS["block:" + b.split(":")[0]] += 1
    if rtl_dir is not None:
        res = check_rtl(design, x[:n_rtl], work_dir=rtl_dir, stall="random", seed=int(rng.integers(1 << 30)))
        TOTALS["rtl_networks"] += 1
        TOTALS["rtl_vectors"] += res["n_vectors"]
        TOTALS[f"rtl_{cfg['IOType']}"] += 1


@seed(31)
@settings(max_examples=10, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(net=cnns())
def test_cnn_golden_equals_qonnx(net):
    _check(net, 64, None, np.random.default_rng(3))


@pytest.mark.parametrize("io_type", ["io_parallel", "io_stream"])
def test_cnn_rtl_equals_golden_under_stalls(io_type, tmp_path_factory):
    @seed(32 if io_type == "io_parallel" else 33)
    @settings(max_examples=1, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(net=cnns(io_type))
    def run(net):
        _check(net, 64, tmp_path_factory.mktemp("fuzz"), np.random.default_rng(4), n_rtl=64)

    run()


@pytest.mark.slow
@pytest.mark.heavy
def test_long_cnn_fuzz_run(tmp_path_factory):
    """The long run: ``RTLGEN_FUZZ_NETWORKS`` networks (default 200), ``RTLGEN_FUZZ_VECTORS``
    vectors each (default 5,000) against qonnx, every ``RTLGEN_FUZZ_RTL_EVERY``-th (default 25; 0:
    none) also in RTL under random stalls; prints the totals by op kind."""
    n = int(os.environ.get("RTLGEN_FUZZ_NETWORKS", "200"))
    per = int(os.environ.get("RTLGEN_FUZZ_VECTORS", "5000"))
    every = int(os.environ.get("RTLGEN_FUZZ_RTL_EVERY", "25"))
    TOTALS.clear()
    t0 = time.perf_counter()

    # The run goes on past a failure, so the totals count every network; each failing network is
    # saved (model and configuration) to be reproduced alone.
    keep = Path(os.environ.get("RTLGEN_FUZZ_FAILURES") or tmp_path_factory.mktemp("failures"))
    failures = []

    @seed(2027)
    @settings(max_examples=n, deadline=None, database=None, suppress_health_check=list(HealthCheck), phases=[Phase.generate])
    @given(net=cnns())
    def run(net):
        k = TOTALS["examples"]
        TOTALS["examples"] += 1
        rtl = tmp_path_factory.mktemp("fuzz") if every and k % every == 0 else None
        if k % 20 == 0 or rtl is not None:
            print(f"[{time.perf_counter() - t0:.0f} s] {k} networks, {TOTALS['vectors']} vectors, "
                  f"{TOTALS['rtl_networks']} in RTL ({TOTALS['rtl_vectors']} vectors), {len(failures)} failing", flush=True)  # fmt: skip
        try:
            _check(net, per, rtl, np.random.default_rng(k))
        except Exception as e:  # noqa: BLE001 - every kind of failure is recorded
            keep.mkdir(parents=True, exist_ok=True)
            onnx.save(net[0], keep / f"net{k}.onnx")
            (keep / f"net{k}.txt").write_text(f"{net[3]}\n{net[4]}\n{type(e).__name__}: {e}\n")
            failures.append((k, net[3]["IOType"], net[4], f"{type(e).__name__}: {str(e)[:300]}"))

    run()
    print(f"cnn fuzz totals after {time.perf_counter() - t0:.0f} s: {dict(sorted(TOTALS.items()))}")
    for f in failures:
        print("FAILED", *f)
    assert not failures, f"{len(failures)} failing networks, saved in {keep}"
    assert TOTALS["networks"] >= n and TOTALS["vectors"] >= n * per


def _pointwise_conv1d(length=5, channels=2):
    """A 1x1 Conv1D (2 kernel terms per window, 5 positions) on quantized input and weights."""
    nodes = [
        helper.make_node("Quant", ["x", "s", "z", "b"], ["xq"], domain=QONNX, signed=1, narrow=0, rounding_mode="ROUND", name="qx"),
        helper.make_node("Quant", ["w", "s", "z", "b"], ["wq"], domain=QONNX, signed=1, narrow=1, rounding_mode="ROUND", name="qw"),
        helper.make_node("Conv", ["xq", "wq"], ["y"], name="conv", kernel_shape=[1]),
    ]
    inits = [numpy_helper.from_array(np.asarray(v, dtype=np.float32), n) for n, v in
             (("s", 0.25), ("z", 0.0), ("b", 4.0), ("w", np.array([[[0.5], [-0.75]], [[0.25], [1.0]]])))]  # fmt: skip
    g = helper.make_graph(nodes, "pw", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, length])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, channels, length])], initializer=inits)  # fmt: skip
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(QONNX, 1)])
    m.ir_version = 8
    return m


def test_stream_conv_reuse_factor_is_per_window():
    """Found by the long run (seed 2027, RTL every network, example 2): in io_stream a convolution
    computes one window at a time, so its reuse factor ranges over the window's kernel terms;
    a factor valid over all positions (3 of 5 positions x 2 terms) used to pass the configuration
    check and fail while building the hardware with a bare ValueError."""
    with pytest.raises(rtlgen.ConfigError, match=(
        r"^node 'conv': reuse factor 3 cannot be used with 2 kernel terms per window in io_stream; "
        r"it must be between 1 \(fully parallel\) and 2 \(one term per cycle\)$")):  # fmt: skip
        rtlgen.convert(_pointwise_conv1d(), {"IOType": "io_stream", "LayerName": {"conv": {"ReuseFactor": 3}}})
    design = rtlgen.convert(_pointwise_conv1d(), {"IOType": "io_stream", "LayerName": {"conv": {"ReuseFactor": 2}}})
    assert "module" in design.verilog
    # io_parallel still schedules over all positions.
    assert rtlgen.convert(_pointwise_conv1d(), {"LayerName": {"conv": {"ReuseFactor": 3}}}).graph.node("conv").op.reuse_factor == 3


@pytest.mark.slow
@pytest.mark.parametrize("name", ["net70", "net110", "net180"])
def test_stored_stream_pooling_failures(name, tmp_path):
    """Networks the long run saved (tests/data/fuzz_failures): io_stream max pooling with
    asymmetric padding, whose line buffer padded with 0 so an all-negative edge window took the
    padding. Each is rebuilt from its stored model and configuration; RTL == golden."""
    import ast

    path = Path(__file__).parent / "data" / "fuzz_failures" / name
    cfg = ast.literal_eval(path.with_suffix(".txt").read_text().splitlines()[0])
    design = rtlgen.convert(onnx.load(path.with_suffix(".onnx")), cfg)
    check_rtl(design, work_dir=tmp_path, n_random=200)
