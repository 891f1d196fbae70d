"""The QKeras jet tagger and hls4ml's emulation of it, in the Keras 2 environment QKeras needs.

Run by ``compare.py --models qkeras`` with ``benchmarks/.venv-qkeras/bin/python`` (TensorFlow
2.14, QKeras 0.9, hls4ml 1.3); never imports rtlgen. Writes, into the work directory:

* ``jet_qkeras.h5``: 16-64-32-32-5, ``quantized_bits(6, 0, alpha=1)`` weights and biases,
  ``quantized_relu(6)`` activations, inputs quantized to ``quantized_bits(13, 4, alpha=1)``
  (the 2**-8 grid of the test inputs), trained on the same synthetic data as the other models;
* ``qkeras_out.npz``: the inputs and QKeras' own ``predict`` of them (the reference);
* ``qkeras_peer.json``: hls4ml's compile time, predict time and whether it equals QKeras.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import models  # noqa: E402  (numpy-only helpers: the same data and inputs as the other models)
from compare import best_time  # noqa: E402  (the same timing rule as the other models)


def build(path: Path, epochs: int):
    import tensorflow as tf
    from qkeras import QActivation, QDense, quantized_bits, quantized_relu

    tf.keras.utils.set_random_seed(0)
    x, y = models.synthetic_jets(np.random.default_rng(0), 20000)
    q = dict(kernel_quantizer=quantized_bits(6, 0, alpha=1), bias_quantizer=quantized_bits(6, 0, alpha=1))
    inp = tf.keras.Input((models.SIZES[0],), name="inp")
    h = QActivation(quantized_bits(13, 4, alpha=1), name="inq")(inp)
    for i, n in enumerate(models.SIZES[1:-1]):
        h = QDense(n, name=f"fc{i}", **q)(h)
        h = QActivation(quantized_relu(6), name=f"relu{i}")(h)
    out = QDense(models.SIZES[-1], name="out", **q)(h)
    model = tf.keras.Model(inp, out, name="jet_qkeras")
    model.compile(tf.keras.optimizers.Adam(3e-3), tf.keras.losses.CategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=epochs, batch_size=256, verbose=0)
    model.save(path)
    return model


def main():
    work, samples, epochs = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    work.mkdir(parents=True, exist_ok=True)
    path = work / "jet_qkeras.h5"
    if path.exists():
        import tensorflow as tf
        from qkeras.utils import _add_supported_quantized_objects

        objs = {}
        _add_supported_quantized_objects(objs)
        model = tf.keras.models.load_model(path, custom_objects=objs, compile=False)
    else:
        print("[qkeras] training on synthetic data (Keras 2 environment)", flush=True)
        model = build(path, epochs)
    x = models.test_inputs(samples)
    ref = model.predict(x, batch_size=16384, verbose=0).astype(np.float32)
    np.savez_compressed(work / "qkeras_out.npz", x=x, y=ref)
    res = {}
    import shutil

    if shutil.which("g++"):
        import hls4ml

        cfg = hls4ml.utils.config_from_keras_model(model, granularity="name", backend="Vitis")
        t = time.perf_counter()
        hm = hls4ml.converters.convert_from_keras_model(
            model, hls_config=cfg, output_dir=str(work / "hls4ml"), backend="Vitis", io_type="io_parallel"
        )
        hm.compile()
        res["hls4ml_build_s"] = time.perf_counter() - t
        y, res["hls4ml_predict_s"], res["hls4ml_predict_cpu_s"] = best_time(hm.predict, x)
        res["hls4ml_exact"] = bool(np.array_equal(np.asarray(y).reshape(ref.shape).astype(np.float32), ref))
    (work / "qkeras_peer.json").write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
