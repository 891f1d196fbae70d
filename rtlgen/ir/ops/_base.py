"""What every IR op provides."""

from __future__ import annotations

from rtlgen.ir.graph import GraphError

__all__ = ["Op", "check_same_shape"]


class Op:
    """Base of the IR's op dataclasses.

    An op knows its own fields, checks them against its tensors (:meth:`verify`) and computes its
    golden model on integer mantissas with a leading batch dimension (:meth:`evaluate`: one call
    shape for every arity). Single-input ops implement ``golden(x, src, dst)``. Hardware is not
    here: :mod:`rtlgen.layers` registers one factory per op class.
    """

    arity = 1

    def verify(self, name: str, ins: list, out) -> None:
        """Raise :class:`~rtlgen.ir.GraphError` when the op does not fit its tensors."""

    def evaluate(self, xs: list, srcs: list, dst):
        """Output mantissas from the input mantissas ``xs`` of tensors ``srcs``."""
        return self.golden(xs[0], srcs[0], dst)

    def evaluate_float(self, xs: list, srcs: list, dst):
        """:meth:`evaluate` with the output mantissas carried in a float array (see
        :func:`rtlgen.fixed.float_carrier`); the inputs are integer or float arrays. None when the op
        (or these values) cannot be computed exactly that way: the golden model then calls
        :meth:`evaluate` on integers."""
        return None

    # Every op also defines ``error_bound(ctx, node, errs) -> float``: the worst-case error of its
    # output against the source model from its inputs' (see :mod:`._bounds`). There is no default,
    # so an op without one is an error when a build reports its bound, never a silent infinity.

    def built_magnitude(self, ctx, node, own: float, m_in: float) -> float:
        """The largest magnitude the output takes when nothing overflows (``own``: its type's bound,
        ``m_in``: the input's); tighter than ``own`` for ops that cannot grow their input."""
        return own


def check_same_shape(name: str, ins: list, out) -> None:
    if ins[0].shape != out.shape:
        raise GraphError(f"node {name!r}: elementwise op changes shape {ins[0].shape} -> {out.shape}")
