"""hls4ml's ``model.profiling``: :func:`numerical` and :func:`get_ymodel_keras` on rtlgen's profiler."""

from __future__ import annotations

import logging

from rtlgen.errors import RtlgenError

__all__ = ["get_ymodel_keras", "numerical"]

log = logging.getLogger(__name__)


def numerical(model=None, hls_model=None, X=None, plot="boxplot"):
    """Profile weights and activations against their fixed-point types on data ``X``.

    Returns hls4ml's quadruple of figures ``(weights, weights after optimization, activations,
    activations after optimization)``. rtlgen profiles the final graph once and draws weights and
    activations side by side in one figure, so the first and third are that figure and the others
    ``None``; the figure's ``profile`` attribute is the :class:`rtlgen.profiling.Profile` (overflow
    counts, suggested types). Without matplotlib the figures are ``None``."""
    from rtlgen.profiling import numerical as profile

    from . import ModelGraph

    if X is None:
        raise RtlgenError("numerical() needs data: pass X, float network inputs with the batch first")
    if plot != "boxplot":
        log.warning("plot=%r is drawn as a box plot (the one style rtlgen draws)", plot)
    if hls_model is not None and not isinstance(hls_model, ModelGraph):
        raise RtlgenError(f"hls_model must be the model returned by rtlgen.hls4ml.converters, not {type(hls_model).__name__}")
    if hls_model is None and model is None:
        raise RtlgenError("numerical() needs a model, an hls_model or both")
    design = hls_model.design if hls_model is not None else None
    prof = profile(model, None, X, design=design)
    log.info("profiling: %d casts, %d overflows on %d samples", len(prof.sites), prof.overflows, prof.n_samples)
    try:
        fig = prof.plot()
    except RtlgenError as e:  # matplotlib missing
        log.warning("no plot: %s", e)
        fig = None
    if fig is not None:
        fig.profile = prof
    return fig, None, fig, None


def get_ymodel_keras(keras_model, X):
    """Every layer's output of a Keras model on ``X``: ``{layer name: array}`` (batch first)."""
    from rtlgen.profiling import _keras_outputs

    return _keras_outputs(keras_model, X)
