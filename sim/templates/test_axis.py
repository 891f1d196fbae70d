"""AXI4-Stream regression of an rtlgen packaged top level (generated file; do not edit).

Reads ``axis.json`` and ``axis_vectors.npz`` from this file's directory (or ``$RTLGEN_TB_DIR``)
and drives the top level ``meta["toplevel"]`` (ports ``aclk``, ``aresetn``, ``s_axis_*``,
``m_axis_*``) with cocotbext-axi: an ``AxiStreamSource`` on ``s_axis`` and an ``AxiStreamSink``
on ``m_axis``. Samples become bytes and bytes samples through ``tdata.py`` beside this file (the
one packing module, shared with the board drivers): each element a ``*_bytes``-byte
little-endian two's complement (or unsigned) integer, beat by beat, each beat padded with zero
bytes to ``*_beat_bytes`` when the bus is wider than its lanes.

``meta["tlast"]`` is ``"sample"`` (one output packet per sample, whatever the input packets) or
``"batch"`` (one output packet per input packet: ``m_axis_tlast`` ends the output sample whose
input sample carried ``s_axis_tlast``).

Phases, each checking every output sample against the expected vectors, in order:

* latency: one sample into the idle design after reset, sent back-to-back with the sink
  always ready; ``latency`` = clock edges from the handshake of the sample's first input beat
  to that of its last output beat (the core's own latency: the wrapper adds none).
* throughput: back-to-back samples, no pauses; ``cycles_per_sample`` = edges between the last
  output beats of consecutive samples over the second half.
* full run: all N samples with ``$RTLGEN_STALL`` (``random``, the default here: random
  ``tvalid`` gaps from the source and ``tready`` back-pressure from the sink, in regimes that
  change every 48 cycles, seeded by ``$RTLGEN_SEED``; or ``none``). The source packs 1 to 4
  samples into one input packet (``s_axis_tlast`` only at its end), which a per-sample top
  ignores and a batch top answers with one output packet of as many samples.
* one packet (batch mode only): all N samples in a single input packet, as one DMA transfer,
  under the same stalls: exactly one output packet of N samples, with exactly one
  ``m_axis_tlast``, on its very last beat.

Also checked throughout: every output packet is one sample (per-sample mode) or the samples of
one input packet (batch mode), ``m_axis_tlast`` on its last beat;
nothing is lost, duplicated or reordered; no output appears without an input; a master never
withdraws ``m_axis_tvalid`` or changes ``m_axis_tdata``/``tlast`` before its handshake; while
``aresetn`` is low ``m_axis_tvalid`` and ``s_axis_tready`` are low. Results go to
``$RTLGEN_AXIS_RESULTS`` (default ``axis_results.json`` next to this file).

Run with ``pytest <this dir>`` (the pytest test below builds and runs it) or
``python test_axis.py --help``; ``RTLGEN_SIM``, ``RTLGEN_STALL``, ``RTLGEN_SEED`` as for
``test_runner.py``; the build goes to ``sim_build/<simulator>_axis``.
"""

from __future__ import annotations

import json
import math
import os
import random
import sys
import time
from pathlib import Path

import numpy as np

TB_DIR = Path(os.environ.get("RTLGEN_TB_DIR") or Path(__file__).resolve().parent)
META_FILE = "axis.json"
VECTORS_FILE = "axis_vectors.npz"
MAX_RECORDED_MISMATCHES = 10
# (p_valid, p_ready) regimes of the random pattern, re-drawn every SEGMENT cycles.
RANDOM_REGIMES = [(1.0, 1.0), (0.5, 0.5), (0.9, 0.2), (0.2, 0.9), (1.0, 0.05), (0.7, 1.0)]
SEGMENT = 48
MAX_SAMPLES_PER_PACKET = 4


def tdata_module():
    """``tdata.py`` of this directory (the packing rule, shared with the board drivers)."""
    import importlib.util

    name = "rtlgen_tb_tdata"
    if name in sys.modules:
        return sys.modules[name]
    path = Path(__file__).resolve().parent / "tdata.py"
    if not path.is_file():
        path = TB_DIR / "tdata.py"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def pauses(rng: random.Random, which: int):
    """Pause generator for cocotbext-axi: True pauses the source (which=0) or the sink (1)."""
    while True:
        p = rng.choice(RANDOM_REGIMES)[which]
        for _ in range(SEGMENT):
            yield rng.random() >= p


