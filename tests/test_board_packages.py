"""Board packages from the command line: what ``rtlgen build --board`` and ``rtlgen deploy`` write,
and the designs they refuse (one line, exit status 2, nothing written)."""

import json
import shutil

import numpy as np
import pytest

import rtlgen
from rtlgen.cli import main
from rtlgen.examples import qonnx_mlp

COMMON = {"README.md", "package.json", "project.tcl", "build.sh", "ip", "tb", "sw"}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The Done-when commands: build --example jet-tagger --board pynq-z2 / zcu102 / arty-a7-100t."""
    root = tmp_path_factory.mktemp("pkgs")
    outs = {}
    for board in ("pynq-z2", "zcu102", "arty-a7-100t"):
        out = root / board
        assert main(["build", "--example", "jet-tagger", "--board", board, "-o", str(out), "--vectors", "200"]) == 0
        outs[board] = out
    return outs


def _names(d):
    return {p.name for p in d.iterdir()}


@pytest.mark.parametrize("board", ["pynq-z2", "zcu102", "arty-a7-100t"])
def test_build_with_board_writes_a_complete_package(built, board):
    pkg = built[board] / "boards" / board
    names = _names(pkg)
    if board == "arty-a7-100t":
        assert names == COMMON | {"constraints.xdc"}
    else:
        assert names == COMMON | {"driver"}
        assert _names(pkg / "driver") == {"rtlgen_net.py", "run.py", "tdata.py", "network.json", "vectors.npz"}
        with np.load(pkg / "driver" / "vectors.npz") as f, np.load(built[board] / "tb" / "axis_vectors.npz") as g:
            assert np.array_equal(f["x"], g["x"]) and np.array_equal(f["y"], g["y"]) and len(f["x"]) == 200
    assert _names(pkg / "ip") == {"component.xml", "hdl", "package_ip.tcl", "synth_ooc.tcl"}
    assert _names(pkg / "ip" / "hdl") == {"jet_tagger_axis_dma.v", "jet_tagger.v"}
    assert (pkg / "ip" / "hdl" / "jet_tagger.v").read_text() == (built[board] / "rtl" / "jet_tagger.v").read_text()
    assert _names(pkg / "sw") == {"main.c", "rtlgen_net.h", "rtlgen_vectors.h", "Makefile", "vitis_build.py", "xsct_build.tcl", "run_jtag.tcl"}
    assert _names(pkg / "tb") >= {"test_axis.py", "test_runner.py", "tdata.py", "axis.json", "axis_vectors.npz"}
    assert (pkg / "build.sh").stat().st_mode & 0o111
    pl = json.loads((pkg / "package.json").read_text())
    latency = json.loads((built[board] / "report.json").read_text())["latency_cycles"]
    assert pl["board"] == board and pl["toplevel"] == "jet_tagger_axis_dma" and pl["latency"] == latency


def test_readme_lists_every_step_in_order(built):
    text = (built["pynq-z2"] / "boards" / "pynq-z2" / "README.md").read_text()
    steps = ["./build.sh", "scp -r deploy driver xilinx@<board>:~/jet_tagger/", "cd /home/xilinx/jet_tagger/driver && python3 run.py",
             "vitis -s vitis_build.py", "xsct xsct_build.tcl", "xsct run_jtag.tcl"]  # fmt: skip
    pos = [text.index(s) for s in steps]
    assert pos == sorted(pos)
    assert "**Not run here:** the Vivado and Vitis steps" in text
    assert "rtlgen: no bitstream was produced" in text and "tul.com.tw:pynq-z2:part0:1.0" in text
    assert "0 mismatching -> PASS" in text and "rtlgen: PASS" in text
    mb = (built["arty-a7-100t"] / "boards" / "arty-a7-100t" / "README.md").read_text()
    assert "python3 run.py" not in mb and "block RAM at 0x80000000" in mb and "115200 baud" in mb


def test_deploy_reproduces_the_package_byte_for_byte(built, tmp_path):
    out = built["zcu102"]
    first = {p.relative_to(out / "boards"): p.read_bytes() for p in (out / "boards").rglob("*") if p.is_file()}
    assert main(["deploy", str(out), "--board", "zcu102"]) == 0
    again = {p.relative_to(out / "boards"): p.read_bytes() for p in (out / "boards").rglob("*") if p.is_file()}
    assert first.keys() == again.keys()
    assert [k for k in first if first[k] != again[k]] == []


def _fails(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    return err[0]


def test_unknown_board_writes_nothing(tmp_path, capsys):
    out = tmp_path / "o"
    msg = _fails(capsys, ["build", "--example", "jet-tagger", "--board", "pynq-z3", "-o", str(out)])
    assert msg.startswith("error: unknown board 'pynq-z3' (did you mean 'pynq-z2'?); known boards are pynq-z1,")
    assert not out.exists()


def test_stream_wider_than_the_dma_is_refused(tmp_path, capsys):
    """200 8-bit inputs in one io_parallel beat: 1600 bits, more than the DMA's 1024."""
    import onnx

    model = tmp_path / "wide.onnx"
    onnx.save(qonnx_mlp((200, 8, 4), name="wide"), str(model))
    out = tmp_path / "o"
    msg = _fails(capsys, ["build", str(model), "--board", "pynq-z2", "-o", str(out)])
    assert msg == (
        "error: design 'wide': s_axis carries 1600 bits per beat (200 lanes of fixed<8,5,RND_CONV,SAT> in 1 byte(s) each), "
        "but the AXI DMA takes at most 1024-bit streams; build with IOType: io_stream (one position per beat) or narrower input types"
    )
    assert not out.exists() and list(tmp_path.iterdir()) == [model]


