"""The compression workflow: each building block on tiny models, the spec-driven run with its
resume, golden == HGQ2 predict and RTL == golden on the final student; the two examples in full
as slow tests."""

import json
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")
pytest.importorskip("hgq")

import rtlgen  # noqa: E402
from conftest import check_rtl  # noqa: E402
from rtlgen import workflow as wf  # noqa: E402
from rtlgen.errors import ConfigError  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 10)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64) + 2 * (x[:, 2] > 0.5)
    return x, y


def _mlp(hidden, name, seed=0, **kw):
    keras.utils.set_random_seed(seed)
    return wf.build(wf.check_layers(name, [{"dense": h, **kw} for h in hidden]), (10,), 4, name=name)


@pytest.fixture(scope="module")
def teacher(data):
    return wf.train(_mlp([32], "teacher"), *data, epochs=4, batch_size=64)


def test_teacher_learns(teacher, data):
    s = wf.summary(teacher, *data)
    assert s["parameters"] == teacher.count_params() == 10 * 32 + 32 + 32 * 4 + 4
    assert s["accuracy"] > 0.6 and s["bits"] == 32.0 and s["layers"] == 2


def test_distillation_moves_the_student_towards_the_teacher(teacher, data):
    """Distilling with all the weight on the teacher (alpha = 0) makes the student's logits
    closer to the teacher's than training on the labels does."""
    x, y = data
    t = teacher.predict(x, verbose=0)
    distilled = wf.distill(teacher, _mlp([6], "s1", seed=5), x, y, temperature=2.0, alpha=0.0, epochs=6, batch_size=64)
    plain = wf.train(_mlp([6], "s2", seed=5), x, y, epochs=6, batch_size=64)

    def agree(m):
        return np.mean(np.argmax(m.predict(x, verbose=0), 1) == np.argmax(t, 1))

    assert agree(distilled) > agree(plain)


def test_distillation_arguments_checked(teacher, data):
    with pytest.raises(ConfigError, match=r"^distillation weight alpha must be between 0 and 1, not 1.5$"):
        wf.distill(teacher, _mlp([4], "s"), *data, alpha=1.5, epochs=1)


def test_polynomial_schedule():
    f = [wf.polynomial_sparsity(s, final=0.5, begin=10, end=20) for s in (0, 10, 15, 20, 30)]
    assert f[0] == f[1] == 0.0 and f[3] == f[4] == 0.5 and 0.0 < f[2] < 0.5
    assert f[2] == pytest.approx(0.5 * (1 - 0.5**3))


def test_pruning_reaches_the_target_sparsity_exactly(teacher, data):
    student = wf.distill(teacher, _mlp([8], "s"), *data, epochs=2, batch_size=64)
    wf.prune(student, *data, sparsity=0.5, epochs=3, batch_size=64, frequency=2, teacher=teacher)
    for layer in student.layers:
        if getattr(layer, "kernel", None) is not None:
            k = layer.kernel.numpy()
            assert np.count_nonzero(k == 0) == round(0.5 * k.size)
    assert wf.summary(student)["sparsity"] == 0.5


@pytest.mark.parametrize("mode", ["uniform", "hgq"])
def test_quantization_keeps_zeros_and_golden_equals_hgq2(teacher, data, mode, tmp_path):
    x, y = data
    student = wf.prune(_mlp([8], "s", bn=True), x, y, sparsity=0.25, epochs=2, batch_size=64)
    q = wf.quantize(student, x, y, mode=mode, bits=8, epochs=2, batch_size=64, teacher=teacher)
    s = wf.summary(q, x, y)
    assert s["sparsity"] >= 0.25
    if mode == "uniform":
        assert s["bits"] == 8.0
    path = tmp_path / "q.keras"
    q.save(path)
    design = rtlgen.convert(path)
    assert np.array_equal(design.predict(x).astype(np.float32), q.predict(x, verbose=0))