class DesignFailure(Exception):
    """The design hung, produced outputs it should not have, or broke an AXI rule."""


def load() -> tuple[dict, np.ndarray, np.ndarray]:
    meta = json.loads((TB_DIR / META_FILE).read_text())
    with np.load(TB_DIR / VECTORS_FILE, allow_pickle=False) as f:
        return meta, f["x"], f["y"]


def _is1(v) -> bool:
    return str(v) == "1"


class Observer:
    """Watches both interfaces every cycle: handshake edges, AXI rules, idle time."""

    def __init__(self, dut, max_errors: int = 10):
        self.dut = dut
        self.edge = 0
        self.idle = 0
        self.in_edges: list[int] = []
        self.out_edges: list[tuple[int, bool]] = []
        self.protocol_errors: list[str] = []
        self.max_errors = max_errors

    def clear(self) -> None:
        self.in_edges = []
        self.out_edges = []

    def _error(self, msg: str) -> None:
        if len(self.protocol_errors) < self.max_errors:
            self.protocol_errors.append(f"edge {self.edge}: {msg}")

    async def run(self) -> None:
        from cocotb.triggers import ReadOnly, RisingEdge

        d = self.dut
        clk, rstn = d.aclk, d.aresetn
        s_valid, s_ready = d.s_axis_tvalid, d.s_axis_tready
        m_valid, m_ready, m_last, m_data = d.m_axis_tvalid, d.m_axis_tready, d.m_axis_tlast, d.m_axis_tdata
        held = None  # (tdata, tlast) an unaccepted output beat must keep
        while True:
            await RisingEdge(clk)
            self.edge += 1
            await ReadOnly()
            # Values settled now are what the next edge samples.
            if not _is1(rstn.value):
                if _is1(m_valid.value) or _is1(s_ready.value):
                    self._error("m_axis_tvalid or s_axis_tready high while aresetn is low")
                held = None
                continue
            mv = _is1(m_valid.value)
            beat = (str(m_data.value), str(m_last.value)) if mv else None
            if held is not None and (not mv or beat != held):
                self._error("m_axis_tvalid withdrawn or tdata/tlast changed before the handshake")
            s_fire = _is1(s_valid.value) and _is1(s_ready.value)
            m_fire = mv and _is1(m_ready.value)
            held = beat if mv and not m_fire else None
            if s_fire:
                self.in_edges.append(self.edge + 1)
            if m_fire:
                self.out_edges.append((self.edge + 1, _is1(m_last.value)))
            self.idle = 0 if (s_fire or m_fire) else self.idle + 1


