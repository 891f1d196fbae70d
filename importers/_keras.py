"""Keras, QKeras and HGQ2 models to the IR, from files or in-memory models, without TensorFlow.

Layers are read from the model configuration (JSON) and the weights; nothing from the file is
executed, so a Lambda or an unknown custom layer is refused by name.

Precision: quantized layers (QKeras quantizers, HGQ2) take their types from their quantizers and
keep exact accumulators, so the golden model equals the framework's predict. Float layers take the
configured precision, as hls4ml does (weight, bias and result types; default ``fixed<16,6>``). A
``Precision.result`` given explicitly for a layer is always honoured.
"""

from __future__ import annotations

import ast
import math

import numpy as np

from rtlgen.config import Config
from rtlgen.errors import ModelFormatError, UnsupportedOpError
from rtlgen.fixed import FixedType
from rtlgen.ir import Graph

from . import _hgq as hgq
from . import _precision as precision
from ._activations import FUNCTIONS, build_activation, build_softmax
from ._builder import SpatialBuilder
from ._errors import rounding_error
from ._hgq import is_hgq
from ._keras_files import KerasModel, read_keras
from ._recurrent import (
    HGQ_RECURRENT,
    KERAS_RECURRENT,
    QKERAS_RECURRENT,
    hgq_recurrent,
    keras_recurrent,
    qkeras_recurrent,
)

__all__ = ["from_keras", "parse_quantizer", "quantizer_type"]

PASSIVE = ("InputLayer", "Dropout", "SpatialDropout1D", "SpatialDropout2D", "GaussianNoise", "GaussianDropout", "ActivityRegularization")
CONV = ("Conv1D", "Conv2D", "QConv1D", "QConv2D", "QConv2DBatchnorm", "DepthwiseConv2D", "QDepthwiseConv2D", "SeparableConv1D", "SeparableConv2D", "QSeparableConv1D", "QSeparableConv2D")
POOL = ("MaxPooling1D", "MaxPooling2D", "AveragePooling1D", "AveragePooling2D", "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalAveragePooling1D", "GlobalAveragePooling2D")
HGQ_CONV = ("QConv1D", "QConv2D")
HGQ_POOL = ("QMaxPooling1D", "QMaxPooling2D", "QAveragePooling1D", "QAveragePooling2D", "QGlobalMaxPooling1D",
            "QGlobalMaxPooling2D", "QGlobalAveragePooling1D", "QGlobalAveragePooling2D")  # fmt: skip
HGQ_SUPPORTED = ("QDense", "QBatchNormDense", "QBatchNormalization", "QEinsumDense", "QEinsumDenseBatchnorm") + HGQ_CONV + HGQ_POOL + HGQ_RECURRENT
LAYOUT = ("Flatten", "Reshape", "ZeroPadding1D", "ZeroPadding2D", "Cropping1D", "Cropping2D", "UpSampling1D", "UpSampling2D", "Permute")
LATER: dict = {}
MERGES = {
    "Add": "add", "Subtract": "sub", "Multiply": "mul", "Average": "avg", "Maximum": "max", "Minimum": "min",
    "Concatenate": "concat",
}  # fmt: skip
DENSE = ("Dense", "QDense", "QDenseBatchnorm")
ACTIVATIONS = ("Activation", "QActivation", "ReLU", "LeakyReLU", "PReLU", "ELU", "ThresholdedReLU", "Softmax")
# Legacy BinaryNet/TernaryNet Keras layers of hls4ml's example models (see legacy_dense).
LEGACY_DENSE = ("BinaryDense", "TernaryDense")
LEGACY_SIGN = ("binary_tanh", "ternary_tanh")
SUPPORTED = DENSE + LEGACY_DENSE + CONV + POOL + LAYOUT + ACTIVATIONS + tuple(MERGES) + ("BatchNormalization", "Dropout", "InputLayer", "Softmax (final, skipped)")



def from_keras(model, *, config: Config | None = None, skip_softmax: bool = False, weights=None) -> Graph:
    """Import a Keras/QKeras/HGQ2 model (``.keras``, ``.h5``, ``.json`` + weights, or a ``keras.Model``)."""
    km = read_keras(model, weights)
    return _KerasImporter(km, precision.Precisions(config), skip_softmax).run()


# -- QKeras quantizers ----------------------------------------------------------------------------


def parse_quantizer(spec):
    """A QKeras quantizer from its config dict or its string form, as ``(name, kwargs)``.

    Strings such as ``"quantized_relu(6, 0)"`` are parsed as literals, never evaluated.
    """
    if spec is None:
        return None
    if isinstance(spec, dict):
        return spec.get("class_name"), dict(spec.get("config", {}))
    if isinstance(spec, str):
        try:
            tree = ast.parse(spec.strip(), mode="eval").body
        except SyntaxError:
            raise ModelFormatError(f"quantizer {spec!r} is not of the form name(arguments)") from None
        if isinstance(tree, ast.Name):
            return tree.id, {}
        if not isinstance(tree, ast.Call) or not isinstance(tree.func, ast.Name):
            raise ModelFormatError(f"quantizer {spec!r} is not of the form name(arguments)")
        try:
            args = [ast.literal_eval(a) for a in tree.args]
            kwargs = {k.arg: ast.literal_eval(k.value) for k in tree.keywords}
        except ValueError:
            raise ModelFormatError(f"quantizer {spec!r} has arguments that are not literals") from None
        return tree.func.id, {"__args__": args, **kwargs}
    raise ModelFormatError(f"quantizer {spec!r} is neither a config nor a string")


_POSITIONAL = {
    "quantized_bits": ("bits", "integer", "symmetric", "keep_negative", "alpha", "use_stochastic_rounding"),
    "quantized_relu": ("bits", "integer", "use_sigmoid", "negative_slope", "use_stochastic_rounding", "relu_upper_bound"),
    "quantized_po2": ("bits", "max_value", "use_stochastic_rounding", "quadratic_approximation"),
    "binary": ("use_01", "alpha", "use_stochastic_rounding"),
    "ternary": ("alpha", "threshold", "use_stochastic_rounding"),
}
_DEFAULTS = {
    "quantized_bits": {"bits": 8, "integer": 0, "symmetric": 0, "keep_negative": True, "alpha": None},
    "quantized_relu": {"bits": 8, "integer": 0, "use_sigmoid": 0, "negative_slope": 0.0, "relu_upper_bound": None},
}


def _kwargs(name, kw):
    kw = dict(kw)
    args = kw.pop("__args__", [])
    out = dict(_DEFAULTS.get(name, {}))
    for key, value in zip(_POSITIONAL.get(name, ()), args):
        out[key] = value
    out.update(kw)
    return out


