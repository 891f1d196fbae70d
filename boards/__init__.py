"""Boards: the catalog, and the packages that put a built network on one."""

from ._catalog import BOARDS, DMA_WIDTHS, Board, UnknownBoardError, get_board

__all__ = ["BOARDS", "DMA_WIDTHS", "Board", "UnknownBoardError", "get_board"]
