"""The UART bridge: protocol, host client, and the complete board top in cocotb + Verilator driven
by the host client's own byte stream (a Dense and a streaming design, corrupted frames, a sender
faster than the board, a sender ignoring the window)."""

import numpy as np
import pytest

import rtlgen
from rtlgen.boards import get_board, uart_sim
from rtlgen.boards._ice40 import link_for
from rtlgen.boards.uart import OK, SYNC, BridgeError, Client, Link, crc8
from rtlgen.examples import qonnx_mlp
from rtlgen.sim.runner import available_simulators

DIVISOR = 4  # clock cycles per bit in simulation


def test_crc8_is_smbus():
    assert crc8(b"123456789") == 0xF4
    assert crc8(b"") == 0


def test_frame_encoding_and_errors():
    link = Link(in_values=3, in_width=12, in_signed=True, out_values=2, out_width=5, out_signed=False, window=4, in_type="fixed<12,4>")
    f = link.encode(7, [-1, 2, -2048])
    assert f[0] == SYNC and f[1] == 7 and f[2:8] == bytes([0xFF, 0xFF, 2, 0, 0x00, 0xF8]) and f[-1] == crc8(f[1:-1])
    assert link.frame_in == len(f) == 9 and link.frame_out == 6
    with pytest.raises(BridgeError, match=r"^input mantissas must lie in \[-2048, 2047\] \(fixed<12,4>\), not \[0, 2048\]$"):
        link.encode(0, [0, 0, 2048])
    with pytest.raises(BridgeError, match=r"^a sample has 3 values, not 2$"):
        link.encode(0, [0, 0])
    with pytest.raises(ValueError, match=r"^link window must be at most 255 frames, not 300$"):
        Link(in_values=1, in_width=8, in_signed=True, out_values=1, out_width=8, out_signed=True, window=300)


class _FakeBoard:
    """A board in software speaking the protocol through a pyserial-like port: doubles each input,
    rejects frames with a bad checksum. Lets the client's window and retry logic be checked fast."""

    def __init__(self, link, window):
        self.link, self.window = link, window
        self.inbox, self.outbox, self.queue = bytearray(), bytearray(), []
        self.max_queue = 0
        self.flip = {1}  # corrupt the second frame on the wire
        self.frames = 0

    def write(self, data):
        data = bytearray(data)
        if self.frames in self.flip:
            data[3] ^= 1
        self.frames += 1
        self.inbox += data
        n = self.link.frame_in
        while len(self.inbox) >= n:
            frame, self.inbox = bytes(self.inbox[:n]), self.inbox[n:]
            self.queue.append(frame)
            self.max_queue = max(self.max_queue, len(self.queue))
            assert len(self.queue) <= self.window, "the client exceeded the window"
        return len(data)

    def read(self, n):
        if not self.outbox and self.queue:
            frame = self.queue.pop(0)
            seq, body = frame[1], frame[1:-1]
            if crc8(body) != frame[-1]:
                reply = bytes([1, seq])
            else:
                v = np.frombuffer(frame[2:-1], dtype=np.int8).astype(np.int64) * 2
                reply = bytes([OK, seq]) + v.astype("<i2").tobytes()
            self.outbox += bytes([0x00, SYNC]) + reply + bytes([crc8(reply)])  # a stray byte first
        out, self.outbox = bytes(self.outbox[:n]), self.outbox[n:]
        return out


def test_client_window_retry_and_timeout():
    link = Link(in_values=4, in_width=8, in_signed=True, out_values=4, out_width=16, out_signed=True, window=3)
    board = _FakeBoard(link, 3)
    x = np.random.default_rng(0).integers(-128, 128, (20, 4))
    client = Client(board, link, timeout=0.5)
    assert np.array_equal(client.run(x), 2 * x)
    assert board.max_queue == 3 and client.stats.max_outstanding == 3
    assert client.stats.rejected == [(1, "checksum error")] and client.stats.retries == 1 and client.stats.sent == 21

    class Silent:
        def write(self, b):
            return len(b)

        def read(self, n):
            return b""

    with pytest.raises(BridgeError, match=r"^no reply from the board for 0.01 s; check the port, the baud rate \(115200\) and that the bitstream is loaded \(samples 0, 1, 2 unanswered\)$"):
        Client(Silent(), link, timeout=0.01).run(x[:5])
    with pytest.raises(BridgeError, match=r"^samples must be integer input mantissas, not float64; give design= to send float inputs$"):
        Client(Silent(), link).run(x.astype(float))

    class Doubling:  # quantize_input of a design whose input type has one fractional bit
        def quantize_input(self, v):
            return np.round(np.asarray(v) * 2).astype(np.int64)

    board = _FakeBoard(link, 3)
    board.flip = set()
    assert np.array_equal(Client(board, link).run(x[:4] / 2.0, design=Doubling()), 2 * x[:4])


# -- the board top in cocotb ---------------------------------------------------------------------


def _needs_verilator():
    if "verilator" not in available_simulators():
        pytest.skip("verilator is not available")


