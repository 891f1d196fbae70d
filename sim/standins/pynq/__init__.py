"""A stand-in for the parts of PYNQ (3.x/4.x) that rtlgen's board drivers use, for tests off-board.

What a driver sees has PYNQ's names and signatures: ``allocate(shape, dtype)`` returns a
``PynqBuffer`` (an ndarray with ``physical_address``, ``flush()``, ``invalidate()``,
``freebuffer()``); ``Overlay(bitfile)`` needs the ``.bit`` with its ``.hwh`` beside it, has an
``ip_dict`` and exposes the AXI DMA as an attribute whose ``sendchannel``/``recvchannel`` have
``transfer(array, start=0, nbytes=0)``, ``wait()``, ``idle``, ``running``, ``error`` and
``transferred``; ``pynq.ps.Clocks.fclk0_mhz`` is the PL clock.

Behind them is no board but a simulated one, attached by the test with :func:`attach`: an
``rtlgen.sim.hostsim.AxiSim`` (the Verilator model of the network's AXI top level inside two DMA
engines) and the ``ip_dict`` the bitstream would have. The data caches are modelled: a buffer's
bytes reach "DRAM" (what MM2S reads) only through ``flush()``, and what S2MM writes reaches the
array only through ``invalidate()`` (PYNQ's ``sendchannel.transfer`` and ``recvchannel.wait`` do
both, as on the board). Simulated time advances only while a channel is polled (``idle``,
``wait``), by ``cycles_per_poll`` clock cycles per poll.

A real ``recvchannel.wait()`` spins forever when the IP never sends ``tlast``; this one raises
RuntimeError after ``wait_limit_cycles`` cycles without a handshake, so a driver that relies on it
fails a test instead of hanging it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__version__ = "4.0.0+rtlgen.standin"
STANDIN = True

__all__ = ["Overlay", "PynqBuffer", "allocate", "attach", "detach", "ps"]

_board = None
_next_address = 0x1000_0000


class PynqBuffer(np.ndarray):
    """A contiguous buffer "in DDR": the array is the CPU's (cached) view, ``_dram`` the memory."""

    def __array_finalize__(self, obj):
        if obj is None:
            return
        self.physical_address = getattr(obj, "physical_address", 0)
        self._dram = getattr(obj, "_dram", None)

    def flush(self) -> None:
        """Write the CPU's view back to memory (what the DMA reads)."""
        base = self._base_buffer()
        base._dram[:] = np.asarray(base).reshape(-1).view(np.uint8)

    def invalidate(self) -> None:
        """Drop the CPU's view: read memory (what the DMA wrote) again."""
        base = self._base_buffer()
        np.asarray(base).reshape(-1).view(np.uint8)[:] = base._dram

    def _base_buffer(self):
        b = self
        while isinstance(b.base, PynqBuffer):
            b = b.base
        return b

    def freebuffer(self) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.freebuffer()

    @property
    def device_address(self):
        return self.physical_address


def allocate(shape, dtype="u4", target=None, **kwargs) -> PynqBuffer:
    """A zeroed buffer with a (fake) physical address, page-aligned like PYNQ's CMA buffers."""
    global _next_address
    arr = np.zeros(shape, dtype=dtype)
    buf = arr.view(PynqBuffer)
    buf.physical_address = _next_address
    buf._dram = np.zeros(arr.nbytes, dtype=np.uint8)
    _next_address += (arr.nbytes + 4095) // 4096 * 4096 + 4096
    return buf


class _Board:
    def __init__(self, bitfile, sim, ip_dict, dma, clock_mhz, cycles_per_poll, wait_limit_cycles):
        self.bitfile = Path(bitfile).resolve()
        self.sim = sim
        self.ip_dict = ip_dict
        self.dma_name = dma
        self.clock_mhz = clock_mhz
        self.cycles_per_poll = cycles_per_poll
        self.wait_limit_cycles = wait_limit_cycles
        self.downloads = 0


def attach(bitfile, *, sim, ip_dict: dict, dma: str = "axi_dma_0", clock_mhz: float = 100.0,
           cycles_per_poll: int = 1024, wait_limit_cycles: int = 2_000_000) -> None:
    """Make ``Overlay(bitfile)`` a board running ``sim`` (an ``rtlgen.sim.hostsim.AxiSim``) whose
    ``.hwh`` would give ``ip_dict``; the AXI DMA is ``ip_dict[dma]``."""
    global _board
    _board = _Board(bitfile, sim, ip_dict, dma, clock_mhz, cycles_per_poll, wait_limit_cycles)
    ps.Clocks.fclk0_mhz = float(clock_mhz)


def detach() -> None:
    global _board
    _board = None


