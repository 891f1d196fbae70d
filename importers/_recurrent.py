"""Recurrent layers (SimpleRNN, LSTM, GRU) from Keras and ONNX into the IR's recurrent ops.

Float layers take hls4ml's configuration keys (layer types ``SimpleRNN``, ``LSTM``, ``GRU``):
``weight``, ``recurrent_weight`` (default: ``weight``), ``bias``, ``recurrent_bias`` (default:
``bias``), ``accum`` (the gates' pre-activations), ``table`` (activation outputs; default the
``accum`` grid, :func:`._precision.table_type`), ``result`` (the output), and rtlgen's ``state``
(the recurrent state ``h``) and ``cell`` (the LSTM cell state ``c``), both ``result`` unless set.
Weights are printed and read back as hls4ml writes them (:mod:`._precision`). ``TableSize``
sets the tables' largest size (default 1024); each table covers the window of its input where it
errs least (``make_lut``'s ``span="best"``), inputs outside it clamp.
"""

from __future__ import annotations

import numpy as np

from rtlgen.errors import ModelFormatError
from rtlgen.fixed import FixedType
from rtlgen.ir import Node
from rtlgen.ir.ops import activation as act
from rtlgen.ir.ops.recurrent import GRU, LSTM, SimpleRNN

from . import _precision as precision
from ._errors import _up

__all__ = ["KERAS_RECURRENT", "HGQ_RECURRENT", "QKERAS_RECURRENT", "recurrent_node", "keras_recurrent", "hgq_recurrent",
           "qkeras_recurrent"]

KERAS_RECURRENT = ("SimpleRNN", "LSTM", "GRU")
HGQ_RECURRENT = ("QSimpleRNN", "QGRU")  # HGQ2 0.2 has no quantized LSTM
QKERAS_RECURRENT = ("QSimpleRNN", "QLSTM", "QGRU")
OPS = {"SimpleRNN": SimpleRNN, "LSTM": LSTM, "GRU": GRU}
GATES = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}
# Any type: a piecewise-linear spec does not depend on its input and output types.
PWL_TYPE = FixedType(18, 8)
# Activations computed exactly as clipped affine functions; the others are tables.
PIECEWISE = ("relu", "linear", "hard_sigmoid")
TABLES = ("sigmoid", "tanh", "softsign", "softplus", "elu", "selu")


def activation_spec(function: str, src: FixedType, dst: FixedType, *, table_size: int, keras3: bool) -> dict:
    """A JSON-able description of an activation from ``src`` into ``dst`` (see :mod:`rtlgen.ir.ops.recurrent`)."""
    if function == "hard_sigmoid":
        op = act.hard_sigmoid("keras3" if keras3 else "keras2")
    elif function == "relu":
        op = act.relu()
    elif function == "linear":
        op = act.Pwl(function="linear")
    elif function in TABLES:
        # The window of least error, not the whole input: over a wide accumulator a table spread
        # over every input would be coarse exactly where sigmoid and tanh are steep.
        lut = act.make_lut(function, src, dst, table_size=table_size, span="best")
        return {
            "kind": "lut", "table": [int(v) for v in lut.table], "shift": lut.shift, "offset": lut.offset,
            "function": lut.function, "max_error": lut.max_error, "fit_error": lut.fit_error,
        }  # fmt: skip
    else:
        raise ValueError(f"activation {function!r} is not supported in recurrent layers; use one of {', '.join(PIECEWISE + TABLES)}")
    spec = {"kind": "pwl", "const_type": str(op.const_type), "function": op.function or function}
    for k in ("slope_hi", "bias_hi", "slope_lo", "bias_lo", "knot", "lower", "upper"):
        v = getattr(op, k)
        spec[k] = None if v is None else float(v)
    return spec


def _quantize(values, t: FixedType):
    v = np.asarray(values, dtype=np.float64)
    m = t.quantize(precision.hls4ml_text(v, t))
    return np.asarray(m, dtype=np.int64), np.abs(v - np.asarray(m, dtype=np.float64) * 2.0**-t.frac)


