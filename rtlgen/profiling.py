"""Numerical profiling and tracing: choose types from data, and see where the hardware's numbers
part from the framework's.

:func:`numerical` runs a float data set through the golden model and, at every place where values
are cast into a chosen fixed-point type (the network input, float layers' weights and biases,
accumulators, result types, the model's own quantizers), counts the values that overflow the
type's range and the nonzero values that round to zero, and suggests a type with the same
fractional bits and enough integer bits for the data. The values before each cast are exact
(integer mantissas of the golden model), so the counts are those of the hardware, bit for bit.
:meth:`Profile.plot` draws them as hls4ml users know them: one box per layer of ``|x|`` on a log2
axis over a grey band spanning the type, from its step to its largest value.

:func:`trace` records every tensor of the golden model and, where the framework is installed
(Keras, or qonnx/onnxruntime for ONNX), the framework's output of the matching layer;
:func:`compare` summarises their differences per layer.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field

import numpy as np

from .errors import RtlgenError
from .fixed import FixedType, round_shift, type_for_range
from .ir import Node

__all__ = ["numerical", "suggest", "Profile", "Site", "trace", "Trace", "compare", "framework_trace"]

log = logging.getLogger(__name__)

# Values kept per site for plots (statistics use all of them).
_PLOT_SAMPLES = 20000


@dataclass
class Site:
    """One place where values are cast into a type, with what the data does there."""

    layer: str
    kind: str  # input, weight, bias, accum, result or quantizer (the model's own: not configurable)
    type: FixedType
    count: int
    overflows: int
    underflows: int
    min: float
    max: float
    # Exact mantissas on the type's grid give the narrowest covering type.
    needed: FixedType | None
    config_key: tuple | None = None  # ("LayerName", layer, "Precision", var)
    suggested: FixedType | None = None
    values: np.ndarray = field(default=None, repr=False)  # a sample of the real values, for plots
    source: str = "golden"  # golden: the hardware's exact values; framework: float weights

    def to_dict(self) -> dict:
        return {
            "layer": self.layer,
            "kind": self.kind,
            "type": str(self.type),
            "count": self.count,
            "overflows": self.overflows,
            "underflows": self.underflows,
            "min": self.min,
            "max": self.max,
            "needed": str(self.needed) if self.needed else None,
            "config_key": ".".join(self.config_key) if self.config_key else None,
            "suggested": str(self.suggested) if self.suggested else None,
            "source": self.source,
        }


def _mantissas_unbounded(real, t: FixedType):
    """Real values rounded onto ``t``'s grid with ``t``'s rounding but no overflow (exact ints)."""
    wide = FixedType(62, 62 - t.frac, True, t.rounding, "WRAP")
    return wide.quantize(real)


def _bounds(t: FixedType) -> tuple[int, int]:
    lo, hi = t.min_mantissa, t.max_mantissa
    if t.overflow == "SAT_SYM" and t.signed:
        lo = -hi  # the most negative code is never produced
    return lo, hi


def _covering(t: FixedType, lo: int, hi: int, margin: int = 0) -> FixedType:
    """``t`` with as many integer bits as mantissas in ``[lo, hi]`` need (same fraction, signedness,
    rounding and overflow)."""
    need = type_for_range(min(lo, 0), max(hi, 0), t.frac)
    width = need.width + (1 if t.signed and not need.signed else 0) + margin
    if t.overflow == "SAT_SYM" and t.signed and lo == -(1 << (width - 1)):
        width += 1
    return FixedType(width, width - t.frac, t.signed, t.rounding, t.overflow)


def _sample(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64).ravel()
    if v.size > _PLOT_SAMPLES:
        v = np.random.default_rng(0).choice(v, _PLOT_SAMPLES, replace=False)
    return v


def _site(layer, kind, t, m, real, key, margin, source="golden", underflow=None) -> Site:
    """A site from exact mantissas ``m`` on ``t``'s grid (before overflow) and the real values."""
    m = np.asarray(m).ravel()
    lo, hi = _bounds(t)
    n = int(m.size)
    if n:
        mlo, mhi = int(m.min()), int(m.max())
        over = int(np.count_nonzero((m < lo) | (m > hi)))
    else:
        mlo = mhi = 0
        over = 0
    needed = _covering(t, mlo, mhi) if n else None
    suggested = None
    if over and needed is not None:
        suggested = _covering(t, mlo, mhi, margin)
    real = np.asarray(real, dtype=np.float64).ravel()
    return Site(
        layer=layer,
        kind=kind,
        type=t,
        count=n,
        overflows=over,
        underflows=int(underflow) if underflow is not None else 0,
        min=float(real.min()) if real.size else 0.0,
        max=float(real.max()) if real.size else 0.0,
        needed=needed,
        config_key=key,
        suggested=suggested if key is not None else None,
        values=_sample(real),
        source=source,
    )


