"""HGQ (v1) proxy models as hls4ml reads them: FixedPointQuantizer layers (per-lane
``fixed<bits, integers>``) around plain Dense layers whose weights are already quantized."""

import h5py
import numpy as np

import rtlgen
from conftest import check_rtl, shared_model


def _fpq(x, k, b, i, f_extra=0):
    """The proxy quantizer in float64, TRN and WRAP, written from its definition: keep ``b`` bits
    of which ``i`` are integer bits (sign included when ``k``); no bits: zero."""
    k, b, i = (np.broadcast_to(a.astype(np.int64).reshape(-1), x.shape[1:]) for a in (k, b, i))
    frac = b - i
    m = np.floor(x * 2.0**frac)
    span = 2.0**b
    m = np.mod(m + np.where(k == 1, span / 2, 0), span) - np.where(k == 1, span / 2, 0)
    return np.where(b > 0, m * 2.0**-frac, 0.0)


def _reference(path, x):
    with h5py.File(path, "r") as f:
        g = f["model_weights"]

        def arrays(layer, *names):
            grp = g[layer]
            return [np.array(grp[n]).astype(np.float64) for n in (v.decode() if isinstance(v, bytes) else v for v in grp.attrs["weight_names"])
                    if any(n.split("/")[-1].startswith(m) for m in names)][: len(names)]  # fmt: skip

        def q(layer, v):
            kk, bb, ii = (np.array(g[layer][f"{n}:0"]) for n in ("keep_negative", "bits", "integers"))
            return _fpq(v, kk, bb, ii)

        h = q("inp_q_quantizer", x.astype(np.float64))
        for n in (1, 2, 3, 4):
            w, b = arrays(f"dense_{n}", "kernel", "bias")
            h = q(f"dense_{n}_quantizer", h @ w + b)
            if n < 4:
                h = q(f"dense_{n}_relu_quantizer", np.maximum(h, 0))
    return h


def test_hgq_proxy_jet_classifier_exact(tmp_path):
    path = shared_model("hls4ml-example-models", "keras", "hgq_jet_classifier.h5")
    design = rtlgen.convert(path)
    assert [n.kind for n in design.graph.nodes][:3] == ["Requant", "Dense", "Requant"]
    x = np.random.default_rng(0).uniform(-20, 20, (5000, 16)).astype(np.float32)
    # Inputs on the configured input grid (fixed<16,6>), so the proxy's own input quantizer sees
    # the same values in both.
    x = design.input_tensor.type.to_float(design.quantize_input(x))
    assert np.array_equal(design.predict(x), _reference(path, x))
    check_rtl(design, x[:200], work_dir=tmp_path)
