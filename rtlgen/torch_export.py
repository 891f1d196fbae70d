"""PyTorch and Brevitas modules in memory to ONNX / QONNX, through the exporters their users have.

A plain ``torch.nn.Module`` goes through torch's own ONNX exporter; a module holding Brevitas
quantized layers through Brevitas's ``export_qonnx``. The exported graph is what rtlgen imports,
so its reference executor (qonnx's ``execute_onnx``) is the model the golden model matches.
"""

from __future__ import annotations

import logging
import sys
import tempfile
from pathlib import Path

from .errors import ModelFormatError, RtlgenError

__all__ = ["export", "is_torch_module"]

log = logging.getLogger(__name__)

_INSTALL = "pip install 'rtlgen[torch]'"


def is_torch_module(model) -> bool:
    """Whether ``model`` is a ``torch.nn.Module`` (without importing torch when it is not loaded)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(model, torch.nn.Module)


def _is_brevitas(module) -> bool:
    return any(type(m).__module__.startswith("brevitas.") for m in module.modules())


def _input_shape(input_shape, name: str) -> tuple[int, ...]:
    if input_shape is None:
        raise RtlgenError(
            f"a PyTorch module ({name}) needs input_shape, the shape of one sample without the batch "
            f"dimension, e.g. rtlgen.convert(module, input_shape=(16,))"
        )
    try:
        shape = tuple(int(d) for d in input_shape)
    except (TypeError, ValueError):
        shape = ()
    if not shape or any(d <= 0 for d in shape):
        raise RtlgenError(
            f"input_shape must be a tuple of positive sizes without the batch dimension, e.g. (16,) or "
            f"(1, 28, 28), not {input_shape!r}"
        )
    return shape


def export(module, input_shape, *, opset: int = 18):
    """``module`` exported to an ``onnx.ModelProto`` for one sample of ``input_shape`` (no batch).

    Brevitas modules go through ``brevitas.export.export_qonnx`` (QONNX ``Quant`` nodes), others
    through ``torch.onnx.export``. The module is put in eval mode (the export runs inference)."""
    import onnx

    try:
        import torch
    except ImportError as e:
        raise RtlgenError(f"converting a PyTorch module needs torch ({_INSTALL})") from e
    name = type(module).__name__
    shape = _input_shape(input_shape, name)
    brevitas = _is_brevitas(module)
    if brevitas:
        try:
            from brevitas.export import export_qonnx
        except ImportError as e:
            raise RtlgenError(
                f"module {name} holds Brevitas layers; exporting it needs brevitas and onnxoptimizer ({_INSTALL})"
            ) from e
    module.eval()
    example = torch.zeros((1, *shape), dtype=torch.float32)
    with tempfile.TemporaryDirectory(prefix="rtlgen-torch-") as tmp:
        path = Path(tmp) / "model.onnx"
        try:
            with torch.no_grad():
                if brevitas:
                    export_qonnx(module, input_t=example, export_path=str(path), dynamo=False)
                else:
                    # The TorchScript exporter keeps layer names in node names (fc1/Gemm ...) and
                    # needs no onnxscript.
                    torch.onnx.export(
                        module, (example,), str(path), input_names=["input"], output_names=["output"],
                        opset_version=opset, dynamo=False,
                    )  # fmt: skip
        except Exception as e:  # the exporters raise many types; report the first line
            exporter = "Brevitas's export_qonnx" if brevitas else "torch.onnx.export"
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise ModelFormatError(f"{exporter} failed on module {name} with input shape {shape}: {first}") from e
        # External data (large Brevitas exports) is read back into the model before the folder goes.
        model = onnx.load(str(path), load_external_data=True)
    if not model.graph.name or model.graph.name in ("main_graph", "torch_jit", "torch-jit-export"):
        model.graph.name = name
    log.info("exported %s through %s", name, "export_qonnx" if brevitas else "torch.onnx.export")
    return model
