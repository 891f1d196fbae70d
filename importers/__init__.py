"""Model files and in-memory models to rtlgen's IR."""

from ._keras import from_keras
from ._onnx import from_onnx

__all__ = ["from_keras", "from_onnx"]
