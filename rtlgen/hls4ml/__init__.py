"""hls4ml's Python API on rtlgen: the same names and signatures for the common path.

Change ``import hls4ml`` to ``from rtlgen import hls4ml`` (and ``from hls4ml.model.profiling
import ...`` to ``from rtlgen.hls4ml.model.profiling import ...``) and a notebook's
``hls4ml.utils.config_from_keras_model``, ``hls4ml.converters.convert_from_keras_model``,
``hls_model.compile()/predict()/trace()/write()/build()`` and ``hls4ml.model.profiling.numerical``
run on rtlgen: the emulation is rtlgen's bit-exact golden model, ``build`` writes Verilog and
estimates resources with Yosys. Arguments that only steer hls4ml's HLS flow are accepted and named
in a warning when they change nothing here.
"""

from . import converters, model, report, utils
from .converters import (
    convert_from_keras_model,
    convert_from_onnx_model,
    convert_from_pytorch_model,
)
from .model import ModelGraph

__all__ = [
    "ModelGraph",
    "convert_from_keras_model",
    "convert_from_onnx_model",
    "convert_from_pytorch_model",
    "converters",
    "model",
    "report",
    "utils",
]
