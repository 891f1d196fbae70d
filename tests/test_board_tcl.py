"""The generated Vivado flow (project.tcl) under plain tclsh, Vivado's commands replaced by
recording procedures: cells, DMA widths against the IP's, addresses against the software's, the
board-part choice, and the one-line failures (no bitstream, wrong IP, bad arguments)."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from lxml import etree

import rtlgen
from rtlgen.boards import BOARDS
from rtlgen.boards.hostsim import tcl_dry_run, tcl_list
from rtlgen.examples import example_model
from rtlgen.ipxact import IPXACT_2009_NS
from rtlgen.layers._axis import dma_width

sys.path.insert(0, str(Path(__file__).resolve().parent))
from board_models import streaming_cnn  # noqa: E402

BOARD_SET = ["pynq-z2", "zcu102", "arty-a7-100t"]


@pytest.fixture(scope="module", autouse=True)
def _tclsh():
    if shutil.which("tclsh") is None:
        pytest.skip("tclsh not found (apt-get install tcl)")


@pytest.fixture(scope="module")
def jet(tmp_path_factory):
    root = tmp_path_factory.mktemp("jet")
    return rtlgen.convert(example_model("jet-tagger")).write(root / "out", n_vectors=50, boards=BOARD_SET)


@pytest.fixture(scope="module")
def cnn(tmp_path_factory):
    root = tmp_path_factory.mktemp("cnn")
    d = rtlgen.convert(streaming_cnn(), {"IOType": "io_stream"})
    return d.write(root / "out", n_vectors=50, boards=["pynq-z2", "basys3"])


def _tdata_bits(component: Path) -> dict:
    ns = {"spirit": IPXACT_2009_NS}
    doc = etree.parse(str(component))
    out = {}
    for b in doc.iterfind("spirit:busInterfaces/spirit:busInterface", ns):
        name = b.findtext("spirit:name", namespaces=ns)
        for p in b.iterfind("spirit:parameters/spirit:parameter", ns):
            if p.findtext("spirit:name", namespaces=ns) == "TDATA_NUM_BYTES":
                out[name] = 8 * int(p.findtext("spirit:value", namespaces=ns))
    return out


def _c_define(pkg: Path, name: str) -> int:
    m = re.search(rf"#define {name} (0x[0-9A-F]+|\d+)u", (pkg / "sw" / "rtlgen_net.h").read_text())
    return int(m.group(1), 0)


def _dma_widths_match_ips(out: Path, pkg: Path, run) -> None:
    """DMA widths = the board IP's s_axis/m_axis = the build IP's (component.xml), padded."""
    net = _tdata_bits(out / "ip" / "component.xml")
    ip = _tdata_bits(pkg / "ip" / "component.xml")
    dma = run.cell_properties("axi_dma_0")
    assert ip["s_axis"] == dma_width(net["s_axis"]) == int(dma["CONFIG.c_m_axis_mm2s_tdata_width"])
    assert ip["m_axis"] == dma_width(net["m_axis"]) == int(dma["CONFIG.c_s_axis_s2mm_tdata_width"])
    for side in ("mm2s", "s2mm"):
        assert int(dma[f"CONFIG.c_m_axi_{side}_data_width"]) >= max(32, int(dma[f"CONFIG.c_{'m_axis_mm2s' if side == 'mm2s' else 's_axis_s2mm'}_tdata_width"]))
    assert dma["CONFIG.c_include_sg"] == "0" and dma["CONFIG.c_sg_length_width"] == "26"
    assert ["connect_bd_intf_net", "axi_dma_0/M_AXIS_MM2S", "nn_0/s_axis"] in run.calls
    assert ["connect_bd_intf_net", "nn_0/m_axis", "axi_dma_0/S_AXIS_S2MM"] in run.calls


def _assigned(run, seg: str) -> list[tuple[str, str]]:
    return [(c[c.index("-offset") + 1], c[c.index("-target_address_space") + 1]) for c in run.find("assign_bd_address") if seg in c]


@pytest.mark.parametrize("board", BOARD_SET)
def test_flow_cells_widths_addresses_and_deploy(jet, board):
    pkg = jet / "boards" / board
    b = BOARDS[board]
    run = tcl_dry_run(pkg, work=pkg.parent.parent / "tcl" / board)
    assert run.returncode == 0, run.stderr
    pl = json.loads((pkg / "package.json").read_text())
    cells = run.cells()
    ps = {"ps7": "processing_system7_0", "zynq_us": "zynq_ultra_ps_e_0", "microblaze": "microblaze_0"}[b.processor]
    assert cells["nn_0"] == "rtlgen:nn:jet_tagger_axis_dma:1.0"
    assert cells["axi_dma_0"] == "xilinx.com:ip:axi_dma" and ps in cells and "rst_0" in cells
    assert ["create_project", "-force", pl["project"], str(run.root / "vivado"), "-part", b.part_number] in run.calls
    # The board part, found by its name without the version (board files of another version do).
    assert ["get_board_parts", "-quiet", ":".join(b.board_part.split(":")[:3]) + ":*"] in run.calls
    assert ["set_property", "board_part", b.board_part, "rtlgen_project"] in run.calls
    _dma_widths_match_ips(jet, pkg, run)
    # 128-bit input (16 x 1 byte) is already a DMA width; the 80-bit output is padded to 128.
    assert (pl["net_in_width"], pl["net_out_width"], pl["ip_in_width"], pl["ip_out_width"]) == (128, 80, 128, 128)
    # Addresses: the catalog's, the C header's, the driver's.
    dma_base = f"0x{b.memory_map['dma']:08X}"
    assert _assigned(run, "axi_dma_0/S_AXI_LITE/Reg") == [(dma_base, f"{ps}/Data")]
    assert _c_define(pkg, "RTLGEN_DMA_BASE") == b.memory_map["dma"]
    if b.pynq:
        drv = json.loads((pkg / "driver" / "network.json").read_text())
        assert drv["dma"]["base"] == b.memory_map["dma"] and drv["dma"]["mm2s_width"] == 128
    dma = run.cell_properties("axi_dma_0")
    assert dma["CONFIG.c_addr_width"] == ("64" if b.processor == "zynq_us" else "32")
    # The flow's order: validate, wrapper, bitstream, then the hardware platform.
    names = [c[0] for c in run.calls]
    order = ["create_bd_design", "validate_bd_design", "save_bd_design", "make_wrapper", "launch_runs", "wait_on_run", "write_hw_platform"]
    assert [names.index(n) for n in order] == sorted(names.index(n) for n in order)
    assert ["launch_runs", "impl_1", "-to_step", "write_bitstream", "-jobs", "4"] in run.calls
    xsa = run.find("write_hw_platform")[0]
    assert xsa[1:4] == ["-fixed", "-include_bit", "-force"] and xsa[-1].endswith(f"deploy/{pl['overlay']}.xsa")
    assert sorted(p.name for p in (run.root / "deploy").iterdir()) == [f"jet_tagger.{e}" for e in ("bit", "hwh", "xsa")]
    assert run.stdout.rstrip().endswith(".bit, .hwh and .xsa")


def test_flow_zynq7_clock_ports_and_interconnect(jet):
    run = tcl_dry_run(jet / "boards" / "pynq-z2", work=jet.parent / "tcl7")
    ps = run.cell_properties("processing_system7_0")
    assert ps["CONFIG.PCW_USE_S_AXI_HP0"] == "1" and ps["CONFIG.PCW_FPGA0_PERIPHERAL_FREQMHZ"] == "100"
    auto = run.find("apply_bd_automation")[0]
    assert tcl_list(auto[auto.index("-config") + 1])[:4] == ["make_external", "FIXED_IO, DDR", "apply_board_preset", "1"]
    clk = next(c for c in run.find("connect_bd_net") if c[1] == "processing_system7_0/FCLK_CLK0" and len(c) > 3)
    assert {"nn_0/aclk", "axi_dma_0/m_axi_mm2s_aclk", "axi_dma_0/m_axi_s2mm_aclk", "processing_system7_0/S_AXI_HP0_ACLK"} <= set(clk)
    rst = next(c for c in run.find("connect_bd_net") if c[1] == "rst_0/peripheral_aresetn")
    assert {"nn_0/aresetn", "axi_dma_0/axi_resetn"} <= set(rst)
    assert ["connect_bd_intf_net", "axi_mem_0/M00_AXI", "processing_system7_0/S_AXI_HP0"] in run.calls


def test_flow_microblaze_pins_uart_timer_buffers(jet):
    pkg = jet / "boards" / "arty-a7-100t"
    b = BOARDS["arty-a7-100t"]
    run = tcl_dry_run(pkg, work=jet.parent / "tclmb")
    assert run.returncode == 0, run.stderr
    cells = run.cells()
    for c in ("microblaze_0", "clk_wiz_0", "axi_uartlite_0", "axi_timer_0", "axi_bram_ctrl_0", "dma_buffers", "axi_sc_0"):
        assert c in cells
    mm = b.memory_map
    assert _assigned(run, "axi_uartlite_0/S_AXI/Reg") == [(f"0x{mm['uart']:08X}", "microblaze_0/Data")]
    assert _assigned(run, "axi_timer_0/S_AXI/Reg") == [(f"0x{mm['timer']:08X}", "microblaze_0/Data")]
    # The buffers are where the program and both DMA channels look for them.
    assert _assigned(run, "axi_bram_ctrl_0/S_AXI/Mem0") == [(f"0x{mm['ddr']:08X}", s) for s in ("microblaze_0/Data", "axi_dma_0/Data_MM2S", "axi_dma_0/Data_S2MM")]
    assert _c_define(pkg, "RTLGEN_BUF_BASE") == mm["ddr"] and _c_define(pkg, "RTLGEN_TIMER_BASE") == mm["timer"]
    assert ["set_property", "CONFIG.C_BAUDRATE", "115200", "axi_uartlite_0"] in run.calls or run.cell_properties("axi_uartlite_0")["CONFIG.C_BAUDRATE"] == "115200"
    assert run.cell_properties("clk_wiz_0")["CONFIG.CLKOUT1_REQUESTED_OUT_FREQ"] == "100"
    xdc = (pkg / "constraints.xdc").read_text()
    for port, key in (("sys_clock", "clock"), ("reset", "reset"), ("uart_rxd", "uart_rxd"), ("uart_txd", "uart_txd")):
        assert f"PACKAGE_PIN {b.pins[key][0]} IOSTANDARD {b.pins[key][1]}}} [get_ports {port}]" in xdc
    assert ["add_files", "-fileset", "constrs_1", "-norecurse", str(run.root / "constraints.xdc")] in run.calls


def test_flow_unequal_widths_streaming_cnn(cnn):
    """io_stream CNN: s_axis 24 bits -> MM2S 32, m_axis 48 bits -> S2MM 64; the C header and the
    driver pack to the same padded beats."""
    for board in ("pynq-z2", "basys3"):
        pkg = cnn / "boards" / board
        run = tcl_dry_run(pkg, work=cnn.parent / f"tcl_{board}")
        assert run.returncode == 0, run.stderr
        _dma_widths_match_ips(cnn, pkg, run)
        dma = run.cell_properties("axi_dma_0")
        assert (dma["CONFIG.c_m_axis_mm2s_tdata_width"], dma["CONFIG.c_s_axis_s2mm_tdata_width"]) == ("32", "64")
        assert (dma["CONFIG.c_m_axi_mm2s_data_width"], dma["CONFIG.c_m_axi_s2mm_data_width"]) == ("32", "64")
        assert (_c_define(pkg, "RTLGEN_IN_BEAT_BYTES"), _c_define(pkg, "RTLGEN_OUT_BEAT_BYTES")) == (4, 8)
        assert (_c_define(pkg, "RTLGEN_IN_BEATS"), _c_define(pkg, "RTLGEN_OUT_BEATS")) == (16, 1)
    lay = json.loads((cnn / "boards" / "pynq-z2" / "driver" / "network.json").read_text())["layout"]
    assert (lay["in_beat_bytes"], lay["out_beat_bytes"], lay["in_bytes"], lay["out_bytes"]) == (4, 8, 1, 2)


def test_no_bitstream_is_one_line_and_exit_1(jet):
    """hls4ml #933 / FINN #1368: no bitstream and no reason. Here: which run, its status, its log."""
    run = tcl_dry_run(jet / "boards" / "pynq-z2", bitstream=False, work=jet.parent / "tclnobit")
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1
    log = run.root / "vivado" / "runs" / "impl_1" / "runme.log"
    assert lines[0] == f"rtlgen: no bitstream was produced (impl_1: route_design ERROR); see {log}"
    assert not run.find("write_hw_platform") and not (run.root / "deploy").exists()


