"""Training building blocks on Keras 3: train, distil, prune, quantize, summarise."""

from __future__ import annotations

import logging

import keras
import numpy as np

from ..errors import ConfigError
from ._models import copy_weights, parameters, quant_scopes

__all__ = ["train", "distill", "prune", "quantize", "summary", "MagnitudePruning", "polynomial_sparsity"]

log = logging.getLogger(__name__)


def _compile(model, learning_rate: float):
    model.compile(
        keras.optimizers.Adam(learning_rate),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )


def train(model, x, y, *, epochs: int, batch_size: int = 256, learning_rate: float = 3e-3, callbacks=()):
    """Train ``model`` (logit outputs) on labels ``y`` (class indices) with Adam; return it."""
    _compile(model, learning_rate)
    model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0, callbacks=list(callbacks))
    return model


def distill(
    teacher, student, x, y, *, temperature: float = 4.0, alpha: float = 0.1, epochs: int,
    batch_size: int = 256, learning_rate: float = 3e-3, callbacks=(),
):  # fmt: skip
    """Knowledge distillation with Keras's own ``keras.distillation``: a ``Distiller`` with one
    ``LogitsDistillation`` (KL divergence of the temperature-softened logits, scaled by T²) and
    the student's own cross-entropy on the labels weighted ``alpha`` (``student_loss_weight``).
    Both models give logits. Returns the trained ``student``."""
    from keras.distillation import Distiller, LogitsDistillation

    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"distillation weight alpha must be between 0 and 1, not {alpha}")
    if temperature <= 0:
        raise ConfigError(f"distillation temperature must be positive, not {temperature}")
    # An explicit KLDivergence instance: Keras 3.15 resolves the default "kl_divergence" to a plain
    # function, which LogitsDistillation then applies to the scaled logits instead of to their
    # softmax probabilities.
    kl = LogitsDistillation(temperature=temperature, loss=keras.losses.KLDivergence())
    d = Distiller(teacher=teacher, student=student, distillation_losses=kl, student_loss_weight=alpha)
    d.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    d.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0, callbacks=list(callbacks))
    return student


def polynomial_sparsity(step: int, *, final: float, begin: int, end: int, initial: float = 0.0, power: int = 3) -> float:
    """The target sparsity at ``step``: ``initial`` before ``begin``, rising as a cubic to ``final``
    at ``end`` (the schedule of Zhu and Gupta, 2017, which tensorflow-model-optimization uses)."""
    if step <= begin:
        return initial
    if step >= end:
        return final
    t = (step - begin) / max(1, end - begin)
    return final + (initial - final) * (1.0 - t) ** power


def _kernels(model) -> list:
    return [(layer, v) for layer, name, v in parameters(model) if name == "kernel"]


class MagnitudePruning(keras.callbacks.Callback):
    """A Keras callback that zeroes the smallest-magnitude weights of every kernel of ``model``.

    Each kernel's mask is recomputed every ``frequency`` steps from ``begin`` to ``end`` with the
    sparsity of :func:`polynomial_sparsity`, and applied after every training step, so the masked
    weights stay exactly zero and the network learns around them. ``sparsity=None`` keeps the
    zeros the kernels already have (fine-tuning a pruned model, e.g. during quantization).
    """

    def __init__(self, model, sparsity: float | None = None, *, begin: int = 0, end: int = 1, frequency: int = 10):
        super().__init__()
        if sparsity is not None and not 0.0 <= sparsity < 1.0:
            raise ConfigError(f"pruning sparsity must be in [0, 1), not {sparsity}")
        self.target, self.sparsity = model, sparsity
        self.begin, self.end, self.frequency = begin, max(end, begin + 1), max(1, frequency)
        self.step = 0
        self.masks = {id(v): np.asarray(v.numpy() != 0, dtype=v.numpy().dtype) for _, v in _kernels(model)}

    def _update_masks(self) -> None:
        s = polynomial_sparsity(self.step, final=self.sparsity, begin=self.begin, end=self.end)
        for _, v in _kernels(self.target):
            w = np.abs(v.numpy())
            k = int(round(s * w.size))
            mask = np.ones_like(w)
            if k > 0:
                mask.reshape(-1)[np.argsort(w, axis=None, kind="stable")[:k]] = 0
            self.masks[id(v)] = mask

    def _apply(self) -> None:
        for _, v in _kernels(self.target):
            v.assign(v.numpy() * self.masks[id(v)])

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.sparsity is not None and self.step <= self.end and (self.step % self.frequency == 0 or self.step == self.end):
            self._update_masks()
        self._apply()

    def on_train_end(self, logs=None):
        if self.sparsity is not None and self.step < self.end:
            log.warning("pruning ended at step %d before the schedule's end (%d): sparsity below the target", self.step, self.end)
        self._apply()


