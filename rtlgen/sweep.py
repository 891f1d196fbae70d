"""Design-space sweeps on Dask distributed: a laptop by default, a batch cluster by one option.

A *spec* (YAML file or dict) lists values per configuration key in hls4ml's vocabulary; every
combination is a *point*, built, checked and synthesized as one Dask task::

    sweep:                       # lists of values; every combination is a point
      Model: {ReuseFactor: [1, 2, 4], Precision: ["fixed<16,6>", "fixed<8,3>"]}
      IOType: [io_parallel, io_stream]
      LayerName: {fc0: {ReuseFactor: [1, 8]}}
    config: {Model: {Strategy: Latency}}   # applied to every point (or a YAML file's path; optional)
    stages: [build, accuracy, sim, synth]  # build always runs first
    build: {vectors: 100, skip_softmax: false}
    accuracy: {data: x.npy, labels: y.npy, limit: 10000}
    sim: {vectors: 1000, simulator: verilator}
    synth: {target: xc7, part: xc7a100t, dsp: true}
    limits: {timeout: 3600, memory: 2GB, retries: 2}
    workers: 4
    cluster: {local: {...}, slurm: {...}, htcondor: {...}}   # keyword arguments of the cluster class

Each stage of a point runs as a subprocess with the point's remaining time (``limits.timeout``
seconds per point); tasks declare ``limits.memory`` of the workers' ``memory`` resource, so a worker
never runs more points than its memory holds. Artefacts stay in ``OUT/points/<point>/``; each
finished point appends one JSON line to ``OUT/points.jsonl``, so ``resume=True`` reruns only the
points that are missing. Timeouts and crashes are retried ``limits.retries`` times, and a point
whose worker dies runs again elsewhere (Dask's ``distributed.scheduler.allowed-failures`` times,
3 by default); user errors (exit status 2, e.g. an impossible reuse factor) fail the same
way every time and are recorded at once. At the end ``OUT/results.csv``, ``results.json`` and
``report.html`` (the Pareto front) are written.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import logging
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from .config import IO_TYPES, LEVEL_KEYS
from .errors import ConfigError, RtlgenError

__all__ = [
    "STAGES",
    "PointError",
    "Spec",
    "SpecError",
    "SweepResult",
    "jobqueue_cluster",
    "load_spec",
    "make_cluster",
    "points",
    "run",
    "summary",
]

log = logging.getLogger(__name__)

STAGES = ("build", "accuracy", "sim", "synth")
SPEC_KEYS = ("sweep", "config", "stages", "build", "accuracy", "sim", "synth", "limits", "workers", "cluster")
SECTION_KEYS = {
    "build": ("vectors", "skip_softmax"),
    "accuracy": ("data", "labels", "limit"),
    "sim": ("vectors", "simulator"),
    "synth": ("target", "part", "dsp"),
    "limits": ("timeout", "memory", "retries"),
}
SCHEDULERS = ("local", "slurm", "htcondor")
POINTS_FILE = "points.jsonl"
# What a point needs when no limit is given: Yosys on a small MLP peaks near 1 GB.
DEFAULT_MEMORY = {True: "2GB", False: "512MB"}


class SpecError(ConfigError):
    """A sweep spec key or value is unknown or impossible, or an option contradicts it."""


class PointError(RtlgenError):
    """A point failed in a way that may not repeat (timeout, crash); Dask retries it."""


@dataclass
class Spec:
    """A validated sweep spec; build one with :func:`load_spec`."""

    axes: list  # [(path in the config dict, [values])]
    config: dict = field(default_factory=dict)
    stages: tuple = ("build",)
    build: dict = field(default_factory=dict)
    accuracy: dict = field(default_factory=dict)
    sim: dict = field(default_factory=dict)
    synth: dict = field(default_factory=dict)
    timeout: float = 3600.0
    memory: int = 0
    retries: int = 2
    workers: int | None = None
    cluster: dict = field(default_factory=dict)

    def fingerprint(self) -> dict:
        """What decides a point's results (limits, workers and cluster do not)."""
        return {
            "axes": [[list(p), v] for p, v in self.axes],
            "config": self.config,
            "stages": list(self.stages),
            **{s: getattr(self, s) for s in ("build", "accuracy", "sim", "synth") if s in self.stages},
        }


def _require_dask() -> None:
    import importlib.util

    if importlib.util.find_spec("distributed") is None:
        raise RtlgenError("sweeps need Dask distributed: pip install 'rtlgen[sweep]'")


# -- the spec -----------------------------------------------------------------------------------------


