"""cocotb test of a complete UART board top (bridge + AXI4-Stream top + core): the host client
(rtlgen.boards.uart.Client) runs in a thread and talks to the ``rx``/``tx`` pins through
:class:`SimPort`, a serial port whose wire is the simulation.

The case comes from the JSON file named by ``RTLGEN_UART_CASE``: the link, the vectors file (``x``
input mantissas, ``y`` expected outputs), the bit period, what to corrupt, and where to write
results. Results: mismatches, client statistics, stream stalls, what the board answered to a
sender that ignores the window, and the outputs themselves (``outputs.npy`` beside the results).
Run by :func:`rtlgen.boards.uart_sim.run`.
"""

import json
import os
from collections import deque

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge

try:
    from cocotb import bridge, resume
except ImportError:  # cocotb 2.0 keeps them in a private module
    from cocotb._bridge import bridge, resume

from rtlgen.boards.uart import OK, STATUS_NAMES, Client, Link


class SimPort:
    """pyserial's ``write``/``read`` on the simulated pins. ``corrupt``: ``{frame index: byte
    offset}`` of bytes to flip on the wire (line noise), counted over frames as the host sends
    them. ``read`` waits up to ``patience`` bit periods for a byte, as a serial timeout."""

    def __init__(self, dut, divisor, *, corrupt=None, patience=400):
        self.dut, self.divisor, self.patience = dut, divisor, patience
        self.to_board = deque()
        self.from_board = bytearray()
        self.corrupt = {int(k): int(v) for k, v in (corrupt or {}).items()}
        self.frames = 0
        self.cycles = 0
        self.flipped = []

    def write(self, data: bytes) -> int:
        frame = bytearray(data)
        if self.frames in self.corrupt:
            off = self.corrupt[self.frames]
            frame[off] ^= 0x10
            self.flipped.append(self.frames)
        self.frames += 1
        self.to_board.extend(frame)
        return len(data)

    def read(self, n: int) -> bytes:
        return resume(self._read)(n)

    async def _read(self, n):
        waited = 0
        while not self.from_board and waited < self.patience:
            await ClockCycles(self.dut.clk, self.divisor)
            self.cycles += self.divisor
            waited += 1
        out = bytes(self.from_board[:n])
        del self.from_board[:n]
        return out

    def seconds(self) -> float:
        return self.cycles * 1e-6  # a simulated microsecond per cycle: only a timeout reference

    async def drive(self):
        """Send queued bytes back to back (start bit, 8 data bits LSB first, stop bit)."""
        rx, clk, d = self.dut.rx, self.dut.clk, self.divisor
        rx.value = 1
        while True:
            if not self.to_board:
                await ClockCycles(clk, d)
                continue
            b = self.to_board.popleft()
            for bit in [0, *((b >> k) & 1 for k in range(8)), 1]:
                rx.value = bit
                await ClockCycles(clk, d)

    async def listen(self):
        """Decode ``tx``: sample each bit in its middle."""
        tx, clk, d = self.dut.tx, self.dut.clk, self.divisor
        while True:
            await FallingEdge(tx)
            await ClockCycles(clk, d // 2)
            assert int(tx.value) == 0, "tx: start bit too short"
            b = 0
            for k in range(8):
                await ClockCycles(clk, d)
                b |= int(tx.value) << k
            await ClockCycles(clk, d)
            assert int(tx.value) == 1, "tx: no stop bit"
            self.from_board.append(b)


async def _reset(dut):
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rx.value = 1
    dut.rst.value = 1
    await ClockCycles(dut.clk, 5)
    dut.rst.value = 0
    await RisingEdge(dut.clk)


@cocotb.test()
async def uart_bridge(dut):
    case = json.loads(open(os.environ["RTLGEN_UART_CASE"]).read())
    link = Link(**case["link"])
    vec = np.load(case["vectors"])
    x, y = vec["x"], vec["y"]
    d = case["divisor"]
    await _reset(dut)
    port = SimPort(dut, d, corrupt=case.get("corrupt"))
    cocotb.start_soon(port.drive())
    cocotb.start_soon(port.listen())
    results = {}
    stalls = {"input": 0, "output": 0}

    async def watch():
        """Sample the bridge's two streams to the network every bit period: how often the
        network held a waiting input beat (it was slower than the line) or an output beat
        waited for the return line."""
        while True:
            await ClockCycles(dut.clk, d)
            if int(dut.samples__valid.value) and not int(dut.samples__ready.value):
                stalls["input"] += 1
            if int(dut.results__valid.value) and not int(dut.results__ready.value):
                stalls["output"] += 1

    cocotb.start_soon(watch())
    client = Client(port, link, timeout=case.get("timeout", 0.05), retries=2, clock=port.seconds)
    out = await bridge(client.run)(x)
    st = client.stats
    np.save(os.path.join(os.path.dirname(case["results"]), "outputs.npy"), out)
    results["mismatches"] = int(np.sum(np.any(out != y, axis=1)))
    results["first_mismatches"] = [
        {"sample": int(i), "got": out[i].tolist(), "expected": y[i].tolist()} for i in np.nonzero(np.any(out != y, axis=1))[0][:5]
    ]
    results["n"] = len(x)
    results["stats"] = {
        "sent": st.sent, "rejected": st.rejected, "retries": st.retries, "max_outstanding": st.max_outstanding,
        "held_seconds": st.held_seconds, "dropped_reports": st.dropped_reports,
    }  # fmt: skip
    results["flipped"] = port.flipped
    results["stalls"] = dict(stalls)
    results["cycles"] = port.cycles

    # A sender that ignores the window: frames back to back, then read whatever comes back.
    burst = int(case.get("burst", 0))
    if burst:
        for k in range(burst):
            port.write(link.encode(k, x[k % len(x)]))
        replies = []

        def collect():
            while True:
                try:
                    replies.append(client.reply())
                except Exception:
                    return

        client.timeout = case.get("burst_timeout", 0.02)
        await bridge(collect)()
        got = []
        for status, seq, payload in replies:
            entry = {"seq": seq, "status": STATUS_NAMES.get(status & 0x7F, str(status)), "dropped": bool(status & 0x80)}
            if status & 0x7F == OK:
                entry["correct"] = bool(np.array_equal(link.decode_outputs(payload), y[seq % len(x)]))
            got.append(entry)
        results["burst"] = got
    with open(case["results"], "w") as f:
        json.dump(results, f, indent=1)