def test_quantize_mode_checked(data):
    with pytest.raises(ConfigError, match=r"^quantization mode must be 'hgq' or 'uniform', not 'ternary'$"):
        wf.quantize(_mlp([4], "s"), *data, mode="ternary", epochs=0)


def _cnn_student(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 4, (128, 8, 8, 3)).astype(np.float32)
    y = (x[:, 2:6, 2:6, 0].mean((1, 2)) > 2).astype(np.int64)
    keras.utils.set_random_seed(0)
    layers = wf.check_layers("student.layers", [{"conv2d": 4, "bn": True}, {"maxpool": 2}, {"conv2d": 4, "bn": True}])
    m = wf.train(wf.build(layers, (8, 8, 3), 2, name="cnn"), x, y, epochs=1, batch_size=32)
    q = wf.quantize(wf.prune(m, x, y, sparsity=0.5, epochs=1, batch_size=32), x, y, epochs=1, batch_size=32)
    path = tmp_path / "cnn.keras"
    q.save(path)
    design = rtlgen.convert(path, {"IOType": "io_stream"})
    assert np.array_equal(design.predict(x).astype(np.float32), q.predict(x, verbose=0))
    return design, x


def test_cnn_student_golden_equals_hgq2(tmp_path):
    """A small Conv + BN + max-pool student through pruning and QAT: golden == HGQ2 exactly."""
    _cnn_student(tmp_path)


@pytest.mark.slow
def test_cnn_student_rtl_equals_golden(tmp_path):
    design, x = _cnn_student(tmp_path)
    check_rtl(design, x[:4], work_dir=tmp_path / "sim", stall="none")


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        ([], r"^workflow spec key 'student.layers' must be a non-empty list of layers, e.g. \[\{dense: 15\}\]$"),
        ([{"dense": 0}], r"^workflow spec key 'student.layers\[0\].dense' must be a positive integer, not 0$"),
        ([{"lstm": 4}], r"^workflow spec key 'student.layers\[0\]' must name one layer kind of dense, conv1d, conv2d, maxpool, flatten, dropout, not \{'lstm': 4\}$"),
        ([{"dense": 4, "bias": False}], r"^workflow spec key 'student.layers\[0\]' \(dense\) has unknown option\(s\) bias; allowed: bn$"),
    ],
)  # fmt: skip
def test_layer_list_errors(layers, message):
    with pytest.raises(ConfigError, match=message):
        wf.check_layers("student.layers", layers)


GENERATOR = '''
import numpy as np

def generate(n, rng):
    x = rng.normal(size=(n, 8)).astype(np.float32)
    return x, (x[:, 0] + x[:, 1] > 0).astype(int) + 2 * (x[:, 2] > 0.5)
'''

SPEC = """
name: tiny
seed: 3
data: {generator: gen.py, train: 400, test: 100}
teacher: {layers: [{dense: 16}], epochs: 2, batch_size: 64}
student: {layers: [{dense: 5}], epochs: 2, batch_size: 64}
distill: {temperature: 3, alpha: 0.2}
prune: {sparsity: 0.25, epochs: 1}
quantize: {mode: uniform, bits: 6, epochs: 1}
build: {part: xc7a35t, io_type: io_parallel, vectors: 10}
synth: {enabled: false}
assess: {samples: 20}
reference: {student_params: 69, accuracy: 90.0}
"""


def _spec(tmp_path, text=SPEC):
    (tmp_path / "gen.py").write_text(GENERATOR)
    (tmp_path / "spec.yml").write_text(text)
    return tmp_path / "spec.yml"