class Harness:
    def __init__(self, dut, meta: dict, x: np.ndarray, y: np.ndarray):
        from cocotbext.axi import AxiStreamBus, AxiStreamSink, AxiStreamSource

        Layout = tdata_module().Layout
        self.dut = dut
        self.meta = meta
        self.batch = meta.get("tlast", "sample") == "batch"
        self.lin = Layout.from_meta(meta, "in")
        self.lout = Layout.from_meta(meta, "out")
        self.x = self.lin.sample_frames(x)
        self.y = self.lout.sample_frames(y)
        self.out_len = self.lout.sample_bytes
        self.source = AxiStreamSource(
            AxiStreamBus.from_prefix(dut, "s_axis"), dut.aclk, dut.aresetn, reset_active_level=False
        )
        self.sink = AxiStreamSink(
            AxiStreamBus.from_prefix(dut, "m_axis"), dut.aclk, dut.aresetn, reset_active_level=False
        )
        self.obs = Observer(dut)
        self.mismatches: dict[str, int] = {}
        self.first_mismatches: list[dict] = []
        self.extra_outputs = 0
        lat = meta.get("latency") or 0
        beats = meta["in_beats"] + meta["out_beats"]
        # Generous: random back-pressure may hold the sink for a few hundred cycles in a row.
        self.max_idle = int(meta.get("max_idle_cycles") or 2000 + 4 * lat + 200 * beats)

    async def reset(self, cycles: int = 8) -> None:
        from cocotb.triggers import RisingEdge

        self.dut.aresetn.value = 0
        for _ in range(cycles):
            await RisingEdge(self.dut.aclk)
        self.dut.aresetn.value = 1
        for _ in range(2):
            await RisingEdge(self.dut.aclk)

    def _check(self, phase: str, indices: list[int], got: bytes) -> None:
        """One output packet ``got`` against the expected outputs of samples ``indices``."""
        exp = b"".join(self.y[i] for i in indices)
        if got == exp:
            return
        if len(got) != len(exp):
            self.mismatches[phase] = self.mismatches.get(phase, 0) + len(indices)
            if len(self.first_mismatches) < MAX_RECORDED_MISMATCHES:
                self.first_mismatches.append({
                    "phase": phase, "sample": int(indices[0]),
                    "error": f"output packet of {len(got)} bytes, expected {len(exp)} "
                             f"({len(indices)} sample(s): m_axis_tlast misplaced)",
                })  # fmt: skip
            return
        n = self.lout.sample_bytes
        e = self.lout.unpack(exp, check=False)
        g = self.lout.unpack(got, check=False)
        lanes = self.lout.lanes
        for j, index in enumerate(indices):
            if got[j * n : (j + 1) * n] == exp[j * n : (j + 1) * n]:
                continue
            self.mismatches[phase] = self.mismatches.get(phase, 0) + 1
            if np.array_equal(e[j], g[j]) and len(self.first_mismatches) < MAX_RECORDED_MISMATCHES:
                self.first_mismatches.append({
                    "phase": phase, "sample": int(index),
                    "error": "lane extension bits or beat padding differ from the tdata rule",
                })  # fmt: skip
            for k in range(self.lout.elements):
                if e[j, k] != g[j, k] and len(self.first_mismatches) < MAX_RECORDED_MISMATCHES:
                    self.first_mismatches.append({
                        "phase": phase, "sample": int(index), "beat": k // lanes,
                        "lane": k % lanes, "expected": int(e[j, k]), "got": int(g[j, k]),
                    })  # fmt: skip

    async def stream(self, phase: str, order: list[int], group) -> None:
        """Send samples ``order`` (``group()`` samples per input packet) and check every output
        packet: one per sample, or in batch mode one per input packet."""
        from cocotb.triggers import RisingEdge
        from cocotbext.axi import AxiStreamFrame

        packets = []
        i = 0
        while i < len(order):
            k = min(group(), len(order) - i)
            packets.append(order[i : i + k])
            data = b"".join(self.x[j] for j in order[i : i + k])
            self.source.send_nowait(AxiStreamFrame(data))
            i += k
        expected = packets if self.batch else [[j] for j in order]
        recv = 0
        while recv < len(expected):
            if not self.sink.empty():
                self._check(phase, expected[recv], bytes(self.sink.recv_nowait().tdata))
                recv += 1
                continue
            await RisingEdge(self.dut.aclk)
            if self.obs.idle > self.max_idle:
                raise DesignFailure(
                    f"{phase}: no handshake for {self.obs.idle} cycles "
                    f"(received {recv}/{len(expected)} {'packets' if self.batch else 'samples'})"
                )

    async def drain(self, phase: str, cycles: int) -> None:
        """Idle with the sink ready: any output now is one the design should not produce."""
        from cocotb.triggers import RisingEdge

        self.sink.clear_pause_generator()
        self.sink.pause = False
        self.source.clear_pause_generator()
        self.source.pause = False
        beats = len(self.obs.out_edges)
        for _ in range(cycles):
            await RisingEdge(self.dut.aclk)
        extra = len(self.obs.out_edges) - beats
        while not self.sink.empty():
            self.sink.recv_nowait()
        if extra or self.sink.active:
            self.extra_outputs += extra
            raise DesignFailure(f"{phase}: {extra} output beat(s) with no input")


def _test_decorator():
    try:
        import cocotb
    except ImportError:  # collected by pytest without cocotb: only the runner below is used
        return lambda f: f
    return cocotb.test()


