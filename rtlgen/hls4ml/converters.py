"""``convert_from_*_model``: hls4ml's converters, returning a :class:`~rtlgen.hls4ml.model.ModelGraph`.

``hls_config`` is hls4ml's dictionary (from :mod:`rtlgen.hls4ml.utils` or written by hand);
``io_type`` becomes its ``IOType``; ``part`` picks the device for ``build()``'s utilisation and
``clock_period`` (ns) the target its timing estimate is held against; ``project_name`` names the
Verilog top module. Every other hls4ml argument is accepted and, when given, named as ignored.
"""

from __future__ import annotations

import copy
import logging

from rtlgen.errors import ConfigError

from .model import ModelGraph

__all__ = ["convert_from_keras_model", "convert_from_onnx_model", "convert_from_pytorch_model"]

log = logging.getLogger(__name__)

# Arguments of hls4ml's converters that steer its HLS C++ project and mean nothing for rtlgen.
_IGNORED = (
    "input_data_tb", "output_data_tb", "bit_exact", "allow_da_fallback", "allow_v2_fallback", "clock_uncertainty",
    "namespace", "write_weights_txt", "write_tar", "write_emulation_constants", "board", "interface", "hls_version",
    "tb_output_stream", "driver", "input_type", "output_type", "platform", "stamp",
)  # fmt: skip
# hls4ml's softmax table types, beside Precision in a layer's entry.
_TABLE_KEYS = {"exp_table_t": "exp_table", "inv_table_t": "inv_table"}
_USED = ("io_type", "part", "clock_period", "backend")


def _rtlgen_config(hls_config, io_type):
    """hls4ml's dictionary as rtlgen's: table types moved into Precision, IOType from ``io_type``."""
    if hls_config is not None and not isinstance(hls_config, dict):
        raise ConfigError(f"hls_config must be hls4ml's configuration dictionary, not {type(hls_config).__name__}")
    cfg = copy.deepcopy(hls_config or {})
    cfg.pop("InputShape", None)
    for level_key in ("LayerName", "LayerType"):
        for level in (cfg.get(level_key) or {}).values():
            if not isinstance(level, dict):
                continue
            for key, var in _TABLE_KEYS.items():
                if key in level:
                    p = level.get("Precision")
                    p = dict(p) if isinstance(p, dict) else ({} if p is None else {"default": p})
                    p[var] = str(level.pop(key)).replace("ap_", "")
                    level["Precision"] = p
    if io_type is not None:
        cfg["IOType"] = io_type
    return cfg


def _convert(model, fn, output_dir, project_name, backend, hls_config, kwargs, input_shape=None):
    from rtlgen.design import convert

    ignored = {k: v for k, v in kwargs.items() if k not in _USED and v is not None}
    unknown = sorted(k for k in ignored if k not in _IGNORED)
    if unknown:
        raise ConfigError(
            f"{fn}() got unexpected argument(s) {', '.join(unknown)}; rtlgen takes hls4ml's output_dir, "
            f"project_name, backend, hls_config, io_type, part and clock_period"
        )
    if ignored:
        log.warning("%s(): %s only steer hls4ml's HLS project and are ignored", fn, ", ".join(f"{k}={v!r}" for k, v in ignored.items()))
    cfg = _rtlgen_config(hls_config, kwargs.get("io_type"))
    design = convert(model, cfg, input_shape=input_shape)
    return ModelGraph(
        design,
        source=model,
        output_dir=output_dir,
        project_name=project_name,
        backend=backend,
        part=kwargs.get("part"),
        clock_period=kwargs.get("clock_period"),
        hls_config=hls_config,
        ignored=sorted(ignored),
    )


def convert_from_keras_model(
    model, output_dir="my-hls-test", project_name="myproject", input_data_tb=None, output_data_tb=None,
    backend="Vivado", hls_config=None, bit_exact=None, allow_da_fallback=True, allow_v2_fallback=True, **kwargs,
) -> ModelGraph:  # fmt: skip
    """A Keras / QKeras / HGQ2 model (in memory or a file) as an rtlgen-backed hls4ml ``ModelGraph``."""
    kwargs.update(input_data_tb=input_data_tb, output_data_tb=output_data_tb, bit_exact=bit_exact)
    return _convert(model, "convert_from_keras_model", output_dir, project_name, backend, hls_config, kwargs)


def convert_from_onnx_model(
    model, output_dir="my-hls-test", project_name="myproject", input_data_tb=None, output_data_tb=None,
    backend="Vivado", hls_config=None, bit_exact=None, **kwargs,
) -> ModelGraph:  # fmt: skip
    """An ONNX / QONNX model (path or ``onnx.ModelProto``) as an rtlgen-backed hls4ml ``ModelGraph``."""
    kwargs.update(input_data_tb=input_data_tb, output_data_tb=output_data_tb, bit_exact=bit_exact)
    return _convert(model, "convert_from_onnx_model", output_dir, project_name, backend, hls_config, kwargs)


def convert_from_pytorch_model(
    model, output_dir="my-hls-test", project_name="myproject", input_data_tb=None, output_data_tb=None,
    backend="Vivado", hls_config=None, **kwargs,
) -> ModelGraph:  # fmt: skip
    """A PyTorch / Brevitas module as an rtlgen-backed hls4ml ``ModelGraph``; the input shape comes
    from ``hls_config["InputShape"]`` (:func:`rtlgen.hls4ml.utils.config_from_pytorch_model` sets it)."""
    shape = (hls_config or {}).get("InputShape") if isinstance(hls_config, dict) else None
    if shape is None:
        raise ConfigError(
            "convert_from_pytorch_model() needs the input shape: make hls_config with "
            "config_from_pytorch_model(model, input_shape=...), or set hls_config['InputShape']"
        )
    kwargs.update(input_data_tb=input_data_tb, output_data_tb=output_data_tb)
    return _convert(model, "convert_from_pytorch_model", output_dir, project_name, backend, hls_config, kwargs, input_shape=shape)