def recurrent_node(builder, types, name: str, x: str, kind: str, *, units: int, kernel, recurrent_kernel, bias,
                   recurrent_bias=None, activation: str, recurrent_activation: str | None, return_sequences: bool,
                   reset_after: bool = True, keras3: bool = True, source: str = "") -> str:  # fmt: skip
    """Add a float recurrent layer reading tensor ``x`` with the types ``types``
    (:class:`._precision.Precisions`) gives it; returns its output tensor.

    Weights are in Keras' layout and gate order (``kernel`` ``(n_in, gates * units)``); a GRU's
    ``recurrent_bias`` is the bias inside the reset product when ``reset_after`` (else it is added
    to ``bias``)."""
    xt = builder.graph.tensors[x]
    n_in = xt.shape[-1]
    steps = xt.size // n_in
    p = types.recurrent(name, kind)
    wt, rwt, bt, rbt = p["weight"], p["recurrent_weight"], p["bias"], p["recurrent_bias"]
    accum, table, result, state = p["accum"], p["table"], p["result"], p["state"]
    cell = p["cell"] if kind == "LSTM" else None
    km, dw = _quantize(kernel, wt)
    rm, du = _quantize(recurrent_kernel, rwt)
    bm, db = _quantize(bias, bt)
    bfrac = max(bt.frac, rbt.frac)
    bm = bm << (bfrac - bt.frac)
    rb = None
    if recurrent_bias is not None:
        rbm, drb = _quantize(recurrent_bias, rbt)
        rbm = rbm << (bfrac - rbt.frac)
        if kind == "GRU" and reset_after:
            u = units
            bm = bm.copy()
            bm[: 2 * u] += rbm[: 2 * u]
            db = db.copy()
            db[: 2 * u] += drb[: 2 * u]
            rb = np.zeros_like(rbm)
            rb[2 * u :] = rbm[2 * u :]
            db[2 * u :] += drb[2 * u :]
        else:
            bm, db = bm + rbm, db + drb
    size = p["table_size"]
    try:
        specs = {"activation": activation_spec(activation, accum, table, table_size=size, keras3=keras3)}
        if recurrent_activation is not None and kind != "SimpleRNN":
            specs["recurrent_activation"] = activation_spec(recurrent_activation, accum, table, table_size=size, keras3=keras3)
        if kind == "LSTM":
            specs["cell_activation"] = activation_spec(activation, cell, table, table_size=size, keras3=keras3)
    except ValueError as e:
        from rtlgen.errors import UnsupportedOpError

        raise UnsupportedOpError(name, source or kind, str(e)) from None
    op = OPS[kind](
        units=int(units), kernel=km, recurrent_kernel=rm, bias=bm, kernel_frac=wt.frac, recurrent_frac=rwt.frac,
        bias_frac=bfrac, accum=accum, table=table, state=state, return_sequences=bool(return_sequences),
        recurrent_bias=rb, cell=cell, reset_after=bool(reset_after), **specs,
    )  # fmt: skip
    shape = (steps, units) if return_sequences else (units,)
    out = builder.tensor(name, shape, result)
    builder.graph.add_node(Node(name, op, [x], [out], {"source": source or kind, "float_weights": True}))
    builder.errors.weights[name] = (dw, du, db)
    for key, spec in specs.items():
        if spec["kind"] == "lut":
            builder.graph.notes.append(
                f"{name}: {key.replace('_', ' ')} {spec['function']} table of {len(spec['table'])} entries into {table}, "
                f"worst-case error {_up(spec['max_error'])}"
            )
    return out


def _sequence_shape(imp, layer) -> tuple:
    """``(steps, features)`` of the current tensor, after checking the layer's unsupported flags."""
    c = layer["config"]
    xt = imp.graph.tensors[imp.cur]
    shape = xt.shape[1:] if len(xt.shape) == 3 and xt.shape[0] == 1 else xt.shape
    if len(shape) != 2:
        imp.fail(layer, f"a recurrent layer reads a sequence (steps, features), not a tensor of shape {xt.shape}")
    for key, ok in (("go_backwards", False), ("stateful", False), ("return_state", False)):
        if c.get(key, False) != ok:
            imp.fail(layer, f"{key}={c.get(key)} is not supported; set {key}=False")
    return tuple(shape)


def keras_recurrent(imp, layer) -> None:
    """A Keras SimpleRNN, LSTM or GRU layer (float) read by the Keras importer ``imp``."""
    cls, c = layer["class_name"], layer["config"]
    name = c["name"]
    shape = _sequence_shape(imp, layer)
    units = int(c["units"])
    g = GATES[cls]
    ws = imp.weights(name)
    named = {n: a for n, a in ws if n in ("kernel", "recurrent_kernel", "bias")}
    # Keras 3 files name a recurrent layer's variables after its cell: then they come in creation order.
    arrays = [named.get(k) for k in ("kernel", "recurrent_kernel", "bias")] if named else [a for _, a in ws]
    want = 3 if c.get("use_bias", True) else 2
    if len(arrays) < want or any(a is None for a in arrays[:want]):
        raise ModelFormatError(f"layer {name!r}: kernel, recurrent kernel and bias not found in the weights file")
    kernel, rkernel = (np.asarray(a, dtype=np.float64) for a in arrays[:2])
    if c.get("use_bias", True):
        bias = np.asarray(arrays[2], dtype=np.float64)
    else:
        bias = np.zeros((2, g * units) if cls == "GRU" and c.get("reset_after", False) else g * units)
    rbias = None
    reset_after = bool(c.get("reset_after", False)) if cls == "GRU" else True
    if cls == "GRU" and reset_after:
        bias = bias.reshape(2, g * units)
        bias, rbias = bias[0], bias[1]
    if kernel.shape != (shape[1], g * units):
        imp.fail(layer, f"kernel of shape {kernel.shape} does not match {shape[1]} features and {units} units")
    keras3 = "module" in imp.km.config
    rec = None if cls == "SimpleRNN" else c.get("recurrent_activation", "sigmoid")
    imp.cur = recurrent_node(
        imp.b, imp.types, name, imp.cur, cls, units=units, kernel=kernel, recurrent_kernel=rkernel, bias=bias,
        recurrent_bias=rbias, activation=c.get("activation", "tanh"), recurrent_activation=rec,
        return_sequences=bool(c.get("return_sequences", False)), reset_after=reset_after, keras3=keras3, source=cls,
    )  # fmt: skip
    imp.float_layer = None


