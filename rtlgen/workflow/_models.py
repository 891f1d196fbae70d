"""Networks described by a short layer list, as float Keras models; HGQ2 quantizer scopes.

A layer list is what a workflow spec writes under ``teacher.layers`` and ``student.layers``::

    [{dense: 15}]                                     # Dense 15 + ReLU
    [{conv2d: 8, kernel: 3, bn: true}, {maxpool: 4}, {flatten: true}]
    [{dense: 64, bn: true}, {dropout: 0.1}]

Hidden layers take a ReLU; the output layer (Dense to the number of classes) is added and gives
logits (no softmax: distillation and the hardware both work on logits). A float model and its
HGQ2 copy name their layers alike, so weights move between them by name.
"""

from __future__ import annotations

from ..errors import ConfigError

__all__ = ["LAYER_KINDS", "check_layers", "build", "copy_weights", "parameters", "quant_scopes"]

LAYER_KINDS = ("dense", "conv1d", "conv2d", "maxpool", "flatten", "dropout")
_OPTIONS = {"dense": {"bn"}, "conv1d": {"kernel", "bn", "padding"}, "conv2d": {"kernel", "bn", "padding"},
            "maxpool": set(), "flatten": set(), "dropout": set()}  # fmt: skip


def check_layers(where: str, layers) -> list[dict]:
    """Validate a layer list; return it with one kind per entry."""
    if not isinstance(layers, list) or not layers:
        raise ConfigError(f"workflow spec key '{where}' must be a non-empty list of layers, e.g. [{{dense: 15}}]")
    out = []
    for i, layer in enumerate(layers):
        kinds = [k for k in (layer or {}) if k in LAYER_KINDS] if isinstance(layer, dict) else []
        if len(kinds) != 1:
            raise ConfigError(f"workflow spec key '{where}[{i}]' must name one layer kind of {', '.join(LAYER_KINDS)}, not {layer!r}")
        kind = kinds[0]
        extra = set(layer) - {kind} - _OPTIONS[kind]
        if extra:
            raise ConfigError(f"workflow spec key '{where}[{i}]' ({kind}) has unknown option(s) {', '.join(sorted(extra))}; "
                              f"allowed: {', '.join(sorted(_OPTIONS[kind])) or 'none'}")  # fmt: skip
        v = layer[kind]
        if kind in ("dense", "conv1d", "conv2d", "maxpool") and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
            raise ConfigError(f"workflow spec key '{where}[{i}].{kind}' must be a positive integer, not {v!r}")
        if kind == "dropout" and not (isinstance(v, (int, float)) and 0 <= v < 1):
            raise ConfigError(f"workflow spec key '{where}[{i}].dropout' must be a rate in [0, 1), not {v!r}")
        out.append({"kind": kind, "value": v, **{k: layer[k] for k in layer if k != kind}})
    return out


def build(layers: list[dict], input_shape, classes: int, *, name: str):
    """The float Keras model of ``layers`` (from :func:`check_layers`) on ``input_shape`` with a
    ``classes``-wide logit output (:func:`rtlgen.workflow.to_hgq` makes its HGQ2 copy)."""
    import keras

    x = inp = keras.Input(tuple(input_shape), name="x")
    for i, layer in enumerate(layers):
        kind, v = layer["kind"], layer["value"]
        tag = f"{kind}{i}"
        if kind in ("dense", "conv1d", "conv2d"):
            if kind == "dense":
                x = keras.layers.Dense(v, name=tag)(x)
            else:
                cls = getattr(keras.layers, f"Conv{kind[-2:].upper()}")
                x = cls(v, layer.get("kernel", 3), padding=layer.get("padding", "same"), name=tag)(x)
            if layer.get("bn", False):
                x = keras.layers.BatchNormalization(name=f"bn{i}")(x)
            x = keras.layers.ReLU(name=f"relu{i}")(x)
        elif kind == "maxpool":
            x = getattr(keras.layers, f"MaxPooling{len(x.shape) - 2}D")(v, name=tag)(x)
        elif kind == "flatten":
            x = keras.layers.Flatten(name=tag)(x)
        elif kind == "dropout":
            x = keras.layers.Dropout(v, name=tag)(x)
    if len(x.shape) > 2:
        x = keras.layers.Flatten(name="flatten_out")(x)
    out = keras.layers.Dense(classes, name="logits")(x)
    return keras.Model(inp, out, name=name)