@_test_decorator()
async def axis_regression(dut):
    """Latency, throughput and random-backpressure checks of the AXI top level."""
    import cocotb
    from cocotb.clock import Clock
    from cocotb.triggers import RisingEdge

    t_start = time.perf_counter()
    meta, x, y = load()
    stall = os.environ.get("RTLGEN_STALL", "random").strip().lower() or "random"
    seed = int(os.environ.get("RTLGEN_SEED", "0") or 0)
    if stall not in ("none", "random"):
        raise ValueError(f"RTLGEN_STALL={stall!r}: expected 'none' or 'random'")
    results_path = Path(os.environ.get("RTLGEN_AXIS_RESULTS") or TB_DIR / "axis_results.json")
    n = len(x)
    lat_exp, cps_exp = meta.get("latency"), meta.get("cycles_per_sample")
    res: dict = {
        "toplevel": meta["toplevel"],
        "simulator": cocotb.SIM_NAME,
        "stall": stall,
        "seed": seed,
        "n_vectors": n,
        "in_beats": meta["in_beats"],
        "out_beats": meta["out_beats"],
        "latency_expected": lat_exp,
        "cycles_per_sample_expected": cps_exp,
        "tlast": meta.get("tlast", "sample"),
        "latency_measured": None,
        "cycles_per_sample_measured": None,
        "one_packet_samples": None,
        "one_packet_tlasts": None,
        "cycles": None,
        "seconds": None,
        "vectors_per_second": None,
        "error": None,
    }
    dut.aresetn.value = 0
    dut.s_axis_tvalid.value = 0
    dut.m_axis_tready.value = 0
    Clock(dut.aclk, 10, unit="ns").start()
    h = Harness(dut, meta, x, y)
    cocotb.start_soon(h.obs.run())
    drain_cycles = 2 * (lat_exp or 0) + 8 * (meta["in_beats"] + meta["out_beats"]) + 32
    try:
        await h.reset()
        # Line buffers first step through the padding rows above the first image.
        for _ in range(4 + int(meta.get("settle_cycles") or 0)):
            await RisingEdge(dut.aclk)

        # Latency: one sample into the idle design.
        h.obs.clear()
        await h.stream("latency", [0], lambda: 1)
        res["latency_measured"] = next(e for e, last in h.obs.out_edges if last) - h.obs.in_edges[0]
        await h.drain("latency", drain_cycles)

        # Throughput: back-to-back samples, one packet each.
        k = 48 + 2 * math.ceil(max(lat_exp or 16, 1) / max(cps_exp or 1, 1))
        h.obs.clear()
        await h.stream("throughput", [i % n for i in range(k)], lambda: 1)
        ends = [e for e, last in h.obs.out_edges if last]
        half = len(ends) // 2
        res["cycles_per_sample_measured"] = (ends[-1] - ends[half]) / (len(ends) - 1 - half)
        await h.drain("throughput", drain_cycles)

        # Full run.
        rng = random.Random(seed)
        if stall == "random":
            h.source.set_pause_generator(pauses(random.Random(rng.random()), 0))
            h.sink.set_pause_generator(pauses(random.Random(rng.random()), 1))
        h.obs.clear()
        edge0 = h.obs.edge
        t0 = time.perf_counter()
        await h.stream("full", list(range(n)), lambda: rng.randint(1, MAX_SAMPLES_PER_PACKET))
        dt = time.perf_counter() - t0
        res["cycles"] = h.obs.edge - edge0
        res["seconds"] = round(dt, 4)
        res["vectors_per_second"] = round(n / dt, 1) if dt > 0 else None
        await h.drain("full", drain_cycles)

        if h.batch:
            # All samples in one input packet (one DMA transfer): one output packet, one tlast.
            h.obs.clear()
            if stall == "random":
                h.source.set_pause_generator(pauses(random.Random(rng.random()), 0))
                h.sink.set_pause_generator(pauses(random.Random(rng.random()), 1))
            await h.stream("one_packet", list(range(n)), lambda: n)
            lasts = [last for _, last in h.obs.out_edges]
            res["one_packet_samples"] = n
            res["one_packet_tlasts"] = sum(lasts)
            if sum(lasts) != 1 or not lasts or not lasts[-1]:
                raise DesignFailure(
                    f"one_packet: {sum(lasts)} m_axis_tlast beat(s) for one input packet of {n} samples "
                    f"(expected exactly one, on the last of {len(lasts)} beats)"
                )
            await h.drain("one_packet", drain_cycles)
    except DesignFailure as e:
        res["error"] = str(e)
    except Exception as e:
        res["error"] = f"{type(e).__name__}: {e}"
        raise
    finally:
        res["mismatches"] = h.mismatches.get("full", 0) + h.mismatches.get("one_packet", 0)
        res["probe_mismatches"] = sum(h.mismatches.values()) - res["mismatches"]
        res["first_mismatches"] = h.first_mismatches
        res["extra_outputs"] = h.extra_outputs
        res["protocol_errors"] = h.obs.protocol_errors
        res["total_seconds"] = round(time.perf_counter() - t_start, 4)
        failures = []
        if res["error"]:
            failures.append(res["error"])
        if h.mismatches:
            failures.append(
                f"{res['mismatches']}/{n} mismatching sample(s) "
                f"(+{res['probe_mismatches']} in the latency/throughput probes), "
                f"first: {h.first_mismatches[0] if h.first_mismatches else None}"
            )
        if h.obs.protocol_errors:
            failures.append(f"AXI protocol: {h.obs.protocol_errors[0]}")
        lat = res["latency_measured"]
        if lat_exp is not None and lat is not None and lat != lat_exp:
            failures.append(f"latency {lat} != declared {lat_exp}")
        cps = res["cycles_per_sample_measured"]
        if cps_exp is not None and cps is not None and cps != cps_exp:
            failures.append(f"cycles per sample {cps} != declared {cps_exp}")
        res["failures"] = failures
        res["passed"] = not failures
        results_path.parent.mkdir(parents=True, exist_ok=True)
        results_path.write_text(json.dumps(res, indent=2, sort_keys=True) + "\n")
    assert not failures, "; ".join(failures)


