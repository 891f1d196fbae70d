"""Design-space sweeps on Dask: parallel equals serial, lost workers, resume, failed points, batch clusters."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("distributed")

import rtlgen  # noqa: E402
from rtlgen.cli import main  # noqa: E402
from rtlgen.errors import RtlgenError  # noqa: E402
from rtlgen.examples import qonnx_mlp  # noqa: E402
from rtlgen.sweep import SpecError, jobqueue_cluster, load_spec, points, run, summary  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "sweeps"
SPEC = {
    "sweep": {"Model": {"ReuseFactor": [1, 2, 100000]}},
    "stages": ["build", "accuracy"],
    "build": {"vectors": 10},
    "limits": {"timeout": 600, "memory": "400MB", "retries": 1},
}
BAD_RF = "ReuseFactor=100000"
METRICS = ("status", "error", "latency", "interval", "accuracy")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """An 8-8-4 QONNX MLP, inputs and labels (the golden model's classes, but one in ten changed)."""
    d = tmp_path_factory.mktemp("tiny")
    model = qonnx_mlp((8, 8, 4), name="tiny")
    import onnx

    onnx.save(model, d / "tiny.onnx")
    x = np.random.default_rng(0).normal(0, 2, (300, 8))
    y = rtlgen.convert(model).predict(x).argmax(1)
    y[::10] = (y[::10] + 1) % 4
    np.save(d / "x.npy", x)
    np.save(d / "y.npy", y)
    return d


def _cluster(n):
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=n, threads_per_worker=1, processes=True, resources={"memory": 2e9}, dashboard_address=":0",
        silence_logs=logging.ERROR,
    )  # fmt: skip
    return Client(cluster), cluster


@pytest.fixture(scope="module")
def client():
    c, cluster = _cluster(2)
    yield c
    c.close()
    cluster.close()


@pytest.fixture(scope="module")
def parallel(tiny, client, tmp_path_factory):
    out = tmp_path_factory.mktemp("par") / "sweep"
    res = run(tiny / "tiny.onnx", SPEC, client, out=out, data=tiny / "x.npy", labels=tiny / "y.npy", progress=False)
    return res


def _by_point(records):
    return {r["point"]: r for r in records}


def test_points_of_a_spec():
    spec = load_spec({"sweep": {"Model": {"ReuseFactor": [1, 4], "Precision": ["fixed<8,3>"]}, "IOType": ["io_parallel", "io_stream"],
                                "LayerName": {"fc0": {"Strategy": ["Latency", "Resource"]}}}})  # fmt: skip
    pts = points(spec)
    assert len(pts) == 8
    assert pts[0]["name"] == "ReuseFactor=1-Precision=fixed8.3-IOType=io_parallel-fc0.Strategy=Latency"
    assert pts[-1]["config"] == {"Model": {"ReuseFactor": 4, "Precision": "fixed<8,3>"}, "IOType": "io_stream",
                                 "LayerName": {"fc0": {"Strategy": "Resource"}}}  # fmt: skip
    assert len({p["name"] for p in pts}) == 8


def test_base_config_from_an_hls4ml_file(tmp_path):
    (tmp_path / "hls4ml.yml").write_text("HLSConfig:\n  Model: {Strategy: Resource, Precision: 'fixed<8,3>'}\nIOType: io_stream\nPart: xc7a35t\n")
    (tmp_path / "spec.yml").write_text("sweep:\n  Model: {ReuseFactor: [1, 2]}\nconfig: hls4ml.yml\n")
    pts = points(load_spec(tmp_path / "spec.yml"))
    assert pts[1]["config"] == {"IOType": "io_stream", "Model": {"Strategy": "Resource", "Precision": "fixed<8,3>", "ReuseFactor": 2}}


def test_parallel_equals_serial(parallel, tiny, tmp_path):
    c1, cluster1 = _cluster(1)
    try:
        serial = run(tiny / "tiny.onnx", SPEC, c1, out=tmp_path / "ser", data=tiny / "x.npy", labels=tiny / "y.npy", progress=False)
    finally:
        c1.close()
        cluster1.close()
    par, ser = _by_point(parallel.records), _by_point(serial.records)
    assert list(par) == list(ser) == [p["name"] for p in points(load_spec(SPEC))]
    for name in par:
        assert {k: par[name][k] for k in METRICS} == {k: ser[name][k] for k in METRICS}, name
        if par[name]["status"] == "ok":
            v1 = Path(par[name]["dir"], "build", "rtl", "tiny.v").read_bytes()
            assert v1 == Path(ser[name]["dir"], "build", "rtl", "tiny.v").read_bytes()
    ok = [r for r in parallel.records if r["status"] == "ok"]
    assert [(r["latency"], r["interval"]) for r in ok] == [(4, 1), (6, 2)]
    assert all(r["accuracy"] == pytest.approx(0.9) for r in ok)


