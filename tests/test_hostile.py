"""Broken and hostile inputs: each ends in one ``error:`` line naming what is wrong and how to fix
it, exit status 2, no traceback, and nothing written (neither the output directory nor anything
outside the model's folder)."""

import pickle
import zipfile

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from rtlgen.cli import main
from rtlgen.examples import qonnx_mlp


def _mlp(path, w=None, b=None, *, in_shape=(1, 4), name="net", extra_nodes=(), out=None):
    """A float Gemm network (4 inputs, 3 outputs) with the given weight and bias."""
    w = np.ones((4, 3)) * 0.25 if w is None else np.asarray(w)
    b = np.zeros(w.shape[1]) if b is None else np.asarray(b)
    inits = [numpy_helper.from_array(w.astype(np.float32), "w"), numpy_helper.from_array(b.astype(np.float32), "b")]
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["h"], name="fc1"), *extra_nodes]
    g = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))],
                          [helper.make_tensor_value_info(out or "h", TensorProto.FLOAT, None)], initializer=inits)  # fmt: skip
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


def _fails(capsys, args, pattern, *, absent=()):
    """``rtlgen ARGS`` exits with 2 and one line on stderr containing ``pattern``."""
    rc = main([str(a) for a in args])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert rc == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    assert pattern in lines[0], lines[0]
    for p in absent:
        assert not p.exists(), f"{p} was written"
    return lines[0]


@pytest.fixture
def built(tmp_path, capsys):
    """A built design, for the sim cases."""
    model = tmp_path / "small.onnx"
    onnx.save(qonnx_mlp((4, 3), seed=1, name="small"), model)
    out = tmp_path / "out"
    assert main(["build", str(model), "-o", str(out), "--vectors", "10"]) == 0
    capsys.readouterr()
    return out


# -- non-finite and out-of-range parameters ---------------------------------------------------------


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_weight(tmp_path, capsys, value):
    w = np.ones((4, 3))
    w[2, 1] = value
    model = _mlp(tmp_path / "m.onnx", w)
    _fails(capsys, ["build", model, "-o", tmp_path / "o"],
           "node 'fc1' (Gemm): 1 of its 12 weight values are not finite (NaN or infinity); "
           "the model's parameters must be finite numbers", absent=[tmp_path / "o"])  # fmt: skip


def test_non_finite_bias(tmp_path, capsys):
    model = _mlp(tmp_path / "m.onnx", b=[0.0, np.nan, np.inf])
    _fails(capsys, ["build", model, "-o", tmp_path / "o"], "2 of its 3 bias values are not finite", absent=[tmp_path / "o"])


def test_huge_weights_are_reported(tmp_path, capsys):
    w = np.ones((4, 3)) * 0.5
    w[0, 0], w[1, 2] = 1e30, -3e5
    model = _mlp(tmp_path / "m.onnx", w)
    assert main(["build", str(model), "-o", str(tmp_path / "o"), "--vectors", "5"]) == 0
    out = capsys.readouterr().out
    assert ("note: fc1: 2 of 12 weight values lie outside fixed<16,6> (range [-32, 31.999]) and were wrapped; "
            "they span [-300000, 1e+30], which needs fixed<111,101>") in out  # fmt: skip


def test_huge_weights_refused_with_strict(tmp_path, capsys):
    w = np.ones((4, 3)) * 0.5
    w[0, 0] = 100.0
    model = _mlp(tmp_path / "m.onnx", w)
    _fails(capsys, ["build", model, "-o", tmp_path / "o", "--strict"],
           "node 'fc1': 1 of 12 weight values lie outside fixed<16,6> (range [-32, 31.999]) and were wrapped; "
           "they span [0.5, 100], which needs fixed<18,8>; give the layer a wider type in the configuration "
           "(LayerName.fc1.Precision) or build without --strict", absent=[tmp_path / "o"])  # fmt: skip


