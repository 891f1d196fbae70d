"""The graph of the intermediate representation: tensors, nodes, host stages, verification, JSON.

Importers build a :class:`Graph`; passes annotate it; the golden model (:mod:`rtlgen.golden`) and the
hardware (:mod:`rtlgen.layers`) read it. Nothing here knows about ONNX, Keras or hardware; the ops
themselves live in :mod:`rtlgen.ir.ops`, one module per family.

Every tensor carries a :class:`~rtlgen.fixed.FixedType`: its values are integer mantissas and its real
value is ``mantissa * 2**-type.frac * scale`` (``scale`` is 1 except after a quantizer whose scale is
not a power of two). Shapes exclude the batch dimension.

Work done in floating point on the host before and after the hardware (the network's input
quantizer, a float tail after the last integer layer) is kept as :class:`HostStage` objects, each an
ONNX model that the reference executor runs exactly as the original graph would.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from rtlgen.fixed import FixedType

__all__ = ["Tensor", "Node", "Graph", "HostStage", "GraphError", "OPS", "register_op"]


class GraphError(Exception):
    """The graph breaks one of the IR's invariants (a bug in an importer or a pass)."""


@dataclass
class Tensor:
    name: str
    shape: tuple[int, ...]
    type: FixedType | None = None
    scale: float = 1.0

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))


OPS: dict[str, type] = {}


def register_op(cls):
    """Make an op dataclass known to the IR (verification, JSON). Every op is an
    :class:`~rtlgen.ir.ops.Op`: it verifies its own tensors and carries its golden model; its
    hardware is registered in :mod:`rtlgen.layers`."""
    OPS[cls.__name__] = cls
    return cls


@dataclass
class Node:
    name: str
    op: Any
    inputs: list[str]
    outputs: list[str]
    # Free-form facts for reports (source op, what the importer did).
    attrs: dict = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return type(self.op).__name__

    def hardware_op(self):
        """The op as the hardware computes it: ``op`` with the fields a pass rewrote for the
        hardware alone (``attrs["hw"]``, e.g. a rounding moved into a bias by
        :class:`rtlgen.passes.FoldRounding`); the golden model computes ``op`` itself."""
        hw = self.attrs.get("hw")
        if not hw:
            return self.op
        import dataclasses

        import numpy as np

        changes = dict(hw)
        if changes.get("bias") is not None:  # JSON keeps it a list; the ops take an integer array
            b = changes["bias"]
            changes["bias"] = np.array(b, dtype=np.int64 if all(abs(int(x)) < 1 << 62 for x in b) else object)
        return dataclasses.replace(self.op, **changes)