# -- the profile ----------------------------------------------------------------------------------


class Profile:
    """What :func:`numerical` found: one :class:`Site` per cast, in network order."""

    def __init__(self, design, sites: list[Site], n_samples: int):
        self.design = design
        self.sites = sites
        self.n_samples = n_samples
        self.figure = None  # set by numerical(plot=True)

    @property
    def overflows(self) -> int:
        return sum(s.overflows for s in self.sites)

    def suggestion(self) -> dict:
        """Configuration entries (``{"LayerName": {layer: {"Precision": {var: type}}}}``) whose types
        cover the data; empty when nothing overflows where the configuration decides."""
        out: dict = {}
        for s in self.sites:
            if s.suggested is None or s.config_key is None:
                continue
            _, layer, _, var = s.config_key
            prec = out.setdefault("LayerName", {}).setdefault(layer, {}).setdefault("Precision", {})
            prec[var] = str(_wider(prec.get(var), s.suggested))
        # A float layer whose result type equals its accumulator has no cast of its own: widening
        # the accumulator alone would make one appear, as narrow as before.
        for s in self.sites:
            if s.kind == "accum" and s.suggested is not None and s.config_key is not None:
                layer = s.config_key[1]
                if not any(o.kind == "result" and o.config_key and o.config_key[1] == layer for o in self.sites):
                    prec = out["LayerName"][layer]["Precision"]
                    prec["result"] = str(_wider(prec.get("result"), s.suggested))
        return out

    def apply(self, config=None) -> dict:
        """``config`` (a path, dict, Config or None) with the suggested types written in, as a dict."""
        return merge_config(config, self.suggestion())

    def unconfigurable(self) -> list[Site]:
        """Sites that overflow where the type comes from the model's own quantizers."""
        return [s for s in self.sites if s.overflows and s.config_key is None]

    def to_dict(self) -> dict:
        return {
            "samples": self.n_samples,
            "overflows": self.overflows,
            "sites": [s.to_dict() for s in self.sites],
            "suggestion": self.suggestion(),
        }

    def table(self) -> str:
        rows = [("layer", "kind", "type", "min", "max", "overflows", "underflows", "covering type", "suggested")]
        for s in self.sites:
            rows.append(
                (
                    s.layer,
                    s.kind,
                    str(s.type),
                    f"{s.min:.4g}",
                    f"{s.max:.4g}",
                    f"{s.overflows} ({_pct(s.overflows, s.count)})" if s.overflows else "0",
                    f"{s.underflows} ({_pct(s.underflows, s.count)})" if s.underflows else "0",
                    str(s.needed) if s.needed else "-",
                    str(s.suggested) if s.suggested else ("(model quantizer)" if s.overflows and s.config_key is None else ""),
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        return "\n".join("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows) + "\n"

    def plot(self, path=None):
        """Box plots of ``|x|`` per site against each type's range (weights left, activations right).

        Returns the matplotlib Figure; ``path`` (``.png``, ``.svg``, ``.pdf``) also saves it."""
        try:
            from matplotlib.figure import Figure
        except ImportError:
            raise RtlgenError("profile plots need matplotlib: pip install 'rtlgen[report]'") from None
        groups = [
            ("weights and biases", [s for s in self.sites if s.kind in ("weight", "bias")]),
            ("activations", [s for s in self.sites if s.kind not in ("weight", "bias")]),
        ]
        groups = [g for g in groups if g[1]]
        n = max([len(g[1]) for g in groups] + [1])
        fig = Figure(figsize=(6.5 * len(groups), 1.2 + 0.32 * n))
        axes = fig.subplots(1, max(len(groups), 1), squeeze=False)[0]
        for ax, (title, sites) in zip(axes, groups):
            data, labels = [], []
            for i, s in enumerate(sites):
                lsb, top = float(s.type.lsb), float(s.type.max if s.type.max > 0 else s.type.lsb)
                ax.barh(i, np.log2(top) - np.log2(lsb), left=np.log2(lsb), height=0.8, color="#d9d9d9", zorder=0)
                v = np.abs(s.values[np.isfinite(s.values)]) if s.values is not None else np.array([])
                v = v[v > 0]
                data.append(np.log2(v) if v.size else np.array([np.nan]))
                flag = f"  ⚠ {s.overflows} over" if s.overflows else ""
                labels.append(f"{s.layer} {s.kind} {s.type}{flag}")
            ax.boxplot(data, positions=list(range(len(sites))), orientation="horizontal", widths=0.5, whis=(0, 100),
                       showfliers=False, patch_artist=True, boxprops={"facecolor": "#4c72b0", "alpha": 0.8},
                       medianprops={"color": "#ffffff"})  # fmt: skip
            ax.set_yticks(range(len(sites)))
            ax.set_yticklabels(labels, fontsize=7)
            for tick, s in zip(ax.get_yticklabels(), sites):
                if s.overflows:
                    tick.set_color("#c44e52")
            ax.invert_yaxis()
            ax.set_xlabel("log2 |x|  (grey: the type's range, from one step to its largest value)", fontsize=8)
            ax.set_title(title, fontsize=10)
            ax.grid(axis="x", alpha=0.3)
        fig.suptitle(f"{self.design.graph.name}: {self.n_samples} samples, {self.overflows} overflowing values", fontsize=10)
        fig.tight_layout()
        if path is not None:
            fig.savefig(path, dpi=120)
        return fig


def _pct(n, total) -> str:
    p = 100.0 * n / max(total, 1)
    return f"{p:.2g}%" if p < 10 else f"{p:.0f}%"


def _wider(a, b: FixedType) -> FixedType:
    if a is None:
        return b
    a = FixedType.parse(a)
    return b if b.width - b.frac >= a.width - a.frac and b.width >= a.width else a


def merge_config(config, entries: dict) -> dict:
    """``config`` (path, dict, Config or None) as a dict with ``LayerName`` precision entries added."""
    from .config import load_config

    out = load_config(config).to_dict()
    for layer, level in entries.get("LayerName", {}).items():
        entry = out.setdefault("LayerName", {}).setdefault(layer, {})
        prec = entry.get("Precision")
        new = dict(level.get("Precision", {}))
        if prec is None:
            entry["Precision"] = new
        elif isinstance(prec, dict):
            prec.update(new)
        else:  # one type for every variable: keep it as the default
            entry["Precision"] = {"default": prec, **new}
    return out


# -- computing the sites ------------------------------------------------------------------------------


def _channels_last(graph, x2d):
    order = getattr(graph, "input_order", None)
    return x2d if order is None else x2d[:, order]


def _layer_key(name: str) -> tuple:
    return ("LayerName", name, "Precision")


def _framework_weights(model, design) -> dict:
    """Float kernels and biases of a Keras model by layer name (empty for other models)."""
    if model is None:
        return {}
    try:
        from .importers._keras_files import read_keras
    except ImportError:  # pragma: no cover
        return {}
    is_keras = hasattr(model, "get_config") and hasattr(model, "layers")
    if not is_keras and not str(model).lower().endswith((".keras", ".h5", ".hdf5", ".json")):
        return {}
    try:
        km = read_keras(model)
    except Exception as e:  # a model the importer read once; any failure only loses the float weights
        log.info("no float weights for profiling: %s", e)
        return {}
    out = {}
    for layer, ws in km.weights.items():
        named = {n: a for n, a in ws if n}
        unnamed = [a for n, a in ws if n is None]
        kernel = named.get("kernel", unnamed[0] if unnamed else None)
        bias = named.get("bias", unnamed[1] if len(unnamed) > 1 else None)
        out[layer] = (kernel, bias)
    return out


def _profile_sites(design, x, model=None, margin: int = 0) -> tuple[list[Site], int]:
    from . import golden

    graph, cfg = design.graph, design.config
    x = np.asarray(x)
    if x.ndim == 1:
        x = x[None]
    m_in = design.quantize_input(x)
    values = golden.run(graph, m_in, trace=True)
    sites: list[Site] = []
    tin = design.input_tensor
    if graph.pre is None:
        real = _channels_last(graph, x.reshape(len(x), -1).astype(np.float64)) / tin.scale
        m = _mantissas_unbounded(real, tin.type)
        sites.append(_site(tin.name, "input", tin.type, m, real * tin.scale, (*_layer_key(tin.name), "result"), margin,
                           underflow=np.count_nonzero((real != 0) & (m == 0))))  # fmt: skip
    fw = _framework_weights(model, design)
    for node in graph.nodes:
        op = node.op
        src = graph.tensors[node.inputs[0]]
        dst = graph.tensors[node.outputs[0]]
        # Weights and biases: the float ones against the configured type where the layer is a float
        # layer of a Keras model, otherwise the quantized ones (they fit their types by construction).
        weight = getattr(op, "weight", None)
        if isinstance(weight, np.ndarray) and weight.size:
            kernel, bias = fw.get(node.name, (None, None))
            layer_type = "Dense" if node.kind == "Dense" else "Conv"
            if node.attrs.get("float_weights") and kernel is not None and np.size(kernel) == weight.size:
                wt = cfg.precision(node.name, "weight", layer_type)
                k = np.asarray(kernel, dtype=np.float64)
                mk = _mantissas_unbounded(k, wt)
                sites.append(_site(node.name, "weight", wt, mk, k, (*_layer_key(node.name), "weight"), margin, "framework",
                                   underflow=np.count_nonzero((k != 0) & (mk == 0))))  # fmt: skip
                if bias is not None:
                    bt = cfg.precision(node.name, "bias", layer_type)
                    b = np.asarray(bias, dtype=np.float64)
                    mb = _mantissas_unbounded(b, bt)
                    sites.append(_site(node.name, "bias", bt, mb, b, (*_layer_key(node.name), "bias"), margin, "framework",
                                       underflow=np.count_nonzero((b != 0) & (mb == 0))))  # fmt: skip
            else:
                frac = dst.type.frac + int(getattr(op, "product_shift", 0) or 0) - src.type.frac
                wt = type_for_range(int(weight.min()), int(weight.max()), frac)
                w = np.asarray(weight).astype(np.float64) * 2.0**-frac
                sites.append(_site(node.name, "weight", wt, weight, w, None, margin, "model"))
        if len(node.inputs) != 1:
            continue
        x_in = values[node.inputs[0]]
        accum = getattr(op, "accum", None)
        if isinstance(accum, FixedType) and dataclasses.is_dataclass(op):
            # The same sums without wrapping: an accumulator as wide as they need, same grid.
            wide = FixedType(120, 120 - accum.frac, True, accum.rounding, "WRAP")
            exact = golden.run_node(graph, Node(node.name, dataclasses.replace(op, accum=wide), node.inputs, node.outputs), x_in)
            real = np.asarray(exact, dtype=np.float64) * 2.0**-accum.frac * dst.scale
            key = (*_layer_key(node.name), "accum") if node.attrs.get("float_weights") else None
            sites.append(_site(node.name, "accum", accum, exact, real, key, margin))
        if node.kind == "Requant" and not getattr(op, "lanes", None):
            t = op.type
            m = round_shift(x_in, src.type.frac - t.frac, t.rounding)
            real = np.asarray(x_in, dtype=np.float64) * 2.0**-src.type.frac * src.scale
            key = None
            kind = "quantizer"
            if node.attrs.get("source") == "config" and node.name.endswith("_result"):
                key, kind = (*_layer_key(node.name[: -len("_result")]), "result"), "result"
            sites.append(_site(node.name, kind, t, m, real, key, margin, underflow=np.count_nonzero((np.asarray(x_in) != 0) & (np.asarray(m) == 0))))
    return sites, len(x)


def convert_model(model, config, skip_softmax=False):
    from .design import convert

    return convert(model, config, skip_softmax=skip_softmax)


def numerical(model=None, config=None, x=None, *, design=None, skip_softmax: bool = False, margin: int = 0, plot: bool = False) -> Profile:
    """Profile ``model`` (a model file, an in-memory Keras model, an ONNX ModelProto, or a
    :class:`~rtlgen.Design`) built with ``config`` on float inputs ``x``.

    Every cast into a chosen type becomes a :class:`Site` with its overflow and underflow counts
    and, where the configuration decides the type and values overflow, a suggested type with the
    same fractional bits and ``margin`` spare integer bits. ``design`` skips the conversion (the
    model is then used only for its float weights). ``plot=True`` draws :meth:`Profile.plot`.
    """
    if x is None:
        raise RtlgenError("profiling needs data: pass x, float network inputs with the batch first")
    from .design import Design

    if isinstance(model, Design):
        design, model = model, None
    if design is None:
        if model is None:
            raise RtlgenError("profiling needs a model or a design")
        design = convert_model(model, config, skip_softmax)
    sites, n = _profile_sites(design, x, model, margin)
    prof = Profile(design, sites, n)
    if plot:
        prof.figure = prof.plot()
    return prof


def suggest(model, config=None, x=None, *, skip_softmax: bool = False, margin: int = 0, max_rounds: int = 6):
    """Apply :func:`numerical`'s suggestions until no configurable cast overflows on ``x``.

    Widening one type changes the values reaching the next, so each round rebuilds the design.
    Returns ``(config dict, profiles)`` with the profile of every round, the last one showing what
    the returned configuration does."""
    cfg = merge_config(config, {})
    profiles = []
    for _ in range(max_rounds):
        prof = numerical(model, cfg, x, skip_softmax=skip_softmax, margin=margin)
        profiles.append(prof)
        entries = prof.suggestion()
        if not entries:
            break
        cfg = merge_config(cfg, entries)
    return cfg, profiles


# -- tracing ------------------------------------------------------------------------------------------


@dataclass
class Trace:
    """Every tensor of the golden model and, where available, the framework's matching values.

    ``golden`` and ``framework`` map IR tensor names to real values ``(N, *shape)``; ``source`` maps
    each traced tensor to the framework's layer or tensor name; ``reason`` says why there is no
    framework trace when there is none."""

    golden: dict
    framework: dict = field(default_factory=dict)
    source: dict = field(default_factory=dict)
    framework_name: str | None = None
    reason: str | None = None
    types: dict = field(default_factory=dict)

    def compare(self) -> list[dict]:
        return compare(self.golden, self.framework, self.types, self.source)

    def summary(self) -> str:
        rows = [("tensor", "framework", "type", "golden range", "max |diff|", "in steps", "equal")]
        for r in self.compare():
            rows.append(
                (
                    r["tensor"],
                    r.get("framework_name") or "",
                    r.get("type") or "",
                    f"[{r['golden_min']:.4g}, {r['golden_max']:.4g}]",
                    f"{r['max_abs_diff']:.3g}",
                    f"{r['max_diff_steps']:.3g}" if r.get("max_diff_steps") is not None else "",
                    f"{100.0 * r['equal_fraction']:.1f}%",
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        return "\n".join("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows) + "\n"


def compare(golden: dict, framework: dict, types: dict | None = None, source: dict | None = None) -> list[dict]:
    """Per tensor in both traces: the largest and mean absolute difference, the difference in
    steps of the tensor's type (when ``types`` gives it) and the fraction of equal values."""
    out = []
    for name, g in golden.items():
        f = framework.get(name)
        if f is None:
            continue
        g2 = np.asarray(g, dtype=np.float64).reshape(len(g), -1)
        f2 = np.asarray(f, dtype=np.float64).reshape(len(f), -1)
        n = min(len(g2), len(f2))
        if g2.shape[1] != f2.shape[1] or n == 0:
            continue
        d = np.abs(g2[:n] - f2[:n])
        t = (types or {}).get(name)
        row = {
            "tensor": name,
            "framework_name": (source or {}).get(name),
            "type": str(t) if t is not None else None,
            "samples": int(n),
            "max_abs_diff": float(d.max()) if d.size else 0.0,
            "mean_abs_diff": float(d.mean()) if d.size else 0.0,
            "equal_fraction": float(np.mean(d == 0)) if d.size else 1.0,
            "golden_min": float(g2.min()) if g2.size else 0.0,
            "golden_max": float(g2.max()) if g2.size else 0.0,
            "framework_min": float(f2[:n].min()) if f2.size else 0.0,
            "framework_max": float(f2[:n].max()) if f2.size else 0.0,
        }
        row["max_diff_steps"] = float(row["max_abs_diff"] / float(t.lsb)) if t is not None else None
        out.append(row)
    return out


def _owner_map(node_names: list[str], layer_names: list[str]) -> dict:
    """IR node -> framework layer: the layer whose name is the node's, or the longest that prefixes
    it followed by ``_`` (``fc1_relu_result`` belongs to ``fc1``; ``dense_1_result`` to ``dense_1``,
    not ``dense``)."""
    owners = {}
    for n in node_names:
        best = None
        for layer in layer_names:
            if n == layer or n.startswith(layer + "_"):
                if best is None or len(layer) > len(best):
                    best = layer
        if best is not None:
            owners[n] = best
    return owners


def _keras_outputs(model, x) -> dict:
    import keras

    if not hasattr(model, "layers") and str(model).lower().endswith(".json"):
        path = str(model)
        model = keras.models.model_from_json(open(path).read())
        model.load_weights(path[: -len(".json")] + "_weights.h5")
    elif not hasattr(model, "layers"):
        model = keras.models.load_model(str(model), compile=False)
    layers = [la for la in model.layers if type(la).__name__ != "InputLayer"]
    sub = keras.Model(inputs=model.inputs, outputs=[la.output for la in layers])
    outs = sub.predict(np.asarray(x), verbose=0)
    if not isinstance(outs, (list, tuple)):
        outs = [outs]
    result = {la.name: np.asarray(o) for la, o in zip(layers, outs)}
    for inp in model.inputs:
        name = getattr(inp, "name", None)
        if name:
            result[name.split(":")[0]] = np.asarray(x)
    return result


def _onnx_outputs(model, x, limit: int) -> dict:
    import onnx
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.infer_shapes import InferShapes

    proto = model if isinstance(model, onnx.ModelProto) else onnx.load(str(model))
    mw = ModelWrapper(proto).transform(InferShapes())
    iname = mw.graph.input[0].name
    ishape = mw.get_tensor_shape(iname)
    ctxs = []
    for i in range(min(len(x), limit)):  # exported models often pin batch size 1
        xi = np.asarray(x[i : i + 1], dtype=np.float32).reshape([1, *ishape[1:]] if ishape else (1, -1))
        ctxs.append(execute_onnx(mw, {iname: xi}, return_full_exec_context=True))
    names = [k for k, v in ctxs[0].items() if isinstance(v, np.ndarray) and v.ndim >= 1 and v.shape[:1] == (1,)] if ctxs else []
    return {k: np.concatenate([c[k] for c in ctxs]) for k in names}


def _to_ir_layout(f: np.ndarray, shape: tuple) -> np.ndarray | None:
    """Framework values ``(N, ...)`` in the IR's channels-last layout, or None if they do not match."""
    if f.shape[1:] == tuple(shape) or int(np.prod(f.shape[1:])) == int(np.prod(shape)) and len(shape) == 1:
        return f.reshape(len(f), *shape)
    if len(shape) == 3 and f.ndim == 4 and f.shape[1:] == (shape[2], shape[0], shape[1]):
        return f.transpose(0, 2, 3, 1)
    if len(shape) == 3 and shape[0] == 1 and f.ndim == 3 and f.shape[1:] == (shape[2], shape[1]):
        return f.transpose(0, 2, 1).reshape(len(f), *shape)
    if int(np.prod(f.shape[1:])) == int(np.prod(shape)):
        return f.reshape(len(f), *shape)
    return None


def framework_trace(design, model, x, *, limit: int = 1000) -> tuple[dict, dict, str | None, str | None]:
    """The framework's values of the tensors of ``design`` for inputs ``x``:
    ``(values by IR tensor, framework name by IR tensor, framework, reason if none)``."""
    if model is None:
        return {}, {}, None, "no framework model given"
    is_keras = hasattr(model, "get_config") and hasattr(model, "layers")
    path = str(model) if not is_keras else ""
    graph = design.graph
    try:
        if is_keras or path.lower().endswith((".keras", ".h5", ".hdf5", ".json")):
            try:
                import keras  # noqa: F401
            except ImportError:
                return {}, {}, None, "Keras is not installed (pip install 'rtlgen[keras]')"
            fw, kind = _keras_outputs(model, x[:limit]), "keras"
            owners = _owner_map([n.name for n in graph.nodes], list(fw))
            out, src = {}, {}
            for layer, values in fw.items():
                mine = [n for n in graph.nodes if owners.get(n.name) == layer]
                tensor = mine[-1].outputs[0] if mine else (layer if layer in graph.inputs else None)
                if tensor is None:
                    continue
                v = _to_ir_layout(values, graph.tensors[tensor].shape)
                if v is not None:
                    out[tensor], src[tensor] = v, layer
            return out, src, kind, None
        import onnx

        if isinstance(model, onnx.ModelProto) or path.lower().endswith(".onnx"):
            fw = _onnx_outputs(model, x, min(limit, 200))
            out, src = {}, {}
            for tensor, t in graph.tensors.items():
                if tensor in fw:
                    v = _to_ir_layout(fw[tensor], t.shape)
                    if v is not None:
                        out[tensor], src[tensor] = v, tensor
            return out, src, "onnx", None
    except Exception as e:  # the framework failing must not hide the golden trace
        log.info("framework trace failed", exc_info=True)
        detail = str(e).splitlines()[0] if str(e) else ""
        detail = detail if len(detail) <= 160 else detail[:157] + "..."
        return {}, {}, None, f"the framework could not run the model: {type(e).__name__}: {detail}"
    return {}, {}, None, f"no framework for {path or type(model).__name__}"


def trace(design, x, model=None, *, limit: int = 1000) -> Trace:
    """Every tensor's values for float inputs ``x`` from the golden model (``design.trace``) and,
    for ``model`` (Keras or ONNX, when the framework is installed), the framework's."""
    x = np.asarray(x)
    golden = design.trace(x)
    fw, src, kind, reason = framework_trace(design, model, x, limit=limit)
    types = {name: t.type for name, t in design.graph.tensors.items() if t.type is not None}
    return Trace(golden=golden, framework=fw, source=src, framework_name=kind, reason=reason, types=types)
