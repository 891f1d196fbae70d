"""Test vectors of a generated testbench: ``tb/vectors.npz`` + ``tb/meta.json``.

Payload convention (shared with ``templates/test_design.py``): lane ``k`` of a
payload occupies bits ``[k*w + w-1 : k*w]`` (lane 0 in the LSBs), two's
complement when signed.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

VECTORS_FILE = "vectors.npz"
META_FILE = "meta.json"

#: Keys every ``meta.json`` must have.
REQUIRED_META = (
    "toplevel",
    "in_lanes",
    "in_width",
    "in_signed",
    "out_lanes",
    "out_width",
    "out_signed",
    "latency",
    "interval",
    "verilog_sources",
)

# Rows packed per numpy batch; bounds the (rows, lanes, width) bit matrix to a few MB.
_CHUNK = 2048


def lane_range(width: int, signed: bool) -> tuple[int, int]:
    """Inclusive ``(min, max)`` of a lane of ``width`` bits."""
    if signed:
        return -(1 << (width - 1)), (1 << (width - 1)) - 1
    return 0, (1 << width) - 1


def _check_lanes(a: np.ndarray, lanes: int, width: int, signed: bool, what: str) -> None:
    if a.ndim != 2 or a.shape[1] != lanes:
        raise ValueError(f"{what}: expected shape (N, {lanes}), got {a.shape}")
    if not 1 <= width <= (64 if signed else 63):
        raise ValueError(f"{what}: lane width {width} not representable in int64")
    if a.size:
        lo, hi = lane_range(width, signed)
        amin, amax = int(a.min()), int(a.max())
        if amin < lo or amax > hi:
            kind = "signed" if signed else "unsigned"
            raise ValueError(
                f"{what}: values [{amin}, {amax}] do not fit {kind} {width}-bit lanes [{lo}, {hi}]"
            )


def pack(values: np.ndarray, width: int, signed: bool) -> list[int]:
    """Pack an ``(N, lanes)`` integer array into N non-negative Python int payloads."""
    a = np.asarray(values)
    if a.dtype.kind not in "iu":
        raise TypeError(f"pack: integer array required, got dtype {a.dtype}")
    a = a.astype(np.int64, copy=False)
    if a.ndim == 1:
        a = a[None, :]
    n, lanes = a.shape
    _check_lanes(a, lanes, width, signed, "pack")
    nbytes = (lanes * width + 7) // 8
    mask = np.uint64((1 << width) - 1)
    out: list[int] = []
    for start in range(0, n, _CHUNK):
        u = a[start : start + _CHUNK].view(np.uint64) & mask
        rows = u.shape[0]
        bits = np.empty((rows, lanes, width), dtype=np.uint8)
        for b in range(width):
            bits[:, :, b] = (u >> np.uint64(b)) & np.uint64(1)
        packed = np.packbits(bits.reshape(rows, lanes * width), axis=1, bitorder="little")
        buf = packed.tobytes()
        out.extend(
            int.from_bytes(buf[i * nbytes : (i + 1) * nbytes], "little") for i in range(rows)
        )
    return out


def unpack(payloads: Iterable[int], lanes: int, width: int, signed: bool) -> np.ndarray:
    """Inverse of :func:`pack`: N payload ints -> ``(N, lanes)`` int64 array."""
    payloads = list(payloads)
    n = len(payloads)
    nbytes = (lanes * width + 7) // 8
    try:
        buf = b"".join(int(p).to_bytes(nbytes, "little") for p in payloads)
    except OverflowError:
        raise ValueError(f"unpack: payload wider than {lanes}x{width} bits or negative") from None
    by = np.frombuffer(buf, dtype=np.uint8).reshape(n, nbytes)
    bits = np.unpackbits(by, axis=1, bitorder="little")[:, : lanes * width]
    bits = bits.reshape(n, lanes, width)
    u = np.zeros((n, lanes), dtype=np.uint64)
    for b in range(width):
        u |= bits[:, :, b].astype(np.uint64) << np.uint64(b)
    if signed and width < 64:
        return u.astype(np.int64) - (bits[:, :, width - 1].astype(np.int64) << width)
    return u.view(np.int64)


def _validate_meta(meta: Mapping) -> dict:
    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise ValueError(f"meta is missing keys: {', '.join(missing)}")
    m = dict(meta)
    m.setdefault("in_beats", 1)
    m.setdefault("out_beats", 1)
    for k in ("in_lanes", "in_beats", "in_width", "out_lanes", "out_beats", "out_width", "latency", "interval"):
        m[k] = int(m[k])
    for k in ("in_signed", "out_signed"):
        m[k] = bool(m[k])
    if m["interval"] < 1 or m["latency"] < 0:
        raise ValueError("meta: need interval >= 1 and latency >= 0")
    srcs = m["verilog_sources"]
    if isinstance(srcs, str) or not srcs:
        raise ValueError("meta: verilog_sources must be a non-empty list of paths")
    m["verilog_sources"] = [str(s) for s in srcs]
    return m


def _write_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    # np.savez stamps the current time into the zip entries; fixed timestamps keep
    # the file byte-identical across runs.
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for name, arr in arrays.items():
            bio = io.BytesIO()
            np.lib.format.write_array(bio, np.ascontiguousarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, bio.getvalue(), compresslevel=6)


def check_pair(x, y, m: Mapping, *, flatten: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``x``/``y`` as int64 rows of whole samples, checked against the lanes, beats and types of
    ``m`` (``flatten``: rows may come in any shape of one sample)."""
    x, y = np.asarray(x), np.asarray(y)
    for name, a in (("x", x), ("y", y)):
        if a.dtype.kind not in "iu":
            raise TypeError(f"{name}: integer array required, got dtype {a.dtype}")
    x, y = x.astype(np.int64), y.astype(np.int64)
    if flatten:
        x, y = x.reshape(len(x), -1), y.reshape(len(y), -1)
    _check_lanes(x, m["in_beats"] * m["in_lanes"], m["in_width"], m["in_signed"], "x")
    _check_lanes(y, m["out_beats"] * m["out_lanes"], m["out_width"], m["out_signed"], "y")
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"x and y need the same, non-zero number of rows ({len(x)} vs {len(y)})")
    return x, y


def write_vectors(tb_dir, x: np.ndarray, y: np.ndarray, meta: Mapping) -> None:
    """Validate and write ``x`` (N, in_beats * in_lanes), ``y`` (N, out_beats * out_lanes) and
    ``meta`` into ``tb_dir``.

    Values must fit the lane widths/signedness declared in ``meta``; raises ValueError otherwise.
    """
    m = _validate_meta(meta)
    x, y = check_pair(x, y, m)
    tb = Path(tb_dir)
    tb.mkdir(parents=True, exist_ok=True)
    _write_npz(tb / VECTORS_FILE, {"x": x, "y": y})
    (tb / META_FILE).write_text(json.dumps(m, sort_keys=True, indent=2) + "\n")


def read_vectors(tb_dir) -> tuple[np.ndarray, np.ndarray, dict]:
    """Return ``(x, y, meta)`` as written by :func:`write_vectors`."""
    tb = Path(tb_dir)
    meta = json.loads((tb / META_FILE).read_text())
    with np.load(tb / VECTORS_FILE, allow_pickle=False) as f:
        return f["x"], f["y"], meta
