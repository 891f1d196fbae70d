"""``io_stream`` scheduling: when every beat moves, how deep each FIFO must be, and why it cannot
deadlock.

In ``io_stream`` a tensor of shape ``(H, W, C)`` (or ``(L, C)``) travels as one beat of ``C`` lanes
per position, positions in row-major order; a 1-D tensor is a single beat. Every block of a
streaming design has a simple, exact timing rule when its output is always taken (below, ``a`` are
the cycles at which input beats become valid, ``acc`` the cycles at which the block accepts them):

* ``beat(L, R)``: one beat every ``R`` cycles, result ``L`` cycles later:
  ``acc[k] = max(a[k], acc[k-1] + R)``, ``out[k] = acc[k] + L``.
* ``deser(n)``: collects ``n`` beats into one vector: ``acc[k] = max(a[k], acc[k-1] + 1)``,
  vector valid one cycle after its last beat.
* ``ser(n)``: one vector out as ``n`` beats on consecutive cycles, the next vector accepted in
  the cycle its predecessor's last beat leaves.
* ``window``: the line buffer steps over the padded image one position per cycle, a padding
  position without waiting for input; a window is valid one cycle after the step of its
  bottom-right position.
* ``join``: a beat leaves when the same beat is valid on every input.
* ``fifo``: a beat written in cycle ``t`` can be read from ``t + 1``.

The planner (:class:`rtlgen.layers.StreamNetwork`) runs these rules over several samples, with the
input offered one beat per cycle from ``s * interval`` on. Wherever a block would leave a valid beat
waiting, it puts a FIFO in front of the block, as deep as the largest number of beats that ever
wait there (so in this schedule no producer ever stalls and the rules above stay exact). At a join
the earlier input's FIFO is also at least as deep as the structural minimum: if the later input
needs fork beat ``need(j)`` before it can deliver beat ``j``, the earlier side must be able to
hold ``need(j) - j + 1`` beats, or the fork would block on the full FIFO while the later side
waits for input that can never arrive. Depths from the schedule are never below that minimum
(beat ``j`` waits at least until fork beat ``need(j)`` has been sent), so no pattern of input gaps
or output stalls can deadlock the design.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "stream_form",
    "beat_times",
    "deser_times",
    "ser_times",
    "window_steps",
    "window_times",
    "fifo_depth",
]

NEVER = -(1 << 40)


def stream_form(shape) -> tuple[int, int]:
    """``(beats, lanes)`` of a tensor in ``io_stream``: one beat per position, channels as lanes."""
    shape = tuple(int(s) for s in shape)
    if len(shape) >= 2:
        return int(np.prod(shape[:-1])), shape[-1]
    return 1, int(np.prod(shape))


def beat_times(a, latency: int, interval: int):
    acc = np.empty(len(a), dtype=np.int64)
    prev = NEVER
    for k, t in enumerate(a):
        prev = max(int(t), prev + interval)
        acc[k] = prev
    return acc, acc + latency


def deser_times(a, n: int):
    acc, _ = beat_times(a, 0, 1)
    return acc, acc[n - 1 :: n] + 1


def ser_times(a, n: int):
    acc = np.empty(len(a), dtype=np.int64)
    out = np.empty(len(a) * n, dtype=np.int64)
    last = NEVER
    for s, t in enumerate(a):
        acc[s] = max(int(t), last)
        out[s * n : (s + 1) * n] = acc[s] + 1 + np.arange(n)
        last = acc[s] + n
    return acc, out


def window_steps(in_hw, kernel, stride, padding, dilation):
    """Per virtual (padded) position in raster order: is it padding, does a window end there."""
    (H, W), (kh, kw), (sy, sx), ((pt, pb), (pl, pr)), (dy, dx) = in_hw, kernel, stride, padding, dilation
    Hp, Wp = H + pt + pb, W + pl + pr
    vy, vx = np.meshgrid(np.arange(Hp), np.arange(Wp), indexing="ij")
    pad = (vy < pt) | (vy >= pt + H) | (vx < pl) | (vx >= pl + W)
    oy, ox = vy - (kh - 1) * dy, vx - (kw - 1) * dx
    emit = (oy >= 0) & (ox >= 0) & (oy % sy == 0) & (ox % sx == 0)
    return pad.ravel(), emit.ravel()


def window_times(a, samples: int, pad, emit, elastic_base=None):
    """Line-buffer schedule over ``samples`` images. ``a``: valid cycle of each real input beat
    (ignored when ``elastic_base`` gives each sample's earliest start: then the input is a source
    that offers its next beat right after the previous one is taken)."""
    real = int((~pad).sum())
    acc = np.empty(samples * real, dtype=np.int64)
    out = []
    prev, k = NEVER, 0
    for s in range(samples):
        for j in range(len(pad)):
            t = prev + 1
            if not pad[j]:
                if elastic_base is not None:
                    ready = elastic_base[s] if k % real == 0 else acc[k - 1] + 1
                else:
                    ready = a[k]
                t = max(t, int(ready))
                acc[k] = t
                k += 1
            prev = t
            if emit[j]:
                out.append(t + 1)
    return acc, np.asarray(out, dtype=np.int64)


def fifo_depth(writes, reads) -> int:
    """Entries a FIFO needs so that no write ever finds it full (written in cycle ``w`` it is
    readable from ``w + 1``; a full FIFO refuses a write even in a cycle it is read)."""
    w = np.asarray(writes, dtype=np.int64)
    r = np.asarray(reads, dtype=np.int64)
    if not len(w):
        return 1
    # level(t) = #{k : w_k < t <= r_k}, evaluated at every write cycle.
    ws = np.sort(w)
    rs = np.sort(r)
    written_before = np.searchsorted(ws, w, side="left")
    read_before = np.searchsorted(rs, w, side="left")
    return int((written_before - read_before).max(initial=0)) + 1
