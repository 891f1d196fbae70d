"""The Design: a converted network with its golden model, hardware and build outputs.

Mirrors hls4ml's habits: ``design = rtlgen.convert(model, config)``, ``design.predict(x)``,
``design.write(out_dir)``, ``design.simulate(x)``, ``design.synthesize()``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from functools import cached_property
from pathlib import Path

import numpy as np

from . import golden
from .config import Config, load_config
from .errors import DesignError, ModelFormatError, RtlgenError
from .ir import Graph

__all__ = ["Design", "convert", "load_design"]

log = logging.getLogger(__name__)


def _module_name(name: str) -> str:
    s = re.sub(r"[^A-Za-z0-9_]", "_", name).strip("_") or "network"
    return s if s[0].isalpha() else "net_" + s


def convert(
    model,
    config=None,
    *,
    skip_softmax: bool = False,
    dump_dir=None,
    reuse_check: bool = True,
    passes=None,
    input_shape=None,
    strict: bool = False,
) -> Design:
    """Import a model (path, ``onnx.ModelProto``, Keras model, ``torch.nn.Module``, or example
    name) and run the pass pipeline.

    A PyTorch module (plain or Brevitas) is exported first (:mod:`rtlgen.torch_export`) for one
    sample of ``input_shape`` (without the batch dimension).

    ``passes`` replaces the default pipeline (:func:`rtlgen.passes.default_passes`); with
    ``reuse_check=False`` the default pipeline keeps configured reuse factors that do not split a
    layer evenly (rounded down to the nearest exact schedule) without a note or an error. ``strict``
    refuses float weights or biases outside their configured types instead of noting them."""
    from .importers import from_keras, from_onnx
    from .passes import default_passes, run_passes

    cfg = load_config(config)
    import onnx

    from .torch_export import export, is_torch_module

    if is_torch_module(model):
        model = export(model, input_shape)
    elif input_shape is not None:
        raise RtlgenError("input_shape is only for PyTorch modules; other models carry their input shape")
    if isinstance(model, onnx.ModelProto):
        graph = from_onnx(model, config=cfg, skip_softmax=skip_softmax)
    elif hasattr(model, "get_config") and hasattr(model, "layers"):
        graph = from_keras(model, config=cfg, skip_softmax=skip_softmax)
    else:
        path = os.fspath(model)
        suffix = Path(path).suffix.lower()
        if suffix in (".keras", ".h5", ".hdf5", ".json"):
            graph = from_keras(path, config=cfg, skip_softmax=skip_softmax)
        elif suffix in (".onnx", ""):
            graph = from_onnx(path, config=cfg, skip_softmax=skip_softmax)
        else:
            raise ModelFormatError(
                f"model file {path!r} has suffix {suffix!r}; rtlgen reads ONNX/QONNX (.onnx) and "
                f"Keras (.keras, .h5, .json + weights) models"
            )
    if passes is None:
        passes = default_passes(cfg, reuse_check=reuse_check, strict=strict)
    graph = run_passes(graph, passes, dump_dir=dump_dir)
    return Design(graph, cfg)


class Design:
    """A network ready to become hardware; the golden model is :meth:`predict`."""

    def __init__(self, graph: Graph, config: Config | None = None):
        self.graph = graph
        self.config = config or Config()
        self.top_name = _module_name(graph.name)
        # io_stream FIFO depth overrides by FIFO name (experiments; see StreamNetwork).
        self.fifo_depths: dict[str, int] = {}

    # -- golden model -----------------------------------------------------------------------------

    @property
    def input_tensor(self):
        return self.graph.tensors[self.graph.inputs[0]]

    @property
    def output_tensor(self):
        return self.graph.tensors[self.graph.outputs[0]]

    def quantize_input(self, x) -> np.ndarray:
        """Float network inputs to the hardware's input mantissas."""
        return golden.quantize_input(self.graph, x)

    def predict_int(self, m) -> np.ndarray:
        """Input mantissas to output mantissas: what the hardware computes, bit for bit."""
        m = np.asarray(m)
        t = self.input_tensor
        if m.ndim == 1:
            m = m[None]
        if int(np.prod(m.shape[1:])) != t.size:
            raise DesignError(
                f"input mantissas must have shape (N, {', '.join(map(str, t.shape))}), not {m.shape}"
            )
        return golden.run(self.graph, m.reshape(len(m), -1))

    def predict(self, x) -> np.ndarray:
        """Float inputs to float outputs, exactly as the hardware plus the host stages compute them."""
        # The host's float stages run on the whole batch (the reference executor has a fixed cost
        # per call); the core runs block by block, each block staying in its core's cache.
        g = self.graph
        y = golden.host_input(g, x)
        real = golden.map_blocks(lambda b: golden.output_reals(g, self.predict_int(golden.input_mantissas(g, b))), y, rows=golden.block_rows(g))
        return golden.host_output(g, real)

    def trace(self, x) -> dict:
        """Every tensor's real values for float inputs ``x`` (mantissas times their step)."""
        values = golden.run(self.graph, self.quantize_input(x), trace=True)
        out = {}
        for name, v in values.items():
            t = self.graph.tensors[name]
            out[name] = (t.type.to_float(v) * t.scale).reshape(len(v), *t.shape)
        return out

    def random_inputs(self, n: int, seed: int = 0) -> np.ndarray:
        """``n`` input mantissas drawn uniformly over the input type's reachable range."""
        from .fixed import FixedType

        t: FixedType = self.input_tensor.type
        lo = -t.max_mantissa if (t.signed and t.overflow == "SAT_SYM") else t.min_mantissa
        rng = np.random.default_rng(seed)
        return rng.integers(
            lo, t.max_mantissa, size=(n, self.input_tensor.size), endpoint=True, dtype=np.int64
        )

    # -- hardware ---------------------------------------------------------------------------------

    @cached_property
    def network(self):
        from .layers import Network, StreamNetwork

        if self.config.io_type == "io_stream":
            return StreamNetwork(self.graph, fifo_depths=self.fifo_depths)
        return Network(self.graph)

    @property
    def latency(self) -> int:
        return self.network.latency

    @property
    def initiation_interval(self) -> int:
        return self.network.initiation_interval

    @cached_property
    def verilog(self) -> str:
        from .layers._verilog import to_verilog

        return to_verilog(self.network, self.top_name)

    def layer_report(self) -> list[dict]:
        from .report import layer_rows

        return layer_rows(self)

    def report(self) -> dict:
        """The build report (``report.json``); see :mod:`rtlgen.report`."""
        from .report import build_report

        return build_report(self)

    def tb_meta(self) -> dict:
        tin, tout = self.input_tensor, self.output_tensor
        net = self.network
        return {
            "toplevel": self.top_name,
            "in_lanes": getattr(net, "in_lanes", tin.size),
            "in_beats": getattr(net, "in_beats", 1),
            "in_width": tin.type.width,
            "in_signed": tin.type.signed,
            "out_lanes": getattr(net, "out_lanes", tout.size),
            "out_beats": getattr(net, "out_beats", 1),
            "settle_cycles": getattr(net, "settle_cycles", 0),
            "out_width": tout.type.width,
            "out_signed": tout.type.signed,
            "latency": self.latency,
            "interval": self.initiation_interval,
            "verilog_sources": [f"../rtl/{self.top_name}.v"],
        }

    # -- outputs ----------------------------------------------------------------------------------

    def check_size(self) -> list:
        """Each layer's estimated cost (:mod:`rtlgen.size`); a :class:`DesignError` naming the
        costliest layer and settings that fit when the design is far beyond the family's parts."""
        from .size import check_size

        return check_size(self.graph, self.config)

    def write(self, out_dir, *, n_vectors: int = 1000, seed: int = 0, boards=(), force: bool = False) -> Path:
        """Write ``rtl/`` (core and AXI4-Stream top), ``ip/`` (Vivado IP), ``<top>.core`` (FuseSoC),
        ``tb/``, ``report.json``, ``report.html``, ``config.yml`` and ``graph.json`` to ``out_dir``,
        and ``boards/<name>/`` for each board named in ``boards`` (checked before anything is written).
        Unless ``force``, a design far beyond the target family's largest part is refused before it
        is elaborated (:meth:`check_size`).

        Everything is built in a temporary sibling directory and moved into place at the end, so a
        failed build never leaves a half-written output directory.
        """
        import yaml

        from .boards import check as check_board
        from .boards import deploy
        from .sim.runner import write_testbench

        if n_vectors < 0:
            raise DesignError(f"the number of test vectors must be a positive integer, not {n_vectors}")
        from .size import MAX_LAYERS

        if not force or len(self.graph.nodes) > MAX_LAYERS:
            self.check_size()
        boards = [check_board(b, self) for b in boards]
        out = Path(out_dir).resolve()
        if out.exists() and not out.is_dir():
            raise DesignError(f"output path {str(out)!r} exists and is not a directory")
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        try:
            (tmp / "rtl").mkdir()
            (tmp / "rtl" / f"{self.top_name}.v").write_text(self.verilog)
            x = self.random_inputs(n_vectors, seed)
            y = self.predict_int(x)
            write_testbench(tmp / "tb", x, y, self.tb_meta())
            from .ipxact import write_package

            write_package(self, tmp, n_vectors=n_vectors, seed=seed, vectors=(x, y))
            report = self.report()
            (tmp / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
            from .report_html import write_html

            write_html(report, tmp / "report.html")
            (tmp / "config.yml").write_text(yaml.safe_dump(self.config.to_dict(), sort_keys=True))
            (tmp / "graph.json").write_text(self.graph.to_json() + "\n")
            for b in boards:
                deploy(tmp, b, design=self)
            if out.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
                old.rmdir()
                out.rename(old)
                tmp.rename(out)
                shutil.rmtree(old)
            else:
                tmp.rename(out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return out

    def simulate(
        self,
        x=None,
        *,
        n_random: int = 1000,
        simulator: str = "verilator",
        stall: str = "none",
        seed: int = 0,
        work_dir=None,
        fifo_monitor: bool = False,
    ) -> dict:
        """Run the generated testbench on ``x`` (float inputs) or random mantissas; return its results.

        ``fifo_monitor`` (io_stream): also run samples paced one interval apart and report each
        FIFO's fullest level (``fifo_max_levels``), to check the computed depths against it."""
        from .sim.runner import run, write_testbench

        m = self.random_inputs(n_random, seed) if x is None else self.quantize_input(x)
        work = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="rtlgen-sim-"))
        (work / "rtl").mkdir(parents=True, exist_ok=True)
        meta, verilog = self.tb_meta(), self.verilog
        if fifo_monitor and self.config.io_type == "io_stream":
            from .layers import StreamNetwork
            from .layers._verilog import to_verilog

            net = StreamNetwork(self.graph, fifo_depths=self.fifo_depths, monitor=True)
            verilog = to_verilog(net, self.top_name)
            meta["fifo_levels"] = [f["name"] for f in net.fifos]
        (work / "rtl" / f"{self.top_name}.v").write_text(verilog)
        write_testbench(work / "tb", m, self.predict_int(m), meta)
        return run(work / "tb", simulator=simulator, stall=stall, seed=seed)

    def with_io_type(self, io_type: str) -> Design:
        """The same network (same golden model) with the other interface, e.g. to compare the
        resources of ``io_stream`` and ``io_parallel``."""
        import copy

        cfg = copy.deepcopy(self.config)
        cfg.io_type = io_type
        other = Design(self.graph, cfg)
        other.fifo_depths = dict(self.fifo_depths)
        return other

    def synthesize(self, *, target: str = "xc7", work_dir=None, dsp: bool = True) -> dict:
        """Yosys resource counts for the design on ``target`` (xc7, xcup, ice40)."""
        from .synth import synthesize

        work = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="rtlgen-synth-"))
        work.mkdir(parents=True, exist_ok=True)
        src = work / f"{self.top_name}.v"
        src.write_text(self.verilog)
        return synthesize([src], self.top_name, target=target, workdir=work, dsp=dsp)


def load_design(out_dir) -> Design:
    """The design written to ``out_dir`` by :meth:`Design.write`."""
    out = Path(out_dir)
    gpath = out / "graph.json"
    if not gpath.exists():
        raise RtlgenError(
            f"{str(out)!r} is not an rtlgen build directory (no graph.json); run 'rtlgen build' first"
        )
    graph = Graph.from_json(gpath.read_text())
    cfg = load_config(str(out / "config.yml")) if (out / "config.yml").exists() else Config()
    return Design(graph, cfg)
