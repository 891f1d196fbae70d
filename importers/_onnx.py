"""ONNX and QONNX models to the IR.

The model is first cleaned with qonnx's own passes (shape inference, constant folding, unique names),
then walked once in topological order. Each ONNX tensor is classified as one of:

* a constant (weights, possibly quantized: then its integer mantissas are kept exactly);
* host float: computed from the network input before its first quantizer (runs on the host);
* integer: an IR tensor produced by hardware;
* pending: float operations (bias, batch norm, scales, ReLU) applied to an integer tensor, waiting for
  the quantizer that ends them.

A pending chain ending in a quantizer becomes fixed-point operations when that is exact (power-of-two
scales, representable bias) and otherwise integer thresholds found by running the very same ONNX nodes
in the reference executor, so the hardware is bit-exact with the float-executed QONNX graph.
"""

from __future__ import annotations

import copy
import logging
import math
import os
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import onnx
from onnx import helper, numpy_helper

from rtlgen.config import Config
from rtlgen.errors import ModelFormatError, UnsupportedOpError
from rtlgen.fixed import FixedType, type_for_range
from rtlgen.ir import Dense, Graph, HostStage, Node, Relu, Requant, Threshold

from . import _precision as precision
from ._activations import build_activation, build_softmax
from ._builder import SpatialBuilder, cast_bounds, dense_bounds
from ._errors import rounding_error
from ._recurrent import ONNX_RECURRENT, onnx_recurrent, onnx_time_transpose

log = logging.getLogger(__name__)

QONNX_DOMAINS = ("qonnx.custom_op.general", "finn.custom_op.general", "onnx.brevitas", "finn")
ELEMENTWISE = ("Add", "Sub", "Mul", "Div", "Relu", "BatchNormalization")
LAYOUT = ("Reshape", "Flatten", "Identity", "Dropout", "Squeeze", "Unsqueeze")
QUANTIZERS = ("Quant", "BipolarQuant", "Trunc", "MultiThreshold")
ACTIVATION_OPS = ("Sigmoid", "Tanh", "Softplus", "Softsign", "Elu", "Selu", "HardSigmoid", "LeakyRelu", "ThresholdedRelu", "Clip", "PRelu")
SUPPORTED = ACTIVATION_OPS + ("Softmax", "Gemm", "MatMul", "Conv", "MaxPool", "AveragePool", "GlobalMaxPool", "GlobalAveragePool", "Max", "Min", "Concat") + ELEMENTWISE + LAYOUT + QUANTIZERS + ("Transpose (of weights)", "Softmax (final, skipped)")
# qonnx rounding modes with an ap_fixed equivalent (qonnx's HALF_UP/HALF_DOWN are symmetric about
# zero); CEIL and UP have none and go through thresholds.
ROUNDING = {
    "ROUND": "RND_CONV",
    "HALF_EVEN": "RND_CONV",
    "FLOOR": "TRN",
    "DOWN": "TRN_ZERO",
    "HALF_UP": "RND_INF",
    "HALF_DOWN": "RND_ZERO",
}
# float32 holds integers exactly up to this magnitude.
F32_EXACT = 1 << 24


# -- value kinds ----------------------------------------------------------------------------------


@dataclass
class _Const:
    value: np.ndarray
    mant: np.ndarray | None = None  # exact integer mantissas when produced by a quantizer
    scale: np.ndarray | None = None  # value == mant * scale


@dataclass
class _Host:
    nodes: list = field(default_factory=list)
    # The network input after a transpose to channels first: the hardware takes it as it is.
    nhwc: bool = False


@dataclass
class _Int:
    tensor: str
    onnx_name: str
    # The ONNX tensor is channels last ((N, H, W, C) or (N, L, C)), the hardware's own order; by
    # default an image tensor stands for ONNX's channels-first (N, C, H, W) of the same lanes.
    nhwc: bool = False


@dataclass
class _Pending:
    base: _Int
    nodes: list = field(default_factory=list)
    lowered: _Int | None = None  # set once lowered, for tensors read by several nodes


def from_onnx(model, *, config: Config | None = None, skip_softmax: bool = False) -> Graph:
    """Import an ONNX/QONNX model (a path or an ``onnx.ModelProto``) as an IR graph."""
    proto = _load(model)
    return _Importer(proto, precision.Precisions(config), skip_softmax).run()


def _load(model) -> onnx.ModelProto:
    if isinstance(model, onnx.ModelProto):
        proto = model
    else:
        path = os.fspath(model)
        if not os.path.exists(path):
            raise ModelFormatError(f"model file {path!r} does not exist")
        if os.path.isdir(path):
            raise ModelFormatError(f"model path {path!r} is a directory, not an ONNX file")
        try:
            proto = onnx.load(path)
        except onnx.checker.ValidationError as e:  # external data outside the folder, or missing
            raise ModelFormatError(
                f"model file {path!r}: its external data cannot be read ({str(e).splitlines()[0]}); "
                f"external data files must sit in the model's folder, named without '..' or absolute paths"
            ) from None
        except Exception as e:  # protobuf raises several unrelated types on garbage
            raise ModelFormatError(
                f"model file {path!r} is not a readable ONNX model ({type(e).__name__}); "
                f"export it with torch.onnx.export, brevitas' export_qonnx or keras' model.export"
            ) from None
        if not proto.graph.node:
            raise ModelFormatError(f"model file {path!r} is not an ONNX model: its graph has no nodes")
    _check_inputs(proto)
    return _cleanup(proto)


# Input tensors larger than this (values per sample) are refused before anything is allocated.
MAX_INPUT_SIZE = 1 << 24
# Graphs with more nodes than this are refused before import (the elaborator's recursion limit).
MAX_NODES = 1500


def _check_inputs(proto: onnx.ModelProto) -> None:
    """Every tensor is assigned once, and every network input has fixed, positive dimensions after
    the batch, of a sensible size."""
    if len(proto.graph.node) > MAX_NODES:
        raise ModelFormatError(
            f"the ONNX graph has {len(proto.graph.node):,} nodes; rtlgen builds networks of up to {MAX_NODES:,}: "
            f"check the model (an unrolled loop?) or split it into parts"
        )
    producer: dict[str, str] = {}
    for node in proto.graph.node:
        for out in node.output:
            if out and out in producer:
                raise ModelFormatError(
                    f"tensor {out!r} is the output of both node {producer[out]!r} and node {node.name!r}; "
                    f"an ONNX graph assigns each tensor once (check the exporter or rename one output)"
                )
            producer[out] = node.name
    inits = {t.name for t in proto.graph.initializer}
    for vi in proto.graph.input:
        if vi.name in inits:
            continue
        dims = list(vi.type.tensor_type.shape.dim)
        shown = "[" + ", ".join(d.dim_param or str(d.dim_value) if d.HasField("dim_value") or d.dim_param else "?" for d in dims) + "]"
        rest = dims[1:]
        if any(not d.HasField("dim_value") or d.dim_value < 1 for d in rest):
            raise ModelFormatError(
                f"input {vi.name!r} has shape {shown}: every dimension but the first (the batch) must be a "
                f"fixed size of at least 1; export the model with a fixed input shape "
                f"(or fix it with onnx.tools.update_model_dims)"
            )
        size = int(np.prod([d.dim_value for d in rest], dtype=object))
        if size > MAX_INPUT_SIZE:
            raise ModelFormatError(
                f"input {vi.name!r} has shape {shown}: {size:,} values per sample, more than the "
                f"{MAX_INPUT_SIZE:,} rtlgen builds hardware for; check the model's declared input shape"
            )


_FOLD = object()  # the place of qonnx's FoldConstants in the cleanup
_NOT_FOLDED = ["Quant", "BipolarQuant", "QuantizeLinear", "DequantizeLinear"]


def _foldable(model) -> bool:
    """Whether qonnx's FoldConstants could change the model: a node other than a quantizer whose
    inputs are all initializers, or a Shape node."""
    return any(
        n.op_type == "Shape" or (n.op_type not in _NOT_FOLDED and all(model.get_initializer(i) is not None for i in n.input))
        for n in model.graph.node
    )