def _mapping(where: str, value) -> dict:
    if not isinstance(value, dict):
        raise SpecError(f"sweep spec key {where!r} must be a mapping, not {type(value).__name__}")
    return value


def _check_keys(where: str, section: dict, allowed) -> None:
    for key in section:
        if key not in allowed:
            at = f"{where}.{key}" if where else str(key)
            raise SpecError(f"sweep spec key {at!r} is unknown; expected one of {', '.join(allowed)}")


def _values(where: str, value) -> list:
    values = value if isinstance(value, list) else [value]
    if not values:
        raise SpecError(f"sweep spec key {where!r} has no values; give a list such as [1, 2, 4]")
    return values


def _axes(sweep: dict) -> list:
    """The swept keys as (path, values), in the spec's order."""
    axes = []
    _check_keys("sweep", sweep, ("Model", "LayerType", "LayerName", "IOType"))
    for top, body in sweep.items():
        if top == "IOType":
            values = _values("sweep.IOType", body)
            for v in values:
                if v not in IO_TYPES:
                    raise SpecError(f"sweep spec key 'sweep.IOType' has value {v!r}; expected {' or '.join(IO_TYPES)}")
            axes.append((("IOType",), values))
            continue
        levels = {"": body} if top == "Model" else _mapping(f"sweep.{top}", body)
        for name, level in levels.items():
            where = f"sweep.{top}" + (f".{name}" if name else "")
            _check_keys(where, _mapping(where, level), LEVEL_KEYS)
            for key, value in level.items():
                axes.append(((top, *((name,) if name else ()), key), _values(f"{where}.{key}", value)))
    if not axes:
        raise SpecError("sweep spec section 'sweep' lists no keys; give values per key, e.g. sweep: {Model: {ReuseFactor: [1, 2, 4]}}")
    return axes


def _number(where: str, value, kind=float, minimum=0, inclusive=False):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (kind is float or float(value).is_integer())
    if not ok or value < minimum or (value == minimum and not inclusive):
        what = "an integer" if kind is int else "a number"
        bound = f"at least {minimum}" if inclusive else f"above {minimum}"
        raise SpecError(f"sweep spec key {where!r} must be {what} {bound}, not {value!r}")
    return kind(value)


def _bytes(where: str, value) -> int:
    from dask.utils import parse_bytes

    try:
        n = parse_bytes(value) if isinstance(value, str) else int(value)
    except (ValueError, TypeError):
        n = 0
    if isinstance(value, bool) or n <= 0:
        raise SpecError(f"sweep spec key {where!r} must be an amount of memory such as 2GB or 500MB, not {value!r}")
    return n


