"""rtlgen: quantized neural networks to bit-exact, synthesizable Verilog, written with Amaranth HDL."""

from . import ir  # noqa: F401  (registers every op)
from .config import Config, load_config
from .design import Design, convert, load_design
from .errors import ConfigError, ModelFormatError, RtlgenError, UnsupportedOpError
from .fixed import FixedType

__all__ = [
    "Config",
    "ConfigError",
    "Design",
    "FixedType",
    "ModelFormatError",
    "RtlgenError",
    "UnsupportedOpError",
    "convert",
    "load_config",
    "load_design",
]
__version__ = "0.1.0"
