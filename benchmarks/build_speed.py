"""Build speed: wall time, CPU time and peak memory of ``rtlgen build`` in a fresh process for the
bundled jet tagger, hls4ml's KERAS_conv1d-sized network (input 100x7, three Conv1D of 32 filters
x 40 taps, 'same', then Dense(5)) in io_stream at the reuse factor the size guard suggests, and a
1.2M-parameter dense network (1024-512-512-512-256-10) at the guard's reuse factor 256.

Each build runs in its own child of a fresh measuring process, so the CPU time and peak RSS
(``resource.getrusage(RUSAGE_CHILDREN)``) are that build's alone. Targets: jet tagger under 2 s
wall, the conv1d network in seconds, the dense network under a minute (on an idle machine).

    python benchmarks/build_speed.py [--only jet,conv1d,dense] [--vectors N]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent


def measure(args: list[str]) -> dict:
    """Wall seconds, CPU seconds (user + system) and peak RSS (MB) of ``args`` run as a child of a
    fresh Python process."""
    probe = (
        "import json, resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "wall = time.perf_counter() - t\n"
        "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "print(json.dumps({'rc': p.returncode, 'wall': wall, 'cpu': u.ru_utime + u.ru_stime,\n"
        "                  'rss_mb': u.ru_maxrss / 1024, 'tail': (p.stdout + p.stderr).strip().splitlines()[-2:]}))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def build_args(model, out: Path, cfg: dict | None, vectors: int) -> list[str]:
    args = [sys.executable, "-m", "rtlgen.cli", "build", *model, "-o", str(out), "--vectors", str(vectors)]
    if cfg is not None:
        path = out.parent / f"{out.name}.yml"
        path.write_text(yaml.safe_dump(cfg))
        args += ["--config", str(path)]
    return args


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="jet,conv1d,dense", help="comma-separated cases: jet, conv1d, dense")
    ap.add_argument("--vectors", type=int, default=100, help="test vectors for the conv1d and dense builds")
    a = ap.parse_args()
    cases = a.only.split(",")
    sys.path.insert(0, str(HERE))
    from size_guard import conv1d_model, dense_model

    print(f"machine: {os.cpu_count()} cores, load average {', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        runs = []
        if "jet" in cases:
            runs.append(("jet tagger (rtlgen build --example jet-tagger, 1000 vectors)", ["--example", "jet-tagger"], None, 1000))
        if "conv1d" in cases:
            conv1d_model(tmp / "conv1d.keras")
            cfg = {"IOType": "io_stream", "Model": {"ReuseFactor": 14}}
            runs.append((f"KERAS_conv1d shape, io_stream, ReuseFactor 14 ({a.vectors} vectors)", [str(tmp / "conv1d.keras")], cfg, a.vectors))
        if "dense" in cases:
            n = dense_model(tmp / "dense.onnx")
            cfg = {"Model": {"ReuseFactor": 256, "Strategy": "Resource"}}
            runs.append((f"dense {n:,} parameters, ReuseFactor 256 ({a.vectors} vectors)", [str(tmp / "dense.onnx")], cfg, a.vectors))
        for k, (label, model, cfg, vectors) in enumerate(runs):
            r = measure(build_args(model, tmp / f"out{k}", cfg, vectors))
            status = "ok" if r["rc"] == 0 else f"exit {r['rc']}: {' / '.join(r['tail'])}"
            print(f"{label}: wall {r['wall']:.2f} s, CPU {r['cpu']:.2f} s, peak RSS {r['rss_mb']:.0f} MB ({status})")


if __name__ == "__main__":
    main()
