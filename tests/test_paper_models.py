"""The HGQ2 jet taggers published with the da4ml paper (../shared/models/da4ml-ae/jsc): a Keras 3
.h5 whose layers carry registered names (``hgq>QBatchNormDense``) and a .keras with
``QEinsumDenseBatchnorm``; golden == HGQ2's predict exactly, RTL == golden."""

import numpy as np
import pytest

import rtlgen
from conftest import check_rtl, shared_model

FILES = ["jsc_openml_75.86.h5", "jsc_cernbox_75.16.keras"]


@pytest.mark.parametrize("name", FILES)
def test_paper_model_golden_equals_hgq(name):
    path = shared_model("da4ml-ae", "jsc", name)
    keras = pytest.importorskip("keras")
    pytest.importorskip("hgq")
    design = rtlgen.convert(path)
    model = keras.models.load_model(path, compile=False)
    x = np.random.default_rng(0).normal(0, 1.5, (20000, 16)).astype(np.float32)
    ref = model.predict(x, batch_size=20000, verbose=0)
    assert np.array_equal(design.predict(x).astype(np.float32), ref)


@pytest.mark.parametrize("name", [FILES[0], pytest.param(FILES[1], marks=pytest.mark.slow)])
def test_paper_model_rtl_equals_golden(tmp_path, name):
    design = rtlgen.convert(shared_model("da4ml-ae", "jsc", name))
    x = np.random.default_rng(1).normal(0, 1.5, (200, 16)).astype(np.float32)
    check_rtl(design, x, work_dir=tmp_path)


def test_unsupported_einsum_equation_is_named(tmp_path):
    import json
    import zipfile

    src = shared_model("da4ml-ae", "jsc", FILES[1])
    dst = tmp_path / "bad.keras"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "config.json":
                cfg = json.loads(data)
                cfg["config"]["layers"][1]["config"]["equation"] = "bc,cde->bde"
                data = json.dumps(cfg).encode()
            zout.writestr(item, data)
    with pytest.raises(rtlgen.UnsupportedOpError, match=r"^node 'dense_1' \(QEinsumDenseBatchnorm\): einsum equation 'bc,cde->bde' is not supported; the dense form \(e\.g\. 'bc,cC->bC'\) is$"):
        rtlgen.convert(dst)