def quantizer_type(spec, where: str) -> tuple[FixedType, float]:
    """The fixed-point type a QKeras ``quantized_bits``/``quantized_relu`` produces, and its scale.

    QKeras computes ``clip(round(x * 2**frac), lo, hi) / 2**frac`` with ``round`` half to even, so
    these are ``RND_CONV`` types that saturate; ``symmetric`` drops the most negative code.
    """
    name, kw = parse_quantizer(spec)
    kw = _kwargs(name, kw)
    if kw.get("use_stochastic_rounding"):
        raise UnsupportedOpError(where, name, "stochastic rounding has no deterministic hardware equivalent")
    if name == "quantized_bits":
        bits, integer = int(kw["bits"]), int(kw["integer"])
        keep_negative = bool(kw["keep_negative"])
        alpha = kw.get("alpha")
        scale_exp = 0
        if alpha not in (None, 1, 1.0):
            if isinstance(alpha, str):
                raise UnsupportedOpError(
                    where, name, f"alpha={alpha!r} (a data-dependent scale) is not supported; use alpha=1"
                )
            m, e = math.frexp(float(alpha))
            if m != 0.5:
                raise UnsupportedOpError(where, name, f"alpha={alpha} is not a power of two")
            scale_exp = e - 1
        overflow = "SAT_SYM" if (kw.get("symmetric") and keep_negative) else "SAT"
        if keep_negative:
            t = FixedType(bits, integer + 1 + scale_exp, True, "RND_CONV", overflow)
        else:
            t = FixedType(bits, integer + scale_exp, False, "RND_CONV", overflow)
        return t, 1.0
    if name == "quantized_relu":
        if kw.get("use_sigmoid") or kw.get("negative_slope") or kw.get("relu_upper_bound") is not None:
            raise UnsupportedOpError(where, name, "only the plain form quantized_relu(bits, integer) is supported")
        bits, integer = int(kw["bits"]), int(kw["integer"])
        return FixedType(bits, integer, False, "RND_CONV", "SAT"), 1.0
    raise UnsupportedOpError(where, name, f"quantizer {name!r} is not supported; supported are quantized_bits, quantized_relu")


def _pow2_alpha(alpha, where, name):
    if alpha is None or isinstance(alpha, str):
        raise UnsupportedOpError(
            where, name,
            f"alpha={alpha!r} on a kernel means a data-dependent scale in QKeras (QDense turns None into "
            f"'auto_po2'); retrain with alpha=1 or a power of two",
        )  # fmt: skip
    m, e = math.frexp(float(alpha))
    if m != 0.5:
        raise UnsupportedOpError(where, name, f"alpha={alpha} is not a power of two")
    return float(alpha)


def qkeras_weights(spec, values, where) -> tuple[np.ndarray, int]:
    """Weights through a QKeras quantizer, as exact ``(mantissas, fractional bits)``.

    ``quantized_bits`` is a fixed-point type; ``binary``, ``ternary`` and ``quantized_po2`` map
    each weight to a signed power of two (or zero), computed in float32 as QKeras does.
    """
    name, kw = parse_quantizer(spec)
    kw = _kwargs(name, kw)
    x = np.asarray(values, dtype=np.float32)
    if name in ("quantized_bits", "quantized_relu"):
        t, _ = quantizer_type(spec, where)
        return t.quantize(x), t.frac
    if name == "binary":
        alpha = _pow2_alpha(kw.get("alpha"), where, name)
        k = np.where(x >= 0, 1.0, -1.0)
        real = alpha * ((k + 1) / 2 if kw.get("use_01") else k)
    elif name == "ternary":
        alpha = _pow2_alpha(kw.get("alpha"), where, name)
        thr = np.float32(0.33 if kw.get("threshold") is None else kw["threshold"])
        real = alpha * np.sign(x) * (np.abs(x) >= thr)
    elif name == "quantized_po2":
        bits = int(kw.get("bits", 8))
        max_value = kw.get("max_value")
        if kw.get("use_stochastic_rounding") or kw.get("quadratic_approximation"):
            raise UnsupportedOpError(where, name, "only deterministic quantized_po2 without quadratic_approximation is supported")
        e_bits = bits - 1 - (1 if (max_value is None or max_value > 1) else 0)
        mag = np.maximum(np.abs(x), np.float32(1e-7))
        if max_value is not None:
            mag = np.minimum(mag, np.float32(max_value))
        e = np.round(np.log(mag) / np.log(np.float32(2))).astype(np.float32)
        e = np.clip(e, -(2.0**e_bits), 2.0**e_bits - 1)
        real = np.where(x >= 0, 1.0, -1.0) * np.exp2(e.astype(np.float64))
    else:
        raise UnsupportedOpError(
            where, name, f"quantizer {name!r} is not supported; supported are quantized_bits, binary, ternary, quantized_po2"
        )
    real = np.asarray(real, dtype=np.float64)
    frac = max([precision.dyadic_frac(v) for v in real.ravel()] + [0])
    return np.array([int(v * 2.0**frac) for v in real.ravel()], dtype=np.int64).reshape(real.shape), frac


# -- the importer ---------------------------------------------------------------------------------