@pytest.fixture
def tiny_build(tmp_path):
    d = rtlgen.convert(qonnx_mlp((6, 4, 3), name="tiny"))
    return d.write(tmp_path / "tiny", n_vectors=20)


def test_design_that_cannot_fit_the_part_is_refused(tiny_build, capsys):
    """With a Yosys estimate in report.json (rtlgen synth), the part must hold it plus the DMA."""
    rep = json.loads((tiny_build / "report.json").read_text())
    rep["synthesis"] = {"xc7": {"lut": 30000, "ff": 9000, "dsp": 0, "bram": 0, "part": "xc7a100t"}}
    (tiny_build / "report.json").write_text(json.dumps(rep))
    msg = _fails(capsys, ["deploy", str(tiny_build), "--board", "basys3"])
    assert msg.startswith("error: design 'tiny' does not fit the xc7a35t of basys3: it needs 36500 LUTs (30000 for the network + ~6500 for the DMA system; the part has 20800)")
    assert "(Yosys estimate in report.json for xc7a100t); choose a larger board (rtlgen boards)" in msg
    assert not (tiny_build / "boards").exists()
    # The Arty's xc7a100t holds it.
    assert main(["deploy", str(tiny_build), "--board", "arty-a7-100t"]) == 0
    assert (tiny_build / "boards" / "arty-a7-100t" / "README.md").is_file()


def test_build_without_axi_top_is_refused(tiny_build, capsys):
    (tiny_build / "rtl" / "tiny_axis.v").unlink()
    msg = _fails(capsys, ["deploy", str(tiny_build), "--board", "pynq-z2"])
    assert msg == (
        f"error: build {str(tiny_build)!r} has no AXI4-Stream top level (rtl/tiny_axis.v missing): a board package "
        "needs one; rebuild with 'rtlgen build' (this rtlgen writes rtl/tiny_axis.v and ip/)"
    )
    assert not (tiny_build / "boards").exists()


def test_deploy_replaces_a_package_and_keeps_it_on_failure(tiny_build, capsys):
    assert main(["deploy", str(tiny_build), "--board", "pynq-z2"]) == 0
    readme = tiny_build / "boards" / "pynq-z2" / "README.md"
    before = readme.read_text()
    shutil.rmtree(tiny_build / "ip")  # the AXI top's IP is gone: refused, the old package stays
    _fails(capsys, ["deploy", str(tiny_build), "--board", "pynq-z2"])
    assert readme.read_text() == before
    assert sorted(p.name for p in (tiny_build / "boards").iterdir()) == ["pynq-z2"]