def test_without_board_files_the_plain_part_is_used_and_explained(jet):
    run = tcl_dry_run(jet / "boards" / "zcu102", board_files=False, work=jet.parent / "tclnobf")
    assert run.returncode == 0
    assert not [c for c in run.find("set_property") if c[1] == "board_part"]
    auto = run.find("apply_bd_automation")[0]
    assert tcl_list(auto[auto.index("-config") + 1]) == ["apply_board_preset", "0"]
    note = next(ln for ln in run.stdout.splitlines() if "no board files" in ln)
    assert note.startswith("rtlgen: no board files for xilinx.com:zcu102:part0:3.4: project at the plain part xczu9eg-ffvb1156-2-e.")
    assert "PYNQ" in note and "bare-metal" in note
    run = tcl_dry_run(jet / "boards" / "zcu102", ["-no-board-part"], work=jet.parent / "tclnobp")
    assert not run.find("get_board_parts") and "no board files" in run.stdout


def test_the_ip_must_be_this_builds(jet):
    pkg = jet / "boards" / "pynq-z2"
    run = tcl_dry_run(pkg, ip_widths=(64, 128), work=jet.parent / "tclw")
    assert run.returncode == 1
    assert run.stderr.strip() == "rtlgen: rtlgen:nn:jet_tagger_axis_dma:1.0 has a 64-bit s_axis, not 128 bits as this package expects; regenerate the package"
    run = tcl_dry_run(pkg, ip_found=False, work=jet.parent / "tclw")
    assert run.returncode == 1 and run.stderr.strip().startswith("rtlgen: the IP rtlgen:nn:jet_tagger_axis_dma:1.0 is not in ")
    assert not run.find("create_bd_design")