def test_bias_out_of_range_refused_with_strict(tmp_path, capsys):
    model = _mlp(tmp_path / "m.onnx", b=[0.0, 40.0, -50.0])
    _fails(capsys, ["build", model, "-o", tmp_path / "o", "--strict"], "2 of 3 bias values lie outside fixed<16,6>",
           absent=[tmp_path / "o"])  # fmt: skip


def test_saturating_type_says_saturated(tmp_path, capsys):
    model = _mlp(tmp_path / "m.onnx", b=[0.0, 40.0, 0.0])
    cfg = tmp_path / "c.yml"
    cfg.write_text("LayerName:\n  fc1:\n    Precision: {bias: 'fixed<16,6,RND,SAT>'}\n")
    _fails(capsys, ["build", model, "-o", tmp_path / "o", "--strict", "--config", cfg], "and were saturated")


def test_strict_accepts_parameters_in_range(tmp_path, capsys):
    model = _mlp(tmp_path / "m.onnx")
    assert main(["build", str(model), "-o", str(tmp_path / "o"), "--vectors", "5", "--strict"]) == 0


# -- command-line values and --vectors files -------------------------------------------------------


@pytest.mark.parametrize("n", [-1, 0])
def test_vectors_not_positive(tmp_path, capsys, n):
    model = _mlp(tmp_path / "m.onnx")
    _fails(capsys, ["build", model, "-o", tmp_path / "o", "--vectors", n], f"--vectors must be a positive integer, not {n}",
           absent=[tmp_path / "o"])  # fmt: skip


def test_reuse_not_positive(tmp_path, capsys):
    model = _mlp(tmp_path / "m.onnx")
    _fails(capsys, ["build", model, "-o", tmp_path / "o", "--reuse", "0"], "--reuse must be a positive integer, not 0")


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_in_vectors_file(built, tmp_path, capsys, value):
    x = np.zeros((3, 4), dtype=np.float32)
    x[1, 2] = value
    np.save(tmp_path / "x.npy", x)
    _fails(capsys, ["sim", built, "--vectors", tmp_path / "x.npy"],
           f"vectors file {str(tmp_path / 'x.npy')!r}: 1 value is not finite (NaN or infinity), first in sample 1; "
           "give finite network inputs", absent=[built / "tb" / "x.npy"])  # fmt: skip


def test_pickled_vectors_file(built, tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    _fails(capsys, ["sim", built, "--vectors", tmp_path / "x.npy"], "cannot be read as a .npy array")


def test_pickle_renamed_npy(built, tmp_path, capsys):
    (tmp_path / "x.npy").write_bytes(pickle.dumps([[1.0, 2.0, 3.0, 4.0]]))
    _fails(capsys, ["sim", built, "--vectors", tmp_path / "x.npy"], "cannot be read as a .npy array")


def test_vectors_of_wrong_width(built, tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((3, 5), dtype=np.float32))
    _fails(capsys, ["sim", built, "--vectors", tmp_path / "x.npy"], "vectors file")


def test_vectors_of_strings(built, tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.array([["a", "b", "c", "d"]]))
    _fails(capsys, ["sim", built, "--vectors", tmp_path / "x.npy"], "vectors file")


def test_scalar_vectors_file(built, tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.float32(1.0))
    _fails(capsys, ["sim", built, "--vectors", tmp_path / "x.npy"], "vectors file")


def test_empty_vectors_file(built, tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((0, 4), dtype=np.float32))
    _fails(capsys, ["sim", built, "--vectors", tmp_path / "x.npy"], "vectors file")


def test_integer_vectors_out_of_the_input_type(built, tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.full((2, 4), 1 << 40, dtype=np.int64))
    _fails(capsys, ["sim", built, "--vectors", tmp_path / "x.npy"], "vectors file")


def test_missing_vectors_file(built, tmp_path, capsys):
    _fails(capsys, ["sim", built, "--vectors", tmp_path / "none.npy"], "cannot be read")


def test_sim_negative_random(built, capsys):
    _fails(capsys, ["sim", built, "--random", "-5"], "--random must be a positive integer, not -5")


# -- shapes -----------------------------------------------------------------------------------------


def test_symbolic_non_batch_dimension(tmp_path, capsys):
    model = _mlp(tmp_path / "m.onnx", in_shape=("N", "features"))
    _fails(capsys, ["build", model, "-o", tmp_path / "o"],
           "input 'x' has shape [N, features]: every dimension but the first (the batch) must be a fixed size",
           absent=[tmp_path / "o"])  # fmt: skip


def test_negative_declared_dimension(tmp_path, capsys):
    model = _mlp(tmp_path / "m.onnx", in_shape=(1, -4))
    _fails(capsys, ["build", model, "-o", tmp_path / "o"], "input 'x'", absent=[tmp_path / "o"])


def test_huge_declared_shape(tmp_path, capsys):
    relu = helper.make_node("Relu", ["x"], ["y"], name="r")
    g = helper.make_graph([relu], "huge", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1 << 20, 1 << 20])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])  # fmt: skip
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), tmp_path / "m.onnx")
    _fails(capsys, ["build", tmp_path / "m.onnx", "-o", tmp_path / "o"], "input 'x' has", absent=[tmp_path / "o"])


