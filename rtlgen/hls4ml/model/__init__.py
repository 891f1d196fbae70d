"""The converted model with hls4ml's ``ModelGraph`` methods, backed by an :class:`rtlgen.Design`."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

__all__ = ["ModelGraph", "profiling"]

log = logging.getLogger(__name__)

# hls4ml's Vivado backend defaults.
DEFAULT_PART = "xcvu13p-flga2577-2-e"
DEFAULT_CLOCK_NS = 5.0
REPORT_FILE = "hls4ml_report.json"


def _target_of(part: str) -> tuple[str, object | None]:
    """rtlgen's synthesis target for an hls4ml part name, and the part's resources when known."""
    from rtlgen.synth import find_part

    for target in ("xc7", "xcup", "ice40"):
        try:
            return target, find_part(target, part)
        except ValueError:
            continue
    key = part.lower()
    target = "xc7" if key.startswith(("xc7", "xa7", "xq7")) else "ice40" if key.startswith(("ice40", "hx", "up", "lp")) else "xcup"
    return target, None


class ModelGraph:
    """What hls4ml's converters return: ``compile``, ``predict``, ``trace``, ``write``, ``build``.

    ``design`` is the :class:`rtlgen.Design` underneath (golden model, Verilog, simulation)."""

    def __init__(self, design, *, source=None, output_dir="my-hls-test", project_name="myproject", backend="Vivado",
                 part=None, clock_period=None, hls_config=None, ignored=()):  # fmt: skip
        from rtlgen.design import _module_name

        self.design = design
        self.source = source
        self.output_dir = str(output_dir)
        self.project_name = project_name
        design.top_name = _module_name(project_name)
        self.backend = backend
        self.part = part or DEFAULT_PART
        self.clock_period = float(clock_period) if clock_period is not None else DEFAULT_CLOCK_NS
        self.config = hls_config or {}
        self.ignored = list(ignored)
        if backend is not None and str(backend).lower() not in ("vivado", "vitis", "vivadoaccelerator"):
            log.warning("backend=%r is ignored: rtlgen writes plain Verilog; part and clock_period are used", backend)

    # -- hls4ml's emulation --------------------------------------------------------------------

    def compile(self):
        """Nothing to compile: :meth:`predict` runs rtlgen's golden model in numpy, bit for bit what
        the Verilog computes. Kept so that hls4ml code runs unchanged."""
        log.warning("compile(): nothing to compile; predict() runs rtlgen's bit-exact golden model in numpy")

    def predict(self, x):
        """Float inputs (batch first) to float outputs, exactly as the hardware computes them."""
        return self.design.predict(np.asarray(x, dtype=np.float64))

    def _traced_layers(self) -> list[str]:
        model = self.config.get("Model", {}) if isinstance(self.config, dict) else {}
        names = self.config.get("LayerName", {}) if isinstance(self.config, dict) else {}
        if model.get("TraceOutput"):
            return list(names) or [n.attrs.get("layer", n.name) for n in self.design.graph.nodes]
        return [name for name, level in names.items() if isinstance(level, dict) and level.get("Trace")]

    def trace(self, x):
        """``(predictions, {layer name: its output})`` for the layers configured with ``Trace: True``
        (all with ``Model.TraceOutput``), as hls4ml returns them; values are the golden model's,
        channels last, batch first."""
        from rtlgen.profiling import _owner_map

        x = np.asarray(x, dtype=np.float64)
        g = self.design.graph
        values = self.design.trace(x)
        layers = self._traced_layers()
        owners = _owner_map([n.name for n in g.nodes], layers)
        out = {}
        for layer in layers:
            mine = [n for n in g.nodes if owners.get(n.name) == layer]
            tensor = mine[-1].outputs[0] if mine else (layer if layer in g.inputs else None)
            if tensor is not None and tensor in values:
                out[layer] = values[tensor]
        missing = [la for la in layers if la not in out]
        if missing:
            log.info("trace: no hardware for %s (folded away or run on the host)", ", ".join(missing))
        return self.design.predict(x), out

    # -- project --------------------------------------------------------------------------------

    def write(self):
        """Write the build into ``output_dir`` (Verilog, IP, testbench, reports; see :meth:`rtlgen.Design.write`)."""
        return self.design.write(self.output_dir)

    def build(self, reset=False, csim=True, synth=True, cosim=False, validation=False, export=False, vsynth=False,
              fifo_opt=False, **kwargs):  # fmt: skip
        """Write the project and run what rtlgen has for each step; returns hls4ml's report dict.

        ``synth``/``vsynth``: Yosys for the part's family (``CSynthesisReport``: LUT, FF, DSP,
        BRAM_18K against the part's resources, latency and interval in cycles, and the Xilinx
        path-delay estimate against ``clock_period``); ``cosim``: the Verilog in Verilator
        against the golden model (``CosimReport``). ``csim`` is the golden model itself;
        ``validation``, ``export`` and ``fifo_opt`` have no rtlgen step and are named when set."""
        out = Path(self.output_dir)
        if reset or not (out / "graph.json").exists():
            out = self.write()
        skipped = [k for k, v in {"validation": validation, "export": export, "fifo_opt": fifo_opt, **kwargs}.items() if v]
        if skipped:
            log.warning("build(): %s have no rtlgen step and are ignored", ", ".join(skipped))
        report = {}
        if cosim:
            res = self.design.simulate(n_random=100, work_dir=out / "cosim")
            report["CosimReport"] = {
                "Status": "Pass" if res.get("passed") else "Fail",
                "Mismatches": res.get("mismatches"),
                "LatencyMin": res.get("latency_measured"), "LatencyMax": res.get("latency_measured"),
                "IntervalMin": res.get("interval_measured"), "IntervalMax": res.get("interval_measured"),
            }  # fmt: skip
        if synth or vsynth:
            report["CSynthesisReport"] = self._synth_report(out)
        (out / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
        return report

    def _synth_report(self, out: Path) -> dict:
        target, part = _target_of(self.part)
        if part is None:
            log.warning("part %r is not in rtlgen's part table; no utilisation figures (synthesized for %s)", self.part, target)
        r = self.design.synthesize(target=target, work_dir=out / "synth")
        lat, ii = self.design.latency, self.design.initiation_interval
        delay = r.get("path_delay_ns")
        rep = {
            "TargetClockPeriod": f"{self.clock_period:.2f}",
            "EstimatedClockPeriod": f"{delay:.3f}" if delay else None,
            "BestLatency": str(lat), "WorstLatency": str(lat), "IntervalMin": str(ii), "IntervalMax": str(ii),
            "BRAM_18K": str(int(round(2 * r["bram"]))), "DSP": str(r["dsp"]), "FF": str(r["ff"]),
            "LUT": str(r["lut"] + r.get("lutram", 0)), "URAM": "0",
        }  # fmt: skip
        if part is not None:
            rep.update(
                AvailableBRAM_18K=str(int(round(2 * part.bram))), AvailableDSP=str(part.dsp),
                AvailableFF=str(part.ff), AvailableLUT=str(part.lut), AvailableURAM="0",
            )  # fmt: skip
        if delay and delay > self.clock_period:
            log.warning("estimated path delay %.2f ns exceeds clock_period %.2f ns (raise AdderLevels' registers: lower AdderLevels)", delay, self.clock_period)
        return rep

    def __repr__(self):
        return f"ModelGraph({self.project_name!r}, rtlgen design {self.design.top_name!r}, part {self.part!r})"



from . import profiling  # noqa: E402  (hls4ml.model.profiling)
