"""The boards rtlgen can deploy to: part, processor, clock, DMA widths and memory map of each.

Figures are from the boards' reference manuals and the vendors' board files. ``part`` names a
device in :data:`rtlgen.synth.PARTS` (utilisation and fit checks use it); ``part_number`` is the
full orderable part a Vivado project or nextpnr is created for.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rtlgen.errors import RtlgenError

__all__ = ["Board", "BOARDS", "UnknownBoardError", "get_board", "DMA_WIDTHS"]

# AXI DMA (PG021) stream data widths: powers of two from 8 to 1024 bits.
DMA_WIDTHS = tuple(8 << k for k in range(8))


class UnknownBoardError(RtlgenError):
    """A board name that is not in the catalog."""


@dataclass(frozen=True)
class Board:
    """One development board.

    ``processor``: ``"ps7"`` (Zynq-7000 processing system), ``"zynq_us"`` (Zynq UltraScale+ PS),
    ``"microblaze"`` (soft core with UART Lite) or ``None`` (no processor: iCE40 boards, driven
    over a UART bridge). ``memory_map`` gives the base addresses the generated block design assigns
    and the software uses. ``board_part`` is the Vivado board-file identifier (None when the board
    has none); ``platform`` is the amaranth-boards platform class for open-source flows.

    MicroBlaze boards also give ``pins`` (package pins of the system clock, the reset button and
    the USB-UART, from the board's master XDC: the generated design constrains them itself, with
    or without board files), ``local_memory_kb`` (the MicroBlaze's LMB block RAM for code and
    data) and ``buffer_kb`` (block RAM for the DMA buffers, at ``memory_map["ddr"]``).
    """

    name: str
    title: str
    vendor: str  # "xilinx" | "lattice"
    part: str
    part_number: str
    processor: str | None
    clock_mhz: float
    board_part: str | None = None
    dma_widths: tuple[int, ...] = ()
    memory_map: dict = field(default_factory=dict)
    platform: str | None = None
    uart_baud: int = 115200
    pynq: bool = False
    notes: str = ""
    pins: dict = field(default_factory=dict)
    local_memory_kb: int = 0
    buffer_kb: int = 0

    @property
    def target(self) -> str:
        """The synthesis target family of :func:`rtlgen.synth.synthesize` (xc7, xcup or ice40)."""
        if self.vendor == "lattice":
            return "ice40"
        return "xc7" if self.part.startswith("xc7") else "xcup"

    def resources(self):
        """The :class:`rtlgen.synth.Part` of this board's device."""
        from rtlgen.synth import find_part

        return find_part(self.target, self.part)


_ZYNQ7_MAP = {"dma": 0x4040_0000, "ddr": 0x0000_0000}
_ZYNQMP_MAP = {"dma": 0xA000_0000, "ddr": 0x0000_0000}
_MB_MAP = {"dma": 0x4140_0000, "uart": 0x4060_0000, "timer": 0x41C0_0000, "ddr": 0x8000_0000}
# Digilent master XDCs: (package pin, I/O standard); the reset's polarity; the oscillator in MHz.
_ARTY_PINS = {"clock": ("E3", "LVCMOS33"), "clock_mhz": 100.0, "reset": ("C2", "LVCMOS33"), "reset_polarity": "ACTIVE_LOW",
              "uart_rxd": ("A9", "LVCMOS33"), "uart_txd": ("D10", "LVCMOS33")}
_BASYS3_PINS = {"clock": ("W5", "LVCMOS33"), "clock_mhz": 100.0, "reset": ("U18", "LVCMOS33"), "reset_polarity": "ACTIVE_HIGH",
                "uart_rxd": ("B18", "LVCMOS33"), "uart_txd": ("A18", "LVCMOS33")}

BOARDS: dict[str, Board] = {
    b.name: b
    for b in (
        Board("pynq-z1", "Digilent PYNQ-Z1", "xilinx", "xc7z020", "xc7z020clg400-1", "ps7", 100.0,
              "www.digilentinc.com:pynq-z1:part0:1.0", DMA_WIDTHS, _ZYNQ7_MAP, pynq=True),
        Board("pynq-z2", "TUL PYNQ-Z2", "xilinx", "xc7z020", "xc7z020clg400-1", "ps7", 100.0,
              "tul.com.tw:pynq-z2:part0:1.0", DMA_WIDTHS, _ZYNQ7_MAP, pynq=True),
        Board("zcu102", "AMD Zynq UltraScale+ ZCU102", "xilinx", "xczu9eg", "xczu9eg-ffvb1156-2-e", "zynq_us", 100.0,
              "xilinx.com:zcu102:part0:3.4", DMA_WIDTHS, _ZYNQMP_MAP, pynq=True),
        Board("zcu104", "AMD Zynq UltraScale+ ZCU104", "xilinx", "xczu7ev", "xczu7ev-ffvc1156-2-e", "zynq_us", 100.0,
              "xilinx.com:zcu104:part0:1.1", DMA_WIDTHS, _ZYNQMP_MAP, pynq=True),
        Board("kv260", "AMD Kria KV260 Vision AI Starter Kit", "xilinx", "xck26", "xck26-sfvc784-2LV-c", "zynq_us", 100.0,
              "xilinx.com:kv260_som:part0:1.4", DMA_WIDTHS, _ZYNQMP_MAP, pynq=True),
        Board("ultra96v2", "Avnet Ultra96-V2", "xilinx", "xczu3eg", "xczu3eg-sbva484-1-i", "zynq_us", 100.0,
              "avnet.com:ultra96v2:part0:1.2", DMA_WIDTHS, _ZYNQMP_MAP, pynq=True),
        Board("arty-a7-100t", "Digilent Arty A7-100T", "xilinx", "xc7a100t", "xc7a100tcsg324-1", "microblaze", 100.0,
              "digilentinc.com:arty-a7-100:part0:1.1", DMA_WIDTHS, _MB_MAP,
              pins=_ARTY_PINS, local_memory_kb=128, buffer_kb=128),
        Board("basys3", "Digilent Basys 3", "xilinx", "xc7a35t", "xc7a35tcpg236-1", "microblaze", 100.0,
              "digilentinc.com:basys3:part0:1.2", DMA_WIDTHS, _MB_MAP,
              notes="no external memory: the MicroBlaze runs from local block RAM, DMA buffers too",
              pins=_BASYS3_PINS, local_memory_kb=64, buffer_kb=32),
        Board("icebreaker", "1BitSquared iCEBreaker", "lattice", "ice40up5k", "iCE40UP5K-SG48", None, 12.0,
              platform="amaranth_boards.icebreaker:ICEBreakerPlatform"),
        Board("icestick", "Lattice iCEstick", "lattice", "ice40hx1k", "iCE40HX1K-TQ144", None, 12.0,
              platform="amaranth_boards.icestick:ICEStickPlatform"),
        Board("ice40-hx8k", "Lattice iCE40-HX8K breakout board", "lattice", "ice40hx8k", "iCE40HX8K-CT256", None, 12.0,
              platform="amaranth_boards.ice40_hx8k_b_evn:ICE40HX8KBEVNPlatform"),
    )
}  # fmt: skip


def get_board(name: str) -> Board:
    """The board called ``name`` (case-insensitive); :class:`UnknownBoardError` lists the known ones."""
    key = str(name).strip().lower()
    if key not in BOARDS:
        import difflib

        near = difflib.get_close_matches(key, list(BOARDS), n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise UnknownBoardError(
            f"unknown board {name!r}{hint}; known boards are {', '.join(BOARDS)} (rtlgen boards lists them)"
        )
    return BOARDS[key]
