"""Tests of rtlgen.sim: vectors I/O, the generated cocotb testbench and its runner."""

# No "from __future__ import annotations": Amaranth reads Component annotations at runtime.
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from amaranth import Module, Signal, signed
from amaranth.back import verilog
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from rtlgen.sim import (
    SimulationError,
    available_simulators,
    pack,
    read_vectors,
    run,
    unpack,
    write_testbench,
    write_vectors,
)
from rtlgen.sim.runner import TEMPLATES

LANES, W_IN, W_OUT = 4, 8, 12
N = 2000

# Empty without cocotb; simulators failing their checks (e.g. too old a Verilator) are left out.
SIMS = available_simulators()


def need(sim: str) -> None:
    if sim not in SIMS:
        pytest.skip(f"{sim} (with cocotb >= 2) not available: found {SIMS or 'none'}")


def first_sim() -> str:
    if not SIMS:
        pytest.skip("no usable simulator (cocotb + verilator/icarus) found")
    return SIMS[0]


def _in_sig():
    return stream.Signature(data.ArrayLayout(signed(W_IN), LANES))


def _out_sig():
    return stream.Signature(data.ArrayLayout(signed(W_OUT), LANES))


class Pipe(wiring.Component):
    """Lane-wise x*3+1 in a 2-stage stallable pipeline: latency 2, interval 1."""

    i: In(_in_sig())
    o: Out(_out_sig())

    def elaborate(self, platform):
        m = Module()
        v1 = Signal()
        d1 = Signal(data.ArrayLayout(signed(W_OUT), LANES))
        en2 = self.o.ready | ~self.o.valid
        en1 = en2 | ~v1
        m.d.comb += self.i.ready.eq(en1)
        with m.If(en1):
            m.d.sync += v1.eq(self.i.valid)
            m.d.sync += [d1[k].eq(self.i.payload[k] * 3) for k in range(LANES)]
        with m.If(en2):
            m.d.sync += self.o.valid.eq(v1)
            m.d.sync += [self.o.payload[k].eq(d1[k] + 1) for k in range(LANES)]
        return m


class Alternate(wiring.Component):
    """Combinational x*3+1 passing only every other cycle: latency 0, interval 2."""

    i: In(_in_sig())
    o: Out(_out_sig())

    def elaborate(self, platform):
        m = Module()
        phase = Signal()
        m.d.sync += phase.eq(~phase)
        m.d.comb += [
            self.o.valid.eq(self.i.valid & phase),
            self.i.ready.eq(self.o.ready & phase),
        ]
        m.d.comb += [self.o.payload[k].eq(self.i.payload[k] * 3 + 1) for k in range(LANES)]
        return m


class Stuck(wiring.Component):
    """Never ready: the testbench must report a hang, not wait forever."""

    i: In(_in_sig())
    o: Out(_out_sig())

    def elaborate(self, platform):
        m = Module()
        dummy = Signal()
        m.d.sync += dummy.eq(self.i.valid)
        return m


def _meta(latency: int, interval: int) -> dict:
    return dict(
        toplevel="top",
        in_lanes=LANES,
        in_width=W_IN,
        in_signed=True,
        out_lanes=LANES,
        out_width=W_OUT,
        out_signed=True,
        latency=latency,
        interval=interval,
        verilog_sources=["../rtl/top.v"],
    )


def _vectors(n: int = N, seed: int = 1):
    x = np.random.default_rng(seed).integers(-128, 128, size=(n, LANES), dtype=np.int64)
    return x, x * 3 + 1


def make_design(out: Path, component, latency: int, interval: int, y=None) -> Path:
    """OUT/rtl/top.v + OUT/tb; returns OUT/tb."""
    (out / "rtl").mkdir(parents=True, exist_ok=True)
    (out / "rtl" / "top.v").write_text(verilog.convert(component, name="top", emit_src=False))
    x, y_ok = _vectors()
    return write_testbench(out / "tb", x, y_ok if y is None else y, _meta(latency, interval))


@pytest.fixture(scope="module")
def pipe_tb(tmp_path_factory) -> Path:
    return make_design(tmp_path_factory.mktemp("pipe"), Pipe(), latency=2, interval=1)


# --- vectors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "width,signed_", [(1, False), (3, True), (8, True), (12, False), (64, True)]
)
def test_pack_roundtrip(width, signed_):
    lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed_ else (0, (1 << width) - 1)
    x = np.random.default_rng(width).integers(lo, hi, size=(300, 7), endpoint=True, dtype=np.int64)
    payloads = pack(x, width, signed_)
    ref = [
        sum((int(v) & ((1 << width) - 1)) << (k * width) for k, v in enumerate(row)) for row in x
    ]
    assert payloads == ref
    assert np.array_equal(unpack(payloads, 7, width, signed_), x)


