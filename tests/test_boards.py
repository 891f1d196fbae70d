"""The board catalog."""

import pytest

from rtlgen.boards import BOARDS, UnknownBoardError, get_board
from rtlgen.cli import main
from rtlgen.synth import PARTS


def test_catalog_covers_the_supported_families():
    for name in ("pynq-z1", "pynq-z2", "zcu102", "zcu104", "kv260", "ultra96v2", "arty-a7-100t", "basys3", "icebreaker", "icestick"):
        b = BOARDS[name]
        assert b.part in PARTS, name
        assert b.resources().name == b.part
    assert BOARDS["pynq-z2"].processor == "ps7" and BOARDS["zcu102"].processor == "zynq_us"
    assert BOARDS["arty-a7-100t"].processor == "microblaze" and BOARDS["icebreaker"].target == "ice40"
    assert all(w in BOARDS["zcu104"].dma_widths for w in (8, 32, 64, 1024))


def test_unknown_board_names_the_known_ones():
    with pytest.raises(UnknownBoardError, match=r"^unknown board 'pynq-z3' \(did you mean 'pynq-z2'\?\); known boards are pynq-z1, .*rtlgen boards lists them\)$"):
        get_board("pynq-z3")
    assert get_board("PYNQ-Z2").name == "pynq-z2"


def test_boards_command_lists_every_board(capsys):
    assert main(["boards"]) == 0
    out = capsys.readouterr().out
    for name in BOARDS:
        assert name in out