# -- HGQ2 -----------------------------------------------------------------------------------------

# Quantization points of the IR op and the HGQ2 quantizer at each.
_HGQ_POINTS = {
    "QSimpleRNN": {"state": "sq", "pre": "paq"},
    "QGRU": {"state": "sq", "gate": "praq", "reset": "rhq", "cand": "paq"},
}
FLOAT32_BITS = 24  # significant bits of float32, in which HGQ2 sums and mixes


def _point_range(q: dict) -> tuple:
    """``(lo, hi, frac)``: the exact range (Fractions) and grid of a quantization point's output."""
    from fractions import Fraction

    from rtlgen.ir.ops.recurrent import affine

    types = [FixedType.parse(t) if t is not None else None for t in q["lanes"]]
    lo = min(Fraction(t.min) if t is not None else Fraction(0) for t in types)
    hi = max(Fraction(t.max) if t is not None else Fraction(0) for t in types)
    f = max([t.frac for t in types if t is not None] + [0])
    aff = q.get("affine")
    if aff is not None:
        scale, shift = Fraction(aff[0]), Fraction(aff[1])
        lo, hi = lo * scale + shift, hi * scale + shift
    return lo, hi, affine(np.zeros((1, 1), dtype=np.int64), f, aff)[1]


def _type_of(lo, hi, frac: int) -> FixedType:
    from rtlgen.fixed import type_for_range

    return type_for_range(int(lo * 2**frac), int(hi * 2**frac), frac)


def _mul_range(a: tuple, b: tuple) -> tuple:
    p = [x * y for x in a for y in b]
    return min(p), max(p)