def _cleanup(proto: onnx.ModelProto) -> onnx.ModelProto:
    """qonnx's cleanup (shape inference, constant folding) keeping the model's own node and tensor
    names, so configuration keys and reports use the names the user sees in the model."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.general import (
        GiveUniqueParameterTensors,
        RemoveStaticGraphInputs,
        RemoveUnusedTensors,
    )
    from qonnx.transformation.infer_shapes import InferShapes
    from qonnx.transformation.quant_constant_folding import FoldTransposeIntoQuantInit

    proto = copy.deepcopy(proto)
    seen = set()
    for i, node in enumerate(proto.graph.node):
        if node.op_type in QUANTIZERS:
            node.domain = "qonnx.custom_op.general"
        if not node.name or node.name in seen:
            node.name = f"{node.op_type}_{i}"
        seen.add(node.name)
    steps = [
        InferShapes(),
        GiveUniqueParameterTensors(),
        _FOLD,
        FoldTransposeIntoQuantInit(),
        RemoveUnusedTensors(),
        RemoveStaticGraphInputs(),
        InferShapes(),
    ]
    model = ModelWrapper(proto)
    try:
        for step in steps:
            if step is _FOLD:
                if not _foldable(model):
                    continue
                # qonnx's constant folding runs nodes in onnxruntime, which takes a while to import.
                from qonnx.transformation.fold_constants import FoldConstants

                step = FoldConstants(exclude_op_types=_NOT_FOLDED)
            model = model.transform(step)
    except Exception as e:
        if "Circular dependencies" in str(e):
            raise ModelFormatError(
                f"ONNX model has a cycle among its nodes ({str(e).splitlines()[0]}); a network must be a "
                f"directed acyclic graph (recurrent layers are exported unrolled or as LSTM/GRU nodes)"
            ) from None
        raise ModelFormatError(f"ONNX model could not be prepared for import: {e}".splitlines()[0]) from None
    return model.model


def _attrs(node) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _pow2_exponent(x: float) -> int | None:
    """k such that x == 2**k exactly, else None."""
    if not x > 0 or not math.isfinite(x):
        return None
    m, e = math.frexp(x)
    return e - 1 if m == 0.5 else None


class _Importer:
    def __init__(self, proto: onnx.ModelProto, precisions: precision.Precisions, skip_softmax: bool):
        self.proto = proto
        self.types = precisions
        self.skip_softmax = skip_softmax
        g = proto.graph
        self.inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
        self.graph = Graph(name=g.name or "network")
        self.values: dict[str, object] = {}
        self.builder = SpatialBuilder(self.graph)
        self.bounds = self.builder.bounds
        self.shapes = {}
        for vi in list(g.input) + list(g.value_info) + list(g.output):
            dims = vi.type.tensor_type.shape.dim
            self.shapes[vi.name] = tuple(d.dim_value if d.HasField("dim_value") else None for d in dims)
        self.float_model = not any(n.op_type in QUANTIZERS for n in g.node)
        self.readers: dict[str, list] = {}
        for n in g.node:
            for i in n.input:
                self.readers.setdefault(i, []).append(n)
        self.consumed: set[str] = set()  # outputs of nodes already folded into a float layer
        self.threshold_steps: dict[str, int] = {}  # MultiThreshold output -> mantissa step per level

    # -- helpers ----------------------------------------------------------------------------------

    def fail(self, node, detail):
        raise UnsupportedOpError(node.name, node.op_type, detail)

    def value(self, name):
        if name in self.values:
            return self.values[name]
        if name in self.inits:
            return _Const(self.inits[name])
        raise ModelFormatError(f"ONNX tensor {name!r} is used but never defined")

    def const(self, node, name, what) -> _Const:
        v = self.value(name)
        if not isinstance(v, _Const):
            self.fail(node, f"{what} must be a constant (an initializer), but it is computed at run time")
        return v

    def new_tensor(self, name, shape, ftype, scale=1.0, bounds=None) -> str:
        return self.builder.tensor(name, shape, ftype, scale, bounds)

    # -- main walk --------------------------------------------------------------------------------

    def run(self) -> Graph:
        g = self.proto.graph
        real_inputs = [i for i in g.input if i.name not in self.inits]
        if len(real_inputs) != 1:
            raise UnsupportedOpError(
                g.name or "graph", "Graph", f"rtlgen builds networks with one input, this one has {len(real_inputs)}"
            )
        if len(g.output) != 1:
            raise UnsupportedOpError(
                g.name or "graph", "Graph", f"rtlgen builds networks with one output, this one has {len(g.output)}"
            )
        self.input_name = real_inputs[0].name
        self.graph.source_names = [n.name for n in g.node]
        self.values[self.input_name] = _Host()
        for node in g.node:
            self.visit(node)
        self.finish(g.output[0].name)
        self.graph.verify()
        self.builder.note_error_bounds()
        return self.graph

    def visit(self, node):
        if node.output and node.output[0] in self.consumed:
            return
        op = node.op_type
        ins = [self.value(i) if i else None for i in node.input]
        present = [v for v in ins if v is not None]
        if present and all(isinstance(v, _Const) for v in present):
            self.values[node.output[0]] = self.fold_const(node, ins)
            return
        x = ins[0]
        if op == "Shape" and isinstance(x, (_Int, _Pending, _Host)):
            # Shapes are static but for the batch: shape arithmetic (flatten targets) folds with batch 1.
            dims = self.shapes.get(node.input[0])
            if dims is None or None in dims[1:]:
                self.fail(node, "the shape of its input is not known; export with static shapes")
            self.values[node.output[0]] = _Const(np.array([1, *dims[1:]], dtype=np.int64))
            return
        if op == "Transpose":
            self.transpose(node, x)
            return
        self.dispatch(node, op, ins, x)
        # Shape-preserving ops keep a channels-last tensor channels last.
        out = self.values.get(node.output[0])
        if isinstance(out, _Int) and isinstance(x, _Int) and x.nhwc and (op in ELEMENTWISE + ACTIVATION_OPS + QUANTIZERS):
            out.nhwc = True

    def dispatch(self, node, op, ins, x):
        if op == "BatchNormalization" and self.float_model and isinstance(x, (_Int, _Host, _Pending)):
            self.batchnorm(node, ins, x)
        elif op == "Relu" and self.float_model and isinstance(x, _Int):
            # hls4ml's ReLU layer: its own result type after a float layer.
            out = self.builder.relu(node.name, x.tensor, attrs={"source": "Relu"})
            rtype = self.types.relu_type(node.name)
            if rtype is not None:
                out = self.builder.requant(node.name + "_result", out, rtype, attrs={"source": "config"})
            self.values[node.output[0]] = _Int(out, node.output[0])
        elif op in QUANTIZERS:
            self.quantizer(node, ins)
        elif op in ("MatMul", "Gemm"):
            self.matmul(node, ins)
        elif op == "Conv":
            self.conv(node, ins)
        elif op in ("MaxPool", "AveragePool", "GlobalMaxPool", "GlobalAveragePool"):
            self.pool(node, ins)
        elif op in ("Add", "Sub", "Mul", "Max", "Min", "Concat") and sum(not isinstance(v, _Const) for v in ins if v is not None) == 2:
            self.merge(node, ins)
        elif op in ELEMENTWISE:
            for v in ins[1:]:
                if v is not None and not isinstance(v, _Const):
                    self.fail(node, "element-wise operations between two computed tensors are not supported yet")
            if isinstance(x, _Host):
                self.values[node.output[0]] = _Host(x.nodes + [node])
            elif isinstance(x, _Int):
                self.values[node.output[0]] = _Pending(x, [node])
            else:
                self.values[node.output[0]] = _Pending(x.base, x.nodes + [node])
        elif op in LAYOUT:
            self.layout(node, x)
        elif op == "Softmax":
            if self.skip_softmax:
                if node.output[0] != self.proto.graph.output[0].name:
                    self.fail(node, "only a final Softmax can be skipped")
                self.graph.notes.append(f"Softmax node {node.name!r} skipped: outputs are the logits before it")
                self.values[node.output[0]] = x
                return
            x = self.fixed_input(node, x)
            try:
                out = build_softmax(self.builder, self.types, node.name, x.tensor, source="Softmax")
            except ValueError as e:
                self.fail(node, str(e))
            self.values[node.output[0]] = _Int(out, node.output[0])
        elif op in ONNX_RECURRENT:
            onnx_recurrent(self, node, ins)
        elif op in ACTIVATION_OPS:
            if not self.float_model and isinstance(x, (_Int, _Pending)):
                # Between an accumulator and a quantizer, any monotonic function becomes exact thresholds.
                base, nodes = (x, []) if isinstance(x, _Int) else (x.base, x.nodes)
                self.values[node.output[0]] = _Pending(base, nodes + [node])
                return
            x = self.fixed_input(node, x)
            function, params = self.activation_params(node, ins)
            out = build_activation(self.builder, self.types, node.name, x.tensor, function, params, source=op)
            self.values[node.output[0]] = _Int(out, node.output[0])
        else:
            self.fail(
                node,
                f"operation {op!r} is not supported; supported are {', '.join(SUPPORTED)}",
            )

    def transpose(self, node, x):
        """Transposes between channels first and channels last move no data: the hardware keeps
        images channels last and only the meaning of the ONNX tensor changes."""
        perm = [int(v) for v in _attrs(node).get("perm", [])]
        if perm == [1, 0, 2] and onnx_time_transpose(self, node, x):
            return
        to_first = perm in ([0, 3, 1, 2], [0, 2, 1])
        to_last = perm in ([0, 2, 3, 1], [0, 2, 1])
        if isinstance(x, _Host) and not x.nodes and to_first and not x.nhwc:
            self.values[node.output[0]] = _Host([], nhwc=True)
            return
        if isinstance(x, _Pending):
            x = self.float_result(x) if self.float_model else self.lower_fixed(x, None, None, None)
        if isinstance(x, _Int):
            t = self.graph.tensors[x.tensor]
            if len(t.shape) == 3 and ((x.nhwc and to_first) or (not x.nhwc and to_last)):
                self.values[node.output[0]] = _Int(x.tensor, node.output[0], nhwc=not x.nhwc)
                return
        self.fail(
            node,
            f"Transpose with perm {perm} is supported only between channels first and channels last "
            "((0, 2, 3, 1), (0, 3, 1, 2) or (0, 2, 1)) around convolutions and pooling",
        )

    # -- constants --------------------------------------------------------------------------------

    def fold_const(self, node, ins) -> _Const:
        op = node.op_type
        a = _attrs(node)
        x = ins[0]
        if op == "Quant":
            scale, zp, bits = (np.asarray(v.value, dtype=np.float64) for v in ins[1:4])
            if np.any(zp != 0):
                self.fail(node, "weight quantizers with a non-zero zero-point are not supported")
            from qonnx.custom_op.general.quant import quant

            val = quant(
                x.value, ins[1].value, ins[2].value, ins[3].value,
                a.get("signed", 1), a.get("narrow", 0), a.get("rounding_mode", b"ROUND").decode()
                if isinstance(a.get("rounding_mode", "ROUND"), bytes) else a.get("rounding_mode", "ROUND"),
            )  # fmt: skip
            mant = np.rint(val / scale).astype(np.int64)
            return _Const(np.asarray(val, dtype=np.float32), mant, np.broadcast_to(scale, val.shape))
        if op == "BipolarQuant":
            scale = np.asarray(ins[1].value, dtype=np.float64)
            mant = np.where(x.value >= 0, 1, -1).astype(np.int64)
            val = (mant * scale).astype(np.float32)
            return _Const(val, mant, np.broadcast_to(scale, val.shape))
        if op == "Transpose":
            perm = a.get("perm")
            val = np.transpose(x.value, perm)
            if x.mant is not None:
                return _Const(val, np.transpose(x.mant, perm), np.transpose(x.scale, perm))
            return _Const(val)
        if op in ("Identity", "Dropout"):
            return x
        if op in ("Reshape", "Flatten", "Squeeze", "Unsqueeze"):
            out = self.shapes.get(node.output[0])
            if out is None or None in out:
                self.fail(node, "cannot reshape a constant whose output shape is unknown")
            val = x.value.reshape(out)
            if x.mant is not None:
                return _Const(val, x.mant.reshape(out), np.broadcast_to(x.scale, x.value.shape).reshape(out))
            return _Const(val)
        # Anything else on constants: let the ONNX reference evaluate it (no quantized mantissas).
        try:
            from onnx.reference import ReferenceEvaluator

            inputs = [helper.make_tensor_value_info(f"in{i}", onnx.TensorProto.FLOAT, None) for i in range(len(ins))]
            n = helper.make_node(op, [f"in{i}" for i in range(len(ins))], ["out"], **a)
            model = helper.make_model(
                helper.make_graph([n], "fold", inputs, [helper.make_tensor_value_info("out", onnx.TensorProto.FLOAT, None)]),
                opset_imports=self.proto.opset_import,
            )
            ref = ReferenceEvaluator(model)
            (val,) = ref.run(None, {f"in{i}": v.value for i, v in enumerate(ins)})
        except Exception:
            self.fail(node, f"cannot fold constant operation {op!r}")
        return _Const(np.asarray(val))

    # -- layout -----------------------------------------------------------------------------------

    def layout(self, node, x):
        out_shape = self.shapes.get(node.output[0])
        if isinstance(x, _Host):
            # Host-side reshapes only flatten; the host stage applies them to a free batch size.
            self.values[node.output[0]] = _Host(x.nodes + [node])
            return
        if isinstance(x, (_Int, _Pending)):
            base = x if isinstance(x, _Int) else x.base
            t = self.graph.tensors[base.tensor]
            size = t.size
            if out_shape is not None and None not in out_shape and int(np.prod(out_shape[1:])) != size:
                self.fail(node, f"reshape of a {size}-element vector to {out_shape} is not supported")
            if len(t.shape) == 3 and node.op_type not in ("Identity", "Dropout") and not (isinstance(x, _Int) and x.nhwc):
                if isinstance(x, _Pending):
                    x = self.float_result(x) if self.float_model else self.fail(node, "flatten a quantized tensor, not a float one")
                if out_shape is not None and len(out_shape) == 4:
                    self.fail(node, f"reshape of an image to {out_shape} is not supported")
                # ONNX flattens channels first: lane c*H*W + h*W + w comes from channels-last (h, w, c).
                t = self.graph.tensors[x.tensor]
                H, W, C = t.shape
                order = np.arange(H * W * C).reshape(H, W, C).transpose(2, 0, 1).ravel()
                out = self.builder.gather(node.output[0], x.tensor, order, (size,), attrs={"source": node.op_type + " (channels-first order)"})
                self.values[node.output[0]] = _Int(out, node.output[0])
                return
            if isinstance(x, _Int) and x.nhwc and len(t.shape) == 3 and node.op_type not in ("Identity", "Dropout"):
                # A channels-last image flattens in the hardware's own lane order.
                out = self.builder.reshape(node.output[0], x.tensor, (size,), attrs={"source": node.op_type})
                self.values[node.output[0]] = _Int(out, node.output[0])
                return
            self.values[node.output[0]] = x
            return
        self.fail(node, "unexpected input")

    # -- quantizers -------------------------------------------------------------------------------

    def quantizer(self, node, ins):
        x = ins[0]
        for i, v in enumerate(ins[1:], 1):
            if v is not None and not isinstance(v, _Const):
                self.fail(node, f"input {i} (quantizer parameter) must be a constant")
        out_scale = self.out_scale(node, ins)
        if isinstance(x, _Host):
            if node.op_type == "MultiThreshold":
                self.fail(node, "thresholds on the network input are not supported; quantize the input with Quant")
            self.input_quantizer(node, ins, x, out_scale)
            return
        pending = x if isinstance(x, _Pending) else _Pending(x, [])
        result = None
        if node.op_type == "Quant":
            result = self.lower_fixed(pending, node, ins, out_scale)
        if result is None:
            result = self.lower_thresholds(pending, node, out_scale)
        self.values[node.output[0]] = result

    def qonnx_opset(self) -> int:
        for op in self.proto.opset_import:
            if op.domain in QONNX_DOMAINS:
                return op.version
        return 1

    def out_scale(self, node, ins) -> float:
        if node.op_type == "MultiThreshold":
            # FINN's thresholds: y = out_scale * (number of thresholds passed) + out_bias.
            a = _attrs(node)
            scale, bias = float(a.get("out_scale", 1.0)), float(a.get("out_bias", 0.0))
            if not scale > 0:
                self.fail(node, f"out_scale must be positive, not {scale}")
            # Any affine output is exact on a grid fine enough for both: unit = out_scale / d where
            # out_bias is a whole number of units (bipolar +-1: out_scale 2, out_bias -1, unit 1).
            ratio = Fraction(bias) / Fraction(scale)
            if ratio.denominator > 1 << 16:
                self.fail(node, f"out_bias {bias} is not a simple fraction of out_scale {scale}")
            self.threshold_steps[node.output[0]] = ratio.denominator
            return scale / ratio.denominator
        return self._quant_scale(node, ins)

    def _quant_scale(self, node, ins) -> float:
        # Trunc's output grid is its output_scale input from qonnx opset 2 on, its scale before.
        idx = 4 if (node.op_type == "Trunc" and len(ins) >= 6 and self.qonnx_opset() >= 2) else 1
        s = np.asarray(ins[idx].value, dtype=np.float64)
        if s.size != 1 and not np.all(s == s.ravel()[0]):
            self.fail(node, "per-channel scales on activations are not supported; use a per-tensor scale")
        s = float(s.ravel()[0])
        if not s > 0:
            self.fail(node, f"quantizer scale must be positive, not {s}")
        return s

    def quant_type(self, node, ins, out_scale) -> FixedType:
        """The fixed type of a Quant's output (frac from a power-of-two scale, else frac 0 + scale)."""
        a = _attrs(node)
        if node.op_type == "BipolarQuant":
            return FixedType(2, 2, True, "TRN", "SAT_SYM")
        bits = float(np.asarray(ins[3].value).ravel()[0])
        if bits != int(bits) or bits < 1:
            self.fail(node, f"bit width must be a positive integer, not {bits}")
        bits = int(bits)
        signed, narrow = bool(a.get("signed", 1)), bool(a.get("narrow", 0))
        k = _pow2_exponent(out_scale)
        frac = -k if k is not None else 0
        if bits == 1 and signed:
            return FixedType(2, 2 - frac, True, "TRN", "SAT_SYM")  # qonnx makes this bipolar
        return FixedType(bits, bits - frac, signed, "RND_CONV", "SAT_SYM" if (narrow and signed) else "SAT")

    def input_quantizer(self, node, ins, host: _Host, out_scale):
        if self.graph.inputs:
            self.fail(node, "a second quantizer on the network input is not supported")
        if node.op_type == "Trunc":
            self.fail(node, "Trunc cannot quantize the network input; use Quant")
        ftype = self.quant_type(node, ins, out_scale)
        scale = 1.0 if _pow2_exponent(out_scale) is not None else out_scale
        shape = self.shapes.get(node.output[0])
        if shape is None or None in shape[1:]:
            self.fail(node, "the input quantizer's output shape is unknown")
        size = int(np.prod(shape[1:]))
        hw_shape = (size,)
        if len(shape) in (3, 4):
            C, rest = shape[1], shape[2:]
            H, W = (1, rest[0]) if len(rest) == 1 else rest
            hw_shape = (H, W, C)
            # The hardware takes images channels last; the host reorders the quantized NCHW input.
            self.graph.input_order = np.arange(size).reshape(C, H, W).transpose(1, 2, 0).ravel().tolist()
            self.graph.notes.append(f"channels-first input {tuple(shape[1:])} converted to channels-last {hw_shape}")
        name = self.new_tensor(node.output[0], hw_shape, ftype, scale)
        self.graph.inputs = [name]
        self.graph.pre = self.host_stage(self.input_name, host.nodes + [node], node.output[0], "input quantizer")
        self.values[node.output[0]] = _Int(name, node.output[0])

    def host_stage(self, input_name, nodes, output_name, description) -> HostStage:
        """An ONNX model of ``nodes`` with a free batch dimension, run by the reference executor."""
        used = {i for n in nodes for i in n.input if i}
        inits = [numpy_helper.from_array(self.inits[i], i) for i in sorted(used) if i in self.inits]
        new_nodes = []
        for n in nodes:
            if n.op_type in ("Reshape", "Flatten", "Squeeze", "Unsqueeze"):
                # Flatten keeps the batch free, where a folded Reshape shape would pin it to 1.
                new_nodes.append(helper.make_node("Flatten", [n.input[0]], [n.output[0]], name=n.name, axis=1))
            elif n.op_type in ("Identity", "Dropout"):
                new_nodes.append(helper.make_node("Identity", [n.input[0]], [n.output[0]], name=n.name))
            else:
                new_nodes.append(n)
        for n in new_nodes:
            for i in n.input:
                if i and i not in self.inits and i != input_name and not any(i in m.output for m in new_nodes):
                    const = self.values.get(i)
                    if isinstance(const, _Const):
                        inits.append(numpy_helper.from_array(np.asarray(const.value, dtype=np.float32), i))
        in_shape = self.shapes.get(input_name) or (None,)
        in_dims = ["N"] + [d for d in in_shape[1:]]
        graph = helper.make_graph(
            new_nodes,
            "host_stage",
            [helper.make_tensor_value_info(input_name, onnx.TensorProto.FLOAT, in_dims)],
            [helper.make_tensor_value_info(output_name, onnx.TensorProto.FLOAT, None)],
            initializer=inits,
        )
        model = helper.make_model(graph, opset_imports=self.proto.opset_import)
        model.ir_version = self.proto.ir_version
        return HostStage(model.SerializeToString(), input_name, output_name, description)

    # -- dense ------------------------------------------------------------------------------------

    def layer_input(self, node, x) -> _Int:
        """A weight layer's input as an integer tensor: the quantized network input, or a float
        model's input or previous layer cast to their configured types."""
        if isinstance(x, _Host):
            # A float input straight into a quantized layer takes the configured input type, as
            # hls4ml does (the build says which).
            return self.float_input(node, x)
        if isinstance(x, _Int) and x.nhwc and node.op_type in ("Conv", "MaxPool", "AveragePool", "GlobalMaxPool", "GlobalAveragePool"):
            self.fail(node, "its input is channels last; ONNX convolutions and pooling read channels first (N, C, H, W)")
        if isinstance(x, _Pending):
            if not self.float_model:
                self.fail(
                    node,
                    "its input is a float computation with no quantizer before it; add a Quant node "
                    "(or build the float model with a Precision config)",
                )
            return self.float_result(x)
        return x

    def matmul(self, node, ins):
        x = self.layer_input(node, ins[0])
        a = _attrs(node)
        w = self.const(node, node.input[1], "the weight matrix")
        wv, wm, ws = w.value, w.mant, w.scale
        if node.op_type == "Gemm":
            if a.get("transA", 0):
                self.fail(node, "transA=1 is not supported")
            if a.get("alpha", 1.0) != 1.0 or (len(node.input) > 2 and a.get("beta", 1.0) != 1.0):
                self.fail(node, "alpha and beta other than 1 are not supported")
            if a.get("transB", 0):
                wv = wv.T
                wm = wm.T if wm is not None else None
                ws = ws.T if ws is not None else None
        if wv.ndim != 2:
            self.fail(node, f"weights must be a 2-D matrix, not shape {wv.shape}")
        xt = self.graph.tensors[x.tensor]
        if wv.shape[0] != xt.size:
            self.fail(node, f"weights of shape {wv.shape} do not match an input of {xt.size} values")
        name = node.name
        scales = None
        if wm is None and self.float_model:
            bias = np.zeros(wv.shape[1])
            if node.op_type == "Gemm" and len(node.input) > 2 and node.input[2]:
                bias = bias + np.broadcast_to(np.asarray(self.const(node, node.input[2], "the bias").value, dtype=np.float64).ravel(), bias.shape)
            self.float_layer(node, x, "Dense", wv, bias, None)
            return
        if wm is None:
            # Float weights inside a quantized network: the configured weight type, exact sums (the
            # network's own quantizers follow).
            wtype = self.types.typed(name, "weight", "Dense")
            wm = wtype.quantize(wv)
            wfrac = wtype.frac
            self.graph.notes.append(f"{name}: float weights quantized to {wtype}")
            self.builder.errors.weights[name] = (np.abs(wv - wtype.to_float(wm)), np.zeros(wv.shape[1]))
        else:
            exps = {_pow2_exponent(float(s)) for s in np.unique(ws)}
            if None in exps or xt.scale != 1.0:
                # Scales that are not powers of two (Brevitas's default float scaling): the sums of
                # integer weights times integer inputs are exact; the scales, one per output
                # channel, stay in the float chain up to the next quantizer, which becomes exact
                # integer thresholds found by running that chain as the model does.
                ws = np.broadcast_to(np.asarray(ws, dtype=np.float64), wm.shape)
                if not np.all(ws == ws[:1]):
                    self.fail(node, "weight scales must be per tensor or per output channel")
                scales = ws[0] * xt.scale
                wfrac = 0
            else:
                # Per-channel power-of-two scales: bring every weight to the finest common grid.
                wfrac = -min(exps)
                wm = wm * np.round(ws * 2.0**wfrac).astype(np.int64)
        if xt.scale != 1.0 and scales is None:
            self.fail(node, "float weights after an input with a scale that is not a power of two are not supported; quantize the weights")
        weight = np.asarray(wm, dtype=np.int64)
        frac = xt.type.frac + wfrac
        lo_in, hi_in = self.bounds[x.tensor]
        lo, hi = dense_bounds(weight, lo_in, hi_in)
        out = self.new_tensor(node.output[0], (weight.shape[1],), type_for_range(min(lo), max(hi), frac), 1.0, (lo, hi))
        dense = Dense(weight, None)
        self.graph.add_node(Node(name, dense, [x.tensor], [out], {"source": node.op_type, "float_weights": w.mant is None}))
        result = _Int(out, node.output[0])
        chain = []
        if scales is not None:
            self.values[name + "__scales"] = _Const(np.asarray(scales, dtype=np.float32))
            chain.append(helper.make_node("Mul", [node.output[0] + "__acc", name + "__scales"], [node.output[0] + "__scaled"], name=name + "_scale"))
        if node.op_type == "Gemm" and len(node.input) > 2 and node.input[2]:
            src = chain[-1].output[0] if chain else node.output[0] + "__acc"
            chain.append(helper.make_node("Add", [src, node.input[2]], [node.output[0]], name=name + "_bias"))
        if chain:
            chain[-1].output[0] = node.output[0]
            self.values[node.output[0]] = _Pending(result, chain)
            # The accumulator's ONNX name differs from the layer's output so thresholds can be probed.
            result.onnx_name = node.output[0] + "__acc"
        else:
            self.values[node.output[0]] = result

    def float_input(self, node, host=None) -> _Int:
        """The input of a float network, quantized with the configured input precision."""
        host = host if host is not None else self.values[self.input_name]
        if any(n.op_type not in LAYOUT for n in host.nodes):
            self.fail(node, "float preprocessing before the first layer is not supported in a float model")
        shape = self.shapes.get(self.input_name)
        size = int(np.prod(shape[1:]))
        itype = self.types.input_type(self.input_name)
        hw_shape = (size,)
        if host.nhwc:
            # Channels last already (a transpose to channels first feeds the first layer).
            rest = shape[1:]
            hw_shape = (1, *rest) if len(rest) == 2 else tuple(rest)
        elif len(shape) in (3, 4) and node.op_type in ("Conv", "MaxPool", "AveragePool", "GlobalMaxPool", "GlobalAveragePool"):
            C, rest = shape[1], shape[2:]
            H, W = (1, rest[0]) if len(rest) == 1 else rest
            hw_shape = (H, W, C)
            # The hardware takes images channels last; the host reorders the NCHW input.
            self.graph.input_order = np.arange(size).reshape(C, H, W).transpose(1, 2, 0).ravel().tolist()
            self.graph.notes.append(f"channels-first input {tuple(shape[1:])} converted to channels-last {hw_shape}")
        name = self.new_tensor(self.input_name, hw_shape, itype)
        self.graph.inputs = [name]
        if self.float_model:
            self.graph.notes.append(f"float model: input quantized to {itype}")
        else:
            self.graph.notes.append(
                f"input {self.input_name!r} has no quantizer before {node.name!r}: it takes the configured input type "
                f"{itype} (set LayerName.{self.input_name}.Precision to change it)"
            )
        self.builder.errors.inputs[name] = rounding_error(None, itype)
        return _Int(name, self.input_name)

    def fixed_input(self, node, x) -> _Int:
        if isinstance(x, _Pending):
            if self.float_model:
                return self.float_result(x)
            if x.lowered is None:
                x.lowered = self.lower_fixed(x, None, None, None)
            if x.lowered is None:
                self.fail(node, "its input is a float computation that is not exact in fixed point: put a Quant node before it")
            return x.lowered
        if not isinstance(x, _Int):
            self.fail(node, "it must follow a layer rtlgen builds, not the raw network input")
        return x

    def activation_params(self, node, ins):
        a = _attrs(node)
        op = node.op_type
        if op == "LeakyRelu":
            return "leaky_relu", {"alpha": float(a.get("alpha", 0.01))}
        if op == "Elu":
            return "elu", {"alpha": float(a.get("alpha", 1.0))}
        if op == "ThresholdedRelu":
            return "thresholded_relu", {"theta": float(a.get("alpha", 1.0))}
        if op == "HardSigmoid":
            alpha, beta = float(a.get("alpha", 0.2)), float(a.get("beta", 0.5))
            if (alpha, beta) == (np.float32(0.2), 0.5) or (alpha, beta) == (0.2, 0.5):
                return "hard_sigmoid", {"variant": "keras2"}
            if abs(alpha - 1 / 6) < 1e-7 and beta == 0.5:
                return "hard_sigmoid", {"variant": "keras3"}
            self.fail(node, f"HardSigmoid with alpha={alpha}, beta={beta} is not supported (0.2/0.5 or 1/6/0.5)")
        if op == "Clip":
            lo = float(np.asarray(ins[1].value)) if len(ins) > 1 and ins[1] is not None else a.get("min")
            hi = float(np.asarray(ins[2].value)) if len(ins) > 2 and ins[2] is not None else a.get("max")
            if lo not in (0, 0.0):
                self.fail(node, f"Clip from {lo} is not supported; only Clip(0, max) (a clipped ReLU)")
            return "relu", {"max_value": hi}
        if op == "PRelu":
            slope = self.const(node, node.input[1], "the PRelu slope")
            t = self.graph.tensors[self.values[node.input[0]].tensor] if isinstance(self.values.get(node.input[0]), _Int) else None
            alpha = np.asarray(slope.value, dtype=np.float64)
            if t is not None and len(t.shape) == 3:
                alpha = alpha.reshape(-1)  # NCHW (C, 1, 1): per channel, which is the last axis here
            return "prelu", {"alpha": alpha}
        return {"Sigmoid": "sigmoid", "Tanh": "tanh", "Softplus": "softplus", "Softsign": "softsign", "Selu": "selu"}[op], {}

    def merge(self, node, ins):
        """Two computed tensors joined element-wise (residual additions) or concatenated."""
        a = _attrs(node)
        parts = []
        for v in ins:
            if isinstance(v, _Pending):
                if not self.float_model:
                    self.fail(node, "its inputs must be quantized first: put a Quant node on each input")
                v = self.float_result(v)
            if not isinstance(v, _Int):
                self.fail(node, "merging the network input directly is not supported")
            parts.append(v)
        kind = {"Add": "add", "Sub": "sub", "Mul": "mul", "Max": "max", "Min": "min", "Concat": "concat"}[node.op_type]
        if kind == "concat":
            t = self.graph.tensors[parts[0].tensor]
            axis = int(a.get("axis", 1))
            channel_axis = 1 if len(t.shape) == 3 else -1
            if axis not in (channel_axis, -1 if len(t.shape) == 1 else channel_axis):
                self.fail(node, f"concatenation along axis {axis} is not supported; only along channels")
        try:
            out = self.builder.merge(node.name, parts[0].tensor, parts[1].tensor, kind, attrs={"source": node.op_type})
        except ValueError as e:
            self.fail(node, str(e))
        self.values[node.output[0]] = _Int(out, node.output[0])

    # -- convolution and pooling -------------------------------------------------------------

    def conv(self, node, ins):
        from rtlgen.ir.ops.spatial import Conv

        a = _attrs(node)
        x = self.layer_input(node, ins[0])
        xt = self.graph.tensors[x.tensor]
        if len(xt.shape) != 3:
            self.fail(node, f"expects an image (N, C, H, W) or sequence (N, C, L), not {xt.shape}")
        w = self.const(node, node.input[1], "the convolution kernel")
        if xt.scale != 1.0 and w.mant is None:
            self.fail(node, "float weights after an input with a scale that is not a power of two are not supported; quantize the weights")
        wv, wm = w.value, w.mant
        one_d = wv.ndim == 3
        if one_d:
            wv = wv[:, :, None, :]
            wm = wm[:, :, None, :] if wm is not None else None
        cout, cin_g, kh, kw = wv.shape
        group = int(a.get("group", 1))
        H, W, C = xt.shape
        depthwise = group > 1 and group == C and cin_g == 1
        if group > 1 and (C % group or cout % group or cin_g * group != C):
            self.fail(node, f"group={group} does not divide {C} input and {cout} output channels")
        name = node.name
        scales = None
        if wm is None and self.float_model:
            # ONNX (cout, cin, kh, kw) to channels-last (kh, kw, cin, cout); depthwise (kh, kw, C, mult).
            kf = np.transpose(np.asarray(wv, dtype=np.float64), (2, 3, 1, 0))
            if depthwise:
                kf = kf.reshape(kh, kw, C, cout // C)
            elif group > 1:
                kf = _ungroup(kf, group)
            bias = np.zeros(cout)
            if len(node.input) > 2 and node.input[2]:
                bias = bias + np.asarray(self.const(node, node.input[2], "the convolution bias").value, dtype=np.float64).ravel()
            geometry = self.conv_geometry(a, (H, W), (kh, kw), one_d)
            self.float_layer(node, x, "Conv", kf, bias, lambda fw: (Conv(fw.weight, fw.bias if np.any(fw.bias) else None, *geometry, depthwise, accum=fw.accum, product_shift=fw.shift), fw.wfrac))
            return
        if wm is None:
            wtype = self.types.typed(name, "weight", "Conv")
            wm, wfrac = wtype.quantize(wv), wtype.frac
            self.graph.notes.append(f"{name}: float weights quantized to {wtype}")
        else:
            ws = np.asarray(w.scale, dtype=np.float64)
            ws = ws[:, :, None, :] if one_d and ws.ndim == 3 else ws
            exps = {_pow2_exponent(float(v)) for v in np.unique(ws)}
            if None in exps or xt.scale != 1.0:
                # Scales that are not powers of two (Brevitas's default float scaling): integer sums,
                # and the scales, one per output channel, stay in the float chain up to the next
                # quantizer, which becomes exact integer thresholds (as for dense layers).
                ws = np.broadcast_to(ws, wm.shape).reshape(cout, -1)
                if not np.all(ws == ws[:, :1]):
                    self.fail(node, "weight scales must be per tensor or per output channel")
                scales = ws[:, 0]  # the input's scale stays on the output tensor
                wfrac = 0
            else:
                wfrac = -min(exps)
                wm = wm * np.round(np.broadcast_to(ws, wm.shape) * 2.0**wfrac).astype(np.int64)
        # ONNX (cout, cin, kh, kw) to channels-last (kh, kw, cin, cout); depthwise (kh, kw, C, mult).
        k = np.transpose(np.asarray(wm, dtype=np.int64), (2, 3, 1, 0))
        if depthwise:
            k = k.reshape(kh, kw, C, cout // C)
        elif group > 1:
            k = _ungroup(k, group)
            wv = np.transpose(_ungroup(np.transpose(np.asarray(wv, dtype=np.float64), (2, 3, 1, 0)), group), (3, 2, 0, 1))
        if w.mant is None:
            dw = np.abs(np.transpose(np.asarray(wv, dtype=np.float64), (2, 3, 1, 0)).reshape(k.shape) - k * 2.0**-wfrac)
            self.builder.errors.weights[name] = (dw, np.zeros(k.shape[2] * k.shape[3] if depthwise else cout))
        op = Conv(k, None, *self.conv_geometry(a, (H, W), (kh, kw), one_d), depthwise)
        try:
            out = self.builder.conv(
                name, x.tensor, op, wfrac,
                attrs={"source": "Conv", "float_weights": w.mant is None},
            )  # fmt: skip
        except ValueError as e:
            self.fail(node, str(e))
        result = _Int(out, node.output[0])
        # ONNX's conv output is NCHW: per-channel constants broadcast as (C, 1, 1) (or (C, 1) in 1-D).
        per_channel = (-1, 1) if one_d else (-1, 1, 1)
        chain = []
        if scales is not None:
            self.values[name + "__scales"] = _Const(np.asarray(scales, dtype=np.float32).reshape(per_channel))
            chain.append(helper.make_node("Mul", [node.output[0] + "__acc", name + "__scales"], [node.output[0] + "__scaled"], name=name + "_scale"))
        if len(node.input) > 2 and node.input[2]:
            src = chain[-1].output[0] if chain else node.output[0] + "__acc"
            b = self.const(node, node.input[2], "the convolution bias")
            self.values[node.input[2] + "__nchw"] = _Const(np.asarray(b.value).reshape(per_channel))
            chain.append(helper.make_node("Add", [src, node.input[2] + "__nchw"], [node.output[0]], name=name + "_bias"))
        if chain:
            chain[-1].output[0] = node.output[0]
            result.onnx_name = node.output[0] + "__acc"
            if node.output[0] in self.shapes:  # the thresholds' probe runs the chain on NCHW values
                self.shapes[result.onnx_name] = self.shapes[node.output[0]]
            self.values[node.output[0]] = _Pending(result, chain)
        else:
            self.values[node.output[0]] = result

    @staticmethod
    def conv_geometry(a, hw, kernel, one_d):
        """``(stride, padding, dilation)`` of an ONNX Conv on an ``hw`` image (1-D: one row)."""
        from rtlgen.ir.ops.spatial import same_padding

        stride = tuple(int(v) for v in a.get("strides", [1, 1]))
        dil = tuple(int(v) for v in a.get("dilations", [1, 1]))
        if one_d:
            stride, dil = (1, stride[0]), (1, dil[0])
        auto = a.get("auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else auto
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            pads = [same_padding(n, kk, st, d) for n, kk, st, d in zip(hw, kernel, stride, dil)]
            if auto == "SAME_LOWER":
                pads = [(b, a_) for a_, b in pads]
            padding = tuple(pads)
        elif auto == "VALID" or "pads" not in a:
            padding = ((0, 0), (0, 0))
        else:
            p = [int(v) for v in a["pads"]]
            padding = ((p[0], p[2]), (p[1], p[3])) if not one_d else ((0, 0), (p[0], p[1]))
        return stride, padding, dil

    def float_layer(self, node, x, layer_type, kernel, bias, make):
        """A float model's Dense or Conv with hls4ml's arithmetic (:mod:`._precision`): the bias
        additions and batch normalization that follow it alone are folded into its float weights
        first, as hls4ml folds them, then everything is quantized with the configured types and
        the output cast to its ``result`` type. For a convolution ``make(weights)`` gives the IR op
        and its weight frac."""
        name = node.name
        shape = np.shape(kernel)
        kernel, bias, out_name = self.fold_float_tail(node.output[0], kernel.reshape(-1, bias.size), bias)
        kernel = kernel.reshape(shape)
        xt = self.graph.tensors[x.tensor]
        try:
            fw = self.types.float_weights(name, layer_type, kernel, bias, xt.type.frac)
        except ValueError as e:
            self.fail(node, str(e))
        attrs = {"source": node.op_type, "float_weights": True}
        if layer_type == "Dense":
            cur = self.builder.dense(
                name, x.tensor, fw.weight, fw.wfrac, fw.bias, accum=fw.accum, product_shift=fw.shift,
                attrs=attrs,
            )  # fmt: skip
        else:
            op, wfrac = make(fw)
            try:
                cur = self.builder.conv(name, x.tensor, op, wfrac, attrs=attrs)
            except ValueError as e:
                self.fail(node, str(e))
        self.builder.errors.weights[name] = (fw.weight_error, fw.bias_error)
        self.builder.errors.out_of_range[name] = fw.out_of_range
        rtype = self.types.result_type(name, layer_type, self.graph.tensors[cur].type, self.graph.notes)
        if rtype is not None:
            cur = self.builder.requant(name + "_result", cur, rtype, attrs={"source": "config"})
        self.values[out_name] = _Int(cur, out_name)

    def batchnorm(self, node, ins, x):
        """A float model's BatchNormalization that follows no Gemm, MatMul or Conv alone: a
        per-channel scale and shift (hls4ml's BatchNormalization layer)."""
        x = self.layer_input(node, x) if isinstance(x, _Host) else self.fixed_input(node, x)
        if any(not isinstance(v, _Const) for v in ins[1:5]):
            self.fail(node, "its scale, bias, mean and variance must be constants")
        scale, shift, mean, var = (np.asarray(v.value, dtype=np.float64).ravel() for v in ins[1:5])
        channels = self.graph.tensors[x.tensor].shape[-1]
        if scale.size != channels:
            self.fail(node, f"{scale.size} scales for {channels} channels")
        inv = scale / np.sqrt(var + float(_attrs(node).get("epsilon", 1e-5)))
        try:
            out = self.types.scale_shift(self.builder, node.name, x.tensor, inv, shift - mean * inv, source="BatchNormalization")
        except ValueError as e:
            self.fail(node, str(e))
        self.values[node.output[0]] = _Int(out, node.output[0], nhwc=x.nhwc)

    def fold_float_tail(self, out, kernel, bias):
        """Fold the bias additions and batch normalizations that alone read ``out`` (a float layer's
        output, one value per output channel) into ``kernel`` (..., channels) and ``bias``.
        Returns them and the ONNX name that now holds the layer's output."""
        n = bias.size
        kernel = np.asarray(kernel, dtype=np.float64).copy()
        bias = np.asarray(bias, dtype=np.float64).copy()
        while len(self.readers.get(out, [])) == 1 and out not in (o.name for o in self.proto.graph.output):
            nxt = self.readers[out][0]
            if nxt.input[0] != out or nxt.output[0] in self.consumed:
                break
            consts = [self.value(i) if i else None for i in nxt.input[1:]]
            if not consts or not all(isinstance(c, _Const) for c in consts):
                break
            vals = [np.asarray(c.value, dtype=np.float64).ravel() for c in consts]
            if nxt.op_type in ("Add", "Sub") and vals[0].size in (1, n):
                bias = bias + (1 if nxt.op_type == "Add" else -1) * np.broadcast_to(vals[0], (n,))
            elif nxt.op_type == "BatchNormalization" and all(v.size == n for v in vals[:4]):
                scale, shift, mean, var = vals[:4]
                inv = scale / np.sqrt(var + float(_attrs(nxt).get("epsilon", 1e-5)))
                kernel = kernel * inv
                bias = (bias - mean) * inv + shift
            else:
                break
            self.consumed.add(nxt.output[0])
            out = nxt.output[0]
        return kernel, bias, out

    def pool(self, node, ins):
        from rtlgen.ir.ops.spatial import Pool

        a = _attrs(node)
        x = self.layer_input(node, ins[0]) if isinstance(ins[0], _Host) and self.float_model else self.fixed_input(node, ins[0])
        xt = self.graph.tensors[x.tensor]
        if len(xt.shape) != 3:
            self.fail(node, f"expects an image, not {xt.shape}")
        H, W, C = xt.shape
        kind = "max" if "Max" in node.op_type else "avg"
        if node.op_type.startswith("Global"):
            window, stride, padding = (H, W), (H, W), ((0, 0), (0, 0))
        else:
            ks = [int(v) for v in a["kernel_shape"]]
            st = [int(v) for v in a.get("strides", ks)]
            window, stride = (tuple(ks) if len(ks) == 2 else (1, ks[0])), (tuple(st) if len(st) == 2 else (1, st[0]))
            p = [int(v) for v in a.get("pads", [0] * (2 * len(ks)))]
            padding = ((p[0], p[2]), (p[1], p[3])) if len(ks) == 2 else ((0, 0), (p[0], p[1]))
            if a.get("ceil_mode", 0):
                self.fail(node, "ceil_mode=1 is not supported")
        op = Pool(kind, window, stride, padding, in_shape=xt.shape, count_include_pad=bool(a.get("count_include_pad", 0)))
        if not op.exact and not self.float_model:
            self.fail(
                node,
                f"average pooling over {max(op.divisors())} values in a quantized model: its float result is not "
                f"exact in fixed point; use a power-of-two window (or MaxPool)",
            )
        # A float model's inexact average is rounded into the layer's configured result type.
        out_type = self.types.auto(node.name, "result", "Pooling")
        out = self.builder.pool(node.name, x.tensor, op, out_type=out_type, attrs={"source": node.op_type})
        self.values[node.output[0]] = _Int(out, node.output[0])

    def float_result(self, pending: _Pending) -> _Int:
        """A float model's layer output, cast to its configured result precision."""
        if pending.lowered is not None:
            return pending.lowered
        pending.lowered = self._float_result(pending)
        return pending.lowered

    def _float_result(self, pending: _Pending) -> _Int:
        dense_node = self.graph.producer(pending.base.tensor)
        layer = dense_node.name if dense_node else pending.base.tensor
        kind = "Conv" if dense_node is not None and dense_node.kind == "Conv" else "Dense"
        rtype = self.types.auto(layer, "result", kind)
        lowered = self.lower_fixed(pending, None, None, None, float_bias_type=self.types.typed(layer, "bias", kind))
        if lowered is None:
            self.fail(pending.nodes[0], "this float operation cannot be lowered to fixed point")
        if rtype is None:  # 'auto': keep the exact width
            return lowered
        src = self.graph.tensors[lowered.tensor]
        out = self.new_tensor(lowered.tensor + "_q", src.shape, rtype)
        self.graph.add_node(Node(layer + "_result", Requant(rtype), [lowered.tensor], [out], {"source": "config"}))
        lo, hi = self.bounds[lowered.tensor]
        self.bounds[out] = cast_bounds(lo, hi, src.type, rtype)
        return _Int(out, lowered.onnx_name)

    # -- lowering a pending float chain -----------------------------------------------------------

    def lower_fixed(self, pending: _Pending, quant, ins, out_scale, float_bias_type=None):
        """Fixed-point lowering when it is exact; None when thresholds are needed instead."""
        base = pending.base
        tensor = self.graph.tensors[base.tensor]
        dense_node = self.graph.producer(base.tensor)
        from rtlgen.ir.ops.spatial import Conv

        can_fold = (
            dense_node is not None
            and isinstance(dense_node.op, (Dense, Conv))
            and len(self.graph.consumers(base.tensor)) == 0
            and tensor.scale == 1.0
        )
        frac = tensor.type.frac
        weight = dense_node.op.weight if can_fold else None
        # Biases are per output channel: a dense layer's outputs, or a convolution's channels.
        n = tensor.shape[-1] if len(tensor.shape) == 3 else tensor.size
        bias = (
            (dense_node.op.bias if dense_node.op.bias is not None else np.zeros(n, dtype=np.int64))
            if can_fold
            else None
        )
        relu = False
        folded_name = None  # ONNX name of the last float op folded into the dense node
        for node in pending.nodes:
            op = node.op_type
            if op == "Relu":
                relu = True
                continue
            if op not in ("Add", "Sub", "Mul", "Div") or relu:
                return None
            c = self.value(node.input[1])
            if not isinstance(c, _Const) or node.input[0] == node.input[1]:
                return None
            cv = np.asarray(c.value, dtype=np.float64)
            if cv.size not in (1, n):
                return None
            cv = np.broadcast_to(cv.reshape(-1), (n,)) if cv.size == n else np.full(n, float(cv.ravel()[0]))
            if op in ("Mul", "Div"):
                vals = set(cv.tolist())
                if len(vals) != 1:
                    return None
                k = _pow2_exponent(vals.pop())
                if k is None:
                    return None
                frac -= k if op == "Mul" else -k
                folded_name = node.output[0]
                continue
            if not can_fold:
                return None
            if float_bias_type is not None:
                quantized = float_bias_type.to_float(float_bias_type.quantize(cv))
                if dense_node.name in self.builder.errors.weights:
                    dw, db = self.builder.errors.weights[dense_node.name]
                    self.builder.errors.weights[dense_node.name] = (dw, db + np.abs(cv - quantized))
                cv = quantized
            need = max(_dyadic_frac(v) for v in cv)
            if need is None or need > 48:
                return None
            if need > frac:
                shift = need - frac
                weight = weight << shift
                bias = bias << shift
                frac = need
            add = np.array([int(Fraction(v) * 2**frac) for v in cv], dtype=object)
            bias = bias + (add if op == "Add" else -add)
            folded_name = node.output[0]
        if quant is not None:
            a = _attrs(quant)
            mode = a.get("rounding_mode", "ROUND")
            mode = mode.decode() if isinstance(mode, bytes) else mode
            if (
                _pow2_exponent(out_scale) is None
                or np.any(np.asarray(ins[2].value) != 0)
                or mode.upper() not in ROUNDING
                or (not a.get("signed", 1) and a.get("narrow", 0))
            ):
                return None
            qtype = self.quant_type(quant, ins, out_scale)
            if qtype.overflow == "SAT_SYM" and qtype.width == 2 and _attrs(quant).get("signed", 1) and float(np.asarray(ins[3].value).ravel()[0]) == 1:
                return None  # 1-bit signed Quant is bipolar: thresholds handle it
            qtype = qtype.with_modes(rounding=ROUNDING[mode.upper()])
        # Commit: rewrite the dense node with the folded bias and scales.
        if can_fold:
            bias = np.array([int(b) for b in bias], dtype=np.int64)
            dense_node.op.weight = np.asarray(weight, dtype=np.int64)
            dense_node.op.bias = bias if np.any(bias) else None
            src = dense_node.inputs[0]
            if isinstance(dense_node.op, Conv):
                # Rebuild the node's output bounds the way the builder derives them.
                self.graph.nodes.remove(dense_node)
                del self.graph.tensors[base.tensor]
                del self.bounds[base.tensor]
                wfrac = frac - self.graph.tensors[src].type.frac
                out = self.builder.conv(dense_node.name, src, dense_node.op, wfrac, attrs=dense_node.attrs)
                if out != base.tensor:
                    self.graph.rename_tensor(out, base.tensor)
                    self.bounds[base.tensor] = self.bounds.pop(out)
                tensor = self.graph.tensors[base.tensor]
            else:
                lo_in, hi_in = self.bounds[src]
                lo, hi = dense_bounds(dense_node.op.weight, lo_in, hi_in, dense_node.op.bias)
                tensor.type = type_for_range(min(lo), max(hi), frac)
                self.bounds[base.tensor] = (lo, hi)
        elif frac != tensor.type.frac:
            return None
        self.check_float_exact(base.tensor, dense_node)
        if folded_name is not None and folded_name not in self.graph.tensors:
            # The tensor now holds what the model calls the last folded op's output.
            self.bounds[folded_name] = self.bounds.pop(base.tensor)
            self.graph.rename_tensor(base.tensor, folded_name)
            base = _Int(folded_name, folded_name)
        cur = base.tensor
        if relu:
            lo, hi = self.bounds[cur]
            lo, hi = np.maximum(lo, 0), np.maximum(hi, 0)
            rtype = type_for_range(0, max(max(hi), 0), frac)
            relu_node = next(n for n in pending.nodes if n.op_type == "Relu")
            out = self.new_tensor(relu_node.output[0], tensor.shape, rtype, 1.0, (lo, hi))
            self.graph.add_node(Node(_node_name(pending, "Relu"), Relu(), [cur], [out], {"source": "Relu"}))
            cur = out
        if quant is not None:
            lo, hi = self.bounds[cur]
            out = self.new_tensor(quant.output[0], tensor.shape, qtype, 1.0, cast_bounds(lo, hi, self.graph.tensors[cur].type, qtype))
            self.graph.add_node(Node(quant.name, Requant(qtype), [cur], [out], {"source": quant.op_type}))
            cur = out
        return _Int(cur, quant.output[0] if quant is not None else base.onnx_name)

    def check_float_exact(self, tensor, dense_node):
        lo, hi = self.bounds[tensor]
        peak = max(abs(int(min(lo))), abs(int(max(hi))))
        if dense_node is not None and isinstance(dense_node.op, Dense):
            lo_in, hi_in = self.bounds[dense_node.inputs[0]]
            xin = np.maximum(np.abs(lo_in.astype(object)), np.abs(hi_in.astype(object)))
            peak = max(peak, int(max(np.abs(dense_node.op.weight).astype(object).T.dot(xin))))
        if peak >= F32_EXACT:
            note = (
                f"{dense_node.name if dense_node else tensor}: values reach {peak} steps, beyond float32's "
                f"exact integers; the float ONNX executor rounds there, rtlgen computes exactly"
            )
            if note not in self.graph.notes:
                self.graph.notes.append(note)

    def lower_thresholds(self, pending: _Pending, quant, out_scale) -> _Int:
        """Exact integer thresholds for ``quant(float_chain(acc))``, found with the reference executor."""
        base = pending.base
        tensor = self.graph.tensors[base.tensor]
        for node in pending.nodes:
            if node.op_type not in ELEMENTWISE + ACTIVATION_OPS:
                self.fail(node, "only element-wise operations may stand between a layer and its quantizer")
        self.check_float_exact(base.tensor, self.graph.producer(base.tensor))
        stage = self.host_stage(base.onnx_name, pending.nodes + [quant], quant.output[0], "thresholds")
        lo, hi = (np.asarray(b, dtype=np.int64) for b in self.bounds[base.tensor])
        step = 2.0 ** -tensor.type.frac * tensor.scale
        C = tensor.size

        onnx_shape = self.shapes.get(base.onnx_name)
        image = len(tensor.shape) == 3 and onnx_shape is not None and len(onnx_shape) in (3, 4)

        def levels(acc):  # acc: (P, C) int -> quantized levels (P, C) int
            v = (acc.astype(np.float64) * step).astype(np.float32)
            if image:  # channels-last lanes to the model's NCHW layout and back
                H, W, Ch = tensor.shape
                v = v.reshape(-1, H, W, Ch).transpose(0, 3, 1, 2).reshape(-1, *onnx_shape[1:])
                y = np.asarray(stage.run(v), dtype=np.float64).reshape(-1, Ch, H, W).transpose(0, 2, 3, 1)
            else:
                y = np.asarray(stage.run(v), dtype=np.float64)
            return np.rint(y.reshape(acc.shape) / out_scale).astype(np.int64)

        ends = levels(np.stack([lo, hi]))
        increasing = ends[1] >= ends[0]
        qmin, qmax = int(ends.min()), int(ends.max())
        qstep = 2 if quant.op_type == "BipolarQuant" or (quant.op_type == "Quant" and self.is_bipolar(quant)) else 1
        qstep = self.threshold_steps.get(quant.output[0], qstep)
        targets = np.arange(qmin + qstep, qmax + 1, qstep)  # level k passed when output >= targets[k]
        L = len(targets)
        if L == 0:
            thresholds = np.zeros((C, 0), dtype=np.int64)
        else:
            # Bisection for the least acc where p(acc) switches on, all channels and levels at once:
            # p = (level >= target) on increasing channels, its negation on decreasing ones. The
            # bracket (a, b] starts one step outside the reachable range on both sides.
            a = np.repeat(lo[:, None] - 1, L, axis=1)
            b = np.repeat(hi[:, None] + 1, L, axis=1)
            inc = increasing[:, None]
            while np.any(b - a > 1):
                mid = np.where(b - a > 1, (a + b) // 2, b)
                p = (levels(mid.T).T >= targets[None, :]) == inc
                p = p | (mid == b)
                b = np.where(p, mid, b)
                a = np.where(p, a, mid)
            # Increasing: acc >= b passes (b = hi+1: never). Decreasing: acc <= b-1 passes.
            thresholds = np.where(inc, b, b - 1)
        k = _pow2_exponent(out_scale)
        frac = -k if k is not None else 0
        scale = 1.0 if k is not None else out_scale
        otype = type_for_range(qmin, qmax, frac)
        out = self.new_tensor(
            quant.output[0], tensor.shape, otype, scale,
            (np.full(C, qmin, dtype=object), np.full(C, qmax, dtype=object)),
        )  # fmt: skip
        op = Threshold(thresholds.astype(np.int64), increasing.astype(bool), qmin, qstep)
        self.graph.add_node(
            Node(quant.name, op, [base.tensor], [out], {"source": "+".join(n.op_type for n in pending.nodes + [quant])})
        )
        return _Int(out, quant.output[0])

    def is_bipolar(self, quant) -> bool:
        a = _attrs(quant)
        bits = self.value(quant.input[3])
        return bool(a.get("signed", 1)) and float(np.asarray(bits.value).ravel()[0]) == 1

    # -- output -----------------------------------------------------------------------------------

    def finish(self, out_name):
        v = self.value(out_name)
        if isinstance(v, (_Host, _Const)):
            raise UnsupportedOpError(
                out_name, "Graph", "the network output does not depend on any layer rtlgen can build in hardware"
            )
        if isinstance(v, _Pending):
            lowered = None
            if self.float_model:
                lowered = self.float_result(v)
            else:
                lowered = self.lower_fixed(v, None, None, None)
            if lowered is None:
                # The float tail (e.g. a TensorNorm) runs on the host, exactly as the reference does.
                self.graph.post = self.host_stage(v.base.onnx_name, v.nodes, out_name, "output tail")
                self.graph.notes.append(
                    f"float tail after {v.base.tensor!r} ({', '.join(n.op_type for n in v.nodes)}) runs on the host"
                )
                lowered = v.base
            v = lowered
        self.graph.outputs = [v.tensor]
        t = self.graph.tensors[v.tensor]
        if len(t.shape) == 3:
            H, W, C = t.shape
            # ONNX outputs are channels first: the host reorders the hardware's channels-last lanes.
            self.graph.output_order = np.arange(H * W * C).reshape(H, W, C).transpose(2, 0, 1).ravel().tolist()


def _ungroup(k: np.ndarray, group: int) -> np.ndarray:
    """A grouped kernel (kh, kw, C/group, cout) as an ordinary one (kh, kw, C, cout) that is zero
    between groups: the adder graph never builds a zero weight, so this costs nothing extra."""
    kh, kw, cg, cout = k.shape
    full = np.zeros((kh, kw, cg * group, cout), dtype=k.dtype)
    per = cout // group
    for j in range(group):
        full[:, :, j * cg : (j + 1) * cg, j * per : (j + 1) * per] = k[:, :, :, j * per : (j + 1) * per]
    return full


def _node_name(pending: _Pending, op_type: str) -> str:
    for n in pending.nodes:
        if n.op_type == op_type:
            return n.name
    return pending.base.tensor + "_" + op_type.lower()


def _dyadic_frac(v: float) -> int | None:
    """Least k with v * 2**k an integer (v is a finite float, so k exists)."""
    f = Fraction(v)
    d = f.denominator
    return d.bit_length() - 1
