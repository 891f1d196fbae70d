"""hls4ml's ``report.read_vivado_report`` for a project built by :meth:`ModelGraph.build`."""

from __future__ import annotations

import json
from pathlib import Path

from rtlgen.errors import RtlgenError

from .model import REPORT_FILE

__all__ = ["read_vivado_report"]


def read_vivado_report(hls_dir, full_report=False):
    """Print and return the report ``build()`` wrote into ``hls_dir`` (hls4ml's dict layout)."""
    path = Path(hls_dir) / REPORT_FILE
    if not path.exists():
        raise RtlgenError(f"{str(hls_dir)!r} has no {REPORT_FILE}: run hls_model.build() first")
    report = json.loads(path.read_text())
    for section, values in report.items():
        print(f"{section}:")  # a notebook report, as hls4ml prints it
        for key, value in values.items():
            print(f"  {key}: {value}")
    return report