def hgq_recurrent(imp, layer) -> None:
    """An HGQ2 QSimpleRNN or QGRU read by the Keras importer ``imp``: its input quantizer as a
    per-feature requantization, then the cell with every HGQ2 quantizer at its own place and
    per-unit types (:mod:`rtlgen.ir.ops.recurrent`), exactly as HGQ2's predict computes it where
    float32 holds its sums (a note says where it does not)."""
    from fractions import Fraction

    from . import _hgq as hgq
    from ._precision import dyadic_frac

    cls, c = layer["class_name"], layer["config"]
    name = c["name"]
    kind = {"QSimpleRNN": "SimpleRNN", "QGRU": "GRU"}[cls]
    steps, features = _sequence_shape(imp, layer)
    if c.get("enable_oq", False):
        imp.fail(layer, "an output quantizer on a recurrent layer is not supported; set enable_oq=False")
    acts = {"activation": c.get("activation", "linear")}
    if kind == "GRU":
        acts["recurrent_activation"] = c.get("recurrent_activation", "linear")
    for key, fn in acts.items():
        if fn not in ("linear", "relu"):
            imp.fail(layer, f"{key} {fn!r} is not supported: HGQ2 computes it in float between its quantizers; "
                            f"use 'linear' (the quantizers saturate) or 'relu'")  # fmt: skip
    units = int(c["units"])
    g = GATES[kind]
    # .keras files keep the cell's variables in a group "cell"; Keras 3 .h5 files name them.
    ws = [(n[len("cell/") :] if n and n.startswith("cell/") else n, a) for n, a in imp.weights(name)]
    named = {n: a for n, a in ws if n in ("kernel", "recurrent_kernel", "bias")}
    arrays = [named.get(k) for k in ("kernel", "recurrent_kernel", "bias")] if named else [a for n, a in ws if n == "cell"]
    use_bias = c.get("use_bias", True)
    if len(arrays) < 2 + use_bias or any(a is None for a in arrays[: 2 + use_bias]):
        raise ModelFormatError(f"layer {name!r}: kernel, recurrent kernel and bias not found in the weights file")
    kernel, rkernel = (np.asarray(a, dtype=np.float32) for a in arrays[:2])
    if kernel.shape != (features, g * units):
        imp.fail(layer, f"kernel of shape {kernel.shape} does not match {features} features and {units} units")
    reset_after = bool(c.get("reset_after", True)) if kind == "GRU" else True
    qk = hgq.quantize(kernel, *hgq.quantizer_kif(layer, ws, "kq"))
    qr = hgq.quantize(rkernel, *hgq.quantizer_kif(layer, ws, "rkq"))
    if use_bias:
        qb = hgq.quantize(np.asarray(arrays[2], dtype=np.float32), *hgq.quantizer_kif(layer, ws, "bq"))
    else:
        qb = np.zeros((2, g * units) if kind == "GRU" and reset_after else g * units)
    qb, qrb = (qb[0], qb[1]) if kind == "GRU" and reset_after else (qb, None)

    def mantissas(v):
        f = max([dyadic_frac(float(a)) for a in np.ravel(v)] + [0])
        return np.array([int(Fraction(float(a)) * 2**f) for a in np.ravel(v)], dtype=np.int64).reshape(np.shape(v)), f

    km, kf = mantissas(qk)
    rm, rf = mantissas(qr)
    bf = max(mantissas(qb)[1], mantissas(qrb)[1] if qrb is not None else 0)
    bm = np.array([int(Fraction(float(a)) * 2**bf) for a in qb], dtype=np.int64)
    rb = None
    if qrb is not None:
        rbm = np.array([int(Fraction(float(a)) * 2**bf) for a in qrb], dtype=np.int64)
        bm[: 2 * units] += rbm[: 2 * units]  # the z and r gates add both biases
        rb = np.zeros_like(rbm)
        rb[2 * units :] = rbm[2 * units :]

    def lanes_of(which, n):
        k, i, f, rounding, overflow = hgq.quantizer_kif(layer, ws, which)
        try:
            arrays = [np.broadcast_to(np.asarray(a).reshape(-1) if np.size(a) == n else a, (n,)) for a in (k, i, f)]
        except ValueError:
            imp.fail(layer, f"its {which} quantizer has shape {np.shape(k)}, which does not fit {n} lanes")
        return hgq.lane_types(*arrays, rounding, overflow)

    if c.get("enable_iq", True):
        lanes = lanes_of("iq", features) * steps
        imp.cur = imp.b.requant_lanes(f"{name}_iq", imp.cur, lanes, attrs={"source": f"{cls} input quantizer"})
    xt = imp.graph.tensors[imp.cur]
    lane_types = {}
    for point, which in _HGQ_POINTS[cls].items():
        if point == "state" and not c.get("sq_conf"):
            continue  # QSimpleRNN reads its (already quantized) output back by default
        lane_types[point] = {"lanes": lanes_of(which, 2 * units if point == "gate" else units), "affine": hgq.quantizer_affine(layer, which)}

    # Exact types: the new state from the quantizers' ranges, the sums from the weights.
    lo_x, hi_x = imp.b.bounds[imp.cur]
    x_mag = Fraction(max(max(abs(int(v)) for v in lo_x), max(abs(int(v)) for v in hi_x)), 2**xt.type.frac)
    relu = acts["activation"] == "relu"
    if kind == "SimpleRNN":
        lo, hi, f = _point_range(lane_types["pre"])
        lo, hi = (max(lo, 0), max(hi, 0)) if relu else (lo, hi)
        state = _type_of(lo, hi, f)
        table = state
    else:
        s_lo, s_hi, sf = _point_range(lane_types["state"])
        g_lo, g_hi, gf = _point_range(lane_types["gate"])
        c_lo, c_hi, cf = _point_range(lane_types["cand"])
        a, b = _mul_range((g_lo, g_hi), (s_lo, s_hi)), _mul_range((1 - g_hi, 1 - g_lo), (c_lo, c_hi))
        state = _type_of(a[0] + b[0], a[1] + b[1], gf + max(sf, cf))
        table = _type_of(g_lo, g_hi, gf)
    if "state" in lane_types:
        s_lo, s_hi, hf = _point_range(lane_types["state"])
        h_mag = max(abs(s_lo), abs(s_hi))
    else:
        h_mag, hf = max(abs(Fraction(state.min)), abs(Fraction(state.max))), state.frac
    col = np.abs(km).sum(axis=0).astype(object) * Fraction(1, 2**kf) * x_mag + np.abs(rm).sum(axis=0).astype(object) * Fraction(1, 2**rf) * h_mag
    col = col + np.abs(bm).astype(object) * Fraction(1, 2**bf)
    if rb is not None:
        col = col + np.abs(rb).astype(object) * Fraction(1, 2**bf)
    top = max(col)
    accum = _type_of(-top, top, max(xt.type.frac + kf, bf, hf + rf))
    specs = {key: activation_spec(fn, accum, table, table_size=2, keras3=True) for key, fn in acts.items()}
    op = OPS[kind](
        units=units, kernel=km, recurrent_kernel=rm, bias=bm, kernel_frac=kf, recurrent_frac=rf, bias_frac=bf,
        accum=accum, table=table, state=state, return_sequences=bool(c.get("return_sequences", False)),
        recurrent_bias=rb, reset_after=reset_after, lane_types=lane_types, **specs,
    )  # fmt: skip
    shape = (steps, units) if op.return_sequences else (units,)
    out = imp.b.tensor(name, shape, state)
    imp.graph.add_node(Node(name, op, [imp.cur], [out], {"source": f"HGQ2 {cls}", "float_weights": False}))
    for what, t in (("pre-activation sums", accum), ("state updates", state)):
        if t.width > FLOAT32_BITS:
            imp.graph.notes.append(
                f"{name}: HGQ2 computes the {what} in float32 ({FLOAT32_BITS} significant bits); they need {t.width} bits "
                f"here, so HGQ2's predict may round where rtlgen is exact"
            )
    imp.cur = out
    imp.float_layer = None