def load_spec(source, *, base_dir=None) -> Spec:
    """Read and validate a spec (YAML path or dict); relative data paths are taken from the spec's folder."""
    import yaml

    if isinstance(source, Spec):
        return source
    _require_dask()
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise SpecError(f"sweep spec {str(path)!r} does not exist")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            raise SpecError(f"sweep spec {str(path)!r} is not valid YAML ({' '.join(str(e).split())})") from None
        base_dir = base_dir or path.parent
    else:
        data = copy.deepcopy(source)
    base_dir = Path(base_dir or ".")
    data = _mapping("", data if data is not None else {})
    _check_keys("", data, SPEC_KEYS)
    if "sweep" not in data:
        raise SpecError("sweep spec has no 'sweep' section; list values per key, e.g. sweep: {Model: {ReuseFactor: [1, 2, 4]}}")
    spec = Spec(axes=_axes(_mapping("sweep", data["sweep"])))
    config = data.get("config") or {}
    if isinstance(config, str):  # an hls4ml-style configuration file
        path = base_dir / config
        try:
            config = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise SpecError(f"sweep spec key 'config': cannot read {str(path)!r} ({' '.join(str(e).split())})") from None
    config = _mapping("config", config)
    if isinstance(config.get("HLSConfig"), dict):  # an hls4ml project file: swept keys go beside its own
        config = {**{k: v for k, v in config.items() if k == "IOType"}, **config["HLSConfig"]}
    spec.config = config
    stages = _values("stages", data.get("stages", ["build"]))
    for s in stages:
        if s not in STAGES:
            raise SpecError(f"sweep spec key 'stages' has stage {s!r}; expected some of {', '.join(STAGES)}")
    spec.stages = tuple(s for s in STAGES if s in stages or s == "build")
    for name, keys in SECTION_KEYS.items():
        section = _mapping(name, data.get(name) or {})
        _check_keys(name, section, keys)
        if name != "limits":
            setattr(spec, name, dict(section))
    b = spec.build
    b["vectors"] = _number("build.vectors", b.get("vectors", 100), int, 1, True)
    b["skip_softmax"] = bool(b.get("skip_softmax", False))
    a = spec.accuracy
    for key in ("data", "labels"):
        if a.get(key) is not None:
            a[key] = str((base_dir / str(a[key])).resolve())
    if a.get("limit") is not None:
        a["limit"] = _number("accuracy.limit", a["limit"], int, 1, True)
    s = spec.sim
    s["vectors"] = _number("sim.vectors", s.get("vectors", 1000), int, 1, True)
    s["simulator"] = s.get("simulator", "verilator")
    if s["simulator"] not in ("verilator", "icarus"):
        raise SpecError(f"sweep spec key 'sim.simulator' must be verilator or icarus, not {s['simulator']!r}")
    y = spec.synth
    y["target"] = y.get("target", "xc7")
    y["part"] = y.get("part")
    y["dsp"] = bool(y.get("dsp", True))
    from .synth import TARGETS, find_part

    if y["target"] not in TARGETS:
        raise SpecError(f"sweep spec key 'synth.target' must be one of {', '.join(TARGETS)}, not {y['target']!r}")
    try:
        y["part"] = find_part(y["target"], y["part"]).name if y["part"] else None
    except ValueError as e:
        raise SpecError(f"sweep spec key 'synth': {e}") from None
    limits = _mapping("limits", data.get("limits") or {})
    spec.timeout = _number("limits.timeout", limits.get("timeout", 3600))
    spec.memory = _bytes("limits.memory", limits.get("memory", DEFAULT_MEMORY["synth" in spec.stages]))
    spec.retries = _number("limits.retries", limits.get("retries", 2), int, 0, True)
    if data.get("workers") is not None:
        spec.workers = _number("workers", data["workers"], int, 1, True)
    spec.cluster = _mapping("cluster", data.get("cluster") or {})
    _check_keys("cluster", spec.cluster, SCHEDULERS)
    for kind, kw in spec.cluster.items():
        _mapping(f"cluster.{kind}", kw or {})
    return spec


# -- points -------------------------------------------------------------------------------------------


def _label(path: tuple) -> str:
    return ".".join(path[1:] if path[0] in ("Model", "LayerName", "LayerType") else path)


def _token(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))
    text = text.replace("<", "").replace(">", "").replace(",", ".").replace(":", ".")
    return re.sub(r"[^A-Za-z0-9._+]+", "_", text).strip("_.") or "_"


def points(spec: Spec) -> list[dict]:
    """Every combination of the swept values: ``{"name", "params", "config"}`` in the spec's order.

    A value that the configuration refuses (unknown type, reuse factor 0) is a spec error; one that
    only the model can refuse (a reuse factor the layer cannot take) fails its point alone."""
    from .config import load_config

    out, seen = [], set()
    for combo in itertools.product(*(values for _, values in spec.axes)):
        cfg = copy.deepcopy(spec.config)
        params = {}
        for (path, _), value in zip(spec.axes, combo):
            node = cfg
            for key in path[:-1]:
                node = node.setdefault(key, {})
                if not isinstance(node, dict):
                    raise SpecError(f"sweep spec key 'config.{'.'.join(path[:-1])}' must be a mapping to take swept values")
            node[path[-1]] = copy.deepcopy(value)
            params[_label(path)] = value
        try:
            load_config(cfg)
        except ConfigError as e:
            raise SpecError(f"sweep spec: {e}") from None
        name = "-".join(f"{k}={_token(v)}" for k, v in params.items())
        if len(name) > 120 or name in seen:
            digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:10]
            name = f"{name[:100]}-{digest}"
        seen.add(name)
        out.append({"name": name, "params": params, "config": cfg})
    return out


def _rebuild_command(job: dict) -> str:
    d = Path(job["dir"])
    cmd = ["rtlgen", "build", job["model"], "-o", str(d / "build"), "--config", str(d / "config.yml")]
    if job["build"]["skip_softmax"]:
        cmd.append("--skip-softmax")
    text = shlex.join(cmd)
    if "synth" in job["stages"]:
        y = job["synth"]
        syn = ["rtlgen", "synth", str(d / "build"), "--target", y["target"]]
        syn += ["--part", y["part"]] if y["part"] else []
        syn += [] if y["dsp"] else ["--no-dsp"]
        text += " && " + shlex.join(syn)
    return text


