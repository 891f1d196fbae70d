"""PyTorch and Brevitas modules converted in memory (exported through torch's ONNX exporter and
Brevitas's export_qonnx); skipped when torch or Brevitas is not installed.

The reference is the exported graph run by qonnx's executor: Brevitas models bit for bit; float
models within the worst-case error bound the build reports (the configured fixed-point types
against float32 arithmetic), which is the contract of a float model.
"""

import sys

import numpy as np
import pytest

import rtlgen
from conftest import check_rtl, execute_qonnx
from rtlgen.errors import ModelFormatError, RtlgenError

# TensorFlow (loaded by earlier tests in the same process) and triton's native library crash the
# interpreter when Brevitas imports triton after TensorFlow; triton only builds GPU kernels and
# nothing here needs it, so its import fails cleanly instead (torch and Brevitas handle that).
sys.modules.setdefault("triton", None)
torch = pytest.importorskip("torch", reason="torch is not installed (pip install -e '.[torch]')")


def _mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 5))


class _CNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.conv = torch.nn.Conv2d(1, 4, 3)
        self.pool = torch.nn.MaxPool2d(2)
        self.fc = torch.nn.Linear(4 * 3 * 3, 3)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(torch.relu(self.conv(x))), 1))


def _inputs(shape, n=64, seed=0):
    """Inputs on a 2**-8 grid within [-2, 2): the default input type fixed<16,6> holds them exactly."""
    x = np.random.default_rng(seed).uniform(-2, 2, (n, *shape))
    return (np.round(x * 256) / 256).astype(np.float32)


def _check_float(module, shape):
    from rtlgen.torch_export import export

    design = rtlgen.convert(module, input_shape=shape)
    x = _inputs(shape)
    ref = execute_qonnx(export(module, shape), x)
    got = design.predict(x).reshape(ref.shape)
    bound = design.graph.error_bound
    assert bound is not None and 0 < bound < 2
    assert np.abs(got - ref).max() <= bound
    # The float network is really followed, not only bounded: argmax agrees on most samples.
    assert (got.argmax(1) == ref.argmax(1)).mean() >= 0.9
    return design


def test_float_mlp_in_memory():
    module = _mlp()
    _check_float(module, (16,))
    # Names of the module's layers reach the configuration keys.
    names = [n.name for n in rtlgen.convert(module, input_shape=(16,)).graph.nodes if n.kind == "Dense"]
    assert names == ["/0/Gemm", "/2/Gemm"]


def test_float_cnn_in_memory():
    _check_float(_CNN(), (1, 8, 8))


@pytest.mark.slow
def test_float_cnn_rtl(tmp_path):
    design = rtlgen.convert(_CNN(), input_shape=(1, 8, 8))
    check_rtl(design, _inputs((1, 8, 8), n=100), work_dir=tmp_path)


def _brevitas_cnn():
    pytest.importorskip("brevitas", reason="Brevitas is not installed (pip install -e '.[torch]')")
    from brevitas import nn as qnn
    from brevitas.quant import (
        Int8ActPerTensorFixedPoint,
        Int8WeightPerTensorFixedPoint,
        Uint8ActPerTensorFixedPoint,
    )

    class BrevitasCNN(torch.nn.Module):
        """4-bit weights and activations, power-of-two scales (convolutions need them)."""

        def __init__(self):
            super().__init__()
            w4 = {"weight_quant": Int8WeightPerTensorFixedPoint, "weight_bit_width": 4, "bias": False}
            a4 = {"act_quant": Uint8ActPerTensorFixedPoint, "bit_width": 4, "return_quant_tensor": True}
            self.inp = qnn.QuantIdentity(act_quant=Int8ActPerTensorFixedPoint, bit_width=4, return_quant_tensor=True)
            self.c1 = qnn.QuantConv2d(1, 4, 3, **w4)
            self.r1 = qnn.QuantReLU(**a4)
            self.pool = torch.nn.MaxPool2d(2)
            self.c2 = qnn.QuantConv2d(4, 4, 3, **w4)
            self.r2 = qnn.QuantReLU(**a4)
            self.fc = qnn.QuantLinear(4 * 2 * 2, 3, **w4)

        def forward(self, x):
            x = self.pool(self.r1(self.c1(self.inp(x))))
            return self.fc(torch.flatten(self.r2(self.c2(x)), 1))

    torch.manual_seed(2)
    return BrevitasCNN()


def test_brevitas_4bit_cnn_in_memory_is_exact():
    from rtlgen.torch_export import export

    module = _brevitas_cnn()
    design = rtlgen.convert(module, input_shape=(1, 10, 10))
    kinds = [n.kind for n in design.graph.nodes]
    assert kinds.count("Conv") == 2 and "Dense" in kinds
    x = np.random.default_rng(3).uniform(-1.2, 1.2, (64, 1, 10, 10)).astype(np.float32)
    ref = execute_qonnx(export(module, (1, 10, 10)), x)
    assert np.array_equal(design.predict(x).reshape(ref.shape), ref)


@pytest.mark.slow
def test_brevitas_4bit_cnn_rtl(tmp_path):
    design = rtlgen.convert(_brevitas_cnn(), input_shape=(1, 10, 10))
    x = np.random.default_rng(4).uniform(-1.2, 1.2, (100, 1, 10, 10)).astype(np.float32)
    check_rtl(design, x, work_dir=tmp_path)


def test_torch_module_needs_input_shape():
    with pytest.raises(RtlgenError, match=r"^a PyTorch module \(Sequential\) needs input_shape, the shape of one sample"):
        rtlgen.convert(_mlp())
    with pytest.raises(RtlgenError, match=r"^input_shape must be a tuple of positive sizes without the batch dimension"):
        rtlgen.convert(_mlp(), input_shape=(0, 16))


def test_input_shape_is_only_for_torch():
    with pytest.raises(RtlgenError, match=r"^input_shape is only for PyTorch modules"):
        rtlgen.convert(b"not a model", input_shape=(16,))


def test_export_failure_is_one_clear_error():
    with pytest.raises(ModelFormatError, match=r"^torch.onnx.export failed on module Sequential with input shape \(12,\): "):
        rtlgen.convert(_mlp(), input_shape=(12,))


def test_missing_brevitas_exporter_is_named(monkeypatch):
    module = _brevitas_cnn()
    monkeypatch.setitem(sys.modules, "brevitas.export", None)
    with pytest.raises(RtlgenError, match=r"^module BrevitasCNN holds Brevitas layers; exporting it needs brevitas"):
        rtlgen.convert(module, input_shape=(1, 10, 10))
