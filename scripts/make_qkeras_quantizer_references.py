"""QKeras's own outputs for the weight quantizers rtlgen maps to powers of two.

Run with the QKeras environment's Python (see make_qkeras_references.py for its set-up):
    /work/venvs/qkeras/bin/python scripts/make_qkeras_quantizer_references.py --out tests/data/qkeras
"""

import argparse
import os

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

SPECS = {
    "binary(alpha=1)": lambda q: q.binary(alpha=1),
    "binary(use_01=True, alpha=1)": lambda q: q.binary(use_01=True, alpha=1),
    "ternary(alpha=1)": lambda q: q.ternary(alpha=1),
    "ternary(alpha=0.5, threshold=0.2)": lambda q: q.ternary(alpha=0.5, threshold=0.2),
    "quantized_po2(4)": lambda q: q.quantized_po2(4),
    "quantized_po2(4, 1)": lambda q: q.quantized_po2(4, 1),
    "quantized_po2(6, 4)": lambda q: q.quantized_po2(6, 4),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/data/qkeras")
    args = ap.parse_args()
    from qkeras import quantizers

    rng = np.random.default_rng(0)
    x = rng.normal(0, 1.5, 3000).astype(np.float32)
    # Exact ties and edges: the ternary thresholds, zero, powers of two and their geometric midpoints.
    edges = [0.33, -0.33, 0.2, -0.2, 0.0, 1.0, -1.0, 0.5, 2.0**0.5, 2.0**-0.5, 1e-8, -1e-8, 100.0, -100.0]
    x[: len(edges)] = np.array(edges, dtype=np.float32)
    out = {spec: np.asarray(make(quantizers)(x), dtype=np.float32) for spec, make in SPECS.items()}
    np.savez_compressed(os.path.join(args.out, "quantizers.npz"), x=x, specs=np.array(list(SPECS)), **{f"q{i}": out[s] for i, s in enumerate(SPECS)})


if __name__ == "__main__":
    main()