# -- QKeras ---------------------------------------------------------------------------------------

# QKeras's own hard_sigmoid (qkeras.quantizers.hard_sigmoid): clip(x / 2 + 1 / 2, 0, 1), exact.
QKERAS_HARD_SIGMOID = {"kind": "pwl", "const_type": "fixed<18,8>", "function": "hard_sigmoid", "slope_hi": 0.5, "bias_hi": 0.5,
                       "slope_lo": 0.5, "bias_lo": 0.5, "knot": 0.0, "lower": 0.0, "upper": 1.0}  # fmt: skip


def _act_range(spec: dict, lo, hi, frac: int) -> tuple:
    """``(lo, hi, frac)`` after an exact activation (see :func:`rtlgen.ir.ops.recurrent.exact_activation`)."""
    from fractions import Fraction

    from rtlgen.ir.ops.recurrent import exact_activation

    _, f = exact_activation(spec, np.zeros((1, 1), dtype=np.int64), frac)
    if spec["slope_lo"] == 0.0 and spec.get("lower") is None:  # relu
        return max(lo, 0), max(hi, 0), f
    if spec.get("lower") is None and spec.get("upper") is None:
        return lo, hi, f
    a, b = Fraction(spec["slope_hi"]), Fraction(spec["bias_hi"])
    lo, hi = lo * a + b, hi * a + b
    lo, hi = max(lo, Fraction(spec["lower"])), min(hi, Fraction(spec["upper"]))
    return lo, hi, f


def _through(point: str, lane_types: dict, spec: dict, rng: tuple) -> tuple:
    """A value's range and grid after an activation and the point's quantizer (if any)."""
    lo, hi, f = _act_range(spec, *rng)
    if point in lane_types:
        qlo, qhi, qf = _point_range(lane_types[point])
        return max(lo, qlo), min(hi, qhi), qf
    return lo, hi, f


def _qkeras_activation(imp, layer, key: str, spec):
    """``(activation spec, quantizer type or None)`` of a QKeras recurrent layer's activation."""
    from ._keras import parse_quantizer, quantizer_type

    parsed = parse_quantizer(spec) if spec is not None else ("linear", {})
    name, kw = parsed
    kw = {**kw, **dict(zip(("bits", "use_stochastic_rounding", "symmetric", "use_real_tanh"), kw.pop("__args__", [])))}
    if name in ("linear", None):
        return activation_spec("linear", PWL_TYPE, PWL_TYPE, table_size=2, keras3=False), None
    if name == "relu":
        return activation_spec("relu", PWL_TYPE, PWL_TYPE, table_size=2, keras3=False), None
    if name == "hard_sigmoid" and key == "recurrent_activation":
        return dict(QKERAS_HARD_SIGMOID), None
    if name == "quantized_tanh":
        if kw.get("use_real_tanh") or kw.get("use_stochastic_rounding"):
            imp.fail(layer, f"{key} quantized_tanh with use_real_tanh or stochastic rounding is not supported; use quantized_tanh(bits)")
        # QKeras's default (hard) internal sigmoid makes it clip(x, -1, 1) rounded half to even.
        bits = int(kw.get("bits", 8))
        t = FixedType(bits, 1, True, "RND_CONV", "SAT_SYM" if kw.get("symmetric") else "SAT")
        return activation_spec("linear", PWL_TYPE, PWL_TYPE, table_size=2, keras3=False), t
    if name in ("quantized_bits", "quantized_relu") and key == "activation":
        t, _ = quantizer_type(spec, layer["config"]["name"])
        return activation_spec("linear", PWL_TYPE, PWL_TYPE, table_size=2, keras3=False), t
    want = "hard_sigmoid, linear or relu" if key == "recurrent_activation" else "quantized_tanh, quantized_bits, quantized_relu, linear or relu"
    imp.fail(layer, f"{key} {name!r} is not supported in QKeras recurrent layers (it is float, not on a fixed-point grid); use {want}")


