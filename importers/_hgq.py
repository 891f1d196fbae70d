"""HGQ2 (``hgq``) layers and quantizers, read from the saved variables without importing hgq.

An HGQ2 quantizer has, per element, ``k`` (keep the sign), ``i`` (integer bits without the sign) and
``f`` (fractional bits); the value is ``ap_fixed<k+i+f, k+i>`` with the quantizer's rounding (RND,
RND_CONV, TRN) and overflow (WRAP, SAT, SAT_SYM) modes, and an element with ``k+i+f <= 0`` is
pruned to zero. Each weight, bias element and input feature may have its own type.
"""

from __future__ import annotations

import numpy as np

from rtlgen.errors import UnsupportedOpError
from rtlgen.fixed import FixedType

__all__ = ["is_hgq", "quantizer_kif", "quantizer_affine", "quantize", "lane_types"]

# Quantizer configs whose saved form drops the modes they fix: both saturate.
_SATURATING = ("HardTanhConfig", "HardSigmoidConfig")


def is_hgq(layer: dict) -> bool:
    module = str(layer.get("module") or "")
    registered = str(layer.get("registered_name") or "")
    return module.startswith("hgq.") or registered.startswith(("hgq>", "hgq2>"))


def quantizer_kif(layer: dict, weights: list, which: str):
    """``(k, i, f, rounding, overflow)`` of the layer's ``which`` quantizer (iq, kq, bq, oq)."""
    name = layer["config"]["name"]
    saved = layer["config"].get(f"{which}_conf") or {}
    conf = saved.get("config", {})
    q_type = str(conf.get("q_type", "kbi")).lower()
    overflow = str(conf.get("overflow_mode", "SAT" if saved.get("class_name") in _SATURATING else "WRAP")).upper()
    rounding = str(conf.get("round_mode", "RND")).upper()
    if q_type not in ("kbi", "kif"):
        raise UnsupportedOpError(name, layer["class_name"], f"{which} quantizer type {q_type!r} is not supported (kbi, kif)")
    if rounding not in ("RND", "RND_CONV", "TRN") or overflow not in ("WRAP", "SAT", "SAT_SYM"):
        raise UnsupportedOpError(name, layer["class_name"], f"{which} quantizer modes {rounding}/{overflow} are not supported")
    named = {n.rsplit("/", 1)[-1]: a for n, a in weights if n and n.startswith(f"{which}/quantizer/")}
    if named:  # Keras 3 .h5 files name every variable
        d = dict(named)
        if "b" not in d and "f" not in d:
            raise UnsupportedOpError(name, layer["class_name"], f"the {which} quantizer's variables are missing from the weights file")
        return _kif(d, q_type, rounding, overflow)
    arrays = [a for n, a in weights if n == f"{which}/quantizer"]
    # Saved as trainable variables then non-trainable ones; with WRAP, i is not trainable.
    if q_type == "kbi":
        names = ["b", "i", "k"] if overflow != "WRAP" else ["b", "k", "i", "i_decay_speed"]
    else:
        names = ["i", "f", "k"] if overflow != "WRAP" else ["f", "k", "i", "i_decay_speed"]
    if len(arrays) < 3:
        raise UnsupportedOpError(name, layer["class_name"], f"the {which} quantizer's variables are missing from the weights file")
    return _kif(dict(zip(names, arrays)), q_type, rounding, overflow)


def quantizer_affine(layer: dict, which: str):
    """``[scale, shift]`` HGQ2 applies after the layer's ``which`` quantizer, or None (a
    HardSigmoidConfig maps ``[-2, 2)`` onto ``[0, 1)``: ``x / 4 + 1 / 2``)."""
    saved = layer["config"].get(f"{which}_conf") or {}
    conf = saved.get("config", {})
    name, cls = layer["config"]["name"], layer["class_name"]
    if conf.get("scaler") is not None:
        raise UnsupportedOpError(name, cls, f"{which} quantizer with a scaler is not supported; use scaler=None")
    aff = [0.25, 0.5] if saved.get("class_name") == "HardSigmoidConfig" else conf.get("affine")
    if aff is None:
        return None
    scale = float(aff[0])
    if scale <= 0 or np.log2(scale) != np.round(np.log2(scale)) or float(aff[1]) * 2**24 != np.round(float(aff[1]) * 2**24):
        raise UnsupportedOpError(name, cls, f"{which} quantizer's affine map {list(aff)} is not supported; the scale must be a power of two")
    return [float(aff[0]), float(aff[1])]


def _kif(d, q_type, rounding, overflow):
    k = d["k"].astype(np.int64)
    i = np.round(d["i"].astype(np.float64)).astype(np.int64)
    f = (np.round(d["b"].astype(np.float64)).astype(np.int64) - i) if q_type == "kbi" else np.round(d["f"].astype(np.float64)).astype(np.int64)
    return k, i, f, rounding, overflow


def _round(x, mode):
    if mode == "RND":
        return np.floor(x + 0.5)
    if mode == "RND_CONV":
        return np.round(x)
    return np.floor(x)


def quantize(x, k, i, f, rounding, overflow) -> np.ndarray:
    """The quantized real values, exactly (float64 holds every value of these widths)."""
    x = np.asarray(x, dtype=np.float64)
    k, i, f = (np.broadcast_to(a, x.shape).astype(np.float64) for a in (k, i, f))
    keep = (k + i + f) > 0
    i = np.maximum(i, -f)
    if overflow in ("SAT", "SAT_SYM"):
        hi = 2.0**i - 2.0**-f
        lo = -k * 2.0**i if overflow == "SAT" else -k * hi
        x = np.clip(x, lo, hi)
        x = _round(x * 2.0**f, rounding) / 2.0**f
    else:
        x = _round(x * 2.0**f, rounding) / 2.0**f
        bits = i + k
        off = k * 2.0 ** (bits - 1)
        x = np.mod(x + off, 2.0**bits) - off
    return np.where(keep, x, 0.0)


def lane_types(k, i, f, rounding, overflow) -> list:
    """One type string per element (``None`` where pruned), for a per-lane requantization."""
    out = []
    for kk, ii, ff in zip(np.ravel(k), np.ravel(i), np.ravel(f)):
        kk, ii, ff = int(kk), int(ii), int(ff)
        if kk + ii + ff <= 0:
            out.append(None)
            continue
        ii = max(ii, -ff)
        out.append(str(FixedType(kk + ii + ff, kk + ii, bool(kk), rounding, overflow)))
    return out