def prune(
    model, x, y, *, sparsity: float, epochs: int, batch_size: int = 256, learning_rate: float = 1e-3,
    end_fraction: float = 0.7, frequency: int = 10, teacher=None, temperature: float = 4.0, alpha: float = 0.1,
    callbacks=(),
):  # fmt: skip
    """Prune ``model`` to ``sparsity`` (fraction of zero weights per kernel) by magnitude while
    fine-tuning it: the sparsity rises on :func:`polynomial_sparsity` over the first
    ``end_fraction`` of the steps and holds for the rest. With a ``teacher`` the fine-tuning keeps
    distilling from it. Returns the model, its pruned weights exactly zero."""
    steps = epochs * int(np.ceil(len(x) / batch_size))
    cb = MagnitudePruning(model, sparsity, begin=0, end=max(1, int(end_fraction * steps)), frequency=frequency)
    cbs = [cb, *callbacks]
    if teacher is not None:
        return distill(teacher, model, x, y, temperature=temperature, alpha=alpha, epochs=epochs, batch_size=batch_size,
                       learning_rate=learning_rate, callbacks=cbs)  # fmt: skip
    return train(model, x, y, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, callbacks=cbs)


_HGQ_LAYERS = {"Dense": "QDense", "Conv1D": "QConv1D", "Conv2D": "QConv2D", "BatchNormalization": "QBatchNormalization",
               "MaxPooling1D": "QMaxPooling1D", "MaxPooling2D": "QMaxPooling2D"}  # fmt: skip


def to_hgq(model, quant: dict):
    """An HGQ2 copy of the float ``model`` (Dense, convolutions, batch normalization and max
    pooling become their HGQ2 layers under :func:`quant_scopes`; other layers are cloned), with
    the float model's weights."""
    import hgq.layers as hl

    def clone(layer):
        kind = type(layer).__name__
        if kind not in _HGQ_LAYERS:
            return layer.__class__.from_config(layer.get_config())
        cfg = layer.get_config()
        for key in ("kernel_initializer", "bias_initializer", "kernel_regularizer", "bias_regularizer", "kernel_constraint",
                    "bias_constraint", "activity_regularizer", "dtype", "trainable", "lora_rank", "lora_alpha", "quantization_config",
                    "beta_initializer", "gamma_initializer", "moving_mean_initializer", "moving_variance_initializer",
                    "beta_regularizer", "gamma_regularizer", "beta_constraint", "gamma_constraint", "synchronized",
                    "renorm", "renorm_clipping", "renorm_momentum"):  # fmt: skip
            cfg.pop(key, None)
        return getattr(hl, _HGQ_LAYERS[kind])(**cfg)

    scopes = quant_scopes(quant)
    for s in scopes:
        s.__enter__()
    try:
        q = keras.models.clone_model(model, clone_function=clone)
    finally:
        for s in reversed(scopes):
            s.__exit__(None, None, None)
    copy_weights(model, q)
    return q


