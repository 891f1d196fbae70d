"""``config_from_*_model``: hls4ml's configuration dictionaries for a model, in hls4ml's layout.

``Model`` holds ``Precision: {default: ...}``, ``ReuseFactor``, ``Strategy``, ``BramFactor`` and
``TraceOutput``; granularity ``type`` adds ``LayerType`` and ``name`` adds ``LayerName`` entries
with ``Trace`` and ``Precision`` (``auto``: the type the model's quantizers or hls4ml's
arithmetic give). rtlgen reads the dictionary as it is (:mod:`rtlgen.config`).
"""

from __future__ import annotations

import logging

from rtlgen.errors import ConfigError
from rtlgen.fixed import FixedType

__all__ = ["config_from_keras_model", "config_from_onnx_model", "config_from_pytorch_model"]

log = logging.getLogger(__name__)

# Keras layers hls4ml drops (they compute nothing at inference) or folds away.
_SKIPPED = ("Dropout", "SpatialDropout1D", "SpatialDropout2D", "GaussianNoise", "GaussianDropout", "ActivityRegularization")
# Layers with weights: their Precision has weight and bias too.
_WEIGHTED = ("Dense", "Conv", "BatchNorm", "QDense", "QConv", "Depthwise", "Separable", "Einsum", "PReLU")


def _precision(default_precision) -> str:
    try:
        return str(FixedType.parse(str(default_precision)))
    except (ValueError, ConfigError) as e:
        raise ConfigError(f"default_precision {default_precision!r} is not a fixed-point type: {e}") from None


def _model_level(default_precision, default_reuse_factor, max_precision) -> dict:
    if not isinstance(default_reuse_factor, int) or default_reuse_factor < 1:
        raise ConfigError(f"default_reuse_factor must be a positive integer, not {default_reuse_factor!r}")
    precision = {"default": _precision(default_precision)}
    if max_precision is not None:
        precision["maximum"] = _precision(max_precision)
    return {"Precision": precision, "ReuseFactor": default_reuse_factor, "Strategy": "Latency", "BramFactor": 1000000000, "TraceOutput": False}


def _entry(cls: str) -> dict:
    precision = {"result": "auto"}
    if any(cls.startswith(w) or w in cls for w in _WEIGHTED):
        precision.update(weight="auto", bias="auto")
    return {"Trace": False, "Precision": precision}


def _config(layers: list[tuple[str, str]], granularity, model_level) -> dict:
    if granularity not in ("model", "type", "name"):
        raise ConfigError(f"granularity must be one of model, type, name, not {granularity!r}")
    config = {"Model": model_level}
    if granularity == "type":
        config["LayerType"] = {cls: _entry(cls) for _, cls in layers}
    elif granularity == "name":
        config["LayerName"] = {name: _entry(cls) for name, cls in layers}
    return config


def _ignore_backend(backend):
    if backend is not None:
        log.warning("backend=%r has no meaning for rtlgen (it writes Verilog for any part) and is ignored", backend)


def _keras_layers(model) -> list[tuple[str, str]]:
    from rtlgen.importers._keras_files import read_keras

    cfg = read_keras(model, None).config.get("config", {})
    layers = cfg["layers"] if isinstance(cfg, dict) else cfg
    out = []
    for layer in layers:
        cls = str(layer.get("class_name", "")).rsplit(">", 1)[-1]
        name = layer.get("config", {}).get("name", "")
        if cls in _SKIPPED:
            continue
        if cls == "Activation" and layer["config"].get("activation") == "softmax":
            cls = "Softmax"
        if not out and cls != "InputLayer":  # Keras 2 Sequential: the input is implicit (rtlgen calls it "input")
            out.append(("input", "InputLayer"))
        out.append((name, cls))
    return out


def config_from_keras_model(
    model, granularity="model", backend=None, default_precision="fixed<16,6>", default_reuse_factor=1, max_precision=None
) -> dict:
    """hls4ml's configuration for a Keras / QKeras / HGQ2 model (in memory or a file)."""
    _ignore_backend(backend)
    return _config(_keras_layers(model), granularity, _model_level(default_precision, default_reuse_factor, max_precision))


def _graph_layers(design) -> list[tuple[str, str]]:
    """Configurable layers of a converted graph: the source nodes its configuration keys name."""
    g = design.graph
    kinds = {}
    for n in g.nodes:
        kinds.setdefault(n.attrs.get("layer", n.name), n.kind)
    names = getattr(g, "source_names", None) or list(kinds)
    out = [(g.inputs[0], "InputLayer")]
    out += [(name, kinds[name]) for name in names if name in kinds and name != g.inputs[0]]
    return out


def config_from_onnx_model(
    model, granularity="name", backend=None, default_precision="fixed<16,6>", default_reuse_factor=1, max_precision=None
) -> dict:
    """hls4ml's configuration for an ONNX / QONNX model (path or ``onnx.ModelProto``), keyed by node names."""
    from rtlgen.design import convert

    _ignore_backend(backend)
    design = convert(model, {"Model": {"Precision": _precision(default_precision)}})
    return _config(_graph_layers(design), granularity, _model_level(default_precision, default_reuse_factor, max_precision))


def config_from_pytorch_model(
    model,
    input_shape,
    granularity="model",
    backend=None,
    default_precision="ap_fixed<16,6>",
    default_reuse_factor=1,
    channels_last_conversion="full",
    transpose_outputs=False,
    max_precision=None,
) -> dict:
    """hls4ml's configuration for a PyTorch (or Brevitas) module; ``input_shape`` without the batch.

    Layers are named as torch's ONNX exporter names their nodes (``/fc1/Gemm``). rtlgen always
    computes channels last and returns outputs in the module's layout, so ``channels_last_conversion``
    and ``transpose_outputs`` are ignored."""
    from rtlgen.design import convert

    _ignore_backend(backend)
    if channels_last_conversion != "full" or transpose_outputs:
        log.warning(
            "channels_last_conversion=%r and transpose_outputs=%r are ignored: rtlgen computes channels last "
            "and returns outputs in the module's own layout",
            channels_last_conversion,
            transpose_outputs,
        )
    shape = input_shape[0] if input_shape and isinstance(input_shape[0], (tuple, list)) else input_shape
    if shape and shape[0] is None:  # hls4ml's examples write (None, C, H, W)
        shape = shape[1:]
    design = convert(model, {"Model": {"Precision": _precision(default_precision)}}, input_shape=shape)
    config = _config(_graph_layers(design), granularity, _model_level(default_precision, default_reuse_factor, max_precision))
    config["InputShape"] = tuple(shape)
    return config