def run_board_top(design, x, tmp_path, **kw) -> dict:
    """Simulate the board top of ``design`` with the host client sending input mantissas ``x``."""
    _needs_verilator()
    return uart_sim.run(design, x, tmp_path, divisor=DIVISOR, **kw)


@pytest.fixture(scope="module")
def dense_design():
    # 4 inputs, 16 outputs of 14 bits: a reply is three times as long as a request, so a sender
    # at full line rate is faster than the board can answer and only the window holds it.
    return rtlgen.convert(qonnx_mlp((4, 16, 16), seed=3, name="wide"), {"Model": {"ReuseFactor": 8}})


def _onnx_cnn():
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(7)
    w1 = rng.normal(0, 0.5, (16, 1, 3, 3)).astype(np.float32)
    w2 = rng.normal(0, 0.2, (8, 16, 3, 3)).astype(np.float32)
    wd = rng.normal(0, 0.5, (32, 3)).astype(np.float32)
    inits = [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (w2, "w2"), (wd, "wd"), (np.array([1, -1], dtype=np.int64), "shape"))]
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1", pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], name="conv2", pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("MaxPool", ["r2"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Reshape", ["p", "shape"], ["f"], name="flatten"),
        helper.make_node("MatMul", ["f", "wd"], ["y"], name="fc"),
    ]
    g = helper.make_graph(nodes, "slow_cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], initializer=inits)  # fmt: skip
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


@pytest.fixture(scope="module")
def stream_design():
    # The second convolution shares one multiplier per output channel over all 144 terms of each
    # position: a sample takes longer in the network than its frame on the line.
    types = {"Precision": {"accum": "fixed<16,6>", "result": "fixed<12,5>"}}
    cfg = {"IOType": "io_stream", "Model": {"Precision": "fixed<8,3>"}, "LayerType": {"Conv": types, "Dense": types},
           "LayerName": {"conv2": {"ReuseFactor": 144}}}  # fmt: skip
    d = rtlgen.convert(_onnx_cnn(), cfg)
    assert d.config.io_type == "io_stream" and d.network.in_beats == 16
    link = link_for(d, get_board("icebreaker"))
    assert d.initiation_interval > 10 * DIVISOR * link.frame_in > 10 * DIVISOR * link.frame_out
    return d


def _check(res, design, x):
    assert res["n"] == len(x) and res["mismatches"] == 0, res["first_mismatches"]
    assert np.array_equal(res["outputs"], design.predict_int(x))


def test_dense_board_top_bit_exact(dense_design, tmp_path):
    """200 samples, two frames corrupted on the wire (a sample byte and a checksum), full-rate
    sender held by the window; then a burst that ignores the window."""
    x = dense_design.random_inputs(200, seed=1)
    link = link_for(dense_design, get_board("icebreaker"), window=2)
    res = run_board_top(dense_design, x, tmp_path, window=2, corrupt={17: 3, 120: link.frame_in - 1}, burst=12)
    _check(res, dense_design, x)
    st = res["stats"]
    assert res["flipped"] == [17, 120]
    # Each corrupted frame was rejected, reported by sequence number and resent; nothing else was.
    assert [r[1] for r in st["rejected"]] == ["checksum error", "checksum error"] and st["retries"] == 2
    assert st["sent"] == 202 and st["dropped_reports"] == 0
    assert st["max_outstanding"] == 2 and st["held_seconds"] > 0
    # The network's results waited for the return line (the board is slower than the sender);
    # only the window kept the sender from overrunning the receive buffer.
    assert res["stalls"]["output"] > 1000, res["stalls"]
    # Ignoring the window overruns the receive buffer: those frames are rejected, never computed
    # wrongly, and every frame gets exactly one answer.
    burst = res["burst"]
    seqs = [b["seq"] for b in burst]
    assert len(seqs) == len(set(seqs)) and set(seqs) <= set(range(12))
    # A rejection that found the report queue full is flagged on a later reply instead.
    assert len(seqs) == 12 or any(b["dropped"] for b in burst)
    assert all(b["correct"] for b in burst if b["status"] == "ok")
    assert any(b["status"] == "receive buffer overrun" for b in burst)
    assert sum(b["status"] == "ok" for b in burst) >= 2


def test_stream_board_top_bit_exact(stream_design, tmp_path):
    """200 samples through a network slower than the line, one frame corrupted."""
    x = stream_design.random_inputs(200, seed=2)
    res = run_board_top(stream_design, x, tmp_path, corrupt={5: 9})
    _check(res, stream_design, x)
    st = res["stats"]
    assert [r[0] for r in st["rejected"]] == [5] and st["sent"] == 201
    assert st["max_outstanding"] == link_for(stream_design, get_board("icebreaker")).window and st["held_seconds"] > 0
    # The network is slower than the line: it held the bridge's input beats back, and the
    # window held the sender (no overrun, nothing rejected but the corrupted frame).
    assert res["stalls"]["input"] > 1000, res["stalls"]