def quant_scopes(quant: dict) -> list:
    """HGQ2 configuration scopes: ``hgq`` trains a width per weight and per activation lane
    (``beta`` weighs the resource term, EBOPs); ``uniform`` fixes every weight and bias to
    ``bits`` (sign included, ``weight_integers`` integer bits) and every activation to
    ``activation_bits`` with ``activation_integers`` integer bits (saturating)."""
    from hgq.config import LayerConfigScope, QuantizerConfigScope

    if quant["mode"] == "hgq":
        return [
            QuantizerConfigScope(place="all", default_q_type="kbi", overflow_mode="SAT_SYM", b0=quant["bits"] - 1),
            QuantizerConfigScope(place="datalane", default_q_type="kif", overflow_mode="WRAP"),
            LayerConfigScope(enable_ebops=True, beta0=quant["beta"]),
        ]
    w = {"default_q_type": "kbi", "overflow_mode": "SAT_SYM", "heterogeneous_axis": (), "trainable": False,
         "b0": quant["bits"] - 1, "i0": quant["weight_integers"]}  # fmt: skip
    a = {"default_q_type": "kif", "overflow_mode": "SAT", "heterogeneous_axis": (), "trainable": False,
         "i0": quant["activation_integers"], "f0": quant["activation_bits"] - 1 - quant["activation_integers"]}  # fmt: skip
    return [QuantizerConfigScope(place="weight", **w), QuantizerConfigScope(place="bias", **w),
            QuantizerConfigScope(place="datalane", **a), LayerConfigScope(enable_ebops=False)]  # fmt: skip


def copy_weights(src, dst) -> None:
    """Copy the parameters (kernels, biases, batch-norm statistics) of ``src`` into the layers of
    the same name in ``dst`` (float to HGQ2 or back); quantizer variables keep their own values."""
    for layer in dst.layers:
        try:
            s = src.get_layer(layer.name)
        except ValueError:
            continue
        for attr in ("kernel", "bias"):
            if getattr(s, attr, None) is not None and getattr(layer, attr, None) is not None:
                getattr(layer, attr).assign(getattr(s, attr).numpy())
        for attr in ("gamma", "beta", "moving_mean", "moving_variance"):
            sv, dv = _bn_var(s, attr), _bn_var(layer, attr)
            if sv is not None and dv is not None:
                dv.assign(sv.numpy())


def _bn_var(layer, attr):
    """A batch-norm variable: HGQ2 names gamma and beta ``bn_gamma``/``bn_beta``."""
    import keras

    if not isinstance(layer, keras.layers.BatchNormalization) and "BatchNormalization" not in type(layer).__name__:
        return None
    v = getattr(layer, f"bn_{attr}", None) if attr in ("gamma", "beta") else None
    v = v if v is not None else getattr(layer, attr, None)
    return v if hasattr(v, "assign") else None


def parameters(model) -> list:
    """``(layer, name, variable)`` for every parameter of ``model``: kernels, biases and batch-norm
    gamma, beta, mean and variance (what Keras's ``count_params`` counts on the float model)."""
    out = []
    for layer in model.layers:
        for attr in ("kernel", "bias"):
            v = getattr(layer, attr, None)
            if v is not None and hasattr(v, "assign"):
                out.append((layer, attr, v))
        for attr in ("gamma", "beta", "moving_mean", "moving_variance"):
            v = _bn_var(layer, attr)
            if v is not None:
                out.append((layer, attr, v))
    return out
