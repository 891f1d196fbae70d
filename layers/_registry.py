"""One hardware factory per IR op class, all with one signature: ``factory(op, inputs, output)``.

``inputs`` are the op's input tensors (a list, one per input) and ``output`` its output tensor
(:class:`rtlgen.ir.Tensor`: shape and fixed-point type). Each layer module registers the factories
of the ops it implements with :func:`register`.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["register", "hardware", "FACTORIES"]

FACTORIES: dict[type, Callable] = {}


def register(*op_classes):
    """Decorator: the function builds the component for nodes of ``op_classes``."""

    def deco(factory):
        for cls in op_classes:
            FACTORIES[cls] = factory
        return factory

    return deco


def hardware(op, inputs: list, output):
    """The streaming component for ``op`` reading ``inputs`` and writing ``output``."""
    factory = FACTORIES.get(type(op))
    if factory is None:
        raise TypeError(f"no hardware is registered for IR op {type(op).__name__}")
    return factory(op, list(inputs), output)