def test_template_pack_matches():
    # The testbench template is standalone, so it carries its own copy of pack().
    pytest.importorskip("cocotb")
    spec = importlib.util.spec_from_file_location("_tb_design", TEMPLATES / "test_design.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    x = np.random.default_rng(0).integers(-2048, 2048, size=(2500, 133), dtype=np.int64)
    assert mod.pack(x, 12, True) == pack(x, 12, True)


def test_pack_range_check():
    with pytest.raises(ValueError, match="do not fit"):
        pack(np.array([[128]]), 8, True)
    with pytest.raises(ValueError, match="do not fit"):
        pack(np.array([[-1]]), 8, False)


def test_write_read_vectors_deterministic(tmp_path):
    x, y = _vectors(50)
    write_vectors(tmp_path / "a", x, y, _meta(2, 1))
    write_vectors(tmp_path / "b", x, y, _meta(2, 1))
    for f in ("vectors.npz", "meta.json"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
    x2, y2, meta = read_vectors(tmp_path / "a")
    assert x2.dtype == np.int64 and np.array_equal(x2, x) and np.array_equal(y2, y)
    assert meta == {**_meta(2, 1), "in_beats": 1, "out_beats": 1}
    with pytest.raises(ValueError, match="do not fit"):
        write_vectors(tmp_path / "c", x, y * 100, _meta(2, 1))
    with pytest.raises(ValueError, match="missing keys"):
        write_vectors(tmp_path / "c", x, y, {"toplevel": "top"})


# --- simulation ----------------------------------------------------------------------


@pytest.mark.parametrize("stall", ["none", "random"])
@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_pipeline(pipe_tb, sim, stall):
    need(sim)
    res = run(pipe_tb, simulator=sim, stall=stall, seed=7, timeout=300)
    assert res["passed"], res["failures"]
    assert res["n_vectors"] == N and res["mismatches"] == 0 and res["first_mismatches"] == []
    assert res["latency_measured"] == res["latency_expected"] == 2
    assert res["interval_measured"] == res["interval_expected"] == 1
    assert res["vectors_per_second"] > 0
    assert Path(res["log"]).is_file()
    assert json.loads((pipe_tb / "sim_build" / sim / "results.json").read_text())["passed"]


def test_latency0_interval2(tmp_path):
    sim = first_sim()
    tb = make_design(tmp_path, Alternate(), latency=0, interval=2)
    for stall in ("none", "random"):
        res = run(tb, simulator=sim, stall=stall, seed=3, timeout=300)
        assert res["passed"], res["failures"]
        assert (res["latency_measured"], res["interval_measured"]) == (0, 2)
        assert res["interval_mean"] == 2.0


def test_detects_mismatches_and_wrong_timing(tmp_path):
    sim = first_sim()
    x, y = _vectors()
    y_bad = y.copy()
    y_bad[5, 2] += 1
    y_bad[1234, 0] -= 1
    tb = make_design(tmp_path, Pipe(), latency=3, interval=1, y=y_bad)
    res = run(tb, simulator=sim, stall="random", timeout=300)
    assert not res["passed"]
    # Vector 5 is also re-sent by the interval probe (the first K vectors).
    assert (res["mismatches"], res["mismatched_lanes"], res["probe_mismatches"]) == (2, 2, 1)
    assert res["first_mismatches"][:2] == [
        {
            "phase": "full",
            "sample": 5,
            "lane": 2,
            "expected": int(y_bad[5, 2]),
            "got": int(y[5, 2]),
        },
        {
            "phase": "full",
            "sample": 1234,
            "lane": 0,
            "expected": int(y_bad[1234, 0]),
            "got": int(y[1234, 0]),
        },
    ]
    assert res["latency_measured"] == 2
    assert any("latency 2 != declared 3" in f for f in res["failures"])


def test_detects_hang(tmp_path):
    sim = first_sim()
    tb = make_design(tmp_path, Stuck(), latency=1, interval=1)
    res = run(tb, simulator=sim, timeout=300)
    assert not res["passed"]
    assert "no handshake" in res["error"]


def test_standalone_pytest(pipe_tb, tmp_path):
    sim = first_sim()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "RTLGEN_"))}
    env["RTLGEN_SIM"] = sim
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(pipe_tb)],
        cwd=tmp_path,  # not the tb dir: the regression must find its files itself
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "1 passed" in proc.stdout
    assert json.loads((pipe_tb / "results.json").read_text())["passed"]


def test_errors(pipe_tb, tmp_path):
    with pytest.raises(SimulationError, match="unknown simulator"):
        run(pipe_tb, simulator="modelsim")
    with pytest.raises(SimulationError, match="not a testbench"):
        run(tmp_path)
    sim = first_sim()
    tb = make_design(tmp_path / "broken", Pipe(), latency=2, interval=1)
    (tmp_path / "broken" / "rtl" / "top.v").write_text(
        "module top(input clk); wire x = ; endmodule\n"
    )
    with pytest.raises(SimulationError, match="build failed"):
        run(tb, simulator=sim)
    with pytest.raises(SimulationError, match="timed out"):
        run(pipe_tb, simulator=sim, build_dir=tmp_path / "tmo", timeout=0.01)