def test_weights_that_do_not_match_the_input(tmp_path, capsys):
    model = _mlp(tmp_path / "m.onnx", in_shape=(1, 5))
    _fails(capsys, ["build", model, "-o", tmp_path / "o"], "fc1", absent=[tmp_path / "o"])


# -- graph structure --------------------------------------------------------------------------------


def _relus(tmp_path, n):
    nodes = [helper.make_node("Relu", ["h" if i == 0 else f"r{i - 1}"], [f"r{i}"], name=f"relu{i}") for i in range(n)]
    return _mlp(tmp_path / "m.onnx", extra_nodes=nodes, out=f"r{n - 1}")


def test_deep_graph_builds(tmp_path, capsys):
    rc = main(["build", str(_relus(tmp_path, 60)), "-o", str(tmp_path / "o"), "--vectors", "2"])
    assert rc == 0, capsys.readouterr().err


def test_too_deep_graph(tmp_path, capsys):
    _fails(capsys, ["build", _relus(tmp_path, 5000), "-o", tmp_path / "o", "--force"],
           "the ONNX graph has 5,001 nodes; rtlgen builds networks of up to 1,500",
           absent=[tmp_path / "o"])  # fmt: skip


def test_cycle(tmp_path, capsys):
    nodes = [helper.make_node("Add", ["h", "z"], ["y"], name="add"), helper.make_node("Relu", ["y"], ["z"], name="loop")]
    model = _mlp(tmp_path / "m.onnx", extra_nodes=nodes, out="z")
    _fails(capsys, ["build", model, "-o", tmp_path / "o"], "ONNX model has a cycle among its nodes", absent=[tmp_path / "o"])


def test_dangling_input(tmp_path, capsys):
    nodes = [helper.make_node("Add", ["h", "nowhere"], ["y"], name="add")]
    model = _mlp(tmp_path / "m.onnx", extra_nodes=nodes, out="y")
    _fails(capsys, ["build", model, "-o", tmp_path / "o"], "nowhere", absent=[tmp_path / "o"])


def test_output_produced_twice(tmp_path, capsys):
    nodes = [helper.make_node("Relu", ["h"], ["y"], name="a"), helper.make_node("Relu", ["h"], ["y"], name="b")]
    model = _mlp(tmp_path / "m.onnx", extra_nodes=nodes, out="y")
    _fails(capsys, ["build", model, "-o", tmp_path / "o"], "'y'", absent=[tmp_path / "o"])


# -- files that are not what they claim -------------------------------------------------------------


def test_empty_onnx_file(tmp_path, capsys):
    (tmp_path / "m.onnx").write_bytes(b"")
    _fails(capsys, ["build", tmp_path / "m.onnx", "-o", tmp_path / "o"], "m.onnx", absent=[tmp_path / "o"])