class _KerasImporter:
    def __init__(self, km: KerasModel, precisions: precision.Precisions, skip_softmax: bool):
        self.km = km
        self.types = precisions
        self.skip_softmax = skip_softmax
        cfg = km.config.get("config", {}) if isinstance(km.config, dict) else None
        self.layers = cfg.get("layers") if isinstance(cfg, dict) else cfg
        if not isinstance(self.layers, list) or not all(isinstance(layer, dict) for layer in self.layers):
            raise ModelFormatError(
                f"model {km.source!r} has no list of layers in its configuration; save it with Keras' model.save()"
            )
        # HGQ (v1) proxy models: plain Dense layers with quantized weights between FixedPointQuantizers.
        self.proxy = any(str(layer.get("class_name", "")).endswith("FixedPointQuantizer") for layer in self.layers)
        for layer in self.layers:
            # Keras 3 .h5 files write registered names ("hgq>QBatchNormDense") as the class name.
            cls = str(layer.get("class_name", ""))
            if ">" in cls:
                layer["registered_name"] = layer.get("registered_name") or cls
                layer["class_name"] = cls.rsplit(">", 1)[-1]
        self.graph = Graph(name=(cfg.get("name") if isinstance(cfg, dict) else None) or "keras_model")
        self.b = SpatialBuilder(self.graph)
        self.float_layer = None  # the last float (config-typed) layer, while its output flows on

    def fail(self, layer, detail):
        raise UnsupportedOpError(layer["config"].get("name", "?"), layer["class_name"], detail)

    def weights(self, name):
        return self.km.weights.get(name, [])

    def weight(self, layer, key, index):
        ws = self.weights(layer["config"]["name"])
        named = [a for n, a in ws if n == key]
        if named:
            return named[0]
        own = [a for n, a in ws if n is None]  # Keras 3: unnamed, in creation order
        if index < len(own):
            return own[index]
        raise ModelFormatError(f"layer {layer['config']['name']!r}: weight {key!r} not found in the weights file")

    def run(self) -> Graph:
        self.cur = None
        self.graph.source_names = [layer["config"].get("name", "") for layer in self.layers]
        self.tensor_of: dict[str, str] = {}  # layer name -> IR tensor of its output
        if len(self.input_layers()) > 1:
            raise UnsupportedOpError(self.graph.name, "Model", "rtlgen builds networks with one input; this model has several")
        prev = None
        for i, layer in enumerate(self.layers):
            name = layer["config"].get("name", "")
            sources = self.sources(layer) or ([prev] if prev is not None else [])
            if sources:
                missing = [s for s in sources if s not in self.tensor_of]
                if missing:
                    self.fail(layer, f"reads {missing}, which produce nothing rtlgen builds")
                self.cur = self.tensor_of[sources[0]]
            if layer["class_name"] in MERGES:
                self.merge(layer, [self.tensor_of[s] for s in sources])
            else:
                if len(sources) > 1:
                    self.fail(layer, f"reads {len(sources)} tensors; only merge layers read several")
                self.visit(layer, last=(i == len(self.layers) - 1))
            if self.cur is not None:
                self.tensor_of[name] = self.cur
            prev = name
        outputs = self.output_layers() or [prev]
        if len(outputs) != 1:
            raise UnsupportedOpError(self.graph.name, "Model", f"rtlgen builds networks with one output; this model has {len(outputs)}")
        if outputs[0] not in self.tensor_of:
            raise UnsupportedOpError(self.graph.name, "Model", "the model has no layer rtlgen can build")
        self.graph.outputs = [self.tensor_of[outputs[0]]]
        self.graph.verify()
        self.b.note_error_bounds()
        return self.graph

    def _layer_refs(self, key):
        cfg = self.km.config.get("config", {})
        refs = cfg.get(key) if isinstance(cfg, dict) else None
        if refs is None:
            return []
        if isinstance(refs, dict):
            refs = list(refs.values())
        if refs and isinstance(refs[0], str):  # a single ["name", 0, 0]
            refs = [refs]
        return [r[0] for r in refs]

    def input_layers(self):
        return self._layer_refs("input_layers")

    def output_layers(self):
        return self._layer_refs("output_layers")

    @staticmethod
    def sources(layer) -> list:
        """Names of the layers this layer reads (from its inbound nodes; empty for Sequential)."""
        nodes = layer.get("inbound_nodes") or []
        out = []

        def walk(arg):
            if isinstance(arg, dict):
                hist = arg.get("config", {}).get("keras_history")
                if hist:
                    out.append(hist[0])
            elif isinstance(arg, (list, tuple)):
                if arg and isinstance(arg[0], str) and len(arg) >= 3 and isinstance(arg[1], int):
                    out.append(arg[0])  # Keras 2: ["name", node, tensor, {kwargs}]
                else:
                    for a in arg:
                        walk(a)

        if len(nodes) > 1:
            raise UnsupportedOpError(layer["config"].get("name", "?"), layer["class_name"], "a layer called more than once (shared weights) is not supported")
        for node in nodes:
            walk(node.get("args", []) if isinstance(node, dict) else node)
        return out

    def merge(self, layer, inputs):
        cls, c = layer["class_name"], layer["config"]
        name = c["name"]
        kind = MERGES[cls]
        if kind == "concat":
            axis = c.get("axis", -1)
            rank = len(self.graph.tensors[inputs[0]].shape)
            if axis not in (-1, rank):
                self.fail(layer, f"concatenation along axis {axis} is not supported; only the last (channel) axis")
        cur = inputs[0]
        for k, other in enumerate(inputs[1:]):
            label = name if k == len(inputs) - 2 else f"{name}_{k}"
            try:
                cur = self.b.merge(label, cur, other, kind, attrs={"source": cls})
            except ValueError as e:
                self.fail(layer, str(e))
        self.cur = cur
        self.float_layer = None
        rtype = None if kind == "concat" else self.types.explicit_result(name, "Merge")
        if rtype is not None:
            self.cur = self.b.requant(name + "_result", self.cur, rtype)

    def input_type(self, name) -> FixedType:
        return self.types.input_type(name)

    def ensure_input(self, layer, shape):
        if self.cur is not None:
            return
        name = layer["config"]["name"] if layer["class_name"] == "InputLayer" else "input"
        if any(d is None for d in shape):
            self.fail(layer, f"the input shape {tuple(shape)} has free dimensions; give every dimension a size")
        # Channels last: sequences (steps, channels) are images one pixel high.
        shape = tuple(int(d) for d in shape)
        shape = (1, *shape) if len(shape) == 2 else shape
        t = self.input_type(name)
        self.cur = self.b.tensor(name, shape, t)
        self.graph.inputs = [self.cur]
        self.b.errors.inputs[self.cur] = rounding_error(None, t)

    def visit(self, layer, last):
        cls = layer["class_name"]
        c = layer["config"]
        name = c["name"]
        shape = c.get("batch_input_shape") or c.get("batch_shape")
        if shape is not None:
            self.ensure_input(layer, shape[1:])
        if cls in PASSIVE or name == getattr(self, "skip", None):
            return
        if self.cur is None:
            self.fail(layer, "the input shape is unknown (no InputLayer or batch_input_shape)")
        if is_hgq(layer) and cls in HGQ_RECURRENT:
            hgq_recurrent(self, layer)  # activations and quantizers are the cell's own
            return
        if is_hgq(layer):
            if cls in ("QDense", "QBatchNormDense", "QBatchNormalization", "QEinsumDense", "QEinsumDenseBatchnorm"):
                self.hgq_dense(layer)
            elif cls in HGQ_CONV:
                self.hgq_requant(layer, "iq", "input quantizer")
                self.conv(layer)
            elif cls in HGQ_POOL:
                self.hgq_requant(layer, "iq", "input quantizer")
                self.pool({**layer, "class_name": cls[1:]})
                pool = next((n.op for n in reversed(self.graph.nodes) if n.kind == "Pool"), None)
                if pool is not None and pool.recip_frac is not None:
                    self.graph.notes.append(
                        f"{name}: HGQ2 divides by a window that is not a power of two in float32; the hardware "
                        f"rounds the exact average, so outputs may differ from HGQ2's predict in the last bit"
                    )
            else:
                self.fail(layer, f"HGQ2 layer {cls!r} is not supported yet; supported HGQ2 layers are {', '.join(HGQ_SUPPORTED)}")
            self.activation(layer, c.get("activation", "linear"), name, last)
            if c.get("enable_oq", False):
                self.hgq_requant(layer, "oq", "output quantizer")
        elif cls in CONV:
            self.conv(layer)
            self.activation(layer, c.get("activation", "linear"), name, last)
        elif cls in POOL:
            self.pool(layer)
        elif cls in LAYOUT:
            self.layout(layer)
        elif cls in LEGACY_DENSE:
            self.legacy_dense(layer)
        elif cls in DENSE:
            self.dense(layer)
            act = c.get("activation", "linear")
            self.activation(layer, act, name, last)
        elif cls in ("Activation", "QActivation"):
            self.activation(layer, c.get("activation"), name, last)
        elif cls in ("ReLU", "LeakyReLU", "PReLU", "ELU", "ThresholdedReLU", "Softmax"):
            self.activation_layer(layer)
        elif cls in ("BatchNormalization",):
            self.batchnorm(layer)
        elif cls == "FixedPointQuantizer":
            self.fixed_point_quantizer(layer)
        elif cls in KERAS_RECURRENT:
            keras_recurrent(self, layer)
        elif cls in QKERAS_RECURRENT:
            qkeras_recurrent(self, layer)
        elif cls in LATER:
            self.fail(layer, f"{LATER[cls]} are not supported yet; supported layers are {', '.join(SUPPORTED)}")
        elif cls in ("Lambda", "TFOpLambda"):
            self.fail(layer, "Lambda layers hold arbitrary code and are never executed; replace it by supported layers")
        else:
            self.fail(layer, f"layer type {cls!r} is not supported; supported are {', '.join(SUPPORTED)}")

    # -- dense ------------------------------------------------------------------------------------

    def dense(self, layer):
        cls, c = layer["class_name"], layer["config"]
        name = c["name"]
        kernel = self.weight(layer, "kernel", 0).astype(np.float64)
        use_bias = c.get("use_bias", True)
        bias = self.weight(layer, "bias", 1).astype(np.float64) if use_bias else np.zeros(kernel.shape[1])
        xt = self.graph.tensors[self.cur]
        if len(xt.shape) != 1:
            self.fail(layer, f"a Dense layer on a {len(xt.shape)}-D input {xt.shape} is not supported; add a Flatten before it")
        if kernel.shape[0] != xt.size:
            self.fail(layer, f"kernel of shape {kernel.shape} does not match an input of {xt.size} values")
        quantized = cls != "Dense" or self.proxy
        if cls == "QDenseBatchnorm":
            kernel, bias = self.fold_qkeras_batchnorm(layer, kernel, bias)
        follow = self.next_layer(layer)
        if follow is not None and follow["class_name"] == "BatchNormalization" and not quantized:
            kernel, bias = self.fold_batchnorm(follow, kernel, bias)
            self.skip = follow["config"]["name"]
        wm, wfrac, bias_m, accum, shift = self.quantize_params(layer, kernel, bias, quantized, "Dense")
        self.cur = self.b.dense(
            name, self.cur, wm, wfrac, bias_m, accum=accum, product_shift=shift,
            attrs={"source": cls, "float_weights": not quantized},
        )  # fmt: skip
        if self.weight_error is not None:
            self.b.errors.weights[name] = self.weight_error
        self.after_weights_layer(name, quantized, "Dense")

    # -- convolution, pooling, layout ----------------------------------------------------------

    def spatial_shape(self, layer):
        shape = self.graph.tensors[self.cur].shape
        if len(shape) != 3:
            self.fail(layer, f"expects a sequence or image input, not shape {shape}")
        if layer["config"].get("data_format", "channels_last") not in (None, "channels_last"):
            self.fail(layer, "only data_format='channels_last' is supported")
        return shape

    @staticmethod
    def _pair(v, one_d):
        v = list(v) if isinstance(v, (list, tuple)) else [v]
        return (1, int(v[0])) if one_d else (int(v[0]), int(v[-1]))

    def _padding(self, layer, shape, kernel, stride, dilation):
        from rtlgen.ir.ops.spatial import same_padding

        mode = str(layer["config"].get("padding", "valid")).lower()
        if mode == "valid":
            return ((0, 0), (0, 0))
        if mode == "same":
            return tuple(same_padding(n, k, s, d) for n, k, s, d in zip(shape[:2], kernel, stride, dilation))
        self.fail(layer, f"padding {mode!r} is not supported (valid, same)")

    def conv(self, layer):
        from rtlgen.ir.ops.spatial import Conv

        cls, c = layer["class_name"], layer["config"]
        name = c["name"]
        shape = self.spatial_shape(layer)
        one_d = "1D" in cls
        quantized = cls.startswith("Q")
        own = [a for n, a in self.weights(name) if n is None]
        named = dict((n, a) for n, a in self.weights(name) if n)
        separable = "Separable" in cls
        depthwise = "Depthwise" in cls or separable
        if depthwise:
            kernel = named.get("depthwise_kernel", named.get("kernel", own[0] if own else None))
        else:
            kernel = named.get("kernel", own[0] if own else None)
        if kernel is None:
            self.fail(layer, "its kernel is missing from the weights file")
        kernel = np.asarray(kernel, dtype=np.float64)
        if one_d:
            kernel = kernel[None]
        stride = self._pair(c.get("strides", 1), one_d)
        dilation = self._pair(c.get("dilation_rate", 1), one_d)
        padding = self._padding(layer, shape, kernel.shape[:2], stride, dilation)
        use_bias = c.get("use_bias", True)
        n_out = kernel.shape[2] * kernel.shape[3] if depthwise else kernel.shape[3]
        if separable:
            pointwise = np.asarray(named.get("pointwise_kernel", own[1] if len(own) > 1 else None), dtype=np.float64)
            bias = np.asarray(named.get("bias", own[2] if len(own) > 2 else np.zeros(pointwise.shape[-1])), dtype=np.float64)
            wm, wfrac, _, accum, shift = self.quantize_params(layer, kernel, np.zeros(n_out), quantized, "Conv")
            op = Conv(wm, None, stride, padding, dilation, True, accum=accum, product_shift=shift)
            try:
                self.cur = self.b.conv(
                    name + "_depthwise", self.cur, op, wfrac,
                    attrs={"source": cls, "float_weights": not quantized, "layer": name},
                )  # fmt: skip
            except ValueError as e:
                self.fail(layer, f"depthwise part: {e}")
            if self.weight_error is not None:
                self.b.errors.weights[name + "_depthwise"] = self.weight_error
            self.after_weights_layer(name + "_depthwise", quantized, "Conv")
            kernel, stride, padding, dilation, depthwise = pointwise.reshape(1, 1, *pointwise.shape[-2:]), (1, 1), ((0, 0), (0, 0)), (1, 1), False
            pointwise_layer = {"class_name": cls, "config": {**c, "kernel_quantizer": c.get("pointwise_quantizer")}}
            follow = self.next_layer(layer)
            if follow is not None and follow["class_name"] == "BatchNormalization" and not quantized:
                k2, bias = self.fold_batchnorm(follow, kernel.reshape(-1, kernel.shape[-1]), bias)
                kernel = k2.reshape(kernel.shape)
                self.skip = follow["config"]["name"]
            wm, wfrac, bias_m, accum, shift = self.quantize_params(pointwise_layer, kernel, bias, quantized, "Conv")
        else:
            bias = named.get("bias", own[1] if use_bias and len(own) > 1 else None)
            bias = np.zeros(n_out) if bias is None or not use_bias else np.asarray(bias, dtype=np.float64)
            if cls == "QConv2DBatchnorm":
                kernel2, bias = self.fold_qkeras_batchnorm(layer, kernel.reshape(-1, kernel.shape[-1]), bias)
                kernel = kernel2.reshape(kernel.shape)
            follow = self.next_layer(layer)
            if follow is not None and follow["class_name"] == "BatchNormalization" and not quantized:
                # As hls4ml: a float convolution absorbs the batch normalization after it before quantizing.
                k2, bias = self.fold_batchnorm(follow, kernel.reshape(-1, n_out), bias)
                kernel = k2.reshape(kernel.shape)
                self.skip = follow["config"]["name"]
            if is_hgq(layer):
                wm, wfrac, bias_m = self.hgq_weights(layer, kernel.reshape(np.shape(own[0])) if one_d else kernel, bias)
                wm = wm.reshape(kernel.shape)
                accum, shift, self.weight_error = None, 0, None
            else:
                wm, wfrac, bias_m, accum, shift = self.quantize_params(layer, kernel, bias, quantized, "Conv")
        op = Conv(wm, bias_m if np.any(bias_m) else None, stride, padding, dilation, depthwise, accum=accum, product_shift=shift)
        try:
            self.cur = self.b.conv(
                name, self.cur, op, wfrac, attrs={"source": cls, "float_weights": not quantized},
            )  # fmt: skip
        except ValueError as e:
            self.fail(layer, str(e))
        if self.weight_error is not None:
            self.b.errors.weights[name] = self.weight_error
        self.after_weights_layer(name, quantized, "Conv")

    def pool(self, layer):
        from rtlgen.ir.ops.spatial import Pool

        cls, c = layer["class_name"], layer["config"]
        name = c["name"]
        shape = self.spatial_shape(layer)
        one_d = "1D" in cls
        kind = "max" if "Max" in cls else "avg"
        if cls.startswith("Global"):
            window, stride, padding = tuple(shape[:2]), tuple(shape[:2]), ((0, 0), (0, 0))
        else:
            window = self._pair(c.get("pool_size", 2), one_d)
            stride = self._pair(c.get("strides") or c.get("pool_size", 2), one_d)
            padding = self._padding(layer, shape, window, stride, (1, 1))
        op = Pool(kind, window, stride, padding)
        # An inexact average is rounded into the layer's result type, as hls4ml's pooling does.
        out_type = self.types.auto(name, "result", "Pooling")
        self.cur = self.b.pool(name, self.cur, op, out_type=out_type, attrs={"source": cls})
        if cls.startswith("Global") and not c.get("keepdims", False):
            self.cur = self.b.reshape(name + "_flat", self.cur, (shape[2],))

    def layout(self, layer):
        cls, c = layer["class_name"], layer["config"]
        name = c["name"]
        xt = self.graph.tensors[self.cur]
        if cls == "Flatten":
            self.cur = self.b.reshape(name, self.cur, (xt.size,))
            return
        if cls == "Reshape":
            target = tuple(int(d) for d in c["target_shape"])
            target = (1, *target) if len(target) == 2 else target
            self.cur = self.b.reshape(name, self.cur, target)
            return
        H, W, C = self.spatial_shape(layer)
        one_d = "1D" in cls
        grid = np.arange(H * W * C).reshape(H, W, C)
        if cls.startswith("ZeroPadding"):
            p = c.get("padding", 1)
            if one_d:
                (t, b), (lft, r) = (0, 0), (tuple(p) if isinstance(p, (list, tuple)) else (p, p))
            else:
                p = p if isinstance(p, (list, tuple)) else [p, p]
                (t, b), (lft, r) = ((p[0], p[0]) if isinstance(p[0], int) else tuple(p[0])), ((p[1], p[1]) if isinstance(p[1], int) else tuple(p[1]))
            out = np.pad(grid, ((t, b), (lft, r), (0, 0)), constant_values=-1)
        elif cls.startswith("Cropping"):
            p = c.get("cropping", 1)
            if one_d:
                (t, b), (lft, r) = (0, 0), (tuple(p) if isinstance(p, (list, tuple)) else (p, p))
            else:
                (t, b), (lft, r) = (tuple(p[0]) if isinstance(p[0], (list, tuple)) else (p[0], p[0])), (tuple(p[1]) if isinstance(p[1], (list, tuple)) else (p[1], p[1]))
            out = grid[t : H - b, lft : W - r]
        elif cls.startswith("UpSampling"):
            if str(c.get("interpolation", "nearest")) != "nearest":
                self.fail(layer, "only nearest-neighbour upsampling is supported")
            size = c.get("size", 2)
            fy, fx = (1, int(size if not isinstance(size, (list, tuple)) else size[0])) if one_d else self._pair(size, False)
            out = grid.repeat(fy, axis=0).repeat(fx, axis=1)
        else:  # Permute: dims are 1-based over (H, W, C) without the batch
            dims = [int(d) - 1 for d in c["dims"]]
            if len(dims) == 2:
                dims = [0] + [d + 1 for d in dims]
            out = grid.transpose(dims)
        self.cur = self.b.gather(name, self.cur, out.ravel(), out.shape, attrs={"source": cls})

    def quantize_params(self, layer, kernel, bias, quantized, layer_type):
        """Weights and bias as mantissas: ``(weights, weight frac, bias at the output grid, accum, shift)``.

        Quantized layers use their own quantizers and exact sums; float layers use the configured
        types with hls4ml's arithmetic (:mod:`._precision`).
        """
        c = layer["config"]
        name = c["name"]
        in_frac = self.graph.tensors[self.cur].type.frac
        try:
            if quantized and self.proxy and layer["class_name"] in ("Dense", "Conv1D", "Conv2D"):
                # A proxy model stores its weights already quantized: take their exact values.
                k = np.asarray(kernel, dtype=np.float64)
                wfrac = max([precision.dyadic_frac(v) for v in k.ravel()] + [0])
                wm = np.array([int(v * 2.0**wfrac) for v in k.ravel()], dtype=np.int64).reshape(k.shape)
                fw = precision.exact_weights(wm, wfrac, bias, in_frac)
            elif quantized:
                if not c.get("kernel_quantizer") and not c.get("depthwise_quantizer"):
                    self.fail(layer, "a quantized layer without kernel_quantizer is not supported")
                wm, wfrac = qkeras_weights(c.get("kernel_quantizer") or c.get("depthwise_quantizer"), kernel, name)
                if c.get("bias_quantizer"):
                    btype, _ = quantizer_type(c.get("bias_quantizer"), name)
                    fw = precision.typed_weights(wm, wfrac, btype.quantize(bias), btype.frac, in_frac)
                else:
                    fw = precision.exact_weights(wm, wfrac, bias, in_frac)
            else:
                fw = self.types.float_weights(name, layer_type, kernel, bias, in_frac)
        except ValueError as e:
            self.fail(layer, str(e))
        # What the configured types change against the float layer, for the reported error bound.
        self.weight_error = None if fw.weight_error is None else (fw.weight_error, fw.bias_error)
        self.b.errors.out_of_range[name] = fw.out_of_range
        return fw.weight, fw.wfrac, fw.bias, fw.accum, fw.shift

    def after_weights_layer(self, name, quantized, layer_type):
        if quantized:
            self.float_layer = None
            rtype = self.types.explicit_result(name, layer_type)
            if rtype is not None:
                self.cur = self.b.requant(name + "_result", self.cur, rtype)
            return
        result = self.types.result_type(name, layer_type, self.graph.tensors[self.cur].type, self.graph.notes)
        if result is not None:
            self.cur = self.b.requant(name + "_result", self.cur, result, attrs={"source": "config"})
        self.float_layer = name

    def fixed_point_quantizer(self, layer):
        """HGQ (v1) proxy quantizer: every lane ``fixed<bits, integers>`` (``ufixed`` where it
        keeps no sign; pruned where it has no bits) with the layer's rounding and overflow."""
        c = layer["config"]
        name = c["name"]
        rounding, overflow = str(c.get("RND", "TRN")).upper(), str(c.get("SAT", "WRAP")).upper()
        xt = self.graph.tensors[self.cur]
        try:
            k, b, i = (np.broadcast_to(self.weight(layer, key, n), (1, xt.size)).ravel() for n, key in enumerate(("keep_negative", "bits", "integers")))
        except ValueError:
            self.fail(layer, f"its quantizer arrays do not fit the input {xt.shape}")
        lanes = [None if int(bb) <= 0 else str(FixedType(int(bb), int(ii), bool(kk), rounding, overflow)) for kk, bb, ii in zip(k, b, i)]
        try:
            self.cur = self.b.requant_lanes(name, self.cur, lanes, attrs={"source": "FixedPointQuantizer"})
        except Exception as e:  # a mode FixedType does not know
            self.fail(layer, str(e))

    def hgq_requant(self, layer, which, what):
        """The current tensor through an HGQ2 quantizer of the layer: every lane its own type
        (quantizer arrays are per lane, or broadcast over positions and channels)."""
        c = layer["config"]
        if which == "iq" and not c.get("enable_iq", True):
            return
        xt = self.graph.tensors[self.cur]
        k, i, f, rounding, overflow = hgq.quantizer_kif(layer, self.weights(c["name"]), which)
        shape = (1, *xt.shape) if len(xt.shape) > 1 else (1, xt.size)
        try:
            arrays = [np.broadcast_to(a.reshape(a.shape[-len(shape):]) if a.ndim > len(shape) else a, shape).reshape(1, -1) for a in (k, i, f)]
        except ValueError:
            self.fail(layer, f"its {what} has shape {k.shape}, which does not fit the input {xt.shape}")
        lanes = hgq.lane_types(*arrays, rounding, overflow)
        self.cur = self.b.requant_lanes(f"{c['name']}_{which}", self.cur, lanes, attrs={"source": f"{layer['class_name']} {what}"})

    def hgq_weights(self, layer, kernel, bias):
        """HGQ2 per-weight and per-bias quantizers: mantissas on the finest grid either needs."""
        name = layer["config"]["name"]
        ws = self.weights(name)
        qk = hgq.quantize(kernel, *hgq.quantizer_kif(layer, ws, "kq"))
        use_bias = layer["config"].get("use_bias", True)
        qb = hgq.quantize(bias, *hgq.quantizer_kif(layer, ws, "bq")) if use_bias else np.zeros(np.shape(bias))
        xt = self.graph.tensors[self.cur]
        wfrac = max([precision.dyadic_frac(v) for v in qk.ravel()] + [0])
        bfrac = max([precision.dyadic_frac(v) for v in qb.ravel()] + [0])
        wfrac = max(wfrac, bfrac - xt.type.frac)
        out_frac = xt.type.frac + wfrac
        wm = np.array([int(round(v * 2.0**wfrac)) for v in qk.ravel()], dtype=np.int64).reshape(qk.shape)
        bm = np.array([int(round(v * 2.0**out_frac)) for v in qb.ravel()], dtype=np.int64)
        return wm, wfrac, bm

    def hgq_dense(self, layer):
        """HGQ2 QDense / QBatchNormDense: per-feature input quantizer, per-weight and per-bias types."""
        cls, c = layer["class_name"], layer["config"]
        name = c["name"]
        ws = self.weights(name)
        own = [a for n, a in ws if n is None]
        diagonal = cls == "QBatchNormalization"

        def w(key, index):  # named variables (Keras 3 .h5) or by creation order (.keras)
            return self.weight(layer, key, index).astype(np.float32)

        if diagonal:
            # y = iq(x) * kq(scale) + bq(offset): a dense layer whose weights sit on the diagonal.
            gamma, beta, mean, var = (a.astype(np.float32) for a in own[:4])
            scale = gamma / np.sqrt(var + np.float32(c.get("epsilon", 1e-3)))
            kernel, bias = scale, beta - mean * scale
        else:
            kernel, bias = w("kernel", 0), w("bias", 1)
        if cls in ("QEinsumDense", "QEinsumDenseBatchnorm"):
            eq = str(c.get("equation", "")).replace(" ", "")
            lhs, _, out = eq.partition("->")
            xa, _, ka = lhs.partition(",")
            if not (len(xa) == 2 and len(ka) == 2 and xa[1] == ka[0] and out == xa[0] + ka[1] and xa[0] not in ka):
                self.fail(layer, f"einsum equation {eq!r} is not supported; the dense form (e.g. 'bc,cC->bC') is")
            if c.get("bias_axes") in (None, ""):
                bias = np.zeros(kernel.shape[-1], dtype=np.float32)
        if cls == "QBatchNormDense":
            # As hgq folds at inference, in float32: W * gamma/sqrt(var+eps), b - mean @ W.
            gamma, mean, var = w("bn_gamma", 2), w("moving_mean", 5), w("moving_variance", 6)
            scaler = gamma / np.sqrt(var + np.float32(c.get("epsilon", 1e-3)))
            bias = bias + (-(mean @ kernel))
            kernel = scaler[:, None] * kernel
        if cls == "QEinsumDenseBatchnorm":
            # Normalized over the output axis, with Keras's own epsilon (1e-7) as hgq computes it.
            gamma = w("gamma", 2) if c.get("scale", True) else np.float32(1)
            mean, var = w("moving_mean", 5), w("moving_variance", 6)
            scaler = gamma / np.sqrt(var + np.float32(1e-7))
            kernel = kernel * scaler[None, :]
            bias = bias + (-mean * scaler)
        self.hgq_requant(layer, "iq", "input quantizer")
        qk = hgq.quantize(kernel, *hgq.quantizer_kif(layer, ws, "kq"))
        use_bias = c.get("use_bias", True) if not diagonal else c.get("center", True) or True
        qb = hgq.quantize(bias, *hgq.quantizer_kif(layer, ws, "bq")) if use_bias else np.zeros(kernel.shape[-1])
        if diagonal:
            qk = np.diag(qk)
        xt = self.graph.tensors[self.cur]
        wfrac = max([precision.dyadic_frac(v) for v in qk.ravel()] + [0])
        bfrac = max([precision.dyadic_frac(v) for v in qb.ravel()] + [0])
        wfrac = max(wfrac, bfrac - xt.type.frac)
        out_frac = xt.type.frac + wfrac
        wm = np.array([int(v * 2.0**wfrac) for v in qk.ravel()], dtype=np.int64).reshape(qk.shape)
        bm = np.array([int(v * 2.0**out_frac) for v in qb], dtype=np.int64)
        attrs = {"source": f"HGQ2 {cls}", "float_weights": False}
        if diagonal and len(xt.shape) == 3:
            # On images a batch normalization scales each channel: a depthwise 1x1 convolution.
            from rtlgen.ir.ops.spatial import Conv

            op = Conv(np.diagonal(wm).reshape(1, 1, -1, 1), bm if np.any(bm) else None, (1, 1), ((0, 0), (0, 0)), (1, 1), True)
            self.cur = self.b.conv(name, self.cur, op, wfrac, attrs=attrs)
        else:
            self.cur = self.b.dense(name, self.cur, wm, wfrac, bm, attrs=attrs)
        self.float_layer = None

    def next_layer(self, layer):
        idx = next(i for i, other in enumerate(self.layers) if other is layer)
        return self.layers[idx + 1] if idx + 1 < len(self.layers) else None

    def batchnorm(self, layer):
        """A BatchNormalization that follows no float Dense or convolution: a per-channel scale
        and shift with its own ``scale``/``bias``/``result`` types."""
        c = layer["config"]
        name = c["name"]
        xt = self.graph.tensors[self.cur]
        axis = c.get("axis", -1)
        axis = axis[0] if isinstance(axis, list) and len(axis) == 1 else axis
        if axis not in (-1, len(xt.shape)):
            self.fail(layer, f"normalizing axis {axis} is not supported; only the channel (last) axis is")
        channels = xt.shape[-1]
        scale, shift = self.fold_batchnorm(layer, np.ones((1, channels)), np.zeros(channels))
        try:
            self.cur = self.types.scale_shift(self.b, name, self.cur, scale.reshape(-1), shift, source="BatchNormalization")
        except ValueError as e:
            self.fail(layer, str(e))
        self.float_layer = name

    def fold_batchnorm(self, bn, kernel, bias):
        c = bn["config"]
        eps = float(c.get("epsilon", 1e-3))
        ws = self.weights(c["name"])
        names = [n for n, _ in ws]
        arrays = dict(ws) if all(names) else None
        k = kernel.shape[1]
        order = [n for n, on in (("gamma", c.get("scale", True)), ("beta", c.get("center", True))) if on] + ["moving_mean", "moving_variance"]
        if arrays is None:
            arrays = {n: a for n, (_, a) in zip(order, ws)}
        gamma = arrays.get("gamma", np.ones(k)).astype(np.float64)
        beta = arrays.get("beta", np.zeros(k)).astype(np.float64)
        inv = gamma / np.sqrt(arrays["moving_variance"].astype(np.float64) + eps)
        return kernel * inv, (bias - arrays["moving_mean"]) * inv + beta

    def fold_qkeras_batchnorm(self, layer, kernel, bias):
        """QDenseBatchnorm at inference: fold the moving statistics, then quantize (float32, as QKeras)."""
        c = layer["config"]
        eps = np.float32(c.get("epsilon", 1e-3))
        get = lambda n, i: self.weight(layer, n, i).astype(np.float32)  # noqa: E731
        gamma, beta = get("gamma", 2), get("beta", 3)
        mean, var = get("moving_mean", 5), get("moving_variance", 6)
        inv = gamma * (np.float32(1) / np.sqrt(var + eps))
        k32 = kernel.astype(np.float32) * inv
        b32 = (bias.astype(np.float32) - mean) * inv + beta
        return k32.astype(np.float64), b32.astype(np.float64)

    # -- activations ------------------------------------------------------------------------------

    def activation(self, layer, act, name, last):
        if getattr(self, "skip", None) == name:
            return
        cls = layer["class_name"]
        if isinstance(act, dict) or (isinstance(act, str) and "(" in act) or cls == "QActivation":
            qname, _ = parse_quantizer(act)
            if qname in ("quantized_relu", "quantized_bits"):
                t, _ = quantizer_type(act, name)
                if qname == "quantized_relu":
                    self.cur = self.b.relu(name + "_relu", self.cur, attrs={"source": cls})
                self.cur = self.b.requant(name, self.cur, t, attrs={"source": f"{cls} {qname}"})
                return
            if qname in ("binary", "ternary"):
                self.sign_activation(layer, name, act)
                return
            if qname in ("relu", "linear", "softmax") or qname in FUNCTIONS:
                act = qname
            else:
                self.fail(layer, f"activation {qname!r} is not supported yet; supported are quantized_relu, quantized_bits, binary, ternary, relu, linear")
        if act in (None, "linear"):
            return
        if act in LEGACY_SIGN:
            return self.legacy_sign(layer, act, name)
        if act == "relu":
            float_input = self.float_layer is not None
            relu_name = name + "_relu" if (cls in DENSE or cls in CONV or is_hgq(layer)) else name
            self.cur = self.b.relu(relu_name, self.cur, attrs={"source": "relu"})
            if float_input:
                # hls4ml's ReLU casts to its own result type (the model default unless configured).
                rtype = self.types.relu_type(relu_name)
                if rtype is not None:
                    self.cur = self.b.requant(relu_name + "_result", self.cur, rtype, attrs={"source": "config"})
            return
        if act == "softmax":
            if self.skip_softmax:
                if not last:
                    self.fail(layer, "only a final softmax can be skipped")
                self.graph.notes.append(f"softmax of {name!r} skipped: outputs are the logits before it")
                return
            sm_name = name + "_softmax" if (cls in DENSE or cls in CONV) else name
            try:
                self.cur = build_softmax(self.b, self.types, sm_name, self.cur, source=cls)
            except ValueError as e:
                self.fail(layer, str(e))
            self.float_layer = None
            return
        if act in FUNCTIONS:
            self.apply_function(layer, act, {})
            return
        self.fail(layer, f"activation {act!r} is not supported; supported are linear, softmax, {', '.join(FUNCTIONS)} and QKeras quantized_relu/quantized_bits")

    def sign_activation(self, layer, name, spec):
        """QKeras ``binary``/``ternary`` as activations: exact thresholds on the input mantissas.

        binary: ``alpha`` for x >= 0, else ``-alpha`` (0 with ``use_01``); ternary: ``alpha * sign(x)``
        where ``|x| >= threshold`` (compared in float32, as QKeras does), else 0.
        """
        from fractions import Fraction

        qname, kw = parse_quantizer(spec)
        kw = _kwargs(qname, kw)
        if kw.get("use_stochastic_rounding"):
            self.fail(layer, f"{qname} with stochastic rounding has no deterministic hardware equivalent")
        if kw.get("alpha") is None:
            self.fail(layer, f"{qname} without alpha first applies tanh, which QKeras then rounds in float32; use alpha=1 or another power of two")
        alpha = _pow2_alpha(kw.get("alpha"), name, qname)
        xt = self.graph.tensors[self.cur]
        if xt.scale != 1.0:
            self.fail(layer, "its input has a scale that is not a power of two")
        f = xt.type.frac
        out_frac = -(math.frexp(alpha)[1] - 1)
        if qname == "binary":
            use_01 = bool(kw.get("use_01"))
            thresholds, base, step = [0], (0 if use_01 else -1), (1 if use_01 else 2)
        else:
            t = Fraction(float(np.float32(0.33 if kw.get("threshold") is None else kw["threshold"])))
            if t < 0:
                self.fail(layer, f"ternary threshold {float(t)} must not be negative")
            # -1 up to x <= -t (x < 0 when t = 0), +1 from x >= t (x > 0 when t = 0).
            th1 = math.floor(-t * 2**f) + 1 if t > 0 else 0
            th2 = math.ceil(t * 2**f) if t > 0 else 1
            thresholds, base, step = [th1, th2], -1, 1
        self.cur = self.b.threshold(name, self.cur, thresholds, base=base, step=step, frac=out_frac, attrs={"source": f"{layer['class_name']} {qname}"})
        self.float_layer = None

    def apply_function(self, layer, function, params):
        cls, name = layer["class_name"], layer["config"]["name"]
        act_name = name + "_" + function if (cls in DENSE or cls in CONV or is_hgq(layer)) else name
        if function == "hard_sigmoid":
            # Keras 3 computes relu6(x + 3) / 6; Keras 2 (and hls4ml) clip(0.2 x + 0.5, 0, 1).
            params = {"variant": "keras3" if "module" in self.km.config else "keras2", **params}
        self.cur = build_activation(self.b, self.types, act_name, self.cur, function, params, source=cls)
        self.float_layer = None

    def activation_layer(self, layer):
        """Keras activation layers with parameters: LeakyReLU, PReLU, ELU, ThresholdedReLU, ReLU, Softmax."""
        cls, c = layer["class_name"], layer["config"]
        name = c["name"]
        if cls == "LeakyReLU":
            self.apply_function(layer, "leaky_relu", {"alpha": float(c.get("negative_slope", c.get("alpha", 0.3)))})
        elif cls == "PReLU":
            alpha = np.asarray(self.weight(layer, "alpha", 0), dtype=np.float64)
            shape = self.graph.tensors[self.cur].shape
            # Keras keeps one alpha per input element (size-1 axes where shared).
            self.apply_function(layer, "prelu", {"alpha": np.broadcast_to(alpha.reshape(alpha.shape[-len(shape):]) if alpha.ndim >= len(shape) else alpha, shape)})
        elif cls == "ELU":
            self.apply_function(layer, "elu", {"alpha": float(c.get("alpha", 1.0))})
        elif cls == "ThresholdedReLU":
            self.apply_function(layer, "thresholded_relu", {"theta": float(c.get("theta", 1.0))})
        elif cls == "ReLU":
            params = {"max_value": c.get("max_value"), "negative_slope": float(c.get("negative_slope") or 0.0), "threshold": float(c.get("threshold") or 0.0)}
            if params["max_value"] is None and not params["negative_slope"] and not params["threshold"]:
                self.activation(layer, "relu", name, False)
            else:
                self.apply_function(layer, "relu", params)
        elif cls == "Softmax":
            self.activation(layer, "softmax", name, self.next_layer(layer) is None)


    # -- legacy binary / ternary layers -----------------------------------------------------------

    def legacy_dense(self, layer):
        """``BinaryDense`` / ``TernaryDense`` (BinaryNet-style Keras layers) as hls4ml reads them.

        Weights become +-1 (binary: ``w > 0``, as the layer's own ``binary_tanh`` of the kernel) or
        -1/0/+1 (ternary: ``w > 0.5`` / ``w <= -0.5``), times ``H``; the sum is exact, so on +-1
        inputs it is an XNOR-popcount. A following BatchNormalization and ``binary_tanh`` /
        ``ternary_tanh`` become per-channel thresholds on the accumulator (:meth:`legacy_sign`)."""
        cls, c = layer["class_name"], layer["config"]
        name = c["name"]
        if c.get("use_bias", True):
            self.fail(layer, "a bias is not supported (hls4ml binarizes it, the Keras layer adds it in float); train with use_bias=False and a BatchNormalization after the layer")
        kernel = np.asarray(self.weight(layer, "kernel", 0), dtype=np.float32)
        xt = self.graph.tensors[self.cur]
        if len(xt.shape) != 1 or kernel.ndim != 2 or kernel.shape[0] != xt.size:
            self.fail(layer, f"kernel of shape {kernel.shape} does not match an input of shape {xt.shape}")
        h = float(c.get("H", 1.0))
        hfrac = precision.dyadic_frac(h) if h > 0 else None
        if hfrac is None or not math.log2(h).is_integer():
            self.fail(layer, f"H={h} must be a power of two for exact weights")
        k = kernel / np.float32(h)
        unit = np.where(k > 0, 1, -1) if cls == "BinaryDense" else np.where(k > 0.5, 1, np.where(k <= -0.5, -1, 0))
        wfrac = max(-int(math.log2(h)), 0)
        wm = (unit * int(round(h * 2**wfrac))).astype(np.int64)
        fw = precision.exact_weights(wm, wfrac, np.zeros(kernel.shape[1]), xt.type.frac)
        self.cur = self.b.dense(name, self.cur, fw.weight, fw.wfrac, fw.bias, accum=fw.accum, product_shift=fw.shift, attrs={"source": cls})
        self.after_weights_layer(name, True, "Dense")
        bn = self.next_layer(layer)
        act = self.next_layer(bn) if bn is not None and bn["class_name"] == "BatchNormalization" else None
        if act is not None and act["class_name"] == "Activation" and act["config"].get("activation") in LEGACY_SIGN:
            self.skip = bn["config"]["name"]
            self.legacy_bn = bn

    def legacy_sign(self, layer, act, name):
        """``binary_tanh`` (``2 round(clip(x/2 + 1/2, 0, 1)) - 1``: +-1) or ``ternary_tanh`` (+1 above
        0.5, -1 at or below -0.5, else 0) as exact per-channel thresholds on the input mantissas,
        found by evaluating the function, after the pending BatchNormalization if any, in float32
        as Keras computes it (the function is monotonic in the input)."""
        xt = self.graph.tensors[self.cur]
        if xt.scale != 1.0:
            self.fail(layer, "its input has a scale that is not a power of two")
        n = xt.size
        scale, shift = np.ones(n, np.float32), np.zeros(n, np.float32)
        bn = getattr(self, "legacy_bn", None)
        if bn is not None:
            self.legacy_bn = None
            scale, shift = self.keras_bn_float32(bn, n)
        step = np.float32(2.0**-xt.type.frac)

        def level(m):  # (n,) mantissas -> number of thresholds passed (0..levels)
            y = np.asarray(m, np.float64).astype(np.float32) * step * scale + shift
            if act == "binary_tanh":
                return (np.round(np.clip(np.float32(0.5) * y + np.float32(0.5), 0, 1)) > 0).astype(np.int64)
            y = np.clip(y, -1, 1)
            return (y > np.float32(-0.5)).astype(np.int64) + (y > np.float32(0.5))

        levels = 1 if act == "binary_tanh" else 2
        lo, hi = xt.type.min_mantissa, xt.type.max_mantissa
        increasing = ~(scale < 0)
        thresholds = np.zeros((n, levels), dtype=np.int64)
        for k in range(levels):
            # Increasing lanes: the least m that passes level k (hi + 1: never); decreasing lanes:
            # the greatest (lo - 1: never). Bisection on the monotonic float32 function.
            a = np.full(n, lo, dtype=np.int64)
            b = np.full(n, hi + 1, dtype=np.int64)
            while np.any(b - a > 0):
                mid = (a + b) // 2
                passed = level(mid) > k
                go_left = np.where(increasing, passed, ~passed)
                b = np.where((b > a) & go_left, mid, b)
                a = np.where((b > a) & ~go_left, mid + 1, a)
            # a: first m where an increasing lane passes / a decreasing lane stops passing.
            thresholds[:, k] = np.where(increasing, a, a - 1)
        out_base, out_step = (-1, 2) if act == "binary_tanh" else (-1, 1)
        from rtlgen.ir import Threshold

        node_name = name
        self.cur = self.b.threshold(node_name, self.cur, [0] * levels, base=out_base, step=out_step, frac=0, attrs={"source": f"{layer['class_name']} {act}"})
        node = self.graph.nodes[-1]
        node.op = Threshold(thresholds, increasing.astype(bool), out_base, out_step)
        self.float_layer = None

    def keras_bn_float32(self, bn, n):
        """A BatchNormalization's inference as Keras computes it in float32: ``x * inv + (beta - mean * inv)``
        with ``inv = gamma / sqrt(variance + epsilon)``; returns ``(inv, beta - mean * inv)``."""
        c = bn["config"]
        ws = self.weights(c["name"])
        names = [w for w, _ in ws]
        order = [w for w, on in (("gamma", c.get("scale", True)), ("beta", c.get("center", True))) if on] + ["moving_mean", "moving_variance"]
        arrays = dict(ws) if all(names) else {w: a for w, (_, a) in zip(order, ws)}
        f32 = lambda key, default: np.asarray(arrays.get(key, np.full(n, default)), np.float32).reshape(-1)  # noqa: E731
        eps = np.float32(c.get("epsilon", 1e-3))
        inv = (np.float32(1) / np.sqrt(f32("moving_variance", 1) + eps)) * f32("gamma", 1)
        return inv, f32("beta", 0) - f32("moving_mean", 0) * inv

