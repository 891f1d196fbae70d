"""Model files and in-memory models to rtlgen's IR."""

from ._onnx import from_onnx

__all__ = ["from_onnx"]