def test_truncated_onnx_file(tmp_path, capsys):
    data = _mlp(tmp_path / "full.onnx").read_bytes()
    (tmp_path / "m.onnx").write_bytes(data[: len(data) // 2])
    _fails(capsys, ["build", tmp_path / "m.onnx", "-o", tmp_path / "o"], "is not a readable ONNX model", absent=[tmp_path / "o"])


def test_pickle_named_onnx(tmp_path, capsys):
    (tmp_path / "m.onnx").write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    _fails(capsys, ["build", tmp_path / "m.onnx", "-o", tmp_path / "o"], "m.onnx", absent=[tmp_path / "o"])


def test_pickle_named_h5(tmp_path, capsys):
    (tmp_path / "m.h5").write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    _fails(capsys, ["build", tmp_path / "m.h5", "-o", tmp_path / "o"], "is not a readable Keras model", absent=[tmp_path / "o"])


def test_pickle_named_keras(tmp_path, capsys):
    (tmp_path / "m.keras").write_bytes(pickle.dumps(object))
    _fails(capsys, ["build", tmp_path / "m.keras", "-o", tmp_path / "o"], "is not a readable Keras model", absent=[tmp_path / "o"])


def test_directory_as_model(tmp_path, capsys):
    (tmp_path / "d.onnx").mkdir()
    _fails(capsys, ["build", tmp_path / "d.onnx", "-o", tmp_path / "o"], "is a directory", absent=[tmp_path / "o"])


def test_output_is_a_file(tmp_path, capsys):
    model = _mlp(tmp_path / "m.onnx")
    (tmp_path / "o").write_text("keep me")
    _fails(capsys, ["build", model, "-o", tmp_path / "o"], "exists and is not a directory")
    assert (tmp_path / "o").read_text() == "keep me"


def _keras_zip(path, members):
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


@pytest.mark.parametrize("member", ["../../escaped.txt", "/tmp/rtlgen-escaped.txt", "..\\..\\escaped.txt"])
def test_archive_member_outside_the_folder(tmp_path, capsys, member):
    """Members are read by name, never extracted: nothing lands outside (or inside) the folder."""
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    model = _keras_zip(sub / "m.keras", {member: "owned", "config.json": "{}"})
    _fails(capsys, ["build", model, "-o", tmp_path / "o"], "m.keras", absent=[tmp_path / "o", tmp_path / "escaped.txt"])
    assert sorted(p.name for p in sub.iterdir()) == ["m.keras"]


def test_archive_without_config(tmp_path, capsys):
    model = _keras_zip(tmp_path / "m.keras", {"model.weights.h5": b"\x89HDF"})
    _fails(capsys, ["build", model, "-o", tmp_path / "o"], "is not a Keras 3 archive (no config.json)")


def test_archive_config_not_json(tmp_path, capsys):
    model = _keras_zip(tmp_path / "m.keras", {"config.json": "{not json"})
    _fails(capsys, ["build", model, "-o", tmp_path / "o"], "is not a readable Keras model")


def _external_weight(tmp_path, location):
    """An ONNX model whose weight lives in an external file at ``location``."""
    model = onnx.load(_mlp(tmp_path / "base.onnx"))
    w = next(t for t in model.graph.initializer if t.name == "w")
    w.data_location = TensorProto.EXTERNAL
    w.ClearField("raw_data")
    w.ClearField("float_data")
    for key, value in (("location", location), ("offset", "0"), ("length", "48")):
        entry = w.external_data.add()
        entry.key, entry.value = key, value
    path = tmp_path / "sub" / "m.onnx"
    path.parent.mkdir()
    path.write_bytes(model.SerializeToString())
    return path


@pytest.mark.parametrize("location", ["../secret.bin", "/etc/passwd", "sub/../../secret.bin"])
def test_external_data_outside_the_folder(tmp_path, capsys, location):
    (tmp_path / "secret.bin").write_bytes(np.ones(12, dtype=np.float32).tobytes())
    model = _external_weight(tmp_path, location)
    _fails(capsys, ["build", model, "-o", tmp_path / "o"], "external data", absent=[tmp_path / "o"])


def test_external_data_missing(tmp_path, capsys):
    model = _external_weight(tmp_path, "weights.bin")
    _fails(capsys, ["build", model, "-o", tmp_path / "o"], "external data", absent=[tmp_path / "o"])


# -- configuration files ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Model: !!python/object/apply:os.system ['touch owned']\n",
        "Model: !!python/name:os.system\n",
        "Model: !!python/object/new:subprocess.Popen [['touch', 'owned']]\n",
    ],
)
def test_yaml_tags_that_construct_objects(tmp_path, capsys, text, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = _mlp(tmp_path / "m.onnx")
    (tmp_path / "c.yml").write_text(text)
    _fails(capsys, ["build", model, "-o", tmp_path / "o", "--config", tmp_path / "c.yml"], "is not valid YAML",
           absent=[tmp_path / "o", tmp_path / "owned"])  # fmt: skip


def test_yaml_not_a_mapping(tmp_path, capsys):
    model = _mlp(tmp_path / "m.onnx")
    (tmp_path / "c.yml").write_text("- Model\n- IOType\n")
    _fails(capsys, ["build", model, "-o", tmp_path / "o", "--config", tmp_path / "c.yml"], "configuration must be a mapping")


def test_yaml_billion_laughs(tmp_path, capsys):
    model = _mlp(tmp_path / "m.onnx")
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"] + [f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}] " for i in range(8)]
    (tmp_path / "c.yml").write_text("\n".join(lines) + "\n")
    _fails(capsys, ["build", model, "-o", tmp_path / "o", "--config", tmp_path / "c.yml"], "configuration key 'a' is unknown")