def qkeras_recurrent(imp, layer) -> None:
    """A QKeras QSimpleRNN, QLSTM or QGRU read by the Keras importer ``imp``: quantized weights,
    QKeras's state quantizer on the states each step reads, the activation quantizer after the
    activation, exact sums and products, as QKeras's predict computes them in float32."""
    from fractions import Fraction

    from ._keras import qkeras_weights, quantizer_type

    cls, c = layer["class_name"], layer["config"]
    name = c["name"]
    kind = {"QSimpleRNN": "SimpleRNN", "QLSTM": "LSTM", "QGRU": "GRU"}[cls]
    steps, features = _sequence_shape(imp, layer)
    units, g = int(c["units"]), GATES[kind]
    use_bias = c.get("use_bias", True)
    for key in ("kernel_quantizer", "recurrent_quantizer") + (("bias_quantizer",) if use_bias else ()):
        if c.get(key) is None:
            # (QGRU without one even multiplies the state with the input kernel.)
            imp.fail(layer, f"{key} is None: the weights stay float; set a quantizer such as quantized_bits(8,0,alpha=1)")
    if kind != "SimpleRNN" and c.get("state_quantizer") is None:
        imp.fail(layer, "state_quantizer is None: QKeras keeps the states in float32 and they leave every fixed-point grid; set one")
    ws = {n: a for n, a in imp.weights(name)}
    if any(k not in ws for k in ("kernel", "recurrent_kernel")) or (use_bias and "bias" not in ws):
        raise ModelFormatError(f"layer {name!r}: kernel, recurrent kernel and bias not found in the weights file")
    reset_after = bool(c.get("reset_after", False)) if kind == "GRU" else True
    km, kf = qkeras_weights(c["kernel_quantizer"], ws["kernel"], name)
    rm, rf = qkeras_weights(c["recurrent_quantizer"], ws["recurrent_kernel"], name)
    bias = ws["bias"] if use_bias else np.zeros((2, g * units) if kind == "GRU" and reset_after else g * units)
    bmm, bf = qkeras_weights(c["bias_quantizer"], bias, name) if use_bias else (np.zeros(np.shape(bias), dtype=np.int64), 0)
    bmm = np.asarray(bmm, dtype=np.int64)
    rb = None
    if kind == "GRU" and reset_after:
        bm, rbm = bmm[0].copy(), bmm[1]
        bm[: 2 * units] += rbm[: 2 * units]
        rb = np.zeros_like(rbm)
        rb[2 * units :] = rbm[2 * units :]
    else:
        bm = bmm.reshape(-1)
    act, act_q = _qkeras_activation(imp, layer, "activation", c.get("activation"))
    specs = {"activation": act}
    if kind != "SimpleRNN":
        specs["recurrent_activation"], _ = _qkeras_activation(imp, layer, "recurrent_activation", c.get("recurrent_activation", "hard_sigmoid"))
    lane_types = {}
    if c.get("state_quantizer") is not None:
        lane_types["state"] = {"lanes": [str(quantizer_type(c["state_quantizer"], name)[0])] * units, "affine": None}
    if act_q is not None:
        lane_types["pre" if kind == "SimpleRNN" else "cand"] = {"lanes": [str(act_q)] * units, "affine": None}

    # Exact types from the ranges: input and read state bound the sums, quantizers bound the rest.
    xt = imp.graph.tensors[imp.cur]
    lo_x, hi_x = imp.b.bounds[imp.cur]
    x_mag = Fraction(max(max(abs(int(v)) for v in lo_x), max(abs(int(v)) for v in hi_x)), 2**xt.type.frac)
    fz = max(xt.type.frac + kf, bf)

    def pre_range(h_mag, hf):
        col = np.abs(km).sum(axis=0).astype(object) * Fraction(1, 2**kf) * x_mag + np.abs(rm).sum(axis=0).astype(object) * Fraction(1, 2**rf) * h_mag
        col = col + np.abs(bm).astype(object) * Fraction(1, 2**bf)
        top = max(col)
        return -top, top, max(fz, hf + rf)

    if kind == "SimpleRNN":
        if "state" in lane_types:
            s_lo, s_hi, hf = _point_range(lane_types["state"])
            pre = pre_range(max(abs(s_lo), abs(s_hi)), hf)
        elif "pre" in lane_types:
            q_lo, q_hi, qf = _point_range(lane_types["pre"])
            pre = pre_range(max(abs(q_lo), abs(q_hi)), qf)
        else:
            imp.fail(layer, "a linear QSimpleRNN without state_quantizer has no fixed-point grid for its state; quantize the activation or the state")
        lo, hi, f = _through("pre", lane_types, act, pre)
        state = _type_of(lo, hi, f)
        cell, table = None, state
    else:
        s_lo, s_hi, sf = _point_range(lane_types["state"])
        pre = pre_range(max(abs(s_lo), abs(s_hi)), sf)
        g_lo, g_hi, gf = _through("gate", lane_types, specs["recurrent_activation"], pre)
        table = _type_of(g_lo, g_hi, gf)
        if kind == "GRU":
            # The candidate's sum: r * (h U_h + b) or (r h) U_h, bounded by |r| <= max |gate|.
            c_lo, c_hi, cf = _through("cand", lane_types, act, pre_range(max(abs(s_lo), abs(s_hi)) * max(abs(g_lo), abs(g_hi)), gf + sf))
            a, b = _mul_range((g_lo, g_hi), (s_lo, s_hi)), _mul_range((1 - g_hi, 1 - g_lo), (c_lo, c_hi))
            state = _type_of(a[0] + b[0], a[1] + b[1], gf + max(sf, cf))
            cell = None
        else:
            c_lo, c_hi, cf = _through("cand", lane_types, act, pre)
            a, b = _mul_range((g_lo, g_hi), (s_lo, s_hi)), _mul_range((g_lo, g_hi), (c_lo, c_hi))
            cell = _type_of(a[0] + b[0], a[1] + b[1], gf + max(sf, cf))
            n_lo, n_hi, nf = _through("cand", lane_types, act, (Fraction(cell.min), Fraction(cell.max), cell.frac))
            o = _mul_range((g_lo, g_hi), (n_lo, n_hi))
            state = _type_of(o[0], o[1], gf + nf)
            specs["cell_activation"] = act
    accum = _type_of(pre[0], pre[1], pre[2])
    op = OPS[kind](
        units=units, kernel=np.asarray(km, dtype=np.int64), recurrent_kernel=np.asarray(rm, dtype=np.int64), bias=bm,
        kernel_frac=kf, recurrent_frac=rf, bias_frac=bf, accum=accum, table=table, state=state, cell=cell,
        return_sequences=bool(c.get("return_sequences", False)), recurrent_bias=rb, reset_after=reset_after,
        lane_types=lane_types, **specs,
    )  # fmt: skip
    shape = (steps, units) if op.return_sequences else (units,)
    out = imp.b.tensor(name, shape, state)
    imp.graph.add_node(Node(name, op, [imp.cur], [out], {"source": f"QKeras {cls}", "float_weights": False}))
    for what, t in (("pre-activation sums", accum), ("states", state)) + ((("cell states", cell),) if cell is not None else ()):
        if t.width > FLOAT32_BITS:
            imp.graph.notes.append(
                f"{name}: QKeras computes the {what} in float32 ({FLOAT32_BITS} significant bits); they need {t.width} bits "
                f"here, so QKeras's predict may round where rtlgen is exact"
            )
    imp.cur = out
    imp.float_layer = None


