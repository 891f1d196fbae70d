"""The ``tdata`` rule of rtlgen's AXI4-Stream top level (docs/axi-stream.md), in pure numpy.

This one module packs network mantissas into the bytes an AXI4-Stream beat carries and unpacks
them again. It imports nothing but numpy and the standard library, so it is copied verbatim next
to every user of the rule: the cocotb AXI regression (``OUT/tb/tdata.py``) and the PYNQ driver of
a board package (``OUT/boards/<board>/driver/tdata.py``). The bare-metal C program's packing is
generated from the same :class:`Layout` (its fields become the ``RTLGEN_IN_*``/``RTLGEN_OUT_*``
constants of ``rtlgen_net.h``). Board and simulation therefore share one definition.

The rule, for one direction (input ``s_axis`` or output ``m_axis``):

* a lane of ``width`` bits occupies ``lane_bytes = ceil(width / 8)`` whole bytes; lane ``k`` of a
  beat is bytes ``[k*lane_bytes, (k+1)*lane_bytes)`` of the beat, little-endian;
* the lane holds the fixed-point mantissa sign-extended (signed types) or zero-extended (unsigned)
  to ``8*lane_bytes`` bits; an input lane's extension bits are ignored by the hardware, an output
  lane's are always driven;
* a beat is ``beat_bytes`` bytes: the ``lanes * lane_bytes`` bytes of its lanes, then zero padding
  up to the bus width (``beat_bytes`` equals ``lanes * lane_bytes`` for ``rtl/<top>_axis.v``; the
  board packages' ``<top>_axis_dma`` pads each beat to a width the AXI DMA takes);
* a sample is ``beats`` consecutive beats; element ``b*lanes + k`` of the flattened
  (channels-last) tensor is lane ``k`` of beat ``b``; N samples are N * ``sample_bytes`` bytes
  back to back, exactly what a DMA buffer holds.

Example: 16 lanes of fixed<8,5> in, 5 lanes of fixed<14,7> out, the output padded to a 128-bit
beat: ``Layout(lanes=5, beats=1, width=14, signed=True, beat_bytes=16).pack(y)`` gives 16 bytes
per sample, the five values as ``<i2`` followed by six zero bytes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["Layout", "TdataError"]


class TdataError(ValueError):
    """Values or bytes that do not follow the tdata rule of a :class:`Layout`."""


@dataclass(frozen=True)
class Layout:
    """How the samples of one stream direction travel as ``tdata`` bytes (see the module docstring).

    ``lanes`` per beat, ``beats`` per sample, each lane a ``width``-bit mantissa (``signed`` or
    not) in ``lane_bytes`` bytes (default ``ceil(width / 8)``); ``beat_bytes`` is the bus width in
    bytes (default ``lanes * lane_bytes``, no padding).
    """

    lanes: int
    beats: int
    width: int
    signed: bool
    lane_bytes: int = 0
    beat_bytes: int = 0

    def __post_init__(self):
        for name in ("lanes", "beats", "width"):
            v = getattr(self, name)
            if int(v) != v or v < 1:
                raise TdataError(f"Layout {name} must be a positive integer, not {v!r}")
        lb = self.lane_bytes or (self.width + 7) // 8
        object.__setattr__(self, "lane_bytes", int(lb))
        if not 8 * lb >= self.width or lb > 8:
            raise TdataError(f"Layout: {lb} byte(s) per lane cannot hold {self.width}-bit lanes (1 to 8 bytes)")
        bb = self.beat_bytes or self.lanes * lb
        object.__setattr__(self, "beat_bytes", int(bb))
        object.__setattr__(self, "signed", bool(self.signed))
        if bb < self.lanes * lb:
            raise TdataError(f"Layout: a {bb}-byte beat cannot hold {self.lanes} lanes of {lb} byte(s)")

    # -- derived sizes ----------------------------------------------------------------------------

    @property
    def elements(self) -> int:
        """Mantissas per sample (``lanes * beats``)."""
        return self.lanes * self.beats

    @property
    def tdata_bytes(self) -> int:
        """Bytes of a beat that carry lanes (the rest of ``beat_bytes`` is zero padding)."""
        return self.lanes * self.lane_bytes

    @property
    def sample_bytes(self) -> int:
        """Bytes of one sample on the bus (``beats * beat_bytes``)."""
        return self.beats * self.beat_bytes

    @property
    def min_value(self) -> int:
        return -(1 << (self.width - 1)) if self.signed else 0

    @property
    def max_value(self) -> int:
        return (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_meta(cls, meta: dict, side: str) -> Layout:
        """The layout of ``side`` (``"in"`` or ``"out"``) from a dict with keys ``<side>_lanes``,
        ``<side>_beats``, ``<side>_width``, ``<side>_signed``, ``<side>_bytes`` (bytes per lane)
        and optionally ``<side>_beat_bytes``, as in ``axis.json`` and a driver's ``network.json``."""
        return cls(
            lanes=int(meta[f"{side}_lanes"]),
            beats=int(meta[f"{side}_beats"]),
            width=int(meta[f"{side}_width"]),
            signed=bool(meta[f"{side}_signed"]),
            lane_bytes=int(meta.get(f"{side}_bytes") or 0),
            beat_bytes=int(meta.get(f"{side}_beat_bytes") or 0),
        )

    # -- the rule -----------------------------------------------------------------------------------

    def pack(self, m) -> np.ndarray:
        """``(N, elements)`` integer mantissas -> ``(N, sample_bytes)`` uint8, the bus bytes of N
        samples (``.tobytes()`` is a DMA buffer). Raises TdataError for values outside the type."""
        a = np.asarray(m)
        if a.dtype.kind not in "iu":
            raise TdataError(f"pack: integer mantissas required, not {a.dtype}")
        if a.ndim == 1:
            a = a[None, :]
        a = a.reshape(len(a), -1)
        if a.shape[1] != self.elements:
            raise TdataError(f"pack: samples of {self.elements} elements expected, not {a.shape[1]}")
        if a.size:
            lo, hi = int(a.min()), int(a.max())
            if lo < self.min_value or hi > self.max_value:
                kind = "signed" if self.signed else "unsigned"
                raise TdataError(
                    f"pack: values [{lo}, {hi}] do not fit {kind} {self.width}-bit lanes "
                    f"[{self.min_value}, {self.max_value}]"
                )
        n = len(a)
        # Little-endian two's complement bytes of int64: the low lane_bytes are the lane, sign-
        # or zero-extended as the rule says (unsigned values are non-negative here).
        le = np.ascontiguousarray(a.astype("<i8")).view(np.uint8).reshape(n, self.beats, self.lanes, 8)
        out = np.zeros((n, self.beats, self.beat_bytes), dtype=np.uint8)
        out[:, :, : self.tdata_bytes] = le[:, :, :, : self.lane_bytes].reshape(n, self.beats, self.tdata_bytes)
        return out.reshape(n, self.sample_bytes)

    def unpack(self, buf, n: int | None = None, *, check: bool = True) -> np.ndarray:
        """Bus bytes (bytes, bytearray or a uint8 array) of ``n`` samples (default: all whole
        samples in ``buf``) -> ``(n, elements)`` int64 mantissas.

        With ``check`` (the default), TdataError is raised when a lane's extension bits are not a
        sign (zero) extension of its ``width`` bits, or a padding byte is not zero: the bytes were
        not written by a top level of this layout (e.g. a bitstream built for another network).
        """
        b = np.frombuffer(bytes(buf), dtype=np.uint8) if not isinstance(buf, np.ndarray) else buf.reshape(-1).view(np.uint8)
        whole = len(b) // self.sample_bytes
        if n is None:
            n = whole
        if n > whole:
            raise TdataError(f"unpack: {len(b)} bytes hold {whole} whole sample(s) of {self.sample_bytes} bytes, not {n}")
        beats = b[: n * self.sample_bytes].reshape(n, self.beats, self.beat_bytes)
        lanes = beats[:, :, : self.tdata_bytes].reshape(n, self.beats, self.lanes, self.lane_bytes)
        raw = np.zeros((n, self.beats, self.lanes, 8), dtype=np.uint8)
        raw[..., : self.lane_bytes] = lanes
        u = raw.view("<u8").reshape(n, self.beats * self.lanes)
        w = np.uint64(self.width)
        low = u & np.uint64((1 << self.width) - 1) if self.width < 64 else u
        if self.signed and self.width < 64:
            sign = (low >> (w - np.uint64(1))) & np.uint64(1)
            vals = low.astype(np.int64) - (sign.astype(np.int64) << np.int64(self.width))
        else:
            vals = low.astype(np.int64)
        if check and n:
            ext = 8 * self.lane_bytes
            if ext > self.width:
                # Re-pack the values and compare the lane bytes: equal exactly when extended right.
                back = np.ascontiguousarray(vals.astype("<i8")).view(np.uint8).reshape(n, self.beats, self.lanes, 8)
                bad = np.any(back[..., : self.lane_bytes] != lanes, axis=-1)
                if np.any(bad):
                    s, e = (int(i) for i in np.argwhere(bad.reshape(n, -1))[0])
                    kind = "sign" if self.signed else "zero"
                    raise TdataError(
                        f"unpack: sample {s}, element {e}: bits {self.width}..{ext - 1} of the lane are not "
                        f"the {kind} extension of a {self.width}-bit value (bytes "
                        f"{bytes(lanes.reshape(n, -1, self.lane_bytes)[s, e]).hex()})"
                    )
            if self.beat_bytes > self.tdata_bytes and np.any(beats[:, :, self.tdata_bytes :]):
                s = int(np.argwhere(np.any(beats[:, :, self.tdata_bytes :], axis=(1, 2)))[0][0])
                raise TdataError(f"unpack: sample {s}: padding bytes {self.tdata_bytes}..{self.beat_bytes - 1} of a beat are not zero")
        return vals

    def sample_frames(self, m) -> list[bytes]:
        """``(N, elements)`` mantissas -> N byte strings, one per sample."""
        p = self.pack(m)
        return [row.tobytes() for row in p]
