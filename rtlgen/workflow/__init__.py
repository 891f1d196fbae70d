"""The compression workflow: teacher, distilled student, pruning, quantization-aware training, and
the hardware, on Keras 3 with HGQ2.

Building blocks (each a plain function on Keras models; logits in and out):

* :func:`train`: supervised training (the teacher, or a student without one);
* :func:`distill`: knowledge distillation with ``keras.distillation`` (``Distiller`` +
  ``LogitsDistillation``);
* :func:`prune`: magnitude pruning to a target sparsity on a polynomial schedule
  (:class:`MagnitudePruning`, a Keras callback);
* :func:`quantize`: quantization-aware training with HGQ2, per-weight widths or uniform;
* :func:`summary`: parameters, non-zero parameters, sparsity, bits, accuracy.

:func:`run` drives them from a spec (``rtlgen workflow SPEC.yml``) through ``rtlgen build``,
Yosys and the assessment to one results row.
"""

from ._blocks import (
    MagnitudePruning,
    accuracy,
    distill,
    polynomial_sparsity,
    prune,
    quantize,
    summary,
    to_hgq,
    train,
)
from ._models import build, check_layers
from ._run import COLUMNS, STAGES, WorkflowError, load_spec, run

__all__ = [
    "train", "distill", "prune", "quantize", "summary", "accuracy", "to_hgq", "MagnitudePruning",
    "polynomial_sparsity", "build", "check_layers", "run", "load_spec", "STAGES", "COLUMNS", "WorkflowError",
]  # fmt: skip
