"""rtlgen assess: framework, golden, RTL and board rows on the same samples; timing and resources."""

import json

import numpy as np
import pytest

import rtlgen
from rtlgen.assess import assess, format_table
from rtlgen.boards import _ice40 as ice40
from rtlgen.boards import deploy
from rtlgen.boards import uart as uart_mod
from rtlgen.boards.uart import OK, SYNC, crc8
from rtlgen.cli import main
from rtlgen.examples import qonnx_mlp
from rtlgen.sim.runner import available_simulators


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    import onnx

    tmp = tmp_path_factory.mktemp("assess")
    model = qonnx_mlp((8, 8, 3), seed=4, name="small")
    onnx.save(model, tmp / "small.onnx")
    design = rtlgen.convert(model, {"Model": {"ReuseFactor": 4}})
    out = design.write(tmp / "out", n_vectors=10)
    rng = np.random.default_rng(0)
    x = rng.uniform(-6, 6, (60, 8))
    # Labels: the model's own class for 40 samples, another class for 20.
    cls = np.argmax(design.predict(x), axis=1)
    labels = np.where(np.arange(60) < 40, cls, (cls + 1) % 3)
    np.save(tmp / "x.npy", x)
    np.save(tmp / "y.npy", labels)
    return tmp, out, design, x, labels


def test_assess_sim_cli(built, capsys):
    if "verilator" not in available_simulators():
        pytest.skip("verilator is not available")
    tmp, out, design, x, labels = built
    args = ["assess", str(out), "--data", str(tmp / "x.npy"), "--labels", str(tmp / "y.npy"), "--model", str(tmp / "small.onnx")]
    assert main([*args, "--target", "uart-sim"]) == 0
    text = capsys.readouterr().out
    a = json.loads((out / "report.json").read_text())["assessment"]
    stages = [r["stage"] for r in a["rows"]]
    assert stages == ["source model (qonnx)", "golden model", "RTL (verilator)", "board top, simulated (UART bridge, host client)"]
    fw, gold, rtl, board = a["rows"]
    assert board["mismatches"] == 0 and board["accuracy"] == gold["accuracy"] and board["rejected"] == 0
    # The quantized model computes exactly what the golden model does.
    assert gold["accuracy"] == pytest.approx(40 / 60) and fw["accuracy"] == gold["accuracy"] and fw["agreement"] == 1.0
    assert fw["max_abs_diff"] == 0.0
    assert rtl["mismatches"] == 0 and rtl["agreement"] == 1.0 and rtl["accuracy"] == gold["accuracy"]
    assert rtl["latency_measured"] == design.latency and rtl["interval_measured"] == design.initiation_interval
    assert a["timing"]["latency_cycles"] == design.latency and a["timing"]["clock_mhz"] is None and a["resources"] is None
    assert text.count("60 of 60 bit-exact") == 2 and "66.67 %" in text and "run rtlgen synth" in text
    assert "<h2>Assessment</h2>" in (out / "report.html").read_text()


def test_assess_errors(built, capsys):
    tmp, out, *_ = built
    np.save(tmp / "short.npy", np.zeros(5, dtype=np.int64))
    assert main(["assess", str(out), "--data", str(tmp / "x.npy"), "--labels", str(tmp / "short.npy"), "--no-sim"]) == 2
    assert "error: labels have 5 entries but the data has 60 samples; give one label per sample" in capsys.readouterr().err
    assert main(["assess", str(out), "--data", str(tmp / "x.npy"), "--target", "pynq", "board"]) == 2
    assert "error: --target must be 'sim', 'uart PORT' or 'uart-sim', not 'pynq'" in capsys.readouterr().err
    assert main(["assess", str(out), "--data", str(tmp / "x.npy"), "--target", "uart"]) == 2
    assert "error: --target uart needs the serial port: --target uart /dev/ttyUSB1" in capsys.readouterr().err
    np.save(tmp / "bad.npy", np.zeros((3, 7)))
    assert main(["assess", str(out), "--data", str(tmp / "bad.npy"), "--no-sim"]) == 2
    assert "error: each sample must have 8 values (the network's input), not 7 (data shape (3, 7))" in capsys.readouterr().err


class _Board:
    """The board in software behind a pyserial-like port: the golden model answers each frame,
    except that sample ``wrong`` comes back with one output off by one."""

    def __init__(self, design, link, wrong):
        self.design, self.link, self.wrong = design, link, wrong
        self.inbox, self.outbox, self.count = bytearray(), bytearray(), 0

    def write(self, data):
        self.inbox += data
        n = self.link.frame_in
        while len(self.inbox) >= n:
            frame, self.inbox = bytes(self.inbox[:n]), self.inbox[n:]
            assert frame[0] == SYNC and crc8(frame[1:-1]) == frame[-1]
            v = np.frombuffer(frame[2:-1], dtype=np.int8).astype(np.int64)
            y = self.design.predict_int(v[None])[0]
            if self.count == self.wrong:
                y[0] += 1
            self.count += 1
            body = bytes([OK, frame[1]]) + y.astype(f"<i{self.link.out_bytes}").tobytes()
            self.outbox += bytes([SYNC]) + body + bytes([crc8(body)])
        return len(data)

    def read(self, n):
        out, self.outbox = bytes(self.outbox[:n]), self.outbox[n:]
        return out


def test_assess_uart_target(built, monkeypatch):
    """Through a board package's link and the host client; a wrong output is counted as such."""
    pytest.importorskip("amaranth_boards")
    tmp, out, design, x, labels = built
    monkeypatch.setenv("RTLGEN_BOARD_TOOLS", "0")
    monkeypatch.setattr(ice40, "_yosys_available", lambda: False)
    deploy(out, "icebreaker", design=design)
    link = uart_mod.Link.load(out / "boards" / "icebreaker")
    assert link.out_bytes == 2
    monkeypatch.setattr(uart_mod, "open_port", lambda name, link, timeout=0.1: _Board(design, link, wrong=7))
    a = assess(out, x, labels, target="uart", port="fake0", simulate=False)
    board = a["rows"][-1]
    assert board["stage"] == "board icebreaker (fake0)" and board["mismatches"] == 1 and board["agreement"] == pytest.approx(59 / 60)
    assert a["timing"]["clock_mhz"] == 12.0 and a["timing"]["latency_ns"] == round(1000 * design.latency / 12, 2)
    assert a["timing"]["uart_frame_bytes"] == [link.frame_in, link.frame_out]
    assert a["resources"] is None or a["resources"]["part"] == "ice40up5k"
    lines = format_table(a)
    assert any("59 of 60 bit-exact" in ln for ln in lines) and any(ln.startswith("UART link") for ln in lines)
