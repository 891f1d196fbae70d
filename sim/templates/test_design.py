"""Generic cocotb regression for an rtlgen-generated design (generated file; do not edit).

Reads ``meta.json`` and ``vectors.npz`` from this file's directory (or ``$RTLGEN_TB_DIR``)
and checks the valid/ready stream top ``meta["toplevel"]``:

* latency: one sample on an idle, freshly reset design, sink always ready.
  ``latency = t_out - t_in`` where ``t_in`` is the clock edge of the input handshake
  (``i__valid & i__ready`` sampled high) and ``t_out`` the first edge at which the
  sample's output is valid (``o__valid`` sampled high; with the sink always ready
  that is the output handshake).  A purely combinational path has latency 0.
* interval: K samples back-to-back (source always valid, sink always ready);
  ``interval`` = largest gap, in clock edges, between consecutive input handshakes
  over the last half of the K (the first half lets the pipeline settle).
* full run: all N vectors with the stall pattern ``$RTLGEN_STALL`` (``none`` or
  ``random``: random input gaps and output back-pressure, seeded by ``$RTLGEN_SEED``).

Every output of every phase is compared with the expected vector, in order.
Results go to ``$RTLGEN_RESULTS`` (default ``results.json`` next to this file):
``mismatches`` counts wrong vectors of the full run (``probe_mismatches`` those of the
latency/interval probes), ``first_mismatches`` lists up to 10 wrong lanes per phase as
``{phase, sample, lane, expected, got}``; ``passed``/``failures``/``error`` summarise.
The test fails on any mismatch, extra/missing output, hang, or latency/interval
different from meta.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

TB_DIR = Path(os.environ.get("RTLGEN_TB_DIR") or Path(__file__).resolve().parent)
MAX_RECORDED_MISMATCHES = 10
# (p_valid, p_ready) regimes of the random pattern, re-drawn every SEGMENT cycles, so
# both full back-pressure and starvation get exercised, not only a 50/50 mix.
RANDOM_REGIMES = [(1.0, 1.0), (0.5, 0.5), (0.9, 0.2), (0.2, 0.9), (1.0, 0.05), (0.7, 1.0)]
SEGMENT = 48


def pack(values: np.ndarray, width: int, signed: bool) -> list[int]:
    """(N, lanes) ints -> N payload ints, lane 0 in the LSBs (same as rtlgen.sim.vectors.pack)."""
    a = np.asarray(values).astype(np.int64, copy=False)
    n, lanes = a.shape
    lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)
    if a.size and (int(a.min()) < lo or int(a.max()) > hi):
        raise ValueError(f"vector values do not fit {width}-bit lanes")
    nbytes = (lanes * width + 7) // 8
    u = a.view(np.uint64) & np.uint64((1 << width) - 1)
    out: list[int] = []
    for start in range(0, n, 2048):
        chunk = u[start : start + 2048]
        bits = np.empty(chunk.shape + (width,), dtype=np.uint8)
        for b in range(width):
            bits[:, :, b] = (chunk >> np.uint64(b)) & np.uint64(1)
        buf = np.packbits(bits.reshape(len(chunk), -1), axis=1, bitorder="little").tobytes()
        out.extend(
            int.from_bytes(buf[i * nbytes : (i + 1) * nbytes], "little") for i in range(len(chunk))
        )
    return out


def lane(payload: int, k: int, width: int, signed: bool) -> int:
    v = (payload >> (k * width)) & ((1 << width) - 1)
    return v - (1 << width) if signed and v >> (width - 1) else v


class DesignFailure(Exception):
    """The design hung or produced outputs it should not have."""


class Harness:
    def __init__(self, dut, meta: dict, x: np.ndarray, y: np.ndarray):
        self.dut = dut
        self.meta = meta
        self.clk = dut.clk
        self.rst = dut.rst
        self.i_payload, self.i_valid, self.i_ready = dut.i__payload, dut.i__valid, dut.i__ready
        self.o_payload, self.o_valid, self.o_ready = dut.o__payload, dut.o__valid, dut.o__ready
        # io_stream: a sample is in_beats (out_beats) transfers of in_lanes (out_lanes) lanes.
        self.bi, self.bo = int(meta.get("in_beats", 1)), int(meta.get("out_beats", 1))
        self.x = pack(np.asarray(x).reshape(-1, meta["in_lanes"]), meta["in_width"], meta["in_signed"])
        self.y = pack(np.asarray(y).reshape(-1, meta["out_lanes"]), meta["out_width"], meta["out_signed"])
        # Per phase: "full" is the vector run; "latency"/"interval" are the probes.
        self.mismatches: dict[str, int] = {}
        self.mismatched_lanes: dict[str, int] = {}
        self.first_mismatches: dict[str, list[dict]] = {}
        self.extra_outputs = 0
        self.max_levels: dict[str, int] = {}
        # The top is the vector player's wrapper when the runner built one.
        self.player = hasattr(dut, "play_done")
        # Generous: a design may legitimately sit silent for latency + interval cycles;
        # meta["max_idle_cycles"] covers designs with a long start-up (e.g. weight loading).
        self.max_idle = int(
            meta.get("max_idle_cycles") or 1000 + 4 * (int(meta["latency"]) + int(meta["interval"]))
        )

    async def reset(self, cycles: int = 4) -> None:
        if self.player:
            self.dut.play.value = 0
        self.rst.value = 1
        self.i_valid.value = 0
        self.o_ready.value = 0
        self.i_payload.value = 0
        for _ in range(cycles):
            await RisingEdge(self.clk)
        self.rst.value = 0
        await RisingEdge(self.clk)

    def _check(self, phase: str, index: int, got) -> None:
        exp = self.y[index]
        if got == exp:
            return
        self.mismatches[phase] = self.mismatches.get(phase, 0) + 1
        m = self.meta
        for k in range(m["out_lanes"]):
            e = lane(exp, k, m["out_width"], m["out_signed"])
            g = got if isinstance(got, str) else lane(got, k, m["out_width"], m["out_signed"])
            if g != e:
                self.mismatched_lanes[phase] = self.mismatched_lanes.get(phase, 0) + 1
                recorded = self.first_mismatches.setdefault(phase, [])
                if len(recorded) < MAX_RECORDED_MISMATCHES:
                    recorded.append(
                        {"phase": phase, "sample": int(index) // self.bo, "lane": (index % self.bo) * m["out_lanes"] + k, "expected": e, "got": g}
                    )

    async def stream(
        self, phase: str, order: list[int], pattern: str, rng: random.Random | None, pace: int = 0, levels=None
    ):
        """Send samples ``order`` and check outputs; return the edges of each sample's first input
        transfer and of its last output transfer.

        Must be entered right after a rising edge; edges are counted from that point. ``pace``:
        sample ``s`` is not offered before edge ``s * pace``. ``levels``: ``{name: handle}`` whose
        largest value is recorded in ``self.max_levels``.
        """
        # Locals: this loop runs once per clock cycle and dominates the run time.
        clk, i_payload, i_valid, i_ready = self.clk, self.i_payload, self.i_valid, self.i_ready
        o_payload, o_valid, o_ready = self.o_payload, self.o_valid, self.o_ready
        xs = self.x
        bi, bo = self.bi, self.bo
        beats_in = [s * bi + j for s in order for j in range(bi)]
        beats_out = [s * bo + j for s in order for j in range(bo)]
        n, n_in = len(beats_out), len(beats_in)
        rand = pattern == "random"
        p_valid = p_ready = 1.0
        sent = recv = edge = idle = 0
        in_edges: list[int] = []
        out_edges: list[int] = []
        valid_drv = False  # value currently driven on i__valid
        ready_drv = None  # value currently driven on o__ready
        presenting = False  # a sample is on i__payload waiting for its handshake
        while recv < n:
            if rand and edge % SEGMENT == 0:
                p_valid, p_ready = rng.choice(RANDOM_REGIMES)
            # Valid is never withdrawn before its handshake (stream protocol rule).
            paced = not pace or sent % bi or edge >= (sent // bi) * pace
            if not presenting and sent < n_in and paced and (not rand or rng.random() < p_valid):
                i_payload.value = xs[beats_in[sent]]
                presenting = True
            if presenting != valid_drv:
                i_valid.value = int(presenting)
                valid_drv = presenting
            ready = not rand or rng.random() < p_ready
            if ready != ready_drv:
                o_ready.value = int(ready)
                ready_drv = ready
            # Settled values of this cycle are what the coming edge samples.
            await ReadOnly()
            if levels:
                for name, h in levels.items():
                    v = int(h.value)
                    if v > self.max_levels.get(name, -1):
                        self.max_levels[name] = v
            in_fire = presenting and str(i_ready.value) == "1"
            out_fire = ready and str(o_valid.value) == "1"
            if out_fire:
                v = o_payload.value
                try:
                    # A one-bit payload is a Logic, which has no to_unsigned.
                    got = v.to_unsigned() if hasattr(v, "to_unsigned") else int(v)
                except ValueError:  # X/Z bits: keep the raw string for the report
                    got = str(v)
            await RisingEdge(clk)
            edge += 1
            if in_fire:
                if sent % bi == 0:
                    in_edges.append(edge)
                sent += 1
                presenting = False
            if out_fire:
                if recv // bo >= -(-sent // bi):
                    self.extra_outputs += 1
                    raise DesignFailure(f"{phase}: output handshake with no sample outstanding")
                self._check(phase, beats_out[recv], got)
                recv += 1
                if recv % bo == 0:
                    out_edges.append(edge)
            if in_fire or out_fire:
                idle = 0
            else:
                idle += 1
                if idle > self.max_idle:
                    raise DesignFailure(
                        f"{phase}: no handshake for {idle} cycles "
                        f"(sent {sent}/{n_in} transfers, received {recv}/{n})"
                    )
        if valid_drv:
            i_valid.value = 0
        return in_edges, out_edges

    async def play(self, phase: str, stall: str, seed: int) -> int:
        """Stream every vector with the simulator's own vector player (see test_runner's
        ``write_player``): the same checks as :meth:`stream` with no Python per cycle. Must be
        entered right after a rising edge; returns the edge of the last output transfer."""
        dut = self.dut
        dut.play_random.value = int(stall == "random")
        dut.play_seed.value = seed & 0xFFFFFFFF
        dut.play.value = 1
        await RisingEdge(dut.play_done)
        await ReadOnly()
        error, count = int(dut.play_error.value), int(dut.play_mismatches.value)
        if count:
            # MSB-first bit strings: record r sits r records up from the least significant end.
            idx, gots = str(dut.play_first.value), str(dut.play_first_got.value)
            ow = len(gots) // (len(idx) // 32)
            for r in range(min(count, len(idx) // 32)):
                bits = gots[len(gots) - (r + 1) * ow : len(gots) - r * ow]
                got = int(bits, 2) if set(bits) <= {"0", "1"} else bits  # X/Z: the raw bits
                i = int(idx[len(idx) - (r + 1) * 32 : len(idx) - r * 32], 2)
                self._check(phase, i, got)
            self.mismatches[phase] = count
            self.mismatched_lanes[phase] = int(dut.play_lanes.value)
        cycles = int(dut.play_cycles.value)
        await RisingEdge(self.clk)
        dut.play.value = 0
        if error == 1:
            self.extra_outputs += 1
            raise DesignFailure(f"{phase}: output handshake with no sample outstanding")
        if error:
            raise DesignFailure(f"{phase}: no handshake for {self.max_idle} cycles")
        return cycles

    async def drain(self, phase: str, cycles: int) -> None:
        """Idle with the sink ready; any output now is one the design should not produce."""
        self.i_valid.value = 0
        self.o_ready.value = 1
        for _ in range(cycles):
            await ReadOnly()
            fire = str(self.o_valid.value) == "1"
            await RisingEdge(self.clk)
            if fire:
                self.extra_outputs += 1
        if self.extra_outputs:
            raise DesignFailure(f"{phase}: {self.extra_outputs} output(s) with no input")


def load() -> tuple[dict, np.ndarray, np.ndarray]:
    meta = json.loads((TB_DIR / "meta.json").read_text())
    with np.load(TB_DIR / "vectors.npz", allow_pickle=False) as f:
        return meta, f["x"], f["y"]


@cocotb.test()
async def regression(dut):
    """Latency, interval and full-vector checks of the design against meta.json/vectors.npz."""
    t_start = time.perf_counter()
    meta, x, y = load()
    stall = os.environ.get("RTLGEN_STALL", "none").strip().lower() or "none"
    seed = int(os.environ.get("RTLGEN_SEED", "0") or 0)
    if stall not in ("none", "random"):
        raise ValueError(f"RTLGEN_STALL={stall!r}: expected 'none' or 'random'")
    results_path = Path(os.environ.get("RTLGEN_RESULTS") or TB_DIR / "results.json")
    n = len(x)
    lat_exp, ii_exp = int(meta["latency"]), int(meta["interval"])
    res: dict = {
        "toplevel": meta["toplevel"],
        "simulator": cocotb.SIM_NAME,
        "stall": stall,
        "seed": seed,
        "n_vectors": n,
        "latency_expected": lat_exp,
        "interval_expected": ii_exp,
        "latency_measured": None,
        "interval_measured": None,
        "interval_mean": None,
        "interval_samples": None,
        "cycles": None,
        "seconds": None,
        "vectors_per_second": None,
        "error": None,
    }
    h = Harness(dut, meta, x, y)
    Clock(dut.clk, 10, unit="ns").start()
    drain_cycles = lat_exp + ii_exp + 16
    try:
        # Latency: one sample into an idle design.
        await h.reset()
        # Line buffers first step through the padding rows above the first image.
        for _ in range(4 + int(meta.get("settle_cycles", 0))):
            await RisingEdge(dut.clk)
        ins, outs = await h.stream("latency", [0], "none", None)
        res["latency_measured"] = outs[0] - ins[0]
        await h.drain("latency", drain_cycles)

        # Interval: enough back-to-back samples to fill the pipeline twice over.
        k = 32 + 2 * math.ceil(max(lat_exp, 1) / ii_exp)
        await h.reset()
        ins, outs = await h.stream("interval", [i % n for i in range(k)], "none", None)
        gaps = np.diff(ins)
        res["interval_measured"] = int(gaps[len(gaps) // 2 :].max())
        res["interval_mean"] = float((ins[-1] - ins[0]) / (k - 1))
        res["interval_samples"] = k
        await h.drain("interval", drain_cycles)

        # io_stream FIFO check: samples paced one interval apart, as the static depths assume;
        # each FIFO's fullest level should equal its computed depth.
        if meta.get("fifo_levels"):
            await h.reset()
            for _ in range(4 + int(meta.get("settle_cycles", 0))):
                await RisingEdge(dut.clk)
            handles = {name: getattr(dut, f"level_{name}") for name in meta["fifo_levels"]}
            k = 6 + 2 * math.ceil(max(lat_exp, 1) / ii_exp)
            ins, outs = await h.stream("paced", [i % n for i in range(k)], "none", None, pace=ii_exp, levels=handles)
            res["fifo_max_levels"] = dict(h.max_levels)
            res["paced_latencies"] = sorted({o - i for i, o in zip(ins, outs)})
            await h.drain("paced", drain_cycles)

        # Full run, timed on its own.
        await h.reset()
        t0 = time.perf_counter()
        if h.player:
            res["cycles"] = await h.play("full", stall, seed)
        else:
            ins, outs = await h.stream("full", list(range(n)), stall, random.Random(seed))
            res["cycles"] = outs[-1]
        dt = time.perf_counter() - t0
        res["seconds"] = round(dt, 4)
        res["vectors_per_second"] = round(n / dt, 1) if dt > 0 else None
        await h.drain("full", drain_cycles)
    except DesignFailure as e:
        res["error"] = str(e)
    except Exception as e:
        res["error"] = f"{type(e).__name__}: {e}"
        raise
    finally:
        res["mismatches"] = h.mismatches.get("full", 0)
        res["mismatched_lanes"] = h.mismatched_lanes.get("full", 0)
        res["probe_mismatches"] = sum(h.mismatches.values()) - res["mismatches"]
        # Vector-run mismatches first: the probes re-send the first vectors.
        res["first_mismatches"] = [
            m for ph in ("full", "latency", "interval") for m in h.first_mismatches.get(ph, [])
        ]
        res["extra_outputs"] = h.extra_outputs
        res["total_seconds"] = round(time.perf_counter() - t_start, 4)
        failures = []
        if res["error"]:
            failures.append(res["error"])
        if h.mismatches:
            failures.append(
                f"{res['mismatches']}/{n} mismatching vector(s) "
                f"(+{res['probe_mismatches']} in latency/interval probes), "
                f"first: {res['first_mismatches'][0]}"
            )
        if res["latency_measured"] is not None and res["latency_measured"] != lat_exp:
            failures.append(f"latency {res['latency_measured']} != declared {lat_exp}")
        if res["interval_measured"] is not None and res["interval_measured"] != ii_exp:
            failures.append(f"interval {res['interval_measured']} != declared {ii_exp}")
        res["failures"] = failures
        res["passed"] = not failures
        results_path.parent.mkdir(parents=True, exist_ok=True)
        results_path.write_text(json.dumps(res, indent=2, sort_keys=True) + "\n")
    assert not failures, "; ".join(failures)
