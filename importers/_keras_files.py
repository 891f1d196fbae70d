"""Reading Keras model files without TensorFlow, QKeras or HGQ2.

A Keras 3 ``.keras`` file is a zip of ``config.json`` and ``model.weights.h5``; a Keras 2 ``.h5``
holds the JSON configuration in its ``model_config`` attribute and the weights under
``model_weights``; the older split form is a JSON architecture file plus an HDF5 weights file.
All of them become one :class:`KerasModel`: the configuration dict and, per layer, its weights in
the order Keras creates them, named where the file names them.
"""

from __future__ import annotations

import io
import json
import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rtlgen.errors import ModelFormatError

__all__ = ["KerasModel", "read_keras"]


@dataclass
class KerasModel:
    config: dict  # {"class_name": ..., "config": {...}}
    weights: dict = field(default_factory=dict)  # layer name -> list[(name or None, array)]
    source: str = ""


def read_keras(model, weights=None) -> KerasModel:
    """A :class:`KerasModel` from a path (``.keras``, ``.h5``, ``.json``) or an in-memory model."""
    if hasattr(model, "get_config") and hasattr(model, "layers"):
        return _from_memory(model)
    path = Path(os.fspath(model))
    if not path.exists():
        raise ModelFormatError(f"model file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix == ".keras":
            return _read_zip(path)
        if suffix in (".h5", ".hdf5"):
            return _read_h5(path)
        if suffix == ".json":
            return _read_json(path, weights)
    except ModelFormatError:
        raise
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as e:
        raise ModelFormatError(f"model file {str(path)!r} is not a readable Keras model ({type(e).__name__}: {e})") from None
    raise ModelFormatError(f"model file {str(path)!r}: expected a .keras, .h5 or .json Keras file")


def _h5py():
    try:
        import h5py
    except ImportError:  # pragma: no cover - h5py is a core dependency
        raise ModelFormatError("reading Keras files needs h5py: pip install h5py") from None
    return h5py


def _read_zip(path: Path) -> KerasModel:
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        if "config.json" not in names:
            raise ModelFormatError(f"model file {str(path)!r} is not a Keras 3 archive (no config.json)")
        config = json.loads(z.read("config.json"))
        weights = {}
        if "model.weights.h5" in names:
            h5py = _h5py()
            with h5py.File(io.BytesIO(z.read("model.weights.h5")), "r") as f:
                weights = _keras3_weights(f, config)
    return KerasModel(config, weights, str(path))


def _snake(name: str) -> str:
    """Keras 3's group name for a layer class (``keras.src.utils.naming.to_snake_case``)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _keras3_weights(f, model_json: dict) -> dict:
    """Keras 3 stores variables by layer *class* (``layers/dense_1/vars/0..``), in creation order;
    nested quantizers or batch norms sit in subgroups. Groups are matched to layer names through
    their ``name`` attribute when present, else by Keras's own naming of classes in layer order."""
    cfg = model_json.get("config", {})
    layers = cfg.get("layers", []) if isinstance(cfg, dict) else cfg
    root = f["layers"] if "layers" in f else f
    by_attr = {}
    for key in root:
        vars_ = root[key].get("vars") if hasattr(root[key], "get") else None
        name = vars_.attrs.get("name") if vars_ is not None else None
        if name is not None:
            by_attr[name.decode() if isinstance(name, bytes) else str(name)] = key
    seen: dict[str, int] = {}
    out = {}
    for layer in layers:
        lname = layer.get("config", {}).get("name")
        base = _snake(layer["class_name"])
        n = seen.get(base, 0)
        seen[base] = n + 1
        key = by_attr.get(lname) or (base if n == 0 else f"{base}_{n}")
        if key not in root:
            continue
        out[lname] = _group_vars(root[key])
    return out


def _group_vars(group) -> list:
    """The group's own variables, then each subgroup's as ``(path, array)`` (path names the subgroup)."""
    arrays = []
    if "vars" in group:
        arrays += [(None, np.array(group["vars"][k])) for k in sorted(group["vars"], key=int)]
    for key in sorted(group):
        if key != "vars" and hasattr(group[key], "keys"):
            arrays += [((key + "/" + n) if n else key, a) for n, a in _group_vars(group[key])]
    return arrays


def _read_h5(path: Path) -> KerasModel:
    h5py = _h5py()
    with h5py.File(path, "r") as f:
        raw = f.attrs.get("model_config")
        if raw is None:
            raise ModelFormatError(
                f"model file {str(path)!r} holds weights only; pass the JSON architecture file "
                f"(model.json) and this file as its weights"
            )
        config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
        group = f["model_weights"] if "model_weights" in f else f
        weights = _keras2_weights(group)
    return KerasModel(config, weights, str(path))


def _keras2_weights(group) -> dict:
    out = {}
    names = group.attrs.get("layer_names")
    layer_names = [n.decode() if isinstance(n, bytes) else n for n in names] if names is not None else list(group)
    for layer in layer_names:
        g = group[layer]
        wnames = [n.decode() if isinstance(n, bytes) else n for n in g.attrs.get("weight_names", [])]
        out[layer] = [(_weight_name(n), np.array(g[n])) for n in wnames]
    return out


def _weight_name(path: str) -> str:
    """The name a weight is looked up by: its leaf, or ``iq/quantizer/<leaf>`` for the variables
    of an HGQ2 quantizer (saved under ``<layer>_iq/fixed_point_quantizer_.../<leaf>``, or ``kq/...``
    inside a recurrent cell)."""
    parts = path.split(":")[0].split("/")
    for part in parts[:-1]:
        # An HGQ2 recurrent cell names its quantizers bare (``kq``) or after the cell (``qgru_cell_rkq``).
        m = re.search(r"_(iq|kq|bq|oq)$", part) or re.fullmatch(r"(?:\w*cell_)?(iq|kq|rkq|bq|sq|paq|praq|rhq)", part)
        if m:
            return f"{m.group(1)}/quantizer/{parts[-1]}"
    return parts[-1]


def _read_json(path: Path, weights) -> KerasModel:
    config = json.loads(path.read_text())
    if weights is None:
        stem = path.with_suffix("")
        candidates = [Path(f"{stem}_weights.h5"), stem.with_suffix(".h5")]
        weights = next((c for c in candidates if c.exists()), None)
        if weights is None:
            raise ModelFormatError(
                f"no weights found for {str(path)!r}: expected {candidates[0].name} beside it"
            )
    h5py = _h5py()
    with h5py.File(weights, "r") as f:
        group = f["model_weights"] if "model_weights" in f else f
        w = _keras2_weights(group)
    return KerasModel(config, w, str(path))


def _from_memory(model) -> KerasModel:
    # A Keras 3 model is read from the very file it saves, so an in-memory model and its .keras
    # file name every weight (quantizer variables included) the same way.
    if hasattr(model, "save") and type(model).__module__.startswith("keras"):
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.keras"
            try:
                model.save(path)
            except Exception:  # models that Keras cannot serialize: read their variables directly
                pass
            else:
                km = _read_zip(path)
                km.source = f"in-memory {type(model).__name__} {getattr(model, 'name', '')}"
                return km
    config = {"class_name": type(model).__name__, "config": model.get_config()}
    weights = {}
    for layer in model.layers:
        weights[layer.name] = [
            (getattr(v, "name", None) and str(v.name).split("/")[-1].split(":")[0], np.array(v)) for v in layer.weights
        ]
    return KerasModel(config, weights, f"in-memory {type(model).__name__} {getattr(model, 'name', '')}")