# -- ONNX -----------------------------------------------------------------------------------------

ONNX_RECURRENT = {"LSTM": "LSTM", "GRU": "GRU", "RNN": "SimpleRNN"}
_ONNX_ACTIVATIONS = {"Sigmoid": "sigmoid", "Tanh": "tanh", "Relu": "relu", "HardSigmoid": "hard_sigmoid",
                     "Softsign": "softsign", "Softplus": "softplus"}  # fmt: skip
# ONNX's gate blocks in Keras' order: LSTM iofc -> ifco; GRU zrh and RNN are the same.
_GATE_ORDER = {"LSTM": [0, 2, 3, 1], "GRU": [0, 1, 2], "SimpleRNN": [0]}


def _keras_gates(w, kind: str, units: int):
    """ONNX's ``(gates * units, n)`` weights as Keras' ``(n, gates * units)`` in Keras' gate order."""
    blocks = [w[k * units : (k + 1) * units] for k in _GATE_ORDER[kind]]
    return np.concatenate(blocks, axis=0).T


def onnx_time_transpose(imp, node, x) -> bool:
    """PyTorch's ``batch_first`` transposes ((B, T, F) <-> (T, B, F)) around a recurrent node move
    no data: the hardware keeps the sequence time-major per sample either way. True when handled."""
    from ._onnx import _Host, _Int

    readers = imp.readers.get(node.output[0], [])
    if isinstance(x, _Host) and not x.nodes and readers and all(r.op_type in ONNX_RECURRENT for r in readers):
        imp.values[node.output[0]] = _Host([], nhwc=True)
        return True
    if isinstance(x, _Int):
        prod = imp.graph.producer(x.tensor)
        if prod is not None and prod.kind in ("LSTM", "GRU", "SimpleRNN") and len(imp.graph.tensors[x.tensor].shape) == 2:
            imp.values[node.output[0]] = _Int(x.tensor, node.output[0])
            return True
    return False