class _Channel:
    """One channel of the AXI DMA in simple mode, with PYNQ's ``_SDMAChannel`` interface."""

    def __init__(self, board: _Board, tx: bool, params: dict):
        self._board = board
        self._tx = tx
        p = {k.upper(): int(str(v), 0) for k, v in params.items() if str(v).strip().lstrip("-").isdigit() or str(v).startswith("0x")}
        width = p.get("C_M_AXI_MM2S_DATA_WIDTH" if tx else "C_M_AXI_S2MM_DATA_WIDTH", 32)
        self._align = width // 8
        self._max_size = (1 << p.get("C_SG_LENGTH_WIDTH", 14)) - 1
        self._active = None
        self._start = 0
        self._nbytes = 0
        self._pending = False
        self._ever = False
        self.transferred = 0
        self._running = True
        self._first_transfer = True

    @property
    def running(self) -> bool:
        return self._running

    def start(self) -> None:
        self._running = True
        self._first_transfer = True

    def stop(self) -> None:
        self._running = False

    def _busy(self) -> bool:
        sim = self._board.sim
        return sim.mm2s_busy if self._tx else sim.s2mm_busy

    def _poll(self) -> None:
        sim = self._board.sim
        if self._busy():
            sim.run(self._board.cycles_per_poll)
        if not self._tx and self._pending and not sim.s2mm_busy:
            data = np.frombuffer(sim.s2mm_data(), dtype=np.uint8)
            dram = self._active._base_buffer()._dram
            off = self._active_offset()
            dram[off : off + len(data)] = data
            self._received = len(data)
            self._pending = False
        if self._tx and self._pending and not sim.mm2s_busy:
            self._pending = False

    def _active_offset(self) -> int:
        base = self._active._base_buffer()
        return int(self._active.physical_address - base.physical_address) + self._start

    @property
    def idle(self) -> bool:
        """True once the last transfer has finished (False before the first one, as on the DMA)."""
        self._poll()
        return self._ever and not self._pending and not self.error

    @property
    def error(self) -> bool:
        return (not self._tx) and self._board.sim.s2mm_error

    def transfer(self, array, start: int = 0, nbytes: int = 0) -> None:
        if not self.running:
            raise RuntimeError("DMA channel not started")
        if self._pending and not self._first_transfer:
            raise RuntimeError("DMA channel not idle")
        if not isinstance(array, PynqBuffer):
            raise TypeError("DMA transfers need a buffer from pynq.allocate()")
        if nbytes == 0:
            nbytes = array.nbytes - start
        if nbytes > self._max_size:
            raise ValueError(f"Transfer size is {nbytes} bytes, which exceeds the maximum DMA buffer size {self._max_size}.")
        if (array.physical_address + start) % self._align:
            raise RuntimeError(f"DMA does not support unaligned transfers; Starting address must be aligned to {self._align} bytes.")
        self._active, self._start, self._nbytes = array, int(start), int(nbytes)
        self.transferred = 0
        sim = self._board.sim
        if self._tx:
            array.flush()  # PYNQ flushes before a send
            off = self._active_offset()
            sim.mm2s_start(array._base_buffer()._dram[off : off + nbytes].tobytes())
        else:
            sim.s2mm_start(nbytes)
        self._pending = True
        self._ever = True
        self._first_transfer = False

    def wait(self) -> None:
        """Wait for the transfer to complete (PYNQ: forever; here: see the module docstring)."""
        if not self.running:
            raise RuntimeError("DMA channel not started")
        sim = self._board.sim
        while True:
            if self.error:
                raise RuntimeError("DMA Internal Error (transfer length 0?)")
            if self.idle:
                break
            if sim.idle_cycles > self._board.wait_limit_cycles:
                raise RuntimeError(
                    f"pynq stand-in: wait() would never return on a board: no handshake for {sim.idle_cycles} "
                    f"cycles ({'send' if self._tx else 'receive'} channel, {self._nbytes} bytes)"
                )
        if not self._tx:
            self._active.invalidate()  # PYNQ invalidates after a receive
            self.transferred = self._received
        else:
            self.transferred = self._nbytes

    async def wait_async(self) -> None:
        self.wait()


class _DMA:
    def __init__(self, board: _Board, description: dict):
        params = description.get("parameters", {})
        self.description = description
        self.sendchannel = _Channel(board, True, params)
        self.recvchannel = _Channel(board, False, params)


class _IP:
    def __init__(self, description):
        self.description = description


class Overlay:
    """``Overlay(bitfile)``: the attached simulated board, if ``bitfile`` is the one attached."""

    def __init__(self, bitfile_name, dtbo=None, download=True, ignore_version=False, device=None, gen_cache=False):
        p = Path(bitfile_name)
        if not p.is_file():
            raise IOError(f"Bitstream file {bitfile_name} does not exist.")
        if not p.with_suffix(".hwh").is_file():
            raise ValueError(f"Cannot find HWH file for {bitfile_name}.")
        if _board is None or _board.bitfile != p.resolve():
            raise RuntimeError(f"pynq stand-in: no simulated board attached for {p} (call pynq.attach first)")
        self._board = _board
        self.bitfile_name = str(p.resolve())
        self.ip_dict = _board.ip_dict
        self._attrs = {}
        if download:
            self.download()

    def download(self) -> None:
        """Program the PL: the simulated design is reset."""
        self._board.sim.reset(8)
        self._board.downloads += 1
        self._attrs = {}

    def is_loaded(self) -> bool:
        return True

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        ips = self.__dict__.get("ip_dict", {})
        if name not in ips:
            raise AttributeError(f"Could not find IP or hierarchy {name} in overlay")
        attrs = self.__dict__["_attrs"]
        if name not in attrs:
            desc = ips[name]
            if str(desc.get("type", "")).startswith("xilinx.com:ip:axi_dma:"):
                attrs[name] = _DMA(self._board, desc)
            else:
                attrs[name] = _IP(desc)
        return attrs[name]


from . import ps  # noqa: E402