# -- one point (runs on a worker) ----------------------------------------------------------------------


class _UserFailure(Exception):
    """A stage reported a user error: the point fails the same way on every attempt."""


def _call(stage: str, args: list, d: Path, deadline: float, timeout: float) -> None:
    """Run one stage in its own process group within the point's remaining time."""
    log_path = d / f"{stage}.log"
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise PointError(f"{stage}: timed out: the point used its {timeout:g} s (limits.timeout in the spec)")
    cmd = [sys.executable, "-m", "rtlgen._sweep_stage", "--parent", str(os.getpid()), stage, *map(str, args)]
    with open(log_path, "w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        rc = proc.wait(timeout=remaining)
    except subprocess.TimeoutExpired:
        raise PointError(f"{stage}: timed out: the point used its {timeout:g} s (limits.timeout in the spec)") from None
    finally:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
    if rc == 0:
        return
    lines = [ln.strip() for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()]
    if rc == 2:
        errors = [ln[len("error: "):] for ln in lines if ln.startswith("error: ")]
        if errors:
            raise _UserFailure(errors[-1])
    why = f"killed by signal {-rc}" if rc < 0 else f"exited with status {rc}"
    raise PointError(f"{stage}: {why}: {lines[-1] if lines else 'no output'} (see {log_path})")


def _read_json(path: Path, stage: str) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        raise PointError(f"{stage}: wrote no readable {path.name} (see {path.parent / (stage + '.log')})") from None


def _run_point(job: dict) -> dict:
    """Build, check and synthesize one point; the Dask task. Returns the point's record."""
    import yaml

    d = Path(job["dir"])
    d.mkdir(parents=True, exist_ok=True)
    meta_path = d / "point.json"
    attempt = 1
    if meta_path.exists():
        try:
            attempt = int(json.loads(meta_path.read_text()).get("attempt", 0)) + 1
        except (ValueError, json.JSONDecodeError):
            pass
    host = socket.gethostname()
    meta = {"point": job["name"], "attempt": attempt, "host": host, "pid": os.getpid(), "started": time.time()}
    meta_path.write_text(json.dumps(meta) + "\n")
    (d / "config.yml").write_text(yaml.safe_dump(job["config"], sort_keys=True))
    rec = {
        "point": job["name"], "params": job["params"], "status": "ok", "error": None, "latency": None,
        "interval": None, "accuracy": None, "sim_mismatches": None, "lut": None, "ff": None, "dsp": None,
        "bram": None, "carry": None, "path_delay_ns": None, "seconds": {}, "attempt": attempt,
        "host": f"{host}:{os.getpid()}", "dir": str(d), "command": _rebuild_command(job),
    }  # fmt: skip
    deadline = time.monotonic() + job["timeout"]
    build = d / "build"
    for stage in job["stages"]:
        t0 = time.monotonic()
        try:
            if stage == "build":
                args = [job["model"], "-o", build, "--config", d / "config.yml", "--vectors", job["build"]["vectors"]]
                _call(stage, args + (["--skip-softmax"] if job["build"]["skip_softmax"] else []), d, deadline, job["timeout"])
                report = _read_json(build / "report.json", stage)
                rec["latency"], rec["interval"] = report.get("latency_cycles"), report.get("interval_cycles")
            elif stage == "accuracy":
                a, out = job["accuracy"], d / "accuracy.json"
                out.unlink(missing_ok=True)
                args = [build, "--json", out, "--data", a["data"], "--labels", a["labels"]]
                _call(stage, args + (["--limit", a["limit"]] if a.get("limit") else []), d, deadline, job["timeout"])
                rec["accuracy"] = _read_json(out, stage)["accuracy"]
            elif stage == "sim":
                s, out = job["sim"], d / "sim.json"
                out.unlink(missing_ok=True)
                args = [build, "--json", out, "--vectors", s["vectors"], "--simulator", s["simulator"], "--work", d / "sim"]
                _call(stage, args, d, deadline, job["timeout"])
                res = _read_json(out, stage)
                rec["sim_mismatches"] = res["mismatches"]
                if not res["passed"]:
                    why = "; ".join(res["failures"]) or f"{res['mismatches']} of {res['n_vectors']} vectors differ from the golden model"
                    raise _UserFailure(why)
            elif stage == "synth":
                y = job["synth"]
                args = [build, "--target", y["target"]] + (["--part", y["part"]] if y["part"] else [])
                _call(stage, args + ([] if y["dsp"] else ["--no-dsp"]), d, deadline, job["timeout"])
                res = _read_json(build / "report.json", stage).get("synthesis", {}).get(y["target"])
                if not res:
                    raise PointError(f"synth: no results for {y['target']} in {build / 'report.json'}")
                for k in ("lut", "ff", "dsp", "bram", "carry", "path_delay_ns"):
                    rec[k] = res.get(k)
        except _UserFailure as e:
            rec["status"], rec["error"] = "error", " ".join(f"{stage}: {e}".split())
            break
        finally:
            rec["seconds"][stage] = round(time.monotonic() - t0, 2)
    return rec


# -- clusters -----------------------------------------------------------------------------------------


def _bokeh() -> bool:
    import importlib.util

    return importlib.util.find_spec("bokeh") is not None


def _fmt_bytes(n: float) -> str:
    from dask.utils import format_bytes

    return format_bytes(int(n))


def jobqueue_cluster(spec: Spec, kind: str):
    """A ``dask_jobqueue`` SLURMCluster or HTCondorCluster from ``spec.cluster[kind]`` (not scaled).

    Each worker runs one thread (``processes`` defaults to ``cores``) and declares its share of the
    job's memory as its ``memory`` resource; ``cluster.job_script()`` shows what would be submitted."""
    try:
        import dask_jobqueue
    except ImportError:
        raise RtlgenError(f"--scheduler {kind} needs dask-jobqueue: pip install 'rtlgen[sweep]'") from None
    cls = {"slurm": dask_jobqueue.SLURMCluster, "htcondor": dask_jobqueue.HTCondorCluster}[kind]
    kw = dict(spec.cluster.get(kind) or {})
    if not kw:
        raise SpecError(f"--scheduler {kind} needs a 'cluster.{kind}' section in the sweep spec (cores, memory, ...); see examples/sweeps/")
    for key in ("cores", "memory"):
        if key not in kw:
            raise SpecError(f"sweep spec key 'cluster.{kind}.{key}' is missing; a batch job needs its cores and memory")
    cores = _number(f"cluster.{kind}.cores", kw["cores"], int, 1, True)
    processes = _number(f"cluster.{kind}.processes", kw.setdefault("processes", cores), int, 1, True)
    per_worker = _bytes(f"cluster.{kind}.memory", kw["memory"]) // processes
    if per_worker < spec.memory:
        raise SpecError(
            f"sweep spec key 'cluster.{kind}.memory': {kw['memory']} over {processes} worker(s) gives each "
            f"{_fmt_bytes(per_worker)}, less than limits.memory {_fmt_bytes(spec.memory)}; raise it or lower 'processes'"
        )
    extra = [str(a) for a in kw.pop("worker_extra_args", [])]
    kw["worker_extra_args"] = extra + ["--resources", f"memory={per_worker}"]
    kw.setdefault("python", sys.executable)
    try:
        return cls(**kw)
    except (TypeError, ValueError) as e:
        m = re.search(r"keyword argument '(\w+)'", str(e))
        if m:
            raise SpecError(f"sweep spec key 'cluster.{kind}.{m.group(1)}' is not an option of {cls.__name__} (see dask-jobqueue's documentation)") from None
        raise SpecError(f"sweep spec section 'cluster.{kind}': {' '.join(str(e).split())}") from None


def _check_scheduler(scheduler: str | None) -> None:
    if scheduler is None or scheduler in SCHEDULERS:
        return
    if not re.match(r"^([a-z]+://)?[\w.\-\[\]:]+:\d+$", scheduler):
        raise RtlgenError(f"--scheduler must be {', '.join(SCHEDULERS)} or a scheduler address such as tcp://host:8786, not {scheduler!r}")


def make_cluster(spec: Spec, scheduler: str | None = None, workers: int | None = None):
    """``(client, cluster)`` for ``scheduler``: ``local`` (default), ``slurm``, ``htcondor`` or a
    scheduler address (``cluster`` is None then: the caller does not own it)."""
    from distributed import Client, LocalCluster
    from distributed.system import MEMORY_LIMIT

    scheduler = scheduler or "local"
    n = workers or spec.workers
    if scheduler == "local":
        kw = dict(spec.cluster.get("local") or {})
        if "memory_limit" in kw:
            per = _bytes("cluster.local.memory_limit", kw.pop("memory_limit"))
            n = n or max(1, min(os.cpu_count() or 1, MEMORY_LIMIT // per))
        else:
            n = n or max(1, min(os.cpu_count() or 1, MEMORY_LIMIT // spec.memory))
            per = MEMORY_LIMIT // n
        if per < spec.memory:
            most = max(1, MEMORY_LIMIT // spec.memory)
            raise SpecError(
                f"{n} local workers get {_fmt_bytes(per)} each, less than limits.memory {_fmt_bytes(spec.memory)} "
                f"a point needs; use at most {most} worker(s) (--workers) or lower limits.memory"
            )
        kw.setdefault("dashboard_address", ":0" if _bokeh() else None)
        try:
            cluster = LocalCluster(
                n_workers=n, threads_per_worker=1, processes=True, memory_limit=per,
                resources={"memory": per}, **kw,
            )  # fmt: skip
        except TypeError as e:
            raise SpecError(f"sweep spec section 'cluster.local' has an option LocalCluster does not take ({e})") from None
        return Client(cluster), cluster
    if scheduler in ("slurm", "htcondor"):
        cluster = jobqueue_cluster(spec, scheduler)
        cluster.scale(n=n or 1)
        return Client(cluster), cluster
    _check_scheduler(scheduler)
    try:
        return Client(scheduler, timeout="20s"), None
    except (OSError, TimeoutError) as e:
        raise RtlgenError(f"cannot reach the Dask scheduler at {scheduler} ({' '.join(str(e).split())}); start one with 'dask scheduler' or use --scheduler local") from None


def _resources(client, spec: Spec) -> dict | None:
    """The task resources to declare, or None when no worker declares memory (then it is not limited)."""
    workers = client.scheduler_info().get("workers", {})
    mem = [w.get("resources", {}).get("memory") for w in workers.values()]
    declared = [m for m in mem if m is not None]
    if workers and not declared:
        log.warning("the workers declare no 'memory' resource, so memory does not limit how many points run at once; "
                    "start them with --resources memory=BYTES")  # fmt: skip
        return None
    if declared and max(declared) < spec.memory:
        raise SpecError(
            f"limits.memory {_fmt_bytes(spec.memory)} exceeds every worker's memory (at most {_fmt_bytes(max(declared))}); "
            f"lower it or use larger workers"
        )
    return {"memory": spec.memory}


def _dashboard(client) -> str | None:
    try:
        if "dashboard" not in client.scheduler_info().get("services", {}):
            return None
        return client.dashboard_link
    except Exception:  # a remote scheduler may not say; the link is only a convenience
        return None


# -- the sweep ------------------------------------------------------------------------------------------


@dataclass
class SweepResult:
    """The records of every point (in the spec's order), the files written and what ran this time."""

    out: Path
    records: list
    ran: list
    pareto: list
    best: dict
    dashboard: str | None = None
    seconds: float = 0.0

    @property
    def failed(self) -> list:
        return [r for r in self.records if r["status"] != "ok"]


def _one_line(exc: BaseException) -> str:
    from distributed import KilledWorker

    if isinstance(exc, KilledWorker):
        m = re.search(r"on (\d+) different workers", str(exc))
        n = m.group(1) if m else "several"
        return f"{n} workers died running it; it may need more memory than limits.memory (or a longer job walltime)"
    text = str(exc) if isinstance(exc, RtlgenError) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())


def _load_records(path: Path) -> dict:
    """The last record of each point in a points file. A torn line (a run killed while writing it)
    is skipped: its point counts as missing and runs again."""
    records = {}
    if not path.exists():
        return records
    for i, line in enumerate(path.read_text().splitlines()):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            records[rec["point"]] = rec
        except (json.JSONDecodeError, KeyError, TypeError):
            log.warning("%s line %d is not a whole record (an interrupted write); its point runs again", path, i + 1)
    return records


def _append(path: Path, rec: dict) -> None:
    # Starts on a fresh line even after a torn write, and reaches the disk before the next point.
    with open(path, "a+") as f:
        if f.tell():
            f.seek(f.tell() - 1)
            if f.read(1) != "\n":
                f.write("\n")
        f.write(json.dumps(rec, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _model_file(model, out: Path) -> Path:
    import onnx

    if isinstance(model, onnx.ModelProto):
        path = out / "model.onnx"
        data = model.SerializeToString()
        if not path.exists() or path.read_bytes() != data:
            path.write_bytes(data)
        return path
    path = Path(os.fspath(model)).resolve()
    if not path.is_file():
        raise RtlgenError(f"model file {str(model)!r} does not exist")
    return path


def _check_data(spec: Spec) -> None:
    import numpy as np

    a = spec.accuracy
    if "accuracy" not in spec.stages:
        return
    if not a.get("data") or not a.get("labels"):
        raise SpecError("stage 'accuracy' needs data and labels: --data x.npy --labels y.npy, or accuracy: {data: ..., labels: ...} in the spec")
    shapes = []
    for key in ("data", "labels"):
        try:
            arr = np.load(a[key], mmap_mode="r")
        except Exception as e:  # np.load raises many kinds (OSError, ValueError, EOFError, UnpicklingError)
            raise RtlgenError(f"{key} file {a[key]!r} cannot be read as a .npy array ({type(e).__name__}: {e})") from None
        shapes.append(arr.shape)
    if not shapes[0] or not shapes[1] or shapes[0][0] != shapes[1][0]:
        raise RtlgenError(f"data file {a['data']!r} has shape {shapes[0]} and labels file {a['labels']!r} {shapes[1]}: they need the same number of samples")


class _Progress:
    """A rich progress bar on a terminal; log lines otherwise."""

    def __init__(self, total: int, enabled: bool | None):
        self.bar = None
        if enabled is None:
            enabled = sys.stderr.isatty()
        if enabled:
            try:
                from rich.progress import (
                    BarColumn,
                    MofNCompleteColumn,
                    Progress,
                    TextColumn,
                    TimeElapsedColumn,
                )
            except ImportError:
                log.warning("live progress needs rich: pip install 'rtlgen[report]'")
            else:
                self.bar = Progress(
                    TextColumn("sweep"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                    TimeElapsedColumn(), transient=False,
                )  # fmt: skip
        self.total, self.ok, self.failed = total, 0, 0
        self.task = None

    def __enter__(self):
        if self.bar is not None:
            self.bar.__enter__()
            self.task = self.bar.add_task("starting", total=self.total)
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)
        return False

    def note(self, text: str) -> None:
        if self.bar is not None:
            self.bar.console.print(text)
        else:
            log.info(text)

    def done(self, rec: dict) -> None:
        if rec["status"] == "ok":
            self.ok += 1
        else:
            self.failed += 1
        text = f"{self.ok} ok, {self.failed} failed; last {rec['point']}"
        if self.bar is not None:
            self.bar.update(self.task, advance=1, description=text)
        else:
            log.info("%d/%d point %s: %s", self.ok + self.failed, self.total, rec["point"], rec["error"] or "ok")


def run(
    model,
    spec,
    client=None,
    *,
    out="sweep",
    resume: bool = False,
    retry_failed: bool = False,
    data=None,
    labels=None,
    scheduler: str | None = None,
    workers: int | None = None,
    progress: bool | None = None,
) -> SweepResult:
    """Run every point of ``spec`` for ``model`` (a model file or an ``onnx.ModelProto``) on Dask.

    ``client``: an existing ``distributed.Client`` (kept open); otherwise a cluster is made from
    ``scheduler`` and ``workers`` (see :func:`make_cluster`) and closed at the end. ``resume``
    reruns only points without a record in ``OUT/points.jsonl`` (and failed ones with
    ``retry_failed``). ``data``/``labels`` (.npy) override the spec's accuracy data. Results
    are written even when the run is interrupted."""
    _require_dask()
    from distributed import as_completed

    from ._sweep_report import best, pareto, write_results

    t_start = time.monotonic()
    spec = copy.deepcopy(load_spec(spec))
    if data is not None:
        spec.accuracy["data"] = str(Path(data).resolve())
    if labels is not None:
        spec.accuracy["labels"] = str(Path(labels).resolve())
    if (data is not None or labels is not None) and "accuracy" not in spec.stages:
        spec.stages = tuple(s for s in STAGES if s in spec.stages or s == "accuracy")
    _check_data(spec)
    _check_scheduler(scheduler)
    pts = points(spec)
    if not hasattr(model, "SerializeToString") and not Path(os.fspath(model)).is_file():
        raise RtlgenError(f"model file {str(model)!r} does not exist")
    out = Path(out).resolve()
    points_file = out / POINTS_FILE
    if points_file.exists() and not resume:
        raise RtlgenError(f"{str(out)!r} already holds a sweep; pass --resume to continue it, or choose another -o")
    out.mkdir(parents=True, exist_ok=True)
    model_path = _model_file(model, out)
    digest = hashlib.sha256(model_path.read_bytes()).hexdigest()
    state = {"model": str(model_path), "model_sha256": digest, "spec": spec.fingerprint(), "points": [p["name"] for p in pts]}
    state_path = out / "sweep.json"
    if resume and state_path.exists():
        old = json.loads(state_path.read_text())
        if old.get("model_sha256") != digest or old.get("spec") != state["spec"]:
            what = "model" if old.get("model_sha256") != digest else "spec"
            raise RtlgenError(f"{str(out)!r} holds a sweep of a different {what}; resume it with the same model and spec, or choose another -o")
    state_path.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")

    jobs = []
    for p in pts:
        jobs.append({
            **p, "dir": str(out / "points" / p["name"]), "model": str(model_path), "stages": list(spec.stages),
            "build": spec.build, "accuracy": spec.accuracy, "sim": spec.sim, "synth": spec.synth, "timeout": spec.timeout,
        })  # fmt: skip
    names = {j["name"] for j in jobs}
    records = {k: v for k, v in _load_records(points_file).items() if k in names}
    if retry_failed:
        records = {k: v for k, v in records.items() if v["status"] == "ok"}
    todo = [j for j in jobs if j["name"] not in records]
    if resume:
        log.info("resuming: %d of %d points recorded, %d to run", len(jobs) - len(todo), len(jobs), len(todo))
    ran, dashboard, cluster, own = [], None, None, False
    try:
        if todo:
            if client is None:
                client, cluster = make_cluster(spec, scheduler, workers)
                own = True
            resources = _resources(client, spec)
            dashboard = _dashboard(client)
            with _Progress(len(todo), progress) as bar:
                if dashboard:
                    bar.note(f"dashboard: {dashboard}")
                futures, run_id = {}, uuid.uuid4().hex[:8]  # keys unique to this run, even on a shared client
                for j in todo:
                    fut = client.submit(
                        _run_point, j, key=f"rtlgen-point-{j['name']}-{run_id}", pure=False,
                        retries=spec.retries, resources=resources,
                    )  # fmt: skip
                    futures[fut] = j
                for fut in as_completed(futures):
                    j = futures[fut]
                    if fut.status == "finished":
                        rec = fut.result()
                    else:
                        exc = fut.exception() if fut.status == "error" else None
                        rec = {
                            "point": j["name"], "params": j["params"], "status": "error",
                            "error": _one_line(exc) if exc is not None else f"task {fut.status}",
                            "dir": j["dir"], "command": _rebuild_command(j),
                        }  # fmt: skip
                    records[j["name"]] = rec
                    ran.append(j["name"])
                    _append(points_file, rec)
                    bar.done(rec)
    except KeyboardInterrupt:
        log.warning("interrupted: %d of %d points recorded in %s; run again with --resume to finish", len(records), len(jobs), points_file)
        raise
    finally:
        ordered = [records[j["name"]] for j in jobs if j["name"] in records]
        write_results(out, ordered, stages=spec.stages)
        if own:
            client.close()
            if cluster is not None:
                cluster.close()
    ordered = [records[j["name"]] for j in jobs]
    return SweepResult(
        out=out, records=ordered, ran=ran, pareto=pareto(ordered), best=best(ordered), dashboard=dashboard,
        seconds=time.monotonic() - t_start,
    )  # fmt: skip


def _num(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def summary(result: SweepResult) -> str:
    """What the command line prints after a sweep: counts, the Pareto table, the best points."""
    from ._sweep_report import TITLES, format_rows, objectives, table

    recs = result.records
    ok = [r for r in recs if r["status"] == "ok"]
    lines = [f"  {len(recs)} points: {len(ok)} ok, {len(recs) - len(ok)} failed ({len(result.ran)} run now, in {result.seconds:.1f} s)\n"]
    if result.dashboard:
        lines.append(f"  dashboard was at {result.dashboard}\n")
    for r in result.failed:
        lines.append(f"  failed {r['point']}: {r['error']}\n")
    if ok:
        keys = objectives(recs)
        lines.append(f"  Pareto front ({len(result.pareto)} of {len(ok)} points; objectives: {', '.join(TITLES[k] for k in keys)}):\n")
        lines.append(format_rows(table(recs, set(result.pareto)), indent="    "))
        by_name = {r["point"]: r for r in recs}
        lines.append("  best per objective (and the command that rebuilds it):\n")
        winners: dict = {}
        for k, name in result.best.items():
            winners.setdefault(name, []).append(f"{TITLES[k].split(' (')[0]} {_num(by_name[name][k])}")
        for name, wins in winners.items():
            lines.append(f"    {', '.join(wins)}: {name}\n      {by_name[name]['command']}\n")
    out = result.out
    lines.append(f"  written: {out / 'results.csv'}, {out / 'results.json'}, {out / 'report.html'}, {out / POINTS_FILE}\n")
    return "".join(lines)