# -- runner ---------------------------------------------------------------------------------------


def run_axis_regression(
    simulator: str | None = None,
    stall: str | None = None,
    seed: int | None = None,
    build_dir: str | os.PathLike | None = None,
    results: str | os.PathLike | None = None,
) -> dict:
    """Build and simulate; return the results dict. Arguments default to RTLGEN_* env vars.

    Raises test_runner.SimulationError when the simulator or cocotbext-axi is unavailable, the
    build fails or no results were produced. A failing design is reported in ``passed``.
    """
    from test_runner import SimulationError, build_and_run, check_simulator

    simulator = simulator or os.environ.get("RTLGEN_SIM") or "verilator"
    stall = stall or os.environ.get("RTLGEN_STALL") or "random"
    seed = int(os.environ.get("RTLGEN_SEED") or 0) if seed is None else int(seed)
    if stall not in ("none", "random"):
        raise SimulationError(f"unknown stall pattern {stall!r} (choose none or random)")
    check_simulator(simulator)
    try:
        import cocotbext.axi  # noqa: F401
    except ImportError:
        raise SimulationError("cocotbext-axi is not installed (pip install cocotbext-axi)") from None

    meta = json.loads((TB_DIR / META_FILE).read_text())
    build_dir = Path(
        build_dir or os.environ.get("RTLGEN_AXIS_BUILD_DIR") or TB_DIR / "sim_build" / f"{simulator}_axis"
    ).resolve()
    results_path = Path(results or os.environ.get("RTLGEN_AXIS_RESULTS") or TB_DIR / "axis_results.json")
    results_path = results_path.resolve()
    return build_and_run(meta, simulator, stall, seed, build_dir, results_path, "RTLGEN_AXIS_RESULTS", "test_axis")


def summary(res: dict) -> str:
    """One-line human summary of a results dict."""
    head = "PASS" if res.get("passed") else "FAIL"
    s = (
        f"{head} {res['toplevel']} (AXI4-Stream, {res.get('tlast', 'sample')} tlast) on {res['simulator']} "
        f"(stall={res['stall']}, seed={res['seed']}): {res['n_vectors']} samples, "
        f"{res['mismatches']} mismatching, latency {res['latency_measured']}"
        f"/{res['latency_expected']}, cycles per sample {res['cycles_per_sample_measured']}"
        f"/{res['cycles_per_sample_expected']}, {res['vectors_per_second']} samples/s"
    )
    if res.get("failures"):
        s += " -- " + "; ".join(res["failures"])
    return s


def test_axis_regression():
    res = run_axis_regression()
    print(summary(res))
    assert res["passed"], summary(res)


def main(argv: list[str] | None = None) -> int:
    from test_runner import cli_main

    return cli_main(__doc__, run_axis_regression, summary, argv)


if __name__ == "__main__":
    sys.exit(main())