def test_bad_precision(tmp_path, capsys):
    model = _mlp(tmp_path / "m.onnx")
    (tmp_path / "c.yml").write_text("Model:\n  Precision: fixed<0,0>\n")
    _fails(capsys, ["build", model, "-o", tmp_path / "o", "--config", tmp_path / "c.yml"], "'Model.Precision': Fixed-point width must be a positive integer, not 0")


def test_bad_io_type(tmp_path, capsys):
    model = _mlp(tmp_path / "m.onnx")
    (tmp_path / "c.yml").write_text("IOType: io_serial\n")
    _fails(capsys, ["build", model, "-o", tmp_path / "o", "--config", tmp_path / "c.yml"], "'IOType' must be one of")


def test_unknown_board(tmp_path, capsys):
    model = _mlp(tmp_path / "m.onnx")
    _fails(capsys, ["build", model, "-o", tmp_path / "o", "--board", "nosuchboard"], "nosuchboard", absent=[tmp_path / "o"])


# -- runaway designs --------------------------------------------------------------------------------


def _conv1d(path, length=100, cin=7, filters=32, taps=40, layers=3):
    rng = np.random.default_rng(0)
    nodes, inits, cur, c = [], [], "x", cin
    for i in range(layers):
        inits.append(numpy_helper.from_array(rng.normal(0, 0.1, (filters, c, taps)).astype(np.float32), f"w{i}"))
        nodes.append(helper.make_node("Conv", [cur, f"w{i}"], [f"c{i}"], name=f"conv{i}", pads=[19, 20], kernel_shape=[taps]))
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"], name=f"relu{i}"))
        cur, c = f"r{i}", filters
    g = helper.make_graph(nodes, "conv1d", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, cin, length])],
                          [helper.make_tensor_value_info(cur, TensorProto.FLOAT, None)], initializer=inits)  # fmt: skip
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


def test_size_guard_names_layer_and_settings(tmp_path, capsys):
    model = _conv1d(tmp_path / "m.onnx")
    line = _fails(capsys, ["build", model, "-o", tmp_path / "o"], "layer 'conv", absent=[tmp_path / "o"])
    assert "at reuse factor 1 in io_parallel" in line and "the largest xc7/xcup part (xcvu13p" in line
    assert "settings that fit: IOType io_stream with reuse factor" in line and "--force" in line