def test_failed_point_recorded_with_its_error(parallel):
    rec = _by_point(parallel.records)[BAD_RF]
    assert rec["status"] == "error"
    assert rec["attempt"] == 1  # a user error is not retried
    assert rec["error"] == (
        "build: node 'fc0': reuse factor 100000 cannot be used with 8 inputs and 8 outputs; "
        "it must be between 1 (fully parallel) and 64 (one multiplier)"
    )
    assert [r["point"] for r in parallel.failed] == [BAD_RF]
    assert BAD_RF in (parallel.out / "results.csv").read_text()


def test_results_files(parallel):
    out = parallel.out
    lines = (out / "points.jsonl").read_text().splitlines()
    assert sorted(json.loads(ln)["point"] for ln in lines) == sorted(r["point"] for r in parallel.records)
    doc = json.loads((out / "results.json").read_text())
    assert doc["objectives"] == ["latency", "interval", "accuracy"]
    # Reuse factor 1 is faster at the same accuracy: it alone is on the front and best everywhere.
    assert doc["pareto"] == parallel.pareto == ["ReuseFactor=1"]
    assert doc["best"] == {"latency": "ReuseFactor=1", "interval": "ReuseFactor=1", "accuracy": "ReuseFactor=1"}
    rows = (out / "results.csv").read_text().splitlines()
    assert rows[0].startswith("point,status,ReuseFactor,latency,interval,accuracy")
    assert len(rows) == 4
    page = (out / "report.html").read_text()
    assert "Best point per objective" in page and "Failed points" in page
    cmd = _by_point(parallel.records)["ReuseFactor=1"]["command"]
    assert cmd.startswith("rtlgen build ") and "--config" in cmd and cmd in page
    text = summary(parallel)
    assert "3 points: 2 ok, 1 failed" in text and f"failed {BAD_RF}: build: node 'fc0'" in text


def test_rebuild_command_rebuilds_the_point(parallel, tmp_path):
    import shlex

    rec = _by_point(parallel.records)["ReuseFactor=2"]
    args = shlex.split(rec["command"])
    args[args.index("-o") + 1] = str(tmp_path / "again")
    assert main(args[1:]) == 0
    assert (tmp_path / "again" / "rtl" / "tiny.v").read_bytes() == Path(rec["dir"], "build", "rtl", "tiny.v").read_bytes()


