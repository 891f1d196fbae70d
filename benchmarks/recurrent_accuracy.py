"""rtlgen's golden model and hls4ml's C++ emulation against Keras on hls4ml's published LSTM and GRU.

    python benchmarks/recurrent_accuracy.py                       # both models, fixed<16,6>
    python benchmarks/recurrent_accuracy.py --precision "fixed<24,8>" --models lstm

Both tools get the same model-wide precision and the same 1,000 random sequences (uniform in
[-1, 1)); the reference is Keras 3 running the published weights (the final softmax left out, so
the logits are compared). Prints, per model, the worst and median per-sequence error of each and
the bound rtlgen's build prints. Needs the ``[keras]`` and ``[hls4ml]`` extras and g++.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "models" / "hls4ml-history" / "keras"


def keras_replica(kind: str):
    """The published Keras 2 model rebuilt in Keras 3 with its weights; the softmax left out."""
    import h5py
    import keras

    layers = json.loads((SHARED / f"KERAS_{kind}_model.json").read_text())["config"]["layers"]
    ks = [keras.Input(tuple(layers[0]["config"]["batch_input_shape"][1:]))]
    for layer in layers[1:]:
        c, cls = layer["config"], layer["class_name"]
        if cls in ("LSTM", "GRU"):
            kw = {"reset_after": False} if cls == "GRU" else {}  # Keras 2.2's GRU
            ks.append(getattr(keras.layers, cls)(c["units"], activation=c["activation"], name=c["name"],
                      recurrent_activation=c["recurrent_activation"], return_sequences=c["return_sequences"], **kw))  # fmt: skip
        elif cls == "Dense":
            ks.append(keras.layers.Dense(c["units"], activation="linear" if c["activation"] == "softmax" else c["activation"], name=c["name"]))
        elif cls == "Flatten":
            ks.append(keras.layers.Flatten())
    model = keras.Sequential(ks)
    with h5py.File(SHARED / f"KERAS_{kind}_model_weights.h5") as f:
        w = f["model_weights"]
        for layer in model.layers:
            if layer.name in w and layer.name in w[layer.name]:
                g = w[layer.name][layer.name]
                keys = ["kernel:0", "recurrent_kernel:0", "bias:0"] if "recurrent_kernel:0" in g else ["kernel:0", "bias:0"]
                layer.set_weights([np.array(g[k]) for k in keys])
    return model


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["lstm", "gru"], choices=["lstm", "gru"])
    ap.add_argument("--precision", default="fixed<16,6>")
    ap.add_argument("-n", type=int, default=1000)
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    import hls4ml

    import rtlgen

    for kind in args.models:
        model = keras_replica(kind)
        x = np.random.default_rng(1).uniform(-1, 1, (args.n, *model.input_shape[1:])).astype("float32")
        ref = model.predict(x, verbose=0).reshape(args.n, -1)
        design = rtlgen.convert(SHARED / f"KERAS_{kind}_model.json", {"Model": {"Precision": args.precision}}, skip_softmax=True)
        ours = np.abs(design.predict(x) - ref).max(axis=1)
        cfg = hls4ml.utils.config_from_keras_model(model, granularity="model", default_precision=args.precision)
        with tempfile.TemporaryDirectory() as tmp:
            hm = hls4ml.converters.convert_from_keras_model(model, hls_config=cfg, output_dir=tmp, backend="Vivado", io_type="io_parallel")
            hm.compile()
            theirs = np.abs(np.asarray(hm.predict(x)).reshape(args.n, -1) - ref).max(axis=1)
        print(f"{kind} at {args.precision}, {args.n} sequences, error against Keras (logits):")
        print(f"  rtlgen golden      worst {ours.max():.4f}  median {np.median(ours):.4f}  (printed bound {design.graph.error_bound:.3g})")
        print(f"  hls4ml emulation   worst {theirs.max():.4f}  median {np.median(theirs):.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
