"""Boards: the catalog, and the packages that put a built network on one.

A build directory becomes a board package under ``OUT/boards/<name>/``. Each family has a backend
module with two functions: ``check(board, design)`` raises :class:`~rtlgen.errors.RtlgenError`
before anything is written when the design cannot go on the board, and
``write(pkg_dir, board, design, build_dir)`` fills the (new, empty) package directory.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from ._catalog import BOARDS, DMA_WIDTHS, Board, UnknownBoardError, get_board

__all__ = ["BOARDS", "DMA_WIDTHS", "Board", "UnknownBoardError", "check", "deploy", "get_board"]


def _backend(board: Board):
    if board.vendor == "lattice":
        from . import _ice40 as backend
    else:
        from . import _xilinx as backend
    return backend


def check(board, design) -> Board:
    """The :class:`Board` named ``board`` after checking that ``design`` can be deployed on it."""
    b = board if isinstance(board, Board) else get_board(board)
    _backend(b).check(b, design)
    return b


def deploy(build_dir, board, *, design=None) -> Path:
    """Write ``build_dir/boards/<board>/`` for an existing build; returns that directory.

    The package is assembled in a temporary sibling and moved into place at the end: a failure
    leaves no half-written package and keeps a previous one untouched.
    """
    build_dir = Path(build_dir).resolve()
    if design is None:
        from rtlgen.design import load_design

        design = load_design(build_dir)
        # Backends read the build's own files (report.json's synthesis, rtl/, tb/) through this.
        design.build_dir = build_dir
    b = check(board, design)
    parent = build_dir / "boards"
    parent.mkdir(exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{b.name}.", dir=parent))
    try:
        _backend(b).write(tmp, b, design, build_dir)
        dest = parent / b.name
        if dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest
