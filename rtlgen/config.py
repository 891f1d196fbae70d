"""Build configuration in hls4ml's vocabulary.

Accepted shapes (YAML file or dict):

* ``{"Model": {...}, "LayerType": {...}, "LayerName": {...}, "IOType": "io_parallel"}``
* an hls4ml project YAML: the same under ``HLSConfig``, beside keys such as ``Backend`` or ``Part``
  that only concern hls4ml's own tool flow (accepted and listed in :attr:`Config.ignored`).

Keys per level: ``Precision`` (a type string, or a dict keyed by variable: ``default``, ``weight``,
``bias``, ``result``, ``accum``, ``input``), ``ReuseFactor``, ``Strategy``, ``Trace``, and rtlgen's own
``AdderLevels`` (adder levels between pipeline registers of fully parallel layers: fewer levels give
more cycles of latency and a faster clock). ``Strategy: Latency`` at reuse factor 1 builds
multiplier-free shift-add adder graphs; ``Strategy: Resource`` one DSP multiplier per weight (reuse
factor 1) or time-multiplexed DSP multipliers (reuse factor above 1).
Unknown keys and impossible values raise :class:`~rtlgen.errors.ConfigError` naming the key.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field

from .errors import ConfigError
from .fixed import FixedType, FixedTypeError

__all__ = ["Config", "load_config", "DEFAULT_PRECISION"]

DEFAULT_PRECISION = "fixed<16,6>"
STRATEGIES = ("latency", "resource", "stable", "argmax")
# Softmax variants (hls4ml's ``Implementation``, or ``Strategy`` on the softmax layer itself).
SOFTMAX_IMPLEMENTATIONS = ("stable", "latency", "argmax")
IO_TYPES = ("io_parallel", "io_stream")
PRECISION_VARS = (
    "default", "weight", "bias", "result", "accum", "input", "table", "maximum", "scale", "exp_table", "inv_table",
    "recurrent_weight", "recurrent_bias", "state", "cell",
)  # fmt: skip
LEVEL_KEYS = ("Precision", "ReuseFactor", "Strategy", "Implementation", "Trace", "TableSize", "AdderLevels")
# Older hls4ml configurations put type names beside Precision ("accum_t: ap_fixed<16,8>").
LEGACY_TYPE_KEYS = {"accum_t": "accum", "weight_t": "weight", "bias_t": "bias", "result_t": "result"}
# hls4ml keys that steer its HLS tool flow and mean nothing for rtlgen.
HLS4ML_FLOW_KEYS = (
    "Backend", "Part", "ClockPeriod", "ClockUncertainty", "OutputDir", "ProjectName", "KerasJson",
    "KerasH5", "KerasModel", "OnnxModel", "InputData", "OutputPredictions", "Version", "Board",
    "Stamp", "WriterConfig", "BramFactor", "TraceOutput", "Interface", "Namespace", "InputShapes",
    "OutputShapes", "BitExact", "ProjectDir",
)  # fmt: skip
TOP_KEYS = ("Model", "LayerType", "LayerName", "IOType", "HLSConfig") + HLS4ML_FLOW_KEYS


@dataclass
class Config:
    """Resolved configuration; query it per layer with :meth:`precision`, :meth:`reuse_factor`."""

    model: dict = field(default_factory=dict)
    layer_type: dict = field(default_factory=dict)
    layer_name: dict = field(default_factory=dict)
    io_type: str = "io_parallel"
    ignored: list = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: dict | None) -> Config:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(f"configuration must be a mapping with keys such as 'Model', not {type(data).__name__}")
        data = copy.deepcopy(data)
        ignored = []
        for key in data:
            if key not in TOP_KEYS:
                raise ConfigError(
                    f"configuration key {key!r} is unknown; expected one of Model, LayerType, LayerName, IOType"
                )
            if key in HLS4ML_FLOW_KEYS:
                ignored.append(key)
        hls = data.pop("HLSConfig", None)
        if hls is not None:
            if not isinstance(hls, dict):
                raise ConfigError("configuration key 'HLSConfig' must be a mapping")
            for key in hls:
                if key not in ("Model", "LayerType", "LayerName") + HLS4ML_FLOW_KEYS:
                    raise ConfigError(
                        f"configuration key 'HLSConfig.{key}' is unknown; expected Model, LayerType or LayerName"
                    )
                if key in HLS4ML_FLOW_KEYS:
                    ignored.append(f"HLSConfig.{key}")
                data.setdefault(key, hls[key])
        cfg = cls(
            model=data.get("Model") or {},
            layer_type=data.get("LayerType") or {},
            layer_name=data.get("LayerName") or {},
            io_type=str(data.get("IOType", "io_parallel")),
            ignored=ignored,
        )
        cfg._validate()
        return cfg

    def _validate(self):
        if self.io_type not in IO_TYPES:
            raise ConfigError(
                f"configuration key 'IOType' must be one of {', '.join(IO_TYPES)}, not {self.io_type!r}"
            )
        _check_level("Model", self.model)
        for section, entries in (("LayerType", self.layer_type), ("LayerName", self.layer_name)):
            if not isinstance(entries, dict):
                raise ConfigError(f"configuration key {section!r} must be a mapping of names to settings")
            for name, level in entries.items():
                _check_level(f"{section}.{name}", level)

    def to_dict(self) -> dict:
        out = {"IOType": self.io_type, "Model": copy.deepcopy(self.model)}
        if self.layer_type:
            out["LayerType"] = copy.deepcopy(self.layer_type)
        if self.layer_name:
            out["LayerName"] = copy.deepcopy(self.layer_name)
        return out

    # -- queries: name beats type beats model --------------------------------------------------------

    def _lookup(self, layer: str, layer_type: str | None, key: str):
        for level in (self.layer_name.get(layer), self.layer_type.get(layer_type) if layer_type else None, self.model):
            if level and key in level:
                yield level[key]

    def precision(self, layer: str, var: str, layer_type: str | None = None, *, auto: bool = False) -> FixedType | None:
        """The type of ``var`` (weight, bias, result, accum, input) for a layer: name beats type beats
        model, a variable beats ``default``. ``auto`` (hls4ml's "derive it") gives ``None`` when
        ``auto=True`` is passed (the caller keeps exact widths), else the model's default type."""
        legacy = {v: k for k, v in LEGACY_TYPE_KEYS.items()}.get(var)
        for level in (self.layer_name.get(layer), self.layer_type.get(layer_type) if layer_type else None):
            if level and legacy in level:
                return FixedType.parse(level[legacy])
        raw = None
        for p in self._lookup(layer, layer_type, "Precision"):
            if isinstance(p, dict):
                raw = p.get(var, p.get("default"))
            else:
                raw = p
            if raw is not None:
                break
        if raw is None:
            raw = self.default_precision()
        if str(raw).strip().lower() == "auto":
            return None if auto else FixedType.parse(self.default_precision())
        return FixedType.parse(raw)

    def maximum(self) -> FixedType | None:
        """``Model.Precision.maximum``: the widest type 'auto' may derive (None: no cap)."""
        p = self.model.get("Precision")
        if isinstance(p, dict) and p.get("maximum"):
            return FixedType.parse(p["maximum"])
        return None

    def default_precision(self) -> str:
        p = self.model.get("Precision", DEFAULT_PRECISION)
        if isinstance(p, dict):
            p = p.get("default", DEFAULT_PRECISION)
        return DEFAULT_PRECISION if str(p).lower() == "auto" else p

    def has_precision(self, layer: str, var: str, layer_type: str | None = None) -> bool:
        for p in self._lookup(layer, layer_type, "Precision"):
            if not isinstance(p, dict) or var in p or "default" in p:
                return True
        return False

    def reuse_factor(self, layer: str, layer_type: str | None = None) -> int:
        return int(next(self._lookup(layer, layer_type, "ReuseFactor"), 1))

    def adder_levels(self, layer: str, layer_type: str | None = None) -> int | None:
        """``AdderLevels`` for a layer, or None when the configuration does not set it."""
        v = next(self._lookup(layer, layer_type, "AdderLevels"), None)
        return None if v is None else int(v)

    def strategy(self, layer: str, layer_type: str | None = None) -> str:
        """``latency`` or ``resource`` for a layer with weights (softmax spellings mean latency here)."""
        s = str(next(self._lookup(layer, layer_type, "Strategy"), "latency")).lower()
        return s if s in ("latency", "resource") else "latency"

    def softmax_implementation(self, layer: str, layer_type: str = "Softmax") -> str:
        """The softmax variant: ``Implementation`` at any level, or a ``Strategy`` that names one
        (Stable, Latency, Argmax) on the softmax layer or its type, or a model-wide Stable/Argmax;
        ``stable`` otherwise. A model-wide ``Strategy: Latency`` is about the dense layers."""
        for level in (self.layer_name.get(layer), self.layer_type.get(layer_type), self.model):
            if level and "Implementation" in level:
                return str(level["Implementation"]).lower()
            s = str(level.get("Strategy", "")).lower() if level else ""
            if s in SOFTMAX_IMPLEMENTATIONS and (level is not self.model or s != "latency"):
                return s
        return "stable"

    def check_layer_names(self, names) -> None:
        """Every ``LayerName`` entry must name a layer of the model."""
        names = list(names)
        for name in self.layer_name:
            if name not in names:
                raise ConfigError(
                    f"configuration key 'LayerName.{name}' names no layer of this model; "
                    f"layers are: {', '.join(names)}"
                )


def _check_level(where: str, level) -> None:
    if level is None:
        return
    if not isinstance(level, dict):
        raise ConfigError(f"configuration key {where!r} must be a mapping of settings")
    for key, value in level.items():
        if key in LEGACY_TYPE_KEYS:
            try:
                FixedType.parse(value)
            except FixedTypeError as e:
                raise ConfigError(f"configuration key '{where}.{key}': {e}") from None
            continue
        if key not in LEVEL_KEYS + HLS4ML_FLOW_KEYS:
            raise ConfigError(
                f"configuration key '{where}.{key}' is unknown; expected one of {', '.join(LEVEL_KEYS)}"
            )
        if key == "Precision":
            items = value.items() if isinstance(value, dict) else [("default", value)]
            for var, text in items:
                if var not in PRECISION_VARS and not isinstance(value, str):
                    raise ConfigError(
                        f"configuration key '{where}.Precision.{var}' is unknown; "
                        f"expected one of {', '.join(PRECISION_VARS)}"
                    )
                if var == "maximum" or str(text).strip().lower() == "auto":
                    continue
                try:
                    FixedType.parse(text)
                except FixedTypeError as e:
                    raise ConfigError(f"configuration key '{where}.Precision': {e}") from None
        elif key == "ReuseFactor":
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(
                    f"configuration key '{where}.ReuseFactor' must be a positive integer, not {value!r}"
                )
        elif key == "AdderLevels":
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(
                    f"configuration key '{where}.AdderLevels' must be a positive integer (adder levels "
                    f"between pipeline registers), not {value!r}"
                )
        elif key == "Strategy":
            if str(value).lower() not in STRATEGIES:
                raise ConfigError(
                    f"configuration key '{where}.Strategy' must be one of Latency, Resource (layers with "
                    f"weights) or Stable, Latency, Argmax (softmax), not {value!r}"
                )
        elif key == "Implementation":
            if str(value).lower() not in SOFTMAX_IMPLEMENTATIONS:
                raise ConfigError(
                    f"configuration key '{where}.Implementation' must be one of Stable, Latency, Argmax "
                    f"(softmax variants), not {value!r}"
                )


def load_config(source) -> Config:
    """A :class:`Config` from a YAML path, a dict, an existing Config or None (defaults)."""
    if isinstance(source, Config):
        return source
    if source is None or isinstance(source, dict):
        return Config.from_dict(source)
    path = os.fspath(source)
    import yaml

    class _Loader(yaml.SafeLoader):
        pass

    # hls4ml writes tags such as "!keras_model 'path'" for keys that only concern its own flow.
    _Loader.add_multi_constructor("!", lambda loader, suffix, node: loader.construct_scalar(node) if isinstance(node, yaml.ScalarNode) else None)
    try:
        with open(path) as f:
            data = yaml.load(f, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except FileNotFoundError:
        raise ConfigError(f"configuration file {path!r} does not exist") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"configuration file {path!r} is not valid YAML: {e}".splitlines()[0]) from None
    return Config.from_dict(data)


def generate(design, *, granularity: str = "name", precision: str | None = None, reuse: int | None = None) -> str:
    """A complete, commented configuration for ``design`` in hls4ml's vocabulary (YAML text).

    Building with it gives the same design as building with no configuration. Types that come from
    the model's own quantizers are shown as comments: they are not configuration.
    """
    from .ir import Dense
    from .plan.reuse import valid_conv_reuse_factors, valid_reuse_factors

    if granularity not in ("model", "type", "name"):
        raise ConfigError(f"granularity must be one of model, type, name, not {granularity!r}")
    default = str(FixedType.parse(precision)) if precision else DEFAULT_PRECISION
    g = design.graph
    lines = [
        f"# rtlgen configuration for {g.name!r} (hls4ml keys; granularity: {granularity})",
        "IOType: io_parallel  # io_parallel: one tensor per transfer; io_stream: one pixel per transfer",
        "Model:",
        f"  Precision: {default}  # float layers and the input take this type",
        f"  ReuseFactor: {reuse or 1}  # 1: fully parallel; R > 1: ceil(n_in/R)*n_out multipliers over R cycles",
        "  Strategy: Latency  # Latency or Resource",
    ]
    dense = [n for n in g.nodes if isinstance(n.op, Dense)]
    if granularity == "type" and dense:
        lines += ["LayerType:", "  Dense:", "    Precision:"]
        lines += [f"      {v}: {default}" for v in ("weight", "bias", "result")]
        lines += [f"    ReuseFactor: {reuse or 1}"]
    if granularity == "name":
        tin = g.tensors[g.inputs[0]]
        lines += ["LayerName:", f"  {g.inputs[0]}:  # input, {tin.size} values", "    Precision:"]
        lines += [f"      result: {tin.type if not g.pre else default}" + ("" if not g.pre else f"  # quantized on the host to {tin.type}")]
        for n in g.nodes:
            out = g.tensors[n.outputs[0]]
            if isinstance(n.op, Dense):
                valid = valid_reuse_factors(n.op.n_in, n.op.n_out)
                r = max(v for v in valid if v <= (reuse or 1))
                shown = ", ".join(map(str, valid)) if len(valid) <= 40 else ", ".join(map(str, valid[:40])) + ", ..."
                lines.append(f"  {n.name}:  # Dense {n.op.n_in}->{n.op.n_out}; valid reuse factors: {shown}")
                if n.attrs.get("float_weights"):
                    lines += ["    Precision:"] + [f"      {v}: {default}" for v in ("weight", "bias", "result")]
                else:
                    lines.append(f"    # weights from the model's quantizers; exact accumulator {out.type}")
                lines += [f"    ReuseFactor: {r}", "    Strategy: Latency", "    Trace: false"]
            elif hasattr(n.op, "reuse_shape"):
                P, K = n.op.reuse_shape()
                valid = valid_conv_reuse_factors(P, K)
                shown = ", ".join(map(str, valid)) if len(valid) <= 40 else ", ".join(map(str, valid[:40])) + ", ..."
                what = f"{n.kind} {P} output positions x {K} kernel terms; valid reuse factors: {shown}"
                if "Separable" in str(n.attrs.get("source", "")):
                    # Both halves of a separable convolution take their source layer's factor.
                    lines.append(f"  # {n.name}: {what} (ReuseFactor of the separable layer, rounded down)")
                else:
                    lines += [f"  {n.name}:  # {what}", f"    ReuseFactor: {n.op.reuse_factor}"]
            else:
                lines.append(f"  # {n.name}: {n.kind} -> {out.type} (from the model)")
    return "\n".join(lines) + "\n"
