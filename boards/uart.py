"""The UART bridge's framing protocol and its host client.

A board without a processor (the iCE40 boards) takes samples over a serial line. Both directions
carry frames; all multi-byte values are little-endian and the checksum is CRC-8 (polynomial 0x07,
initial value 0, no reflection: CRC-8/SMBUS) over every byte after the sync byte::

    host -> board:  SYNC  SEQ  sample                 CRC
    board -> host:  SYNC  STATUS  SEQ  [outputs]      CRC

``sample`` is every input mantissa of one sample, flattened channels-last, each in ``in_bytes``
bytes (two's complement, sign-extended); ``outputs`` likewise with ``out_bytes`` per value. They
are only present when the low bits of ``STATUS`` are :data:`OK`; otherwise the frame reports that
the board rejected frame ``SEQ``: its checksum was wrong (:data:`CHECKSUM`), a byte had no stop bit
(:data:`FRAMING`), or it did not fit the receive buffer because the sender ignored the window
(:data:`OVERRUN`). Bit 7 of ``STATUS`` (:data:`DROPPED`) says that an earlier rejection could not
be reported. A rejected frame never reaches the network.

Back-pressure is a window: the host keeps at most ``window`` frames unanswered. The board's
receive buffer holds ``window`` whole frames, so whatever the network or the return line's speed,
no byte is dropped; the host is held by the protocol instead of by a handshake wire.

:class:`Client` speaks this protocol over any object with pyserial's ``write``/``read`` methods
(``serial.Serial``, ``serial.serial_for_url("loop://")``, or a simulation).
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from rtlgen.errors import RtlgenError

__all__ = [
    "SYNC", "OK", "CHECKSUM", "OVERRUN", "FRAMING", "DROPPED", "STATUS_NAMES",
    "BridgeError", "Client", "Link", "crc8", "open_port",
]  # fmt: skip

log = logging.getLogger(__name__)

SYNC = 0xA5
OK, CHECKSUM, OVERRUN, FRAMING = 0, 1, 2, 3
DROPPED = 0x80
STATUS_NAMES = {OK: "ok", CHECKSUM: "checksum error", OVERRUN: "receive buffer overrun", FRAMING: "framing error"}


class BridgeError(RtlgenError):
    """The board did not answer as the protocol says (timeout, bad reply) or the link is misused."""


def _crc_table() -> list[int]:
    table = []
    for b in range(256):
        c = b
        for _ in range(8):
            c = ((c << 1) ^ 0x07) & 0xFF if c & 0x80 else (c << 1) & 0xFF
        table.append(c)
    return table


_CRC = _crc_table()


def crc8(data: bytes, crc: int = 0) -> int:
    """CRC-8/SMBUS of ``data`` (``crc8(b"123456789") == 0xF4``)."""
    for b in data:
        crc = _CRC[crc ^ b]
    return crc


@dataclass(frozen=True)
class Link:
    """What both ends of one bridge agree on: value counts, widths and bytes per value of the
    samples and outputs, the window, the baud rate and the board clock (``uart.json``)."""

    in_values: int
    in_width: int
    in_signed: bool
    out_values: int
    out_width: int
    out_signed: bool
    window: int
    baud: int = 115200
    clock_hz: float = 12e6
    in_type: str = ""
    out_type: str = ""
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        for name in ("in_values", "in_width", "out_values", "out_width", "window"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"link {name} must be a positive integer, not {v!r}")
        if self.window > 255:
            raise ValueError(f"link window must be at most 255 frames, not {self.window}")

    @property
    def in_bytes(self) -> int:
        return (self.in_width + 7) // 8

    @property
    def out_bytes(self) -> int:
        return (self.out_width + 7) // 8

    @property
    def frame_in(self) -> int:
        """Bytes of one frame to the board."""
        return 3 + self.in_values * self.in_bytes

    @property
    def frame_out(self) -> int:
        """Bytes of one output frame from the board."""
        return 4 + self.out_values * self.out_bytes

    @property
    def divisor(self) -> int:
        """Board clock cycles per bit."""
        return max(1, round(self.clock_hz / self.baud))

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def load(cls, path) -> Link:
        p = Path(path)
        if p.is_dir():
            p = p / "uart.json"
        if not p.is_file():
            raise BridgeError(f"{str(p)!r} does not exist; a board package with a UART bridge has a uart.json")
        return cls(**json.loads(p.read_text()))

    @classmethod
    def for_design(cls, design, *, window: int, baud: int, clock_hz: float) -> Link:
        tin, tout = design.input_tensor, design.output_tensor
        return cls(
            in_values=int(tin.size), in_width=tin.type.width, in_signed=bool(tin.type.signed),
            out_values=int(tout.size), out_width=tout.type.width, out_signed=bool(tout.type.signed),
            window=window, baud=int(baud), clock_hz=float(clock_hz), in_type=str(tin.type), out_type=str(tout.type),
        )  # fmt: skip

    # -- frames -----------------------------------------------------------------------------------

    def encode(self, seq: int, sample) -> bytes:
        """One frame to the board for the input mantissas ``sample`` (``in_values`` integers)."""
        v = np.asarray(sample).reshape(-1)
        if v.size != self.in_values:
            raise BridgeError(f"a sample has {self.in_values} values, not {v.size}")
        v = v.astype(np.int64)
        lo, hi = (-(1 << (self.in_width - 1)), (1 << (self.in_width - 1)) - 1) if self.in_signed else (0, (1 << self.in_width) - 1)
        if v.min() < lo or v.max() > hi:
            raise BridgeError(f"input mantissas must lie in [{lo}, {hi}] ({self.in_type or f'{self.in_width} bits'}), not [{v.min()}, {v.max()}]")
        body = bytes([seq & 0xFF]) + _pack(v, self.in_bytes)
        return bytes([SYNC]) + body + bytes([crc8(body)])

    def decode_outputs(self, payload: bytes) -> np.ndarray:
        n = self.out_bytes
        raw = np.frombuffer(payload, dtype=np.uint8).reshape(self.out_values, n).astype(np.int64)
        v = np.zeros(self.out_values, dtype=np.int64)
        for k in range(n):
            v |= raw[:, k] << (8 * k)
        if self.out_signed:
            v = np.where(v >= 1 << (8 * n - 1), v - (1 << (8 * n)), v)
        return v


def _pack(v: np.ndarray, nbytes: int) -> bytes:
    u = v & ((1 << (8 * nbytes)) - 1)
    return np.stack([(u >> (8 * k)) & 0xFF for k in range(nbytes)], axis=1).astype(np.uint8).tobytes()


@dataclass
class Stats:
    """What one :meth:`Client.run` saw: frames sent, rejections (``(sample, status name)``),
    retries, the largest number of unanswered frames, and the time the window held the sender."""

    sent: int = 0
    rejected: list = field(default_factory=list)
    retries: int = 0
    max_outstanding: int = 0
    held_seconds: float = 0.0
    dropped_reports: int = 0
    seconds: float = 0.0


class Client:
    """Host side of the bridge: sends samples, keeps at most ``link.window`` unanswered, matches
    replies by sequence number and resends a rejected sample up to ``retries`` times.

    ``port``: anything with pyserial's ``write(bytes)`` and ``read(n)`` (returning fewer bytes on
    its timeout). ``timeout``: seconds without a byte from the board before giving up.
    """

    def __init__(self, port, link: Link, *, timeout: float = 5.0, retries: int = 2, clock=time.monotonic):
        if retries < 0:
            raise ValueError(f"retries must be a non-negative integer, not {retries}")
        self.port, self.link, self.timeout, self.retries = port, link, float(timeout), int(retries)
        self._clock = clock
        self._buf = bytearray()
        self.stats = Stats()

    def run(self, samples, *, design=None) -> np.ndarray:
        """Outputs ``(N, out_values)`` (mantissas) for input mantissas ``(N, in_values)``, or for
        float network inputs when the ``design`` is given (quantized as the hardware's input)."""
        m = np.asarray(samples)
        if m.dtype.kind not in "iu":
            if design is None:
                raise BridgeError(f"samples must be integer input mantissas, not {m.dtype}; give design= to send float inputs")
            m = design.quantize_input(m)
        m = m.reshape(len(m), -1)
        n = len(m)
        self.stats = st = Stats()
        t0 = self._clock()
        out = np.zeros((n, self.link.out_values), dtype=np.int64)
        done = np.zeros(n, dtype=bool)
        tries = np.zeros(n, dtype=np.int64)
        todo = list(range(n))[::-1]  # a stack: next sample at the end
        pending: OrderedDict[int, int] = OrderedDict()  # seq -> sample index
        seq = 0
        while todo or pending:
            while todo and len(pending) < self.link.window:
                i = todo.pop()
                while seq in pending:
                    seq = (seq + 1) & 0xFF
                self.port.write(self.link.encode(seq, m[i]))
                pending[seq] = i
                st.sent += 1
                seq = (seq + 1) & 0xFF
            st.max_outstanding = max(st.max_outstanding, len(pending))
            held = self._clock() if todo else None
            try:
                status, rseq, payload = self.reply()
            except BridgeError as e:
                waiting = ", ".join(str(i) for i in pending.values())
                lost = f"; {st.dropped_reports} rejection(s) went unreported" if st.dropped_reports else ""
                raise BridgeError(f"{e} (samples {waiting} unanswered{lost})") from None
            if held is not None:
                st.held_seconds += self._clock() - held
            if status & DROPPED:
                st.dropped_reports += 1
            if rseq not in pending:
                raise BridgeError(f"the board answered frame {rseq}, which was not sent or already answered")
            i = pending.pop(rseq)
            code = status & 0x7F
            if code == OK:
                out[i] = self.link.decode_outputs(payload)
                done[i] = True
                continue
            name = STATUS_NAMES.get(code, f"status {code}")
            st.rejected.append((i, name))
            log.warning("board rejected sample %d (frame %d): %s", i, rseq, name)
            if tries[i] >= self.retries:
                raise BridgeError(f"the board rejected sample {i} {tries[i] + 1} times ({name}); check the cable and the baud rate ({self.link.baud})")
            tries[i] += 1
            st.retries += 1
            todo.append(i)
        st.seconds = self._clock() - t0
        return out

    def reply(self) -> tuple[int, int, bytes]:
        """The next reply frame: ``(status, seq, payload)``; bytes before a sync byte and frames
        with a bad checksum are skipped (logged)."""
        while True:
            while True:
                b = self._take(1)
                if b[0] == SYNC:
                    break
                log.debug("skipping byte %#04x before a sync byte", b[0])
            head = self._take(2)
            status, seq = head[0], head[1]
            n = self.link.out_values * self.link.out_bytes if status & 0x7F == OK else 0
            body = self._take(n + 1)
            if crc8(head + body[:-1]) == body[-1]:
                return status, seq, bytes(body[:-1])
            log.warning("reply for frame %d has a bad checksum; resynchronising", seq)
            self._buf[:0] = head[1:] + body  # look for the next sync byte in what followed

    def _take(self, n: int) -> bytes:
        deadline = self._clock() + self.timeout
        while len(self._buf) < n:
            chunk = self.port.read(max(n - len(self._buf), 1))
            if chunk:
                self._buf += chunk
                deadline = self._clock() + self.timeout
            elif self._clock() > deadline:
                raise BridgeError(
                    f"no reply from the board for {self.timeout:g} s; check the port, the baud rate "
                    f"({self.link.baud}) and that the bitstream is loaded"
                )
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out


def open_port(name: str, link: Link, *, timeout: float = 0.1):
    """A pyserial port (a device or a pyserial URL such as ``loop://``) at the link's baud rate."""
    try:
        import serial
    except ImportError:
        raise BridgeError("the UART host client needs pyserial: pip install 'rtlgen[boards]'") from None
    try:
        return serial.serial_for_url(name, baudrate=link.baud, timeout=timeout)
    except (serial.SerialException, ValueError) as e:
        raise BridgeError(f"cannot open serial port {name!r}: {e}") from None
