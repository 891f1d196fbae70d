"""The build report: ``report.json`` contents (stable keys) per design and per layer."""

from __future__ import annotations

import numpy as np

from .ir import Dense

__all__ = ["build_report", "layer_rows"]


def layer_rows(design) -> list[dict]:
    rows = []
    for node, (_, layer) in zip(design.graph.nodes, design.network.layers):
        row = {
            "name": node.name,
            "op": node.kind,
            "source": node.attrs.get("source", ""),
            "input": {
                "shape": list(design.graph.tensors[node.inputs[0]].shape),
                "type": str(design.graph.tensors[node.inputs[0]].type),
            },
            "output": {
                "shape": list(design.graph.tensors[node.outputs[0]].shape),
                "type": str(design.graph.tensors[node.outputs[0]].type),
            },
            "latency": layer.latency,
            "interval": layer.initiation_interval,
        }
        if isinstance(node.op, Dense):
            row["reuse_factor"] = node.op.reuse_factor
            row["strategy"] = node.op.strategy
            row["weights"] = int(node.op.weight.size)
            row["nonzero_weights"] = int(np.count_nonzero(node.op.weight))
            row["multipliers"] = getattr(
                layer, "multipliers", int(np.count_nonzero(node.op.weight))
            )
        rows.append(row)
    return rows


def build_report(design) -> dict:
    tin, tout = design.input_tensor, design.output_tensor
    return {
        "model": design.graph.name,
        "top": design.top_name,
        "io_type": design.config.io_type,
        "input": {
            "name": tin.name,
            "shape": list(tin.shape),
            "type": str(tin.type),
            "scale": tin.scale,
        },
        "output": {
            "name": tout.name,
            "shape": list(tout.shape),
            "type": str(tout.type),
            "scale": tout.scale,
        },
        "latency_cycles": design.latency,
        "interval_cycles": design.initiation_interval,
        "layers": design.layer_report(),
        "host_stages": {
            "pre": design.graph.pre.description if design.graph.pre else None,
            "post": design.graph.post.description if design.graph.post else None,
        },
        "notes": list(design.graph.notes),
    }