def quantize(
    model, x, y, *, mode: str = "uniform", bits: int = 8, beta: float = 1e-6, weight_integers: int = 1,
    activation_bits: int = 8, activation_integers: int = 3, epochs: int, batch_size: int = 256,
    learning_rate: float = 1e-3, teacher=None, temperature: float = 4.0, alpha: float = 0.1, callbacks=(),
):  # fmt: skip
    """Quantization-aware training with HGQ2, starting from the float ``model``'s weights.

    ``mode="hgq"``: HGQ2's per-weight and per-activation-lane widths, trained against the resource
    term ``beta`` (starting from ``bits``); ``mode="uniform"``: every weight and bias ``bits`` wide
    (sign included, ``weight_integers`` integer bits) and every activation ``activation_bits``
    wide. Weights that are zero in ``model`` (pruned) stay zero. With a ``teacher`` the training
    keeps distilling from it. The integer ranges of ``hgq`` activations are set from ``x`` at the
    end (``hgq.utils.trace_minmax``), so nothing in the data overflows. Returns the HGQ2 model.
    """
    from hgq.utils import trace_minmax

    if mode not in ("hgq", "uniform"):
        raise ConfigError(f"quantization mode must be 'hgq' or 'uniform', not {mode!r}")
    if not 2 <= bits <= 32 or not 2 <= activation_bits <= 32:
        raise ConfigError(f"quantization widths must be between 2 and 32 bits, not {bits} (weights) and {activation_bits} (activations)")
    quant = {"mode": mode, "bits": bits, "beta": beta, "weight_integers": weight_integers,
             "activation_bits": activation_bits, "activation_integers": activation_integers}  # fmt: skip
    q = to_hgq(model, quant)
    cbs = [MagnitudePruning(q), *callbacks]
    if epochs > 0:
        if teacher is not None:
            distill(teacher, q, x, y, temperature=temperature, alpha=alpha, epochs=epochs, batch_size=batch_size,
                    learning_rate=learning_rate, callbacks=cbs)  # fmt: skip
        else:
            train(q, x, y, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, callbacks=cbs)
    if mode == "hgq":
        trace_minmax(q, x, batch_size=batch_size, verbose=0)
    return q


def accuracy(model, x, y, batch_size: int = 1024) -> float:
    """The fraction of ``x`` whose largest logit is the label ``y``."""
    pred = np.asarray(model.predict(x, batch_size=batch_size, verbose=0))
    return float(np.mean(np.argmax(pred.reshape(len(x), -1), axis=1) == np.asarray(y).reshape(-1)))


def summary(model, x=None, y=None, *, reference_parameters: int | None = None) -> dict:
    """Size and accuracy of ``model``: ``parameters`` (kernels, biases, batch-norm variables, as
    Keras counts a float model), ``nonzero`` (those not zero after quantization), ``sparsity``
    (zero fraction of the kernels), ``bits`` (mean width of the non-zero kernel weights, sign
    included; 32 for float layers), ``layers`` (layers with a kernel), ``compression`` (
    ``reference_parameters`` over ``nonzero``, when given) and ``accuracy`` on ``x``, ``y``."""
    total = nonzero = kzero = ksize = 0
    widths = []
    layers = 0
    for layer, name, v in parameters(model):
        q = getattr(layer, f"q{name}", None) if name in ("kernel", "bias") else None
        w = np.asarray(q if q is not None else v.numpy())
        total += w.size
        nonzero += int(np.count_nonzero(w))
        if name == "kernel":
            layers += 1
            ksize += w.size
            kzero += int(w.size - np.count_nonzero(w))
            kq = getattr(layer, "kq", None)
            if kq is not None:
                b = np.broadcast_to(np.asarray(kq.bits) + np.asarray(kq.quantizer.k if hasattr(kq.quantizer, "k") else 1), w.shape)
                widths.append(b[w != 0])
            else:
                widths.append(np.full(int(np.count_nonzero(w)), 32.0))
    flat = np.concatenate(widths) if widths else np.zeros(0)
    out = {
        "parameters": int(total), "nonzero": int(nonzero), "sparsity": round(kzero / ksize, 4) if ksize else 0.0,
        "bits": round(float(flat.mean()), 2) if flat.size else None, "layers": layers,
    }  # fmt: skip
    if reference_parameters:
        out["compression"] = round(reference_parameters / max(1, nonzero), 2)
    if x is not None and y is not None:
        out["accuracy"] = accuracy(model, x, y)
    return out
