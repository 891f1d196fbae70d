"""Board packages run on the host against the network's RTL: the bare-metal C program (host gcc,
stand-in Xilinx headers) and the PYNQ driver (stand-in pynq), both driving a Verilator model of
the package's ``ip/hdl/<top>_axis_dma.v`` inside simulated AXI DMA engines.

Designs: the jet tagger (io_parallel, 128-bit input, 80-bit output padded to 128) and a streaming
CNN (io_stream, 16 beats of 24 bits in padded to 32, one 48-bit beat out padded to 64).
"""

import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import rtlgen
from rtlgen.boards.hostsim import ip_dict_from_tcl, pynq_network, run_c, tcl_dry_run
from rtlgen.cli import main
from rtlgen.design import load_design
from rtlgen.sim import available_simulators
from rtlgen.sim.tdata import Layout

sys.path.insert(0, str(Path(__file__).resolve().parent))
from board_models import streaming_cnn  # noqa: E402


def _need_tools():
    if "verilator" not in available_simulators():
        pytest.skip("verilator is not available")
    for tool in ("gcc", "g++", "make"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not found")


@pytest.fixture(scope="module")
def jet(tmp_path_factory):
    """``rtlgen build --example jet-tagger --board pynq-z2`` plus ``rtlgen deploy`` for zcu102 and
    arty-a7-100t, and a work directory whose Verilator model all three share (same ip/hdl)."""
    _need_tools()
    root = tmp_path_factory.mktemp("jet")
    out = root / "out"
    assert main(["build", "--example", "jet-tagger", "--board", "pynq-z2", "-o", str(out)]) == 0
    for b in ("zcu102", "arty-a7-100t"):
        assert main(["deploy", str(out), "--board", b]) == 0
    return out, root / "host"


@pytest.fixture(scope="module")
def cnn(tmp_path_factory):
    _need_tools()
    root = tmp_path_factory.mktemp("cnn")
    design = rtlgen.convert(streaming_cnn(), {"IOType": "io_stream"})
    out = design.write(root / "out", n_vectors=300, boards=["pynq-z2", "arty-a7-100t"])
    return out, root / "host", design


# -- bare metal ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("board,stall,defines", [("pynq-z2", "random", ()), ("zcu102", "none", ("SDT",)), ("arty-a7-100t", "random", ())])
def test_c_program_jet_tagger(jet, board, stall, defines):
    """main.c, compiled with gcc against the stand-in BSP (classic and SDT lookups; Zynq global
    timer and MicroBlaze AXI timer), packs the build's 1000 vectors itself, sends them in one DMA
    transfer and checks every output: 0 mismatches on the RTL."""
    out, work = jet
    r = run_c(out / "boards" / board, stall=stall, seed=3, work=work, defines=defines)
    assert r["passed"], r["uart"] + r["stderr"]
    assert (r["mismatches"], r["samples"], r["transfers"]) == (0, 1000, 1)
    if stall == "none":
        # One sample per cycle through the DMA model: 1000 samples plus the pipeline's latency.
        assert r["cycles_per_sample"] == pytest.approx(1.01, abs=0.011)
    assert r["stderr"] == ""


@pytest.mark.parametrize("board", ["pynq-z2", "arty-a7-100t"])
def test_c_program_streaming_cnn(cnn, board):
    out, work, design = cnn
    r = run_c(out / "boards" / board, stall="random", seed=1, work=work)
    assert r["passed"], r["uart"] + r["stderr"]
    assert (r["mismatches"], r["samples"], r["transfers"]) == (0, 300, 1)
    assert r["cycles_per_sample"] >= design.initiation_interval


def test_c_program_packs_as_the_tdata_module(cnn):
    """The bytes main.c hands to the DMA are exactly tdata.Layout.pack of the vectors."""
    out, work, _ = cnn
    pkg = out / "boards" / "pynq-z2"
    dump = work / "mm2s.bin"
    r = run_c(pkg, work=work, mm2s_dump=dump)
    assert r["passed"]
    import json

    lay = Layout.from_meta(json.loads((pkg / "driver" / "network.json").read_text())["layout"], "in")
    with np.load(pkg / "driver" / "vectors.npz") as f:
        x = f["x"]
    assert lay.beat_bytes == 4 and lay.tdata_bytes == 3
    assert dump.read_bytes() == lay.pack(x).tobytes()


def test_c_program_reports_missing_tlast(jet):
    """A DMA send that never raises s_axis_tlast: the batch IP never ends its output packet, and
    the program says so within its time limit instead of hanging."""
    out, work = jet
    t0 = time.perf_counter()
    r = run_c(out / "boards" / "pynq-z2", fault="no_tlast", work=work, timeout=120)
    assert time.perf_counter() - t0 < 60
    assert r["returncode"] == 1 and not r["passed"]
    assert "rtlgen: error: no TLAST: the receive of 1000 samples did not complete within" in r["uart"]
    assert r["uart"].rstrip().endswith("rtlgen: FAIL")


def test_c_program_cache_maintenance_matters(jet, tmp_path):
    """The stand-in models the data cache: without the invalidate after the receive the program
    reads its poisoned buffer, without the flush before the send the DMA reads stale memory."""
    out, work = jet
    pkg = out / "boards" / "pynq-z2"
    for line, sign in (("Xil_DCacheInvalidateRange((INTPTR)OUT_BUF, out_bytes);", ""),
                       ("Xil_DCacheFlushRange((INTPTR)IN_BUF, in_bytes);", "never flushed")):  # fmt: skip
        sw = tmp_path / f"sw_{len(sign)}"
        shutil.copytree(pkg / "sw", sw)
        src = (sw / "main.c").read_text()
        assert line in src
        (sw / "main.c").write_text(src.replace(line, ""))
        r = run_c(pkg, work=work, sw=sw)
        assert not r["passed"] and r["mismatches"] > 900, r["uart"]
        assert sign in r["stderr"]


def test_host_check_command(jet, capsys):
    """``python -m rtlgen.boards.hostsim PKG --c --tcl`` (what ``make -C sw host`` runs)."""
    from rtlgen.boards.hostsim import main as host_main

    out, work = jet
    assert host_main([str(out / "boards" / "zcu102"), "--c", "--tcl", "--work", str(work), "--stall", "none"]) == 0
    text = capsys.readouterr().out
    assert "rtlgen: PASS" in text and "AXI DMA MM2S 128 / S2MM 128 bits" in text


# -- PYNQ ---------------------------------------------------------------------------------------------------


def test_pynq_driver_jet_tagger_batch_mode(jet):
    """validate(): the 1000 stored vectors in ONE DMA transfer each way through the simulated AXI
    top under random stalls: 0 mismatches, and exactly one TLAST, at the end. predict() on floats
    and predict_int() agree with the golden model bit for bit."""
    out, work = jet
    design = load_design(out)
    with pynq_network(out / "boards" / "pynq-z2", stall="random", seed=7, work=work, timeout=120) as net:
        res = net.validate(verbose=False)
        assert res["passed"] and res["mismatches"] == 0 and res["samples"] == 1000 and res["transfers"] == 1
        assert (net.sim.tlasts, net.sim.beats_out) == (1, 1000)
        x = np.random.default_rng(0).uniform(-40, 40, (500, 16)).astype(np.float32)
        assert np.array_equal(net.predict(x), design.predict(x))
        m = design.random_inputs(300, 9)
        assert np.array_equal(net.predict_int(m), design.predict_int(m))
        b = net.benchmark(2000, batch=500, verbose=False)
        assert b["transfers"] == 4 and b["samples_per_second"] > 0 and b["pl_clock_mhz"] == 100.0
        assert b["effective_clock_mhz"] == pytest.approx(b["samples_per_second"] * b["cycles_per_sample"] / 1e6)
        assert net.sim.tlasts == 1 + 1 + 1 + 1 + 4  # validate, predict, predict_int, benchmark: warm-up + 4 batches


def test_pynq_driver_streaming_cnn(cnn):
    """The io_stream CNN: channels-first float inputs reordered by the driver, 16 padded beats per
    sample, unequal DMA widths (32 in, 64 out)."""
    out, work, design = cnn
    with pynq_network(out / "boards" / "pynq-z2", stall="random", seed=2, work=work, timeout=120) as net:
        assert (net.lin.beat_bytes, net.lout.beat_bytes) == (4, 8)
        res = net.validate(verbose=False)
        assert res["passed"] and res["mismatches"] == 0 and res["transfers"] == 1
        assert net.sim.tlasts == 1
        x = np.random.default_rng(1).uniform(-4, 4, (60, 3, 4, 4)).astype(np.float32)
        assert np.array_equal(net.predict(x), design.predict(x))


def test_pynq_driver_missing_tlast_fails_clearly(jet):
    """A transfer whose TLAST never comes: a clear DeployError after the timeout, not a hang
    (the stand-in's own wait() would raise too, after two million idle cycles)."""
    out, work = jet
    with pynq_network(out / "boards" / "pynq-z2", work=work, fault="no_tlast", timeout=1.5) as net:
        t0 = time.perf_counter()
        with pytest.raises(RuntimeError, match=r"^no TLAST: the DMA receive of 1000 samples \(16000 bytes\) did not complete within 1\.5 s although all input was sent\. "):
            net.validate(verbose=False)
        assert time.perf_counter() - t0 < 30


def test_pynq_driver_refuses_a_bitstream_of_another_build(jet):
    """The .hwh's DMA widths and IP are checked before any transfer (hls4ml #491: widths that
    disagree between the IP and the DMA)."""
    out, work = jet
    pkg = out / "boards" / "pynq-z2"
    good = ip_dict_from_tcl(tcl_dry_run(pkg, work=work))
    assert good["axi_dma_0"]["parameters"]["C_S_AXIS_S2MM_TDATA_WIDTH"] == "128"
    bad = {k: {**v, "parameters": dict(v["parameters"])} for k, v in good.items()}
    bad["axi_dma_0"]["parameters"]["C_S_AXIS_S2MM_TDATA_WIDTH"] = "64"
    with pytest.raises(RuntimeError, match=r"the DMA's output stream is 64 bits wide, but this network's output beats are 128 bits"):
        with pynq_network(pkg, work=work, ip_dict=bad):
            pass
    other = {k: v for k, v in good.items() if k != "nn_0"}
    with pytest.raises(RuntimeError, match=r"does not contain the IP rtlgen:nn:jet_tagger_axis_dma:1.0"):
        with pynq_network(pkg, work=work, ip_dict=other):
            pass


def test_driver_run_script_without_pynq(jet, tmp_path):
    """driver/run.py off-board: one clear line and status 2."""
    out, _ = jet
    drv = out / "boards" / "pynq-z2" / "driver"
    p = subprocess.run([sys.executable, "run.py", "--benchmark", "0"], cwd=drv, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    assert p.stderr.strip().startswith("error: bitstream ") and "not found: run build.sh" in p.stderr
