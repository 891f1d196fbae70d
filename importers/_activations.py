"""Activation functions and softmax, shared by the importers.

Types follow hls4ml's configuration: an activation's output is its layer's ``result`` precision
(the model default unless configured); lookup tables have ``TableSize`` entries (default 1024) over
the window of their input where their worst-case error is smallest (inputs outside clamp); a
softmax takes ``Strategy`` (stable, latency, argmax) and ``exp_table``/``inv_table`` precisions.
The build reports each table's worst-case error against the float function.
"""

from __future__ import annotations

import numpy as np

from rtlgen.ir import Node
from rtlgen.ir.ops import activation as act

from ._errors import _up

__all__ = ["FUNCTIONS", "build_activation", "build_softmax"]

# name -> (kind, builder); "lut" functions go through tables, "pwl" ones are exact.
FUNCTIONS = {
    "sigmoid": "lut", "tanh": "lut", "softplus": "lut", "softsign": "lut", "elu": "lut", "selu": "lut",
    "exp": "lut", "exponential": "lut",
    "hard_sigmoid": "pwl", "hard_tanh": "pwl", "relu6": "pwl", "leaky_relu": "pwl", "prelu": "pwl",
    "thresholded_relu": "pwl", "relu": "pwl",
}  # fmt: skip


def build_activation(builder, precisions, name: str, x: str, function: str, params=None, *, layer_type="Activation", source="") -> str:
    """Add ``function`` applied to tensor ``x``; returns the output tensor."""
    params = dict(params or {})
    src = builder.graph.tensors[x]
    out_type = precisions.typed(name, "result", layer_type)
    if function == "exponential":
        function = "exp"
    if FUNCTIONS.get(function) == "lut":
        # The window of the input with the smallest worst-case error, not the whole input: on a
        # wide input type a saturating function gets fine buckets where it changes.
        op = act.make_lut(function, src.type, out_type, table_size=precisions.table_size(name, layer_type), params=params or None, span="best")
        fits = "" if op.fit_error >= op.max_error else f" ({_up(op.fit_error)} where {function} stays within {out_type})"
        builder.graph.notes.append(f"{name}: {function} table of {len(op.table)} entries into {out_type}, worst-case error {_up(op.max_error)}{fits}")
    else:
        maker = {
            "hard_sigmoid": lambda: act.hard_sigmoid(params.get("variant", "keras3")),
            "hard_tanh": act.hard_tanh,
            "relu6": act.relu6,
            "leaky_relu": lambda: act.leaky_relu(params.get("alpha", 0.3)),
            "prelu": lambda: act.prelu(params["alpha"]),
            "thresholded_relu": lambda: act.thresholded_relu(params.get("theta", 1.0)),
            "relu": lambda: act.relu(max_value=params.get("max_value"), negative_slope=params.get("negative_slope", 0.0), threshold=params.get("threshold", 0.0)),
        }[function]
        op = maker()
    lo, hi = out_type.min_mantissa, out_type.max_mantissa
    n = src.size
    out = builder.tensor(name, src.shape, out_type, src.scale, (np.full(n, lo, dtype=object), np.full(n, hi, dtype=object)))
    builder.graph.add_node(Node(name, op, [x], [out], {"source": source or function}))
    return out


def build_softmax(builder, precisions, name: str, x: str, *, layer_type="Softmax", source="Softmax") -> str:
    from rtlgen.ir.ops import softmax as sm

    src = builder.graph.tensors[x]
    kwargs = precisions.softmax(name, layer_type)
    strategy = kwargs["implementation"]
    if len(src.shape) != 1:
        raise ValueError(f"softmax over a {len(src.shape)}-D tensor: flatten it first")
    op = sm.make_softmax(src.type, src.size, **kwargs)
    t = op.out_type if hasattr(op, "out_type") else kwargs.get("out_type")
    n = src.size
    out = builder.tensor(name, src.shape, t, 1.0, (np.full(n, t.min_mantissa, dtype=object), np.full(n, t.max_mantissa, dtype=object)))
    builder.graph.add_node(Node(name, op, [x], [out], {"source": source}))
    builder.graph.notes.append(f"{name}: softmax ({strategy}) into {t}, worst-case error {_up(op.max_error)}")
    return out