@dataclass
class HostStage:
    """A float computation run on the host with the reference executor.

    ``onnx_bytes`` is a serialized ONNX model with one input and one output whose batch dimension
    is free. ``reshape`` flattens the input batch to the model's input shape first.
    """

    onnx_bytes: bytes
    input_name: str
    output_name: str
    description: str = ""

    def run(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        model = self._model_for(x.shape)
        from qonnx.core.onnx_exec import execute_onnx

        return execute_onnx(model, {self.input_name: x})[self.output_name]

    def _model_for(self, shape):
        # The executor wants every shape known: pin the batch size, infer the rest, keep a few.
        cache = self.__dict__.setdefault("_cache", {})
        if shape not in cache:
            import onnx
            from qonnx.core.modelwrapper import ModelWrapper
            from qonnx.transformation.infer_shapes import InferShapes

            proto = onnx.load_from_string(self.onnx_bytes)
            dims = proto.graph.input[0].type.tensor_type.shape.dim
            del dims[:]
            for d in shape:
                dims.add().dim_value = int(d)
            for out in proto.graph.output:
                out.type.tensor_type.ClearField("shape")
            if len(cache) > 8:
                cache.clear()
            cache[shape] = ModelWrapper(proto).transform(InferShapes())
        return cache[shape]


@dataclass
class Graph:
    """A network as a list of nodes in topological order over named tensors."""

    name: str = "network"
    tensors: dict[str, Tensor] = field(default_factory=dict)
    nodes: list[Node] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    # Host-side float stages: input float -> input mantissa, output mantissa -> float result.
    pre: HostStage | None = None
    post: HostStage | None = None
    # What the importer wants the user to know (conversions made, layers skipped).
    notes: list[str] = field(default_factory=list)
    # Every layer or node name of the source model, so configurations may name any of them.
    source_names: list[str] = field(default_factory=list)
    # Host-side reordering of the flattened network input into the hardware's channels-last lanes,
    # and of the hardware's output lanes into the network's own (channels-first) output order.
    input_order: list | None = None
    output_order: list | None = None
    # Worst-case |built output - source model output| in real units (float inputs within the input
    # type's range, no value overflowing its type); None when no bound is known.
    error_bound: float | None = None

    def add_tensor(self, tensor: Tensor) -> Tensor:
        if tensor.name in self.tensors:
            raise GraphError(f"tensor {tensor.name!r} defined twice")
        self.tensors[tensor.name] = tensor
        return tensor

    def add_node(self, node: Node) -> Node:
        self.nodes.append(node)
        return node

    def rename_tensor(self, old: str, new: str) -> None:
        if new in self.tensors:
            raise GraphError(f"tensor {new!r} already exists")
        t = self.tensors.pop(old)
        t.name = new
        self.tensors[new] = t
        for node in self.nodes:
            node.inputs = [new if n == old else n for n in node.inputs]
            node.outputs = [new if n == old else n for n in node.outputs]
        self.inputs = [new if n == old else n for n in self.inputs]
        self.outputs = [new if n == old else n for n in self.outputs]

    def producer(self, tensor: str) -> Node | None:
        for node in self.nodes:
            if tensor in node.outputs:
                return node
        return None

    def consumers(self, tensor: str) -> list[Node]:
        return [n for n in self.nodes if tensor in n.inputs]

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def verify(self) -> None:
        """Check the invariants every pass must keep; raise :class:`GraphError` on the first break."""
        if not self.inputs or not self.outputs:
            raise GraphError(f"graph {self.name!r} needs at least one input and one output")
        defined = set(self.inputs)
        names = set()
        for t in self.inputs:
            if t not in self.tensors:
                raise GraphError(f"graph input {t!r} is not a known tensor")
        for node in self.nodes:
            if node.name in names:
                raise GraphError(f"node name {node.name!r} is used twice")
            names.add(node.name)
            if type(node.op).__name__ not in OPS:
                raise GraphError(f"node {node.name!r} has unknown op {type(node.op).__name__}")
            for t in node.inputs:
                if t not in defined:
                    raise GraphError(f"node {node.name!r} reads {t!r} before it is produced")
            for t in node.outputs:
                if t in defined:
                    raise GraphError(f"tensor {t!r} is produced twice (again by {node.name!r})")
                if t not in self.tensors:
                    raise GraphError(f"node {node.name!r} produces unknown tensor {t!r}")
                defined.add(t)
            _verify_op(self, node)
        for t in self.outputs:
            if t not in defined:
                raise GraphError(f"graph output {t!r} is never produced")
        for t in defined:
            tensor = self.tensors[t]
            if tensor.type is None:
                raise GraphError(f"tensor {t!r} has no fixed-point type")

    # -- serialisation ----------------------------------------------------------------------------

    def to_json(self) -> str:
        """A deterministic JSON dump, for debugging and for reports."""
        return json.dumps(self.to_dict(), indent=1, sort_keys=True)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "inputs": list(self.inputs),
            "outputs": list(self.outputs),
            "tensors": {
                name: {
                    "shape": list(t.shape),
                    "type": str(t.type) if t.type else None,
                    "scale": t.scale,
                }
                for name, t in self.tensors.items()
            },
            "nodes": [
                {
                    "name": n.name,
                    "op": n.kind,
                    "inputs": n.inputs,
                    "outputs": n.outputs,
                    "params": _op_to_dict(n.op),
                    "attrs": n.attrs,
                }
                for n in self.nodes
            ],
            "pre": _stage_to_dict(self.pre),
            "post": _stage_to_dict(self.post),
            "notes": list(self.notes),
            "source_names": list(self.source_names),
            "input_order": None if self.input_order is None else [int(i) for i in self.input_order],
            "output_order": None if self.output_order is None else [int(i) for i in self.output_order],
            "error_bound": self.error_bound,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Graph:
        g = cls(name=d["name"], inputs=list(d["inputs"]), outputs=list(d["outputs"]))
        for name, t in d["tensors"].items():
            g.tensors[name] = Tensor(
                name,
                tuple(t["shape"]),
                FixedType.parse(t["type"]) if t["type"] else None,
                t["scale"],
            )
        for n in d["nodes"]:
            g.nodes.append(
                Node(n["name"], _op_from_dict(n["op"], n["params"]), n["inputs"], n["outputs"], n["attrs"])
            )
        g.pre = _stage_from_dict(d.get("pre"))
        g.post = _stage_from_dict(d.get("post"))
        g.notes = list(d.get("notes", []))
        g.source_names = list(d.get("source_names", []))
        g.input_order = d.get("input_order")
        g.output_order = d.get("output_order")
        g.error_bound = d.get("error_bound")
        return g

    @classmethod
    def from_json(cls, text: str) -> Graph:
        return cls.from_dict(json.loads(text))


def _verify_op(graph: Graph, node: Node) -> None:
    ins = [graph.tensors[t] for t in node.inputs]
    outs = [graph.tensors[t] for t in node.outputs]
    if len(outs) != 1:
        raise GraphError(f"node {node.name!r} must have one output, not {len(outs)}")
    if len(ins) != node.op.arity:
        raise GraphError(f"node {node.name!r} ({node.kind}) must have {node.op.arity} input(s), not {len(ins)}")
    node.op.verify(node.name, ins, outs[0])


def _encode(v):
    if isinstance(v, np.ndarray):
        return {"ndarray": v.astype(object if v.dtype == object else v.dtype).tolist(), "dtype": str(v.dtype)}
    if isinstance(v, FixedType):
        return {"fixed": str(v)}
    if isinstance(v, (np.integer,)):
        return int(v)
    return v


def _decode(v):
    if isinstance(v, dict) and "ndarray" in v:
        dtype = v["dtype"]
        return np.array(v["ndarray"], dtype=object if dtype == "object" else dtype)
    if isinstance(v, dict) and "fixed" in v:
        return FixedType.parse(v["fixed"])
    return v


def _op_to_dict(op) -> dict:
    return {f.name: _encode(getattr(op, f.name)) for f in fields(op)}


def _op_from_dict(kind: str, params: dict):
    return OPS[kind](**{k: _decode(v) for k, v in params.items()})


def _stage_to_dict(stage: HostStage | None):
    if stage is None:
        return None
    return {
        "onnx": base64.b64encode(stage.onnx_bytes).decode(),
        "input_name": stage.input_name,
        "output_name": stage.output_name,
        "description": stage.description,
    }


def _stage_from_dict(d):
    if d is None:
        return None
    return HostStage(base64.b64decode(d["onnx"]), d["input_name"], d["output_name"], d["description"])