def test_arguments_timing_and_bd_only(jet):
    pkg = jet / "boards" / "pynq-z2"
    work = jet.parent / "tclargs"
    run = tcl_dry_run(pkg, ["-clock", "fast"], work=work)
    assert run.returncode == 1 and run.stderr.strip() == "rtlgen: -clock takes a frequency in MHz between 0 and 250, not 'fast'"
    assert not run.calls
    run = tcl_dry_run(pkg, ["-clock", "142.5", "-jobs", "2", "-bd-only"], work=work)
    assert run.returncode == 0 and not run.find("launch_runs")
    assert run.cell_properties("processing_system7_0")["CONFIG.PCW_FPGA0_PERIPHERAL_FREQMHZ"] == "142.5"
    assert "stopping after the block design" in run.stdout
    run = tcl_dry_run(pkg, wns="-0.412", work=work)
    assert run.returncode == 0
    assert "rtlgen: warning: timing not met at 100 MHz (worst negative slack -0.412 ns)" in run.stdout


def test_every_tcl_file_is_complete_tcl(jet):
    tclsh = shutil.which("tclsh")
    files = [p for b in BOARD_SET for p in (jet / "boards" / b).rglob("*.tcl")]
    assert len(files) == 3 * 5  # project, ip/package_ip, ip/synth_ooc, sw/xsct_build, sw/run_jtag
    for path in files:
        p = subprocess.run([tclsh], input=f"set f [open {{{path}}}]; set s [read $f]; close $f; puts [info complete $s]\n",
                           capture_output=True, text=True, timeout=30)  # fmt: skip
        assert p.stdout.strip() == "1", path