def test_resume_reruns_only_missing_points(parallel, tiny, client, tmp_path):
    out = tmp_path / "sweep"
    shutil.copytree(parallel.out, out)
    lines = (out / "points.jsonl").read_text().splitlines()
    kept = json.loads(lines[0])
    # An interrupted run: one point recorded, the next one's line torn in the middle.
    (out / "points.jsonl").write_text(lines[0] + "\n" + lines[1][:25])
    before = (out / "points" / kept["point"] / "point.json").read_text()
    kw = dict(data=tiny / "x.npy", labels=tiny / "y.npy", progress=False)
    with pytest.raises(RtlgenError, match=r"already holds a sweep; pass --resume to continue it, or choose another -o$"):
        run(tiny / "tiny.onnx", SPEC, client, out=out, **kw)
    other = {**SPEC, "build": {"vectors": 20}}
    with pytest.raises(RtlgenError, match=r"holds a sweep of a different spec; resume it with the same model and spec"):
        run(tiny / "tiny.onnx", other, client, out=out, resume=True, **kw)
    res = run(tiny / "tiny.onnx", SPEC, client, out=out, resume=True, **kw)
    missing = [r["point"] for r in parallel.records if r["point"] != kept["point"]]
    assert sorted(res.ran) == sorted(missing)
    assert (out / "points" / kept["point"] / "point.json").read_text() == before
    recs = _by_point(res.records)
    assert all(recs[n]["attempt"] == 2 for n in missing if recs[n]["status"] == "ok")
    for r in parallel.records:
        assert {k: r[k] for k in METRICS} == {k: recs[r["point"]][k] for k in METRICS}
    # The torn line stays as it was, on a line of its own; two records follow it.
    assert (out / "points.jsonl").read_text().splitlines()[1] == lines[1][:25]
    assert len((out / "points.jsonl").read_text().splitlines()) == 4
    # Nothing missing: nothing runs, not even a cluster.
    again = run(tiny / "tiny.onnx", SPEC, None, out=out, resume=True, **kw)
    assert again.ran == [] and [r["point"] for r in again.records] == [r["point"] for r in parallel.records]
    # Failed points rerun only when asked.
    retried = run(tiny / "tiny.onnx", SPEC, client, out=out, resume=True, retry_failed=True, **kw)
    assert retried.ran == [BAD_RF] and _by_point(retried.records)[BAD_RF]["status"] == "error"


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"sweep": {"Model": {"ReuseFactor": [1]}}, "stagez": ["build"]},
         r"sweep spec key 'stagez' is unknown; expected one of sweep, config, stages, build, accuracy, sim, synth, limits, workers, cluster"),
        ({"sweep": {"Model": {"Reuse": [1, 2]}}},
         r"sweep spec key 'sweep.Model.Reuse' is unknown; expected one of Precision, ReuseFactor, Strategy, Implementation, Trace, TableSize, AdderLevels"),
        ({"sweep": {"Model": {"ReuseFactor": []}}}, r"sweep spec key 'sweep.Model.ReuseFactor' has no values; give a list such as \[1, 2, 4\]"),
        ({"sweep": {"Model": {"ReuseFactor": [0, 1]}}}, r"sweep spec: configuration key 'Model.ReuseFactor' must be a positive integer, not 0"),
        ({"sweep": {"IOType": ["io_serial"]}}, r"sweep spec key 'sweep.IOType' has value 'io_serial'; expected io_parallel or io_stream"),
        ({"sweep": {"Model": {"ReuseFactor": [1]}}, "stages": ["build", "place"]},
         r"sweep spec key 'stages' has stage 'place'; expected some of build, accuracy, sim, synth"),
        ({"sweep": {"Model": {"ReuseFactor": [1]}}, "limits": {"timeout": -5}}, r"sweep spec key 'limits.timeout' must be a number above 0, not -5"),
        ({"sweep": {"Model": {"ReuseFactor": [1]}}, "limits": {"memory": "lots"}},
         r"sweep spec key 'limits.memory' must be an amount of memory such as 2GB or 500MB, not 'lots'"),
        ({"sweep": {"Model": {"ReuseFactor": [1]}}, "cluster": {"kubernetes": {}}},
         r"sweep spec key 'cluster.kubernetes' is unknown; expected one of local, slurm, htcondor"),
        ({"sweep": {"Model": {"ReuseFactor": [1]}}, "stages": ["accuracy"]},
         r"stage 'accuracy' needs data and labels: --data x.npy --labels y.npy, or accuracy: \{data: ..., labels: ...\} in the spec"),
        ({"sweep": {"Model": {"ReuseFactor": [1]}}, "synth": {"target": "xc9"}},
         r"sweep spec key 'synth.target' must be one of xc7, xcup, ice40, not 'xc9'"),
        ({"config": {"Model": {"ReuseFactor": 2}}},
         r"sweep spec has no 'sweep' section; list values per key, e.g. sweep: \{Model: \{ReuseFactor: \[1, 2, 4\]\}\}"),
    ],
)  # fmt: skip
def test_spec_errors(spec, message, tiny, tmp_path):
    with pytest.raises(SpecError, match=f"^{message}$"):
        run(tiny / "tiny.onnx", spec, None, out=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cli_errors_are_one_line(tiny, tmp_path, capsys):
    spec = tmp_path / "bad.yml"
    spec.write_text("sweep:\n  Model: {ReuseFactor: [1, 2]}\nlimits: {retries: -1}\n")
    assert main(["sweep", str(tiny / "tiny.onnx"), str(spec), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err == "error: sweep spec key 'limits.retries' must be an integer at least 0, not -1\n"
    assert main(["sweep", str(tiny / "tiny.onnx"), str(spec), "-o", str(tmp_path / "out"), "--scheduler", "bogus"]) == 2
    assert capsys.readouterr().err.startswith("error: sweep spec key 'limits.retries'")
    spec.write_text("sweep:\n  Model: {ReuseFactor: [1, 2]}\n")
    assert main(["sweep", str(tiny / "tiny.onnx"), str(spec), "-o", str(tmp_path / "out"), "--scheduler", "bogus"]) == 2
    err = capsys.readouterr().err
    assert err == "error: --scheduler must be local, slurm, htcondor or a scheduler address such as tcp://host:8786, not 'bogus'\n"
    assert main(["sweep", str(tmp_path / "nope.onnx"), str(spec), "-o", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == f"error: model file {str(tmp_path / 'nope.onnx')!r} does not exist\n"
    assert not (tmp_path / "out").exists()


def test_batch_cluster_job_scripts(tmp_path):
    pytest.importorskip("dask_jobqueue")
    spec = load_spec(EXAMPLES / "jet-tagger-slurm.yml")
    cluster = jobqueue_cluster(spec, "slurm")
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    for line in ("#SBATCH -p batch", "#SBATCH -A my-project", "#SBATCH -n 1", "#SBATCH --cpus-per-task=4",
                 "#SBATCH --mem=15G", "#SBATCH -t 04:00:00", "#SBATCH --constraint=x86_64"):  # fmt: skip
        assert line in script, line
    assert "--nthreads 1" in script and "--nworkers 4" in script
    assert f"--resources memory={16 * 10**9 // 4}" in script
    assert "source ~/venvs/rtlgen/bin/activate" in script
    cluster = jobqueue_cluster(spec, "htcondor")
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert "RequestCpus = MY.DaskWorkerCores" in script and "RequestMemory = floor(MY.DaskWorkerMemory / 1048576)" in script
    assert f"--resources memory={8 * 10**9 // 2}" in script
    too_small = load_spec({**_yaml(EXAMPLES / "jet-tagger-slurm.yml"), "limits": {"memory": "6GB"}})
    with pytest.raises(SpecError, match=r"^sweep spec key 'cluster.slurm.memory': 16GB over 4 worker\(s\) gives each 3.73 GiB, less than limits.memory 5.59 GiB; raise it or lower 'processes'$"):
        jobqueue_cluster(too_small, "slurm")
    bad = load_spec({"sweep": {"Model": {"ReuseFactor": [1]}}, "cluster": {"slurm": {"cores": 1, "memory": "4GB", "queues": "x"}}})
    with pytest.raises(SpecError, match=r"^sweep spec key 'cluster.slurm.queues' is not an option of SLURMCluster"):
        jobqueue_cluster(bad, "slurm")


def _yaml(path):
    import yaml

    return yaml.safe_load(Path(path).read_text())


def test_killed_worker_is_retried(tiny, client, tmp_path):
    """The worker running a point is killed in the middle of it: the point runs again elsewhere."""
    import psutil

    spec = {"sweep": {"Model": {"ReuseFactor": [1, 2]}}, "build": {"vectors": 10}, "limits": {"memory": "400MB"}}
    out = tmp_path / "sweep"
    killed = {}

    def kill_first_worker():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            for meta in out.glob("points/*/point.json"):
                if (meta.parent / "build.log").exists():  # the point's build is running
                    info = json.loads(meta.read_text())
                    killed.update(point=info["point"], pid=info["pid"])
                    os.kill(info["pid"], signal.SIGKILL)
                    return
            time.sleep(0.02)

    t = threading.Thread(target=kill_first_worker)
    t.start()
    res = run(tiny / "tiny.onnx", spec, client, out=out, progress=False)
    t.join()
    assert killed, "no point started"
    recs = _by_point(res.records)
    assert [r["status"] for r in res.records] == ["ok", "ok"]
    assert recs[killed["point"]]["attempt"] == 2
    assert recs[killed["point"]]["host"].split(":")[1] != str(killed["pid"])
    assert (recs["ReuseFactor=1"]["latency"], recs["ReuseFactor=2"]["latency"]) == (4, 6)
    assert len((out / "points.jsonl").read_text().splitlines()) == 2
    # The killed worker's build did not outlive it.
    time.sleep(0.5)
    for p in psutil.process_iter(["cmdline"]):
        assert not any(str(out) in a for a in (p.info["cmdline"] or [])), p.info["cmdline"]


@pytest.mark.slow
def test_cli_sweep_with_synthesis(tmp_path, capsys):
    """Two points of the bundled jet tagger through the command line, synthesized with Yosys."""
    spec = tmp_path / "spec.yml"
    spec.write_text(
        "sweep:\n  Model: {ReuseFactor: [1, 4]}\nstages: [build, sim, synth]\nbuild: {vectors: 10}\nsim: {vectors: 200}\n"
        "synth: {target: xc7, part: xc7a35t}\nlimits: {timeout: 1800, memory: 2GB, retries: 0}\n"
    )
    out = tmp_path / "out"
    assert main(["sweep", "--example", "jet-tagger", str(spec), "-o", str(out), "--workers", "1", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "2 points: 2 ok, 0 failed" in text and "Pareto front" in text
    doc = json.loads((out / "results.json").read_text())
    rf1, rf4 = doc["points"]
    assert rf1["sim_mismatches"] == rf4["sim_mismatches"] == 0
    assert rf1["dsp"] == 0 and rf4["dsp"] > 0 and rf4["lut"] < rf1["lut"]
    assert rf1["latency"] < rf4["latency"] and rf1["interval"] == 1 and rf4["interval"] == 4
    assert set(doc["objectives"]) == {"lut", "ff", "dsp", "bram", "latency", "interval"}
    assert "rtlgen synth" in rf1["command"] and "data:image/png;base64," in (out / "report.html").read_text()