def test_run_writes_the_row_and_resumes(tmp_path):
    spec = _spec(tmp_path)
    out = tmp_path / "out"
    res = wf.run(spec, out, progress=False, echo=None)
    row = res["row"]
    assert row["student_params"] == 8 * 5 + 5 + 5 * 4 + 4 and row["teacher_params"] == 8 * 16 + 16 + 16 * 4 + 4
    assert row["bits"] == 6.0 and row["sparsity"] >= 25 and row["part"] == "xc7a35t" and row["layers"] == 2
    assert res["hardware"]["golden_equals_keras"] == "100 of 100" and res["hardware"]["rtl_bit_exact"] == "20 of 20"
    assert res["distillation"]["baseline_accuracy"] is not None
    md = (out / "results.md").read_text()
    assert "| rtlgen: tiny |" in md and "| reference |" in md and "latency (cycles)" in md
    assert json.loads((out / "results.json").read_text())["row"] == row
    assert "<table>" in (out / "report.html").read_text()
    # A second run resumes every stage from its saved result.
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "models").iterdir()}
    res2 = wf.run(spec, out, progress=False, echo=None)
    assert res2["row"] == row
    assert {p.name: p.stat().st_mtime_ns for p in (out / "models").iterdir()} == stamps
    # Changing the quantization reruns it and what follows, not the stages before it.
    _spec(tmp_path, SPEC.replace("bits: 6", "bits: 5").replace("samples: 20}", "samples: 20, simulate: false}"))
    res3 = wf.run(spec, out, progress=False, echo=None)
    assert res3["row"]["bits"] == 5.0 and res3["hardware"]["rtl_bit_exact"] is None
    after = {p.name: p.stat().st_mtime_ns for p in (out / "models").iterdir()}
    assert after["teacher.keras"] == stamps["teacher.keras"] and after["prune.keras"] == stamps["prune.keras"]
    assert after["quantize.keras"] != stamps["quantize.keras"]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("quantize: {mode: uniform, bits: 6, epochs: 1}", "quantize: {mode: binary}"),
         r"^workflow spec key 'quantize.mode' must be 'uniform' \(fixed widths\) or 'hgq' \(per-weight widths\), not 'binary'$"),
        (("build: {part: xc7a35t,", "build: {"),
         r"^workflow spec key 'build' needs a board \(rtlgen boards lists them\) or a part \(e.g. part: xc7a35t\)$"),
        (("prune: {sparsity: 0.25,", "prune: {sparsity: 1.5,"),
         r"^workflow spec key 'prune.sparsity' must be a number >= 0 and <= 0.99, not 1.5$"),
        (("seed: 3", "seed: 3\nteachers: {}"),
         r"^workflow spec has unknown section\(s\) teachers; allowed: .*$"),
        (("generator: gen.py", "generator: missing.py"), r"^workflow spec key 'data.generator': '.*missing.py' does not exist$"),
    ],
)  # fmt: skip
def test_spec_errors(tmp_path, edit, message):
    spec = _spec(tmp_path, SPEC.replace(*edit))
    with pytest.raises(ConfigError, match=message):
        wf.load_spec(spec)


def test_cli_error_is_one_line(tmp_path, capsys):
    from rtlgen.cli import main

    spec = _spec(tmp_path, SPEC.replace("quantize: {mode: uniform, bits: 6, epochs: 1}", "quantize: {mode: binary}"))
    assert main(["workflow", str(spec), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: workflow spec key 'quantize.mode'")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
@pytest.mark.heavy
@pytest.mark.parametrize("example", ["pulse-shape-1d", "trap-images-2d"])
def test_example_end_to_end(example, tmp_path):
    res = wf.run(EXAMPLES / example / "spec.yml", tmp_path / "out", progress=False, echo=None)
    h = res["hardware"]
    n = int(h["golden_equals_keras"].split()[-1])
    assert h["golden_equals_keras"] == f"{n} of {n}"
    m = res["stages"]["assess"]["assessment"]["samples"]
    assert h["rtl_bit_exact"] == f"{m} of {m}"
    assert res["row"]["lut"] is not None and res["row"]["accuracy"] > 60  # well above chance (2 or 4 classes)