def onnx_recurrent(imp, node, ins) -> None:
    """An ONNX LSTM, GRU or RNN node of a float model (as PyTorch exports them): forward, zero
    initial state, no peepholes; its output is ``Y`` (every step) when a later node or the graph
    reads it, else the last state ``Y_h``."""
    from ._onnx import _attrs, _Const, _Host, _Int

    kind = ONNX_RECURRENT[node.op_type]
    a = _attrs(node)
    units = int(a.get("hidden_size", 0))
    if a.get("direction", b"forward") not in (b"forward", "forward"):
        imp.fail(node, f"direction {a['direction']!r} is not supported; export a forward (unidirectional) layer")
    if a.get("clip") is not None:
        imp.fail(node, "clip is not supported; export without clip")
    if int(a.get("layout", 0)) != 0:
        imp.fail(node, "layout=1 is not supported; export with layout 0 (PyTorch's batch_first adds Transposes instead)")
    x = ins[0]
    if not isinstance(x, _Host) or not x.nhwc:
        if isinstance(x, _Host):
            imp.fail(node, "its input must be the network input in (batch, steps, features) order behind a Transpose (1, 0, 2)")
        x = imp.fixed_input(node, x)
    else:
        x = imp.float_input(node, x)
    for idx, what in ((4, "sequence_lens"), (7, "peepholes P")):
        if len(ins) > idx and ins[idx] is not None:
            imp.fail(node, f"{what} is not supported")
    for idx, what in ((5, "initial_h"), (6, "initial_c")):
        if len(ins) > idx and ins[idx] is not None:
            v = ins[idx]
            if not isinstance(v, _Const) or np.any(np.asarray(v.value) != 0):
                imp.fail(node, f"{what} must be zero (a constant); rtlgen starts every sequence from a zero state")
    g = {"LSTM": 4, "GRU": 3, "SimpleRNN": 1}[kind]
    W = np.asarray(imp.const(node, node.input[1], "W").value, dtype=np.float64)[0]
    R = np.asarray(imp.const(node, node.input[2], "R").value, dtype=np.float64)[0]
    if len(node.input) > 3 and node.input[3]:
        B = np.asarray(imp.const(node, node.input[3], "B").value, dtype=np.float64)[0]
    else:
        B = np.zeros(2 * g * units)
    wb, rb = (_keras_gates(b.reshape(-1, 1), kind, units).ravel() for b in (B[: g * units], B[g * units :]))
    default = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"], "SimpleRNN": ["Tanh"]}[kind]
    acts = [v.decode() if isinstance(v, bytes) else str(v) for v in a.get("activations", [])] or default
    for fn in acts:
        if fn not in _ONNX_ACTIVATIONS:
            imp.fail(node, f"activation {fn!r} is not supported; use one of {', '.join(_ONNX_ACTIVATIONS)}")
    if kind == "LSTM" and acts[1] != acts[2]:
        imp.fail(node, f"the cell and output activations must be the same, not {acts[1]} and {acts[2]}")
    alphas = a.get("activation_alpha")
    if alphas and "HardSigmoid" in acts and any(abs(float(v) - 0.2) > 1e-7 for v in alphas):
        imp.fail(node, "HardSigmoid is supported with alpha 0.2 and beta 0.5 only")
    names = [_ONNX_ACTIVATIONS[fn] for fn in acts]
    rec, act_fn = (None, names[0]) if kind == "SimpleRNN" else (names[0], names[1])
    reads_y = bool(imp.readers.get(node.output[0])) or node.output[0] == imp.proto.graph.output[0].name
    out_name = node.output[0] if reads_y or len(node.output) < 2 else node.output[1]
    cur = recurrent_node(
        imp.builder, imp.types, node.name, x.tensor, kind, units=units,
        kernel=_keras_gates(W, kind, units), recurrent_kernel=_keras_gates(R, kind, units), bias=wb, recurrent_bias=rb,
        activation=act_fn, recurrent_activation=rec, return_sequences=reads_y,
        reset_after=bool(int(a.get("linear_before_reset", 0))), keras3=False, source=node.op_type,
    )  # fmt: skip
    imp.values[out_name] = _Int(cur, out_name)
    # Y is time-major (steps, 1, batch, units) until PyTorch's closing Transpose: its squeezed
    # forms have no batch-first shape for the layout checks.
    for r in imp.readers.get(out_name, []):
        if r.op_type in ("Squeeze", "Reshape") and out_name == node.output[0]:
            imp.shapes.pop(r.output[0], None)
