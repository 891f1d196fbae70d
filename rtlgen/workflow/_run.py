"""``rtlgen workflow SPEC.yml``: data, teacher, distilled student, pruning, quantization-aware
training, build, synthesis and assessment, each stage saved and resumable, ending in one results
row (``results.md``, ``results.json``, ``report.html``).

A stage is skipped when its saved result exists and was made from the same spec entries as now
(the stage's own section and those of every stage before it); otherwise it and every later stage
run again.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
import logging
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

from ..errors import ConfigError, RtlgenError
from ..report_html import format_number

__all__ = ["load_spec", "run", "STAGES", "COLUMNS", "WorkflowError"]

log = logging.getLogger(__name__)

STAGES = ("data", "teacher", "student", "baseline", "prune", "quantize", "build", "synth", "assess")
# The reference table's columns: key in the row, heading.
COLUMNS = (
    ("teacher_params", "teacher params"), ("teacher_accuracy", "teacher acc. %"), ("student_params", "student params"),
    ("compression", "compression"), ("layers", "layers"), ("accuracy", "student acc. %"), ("bits", "bits"),
    ("sparsity", "sparsity %"), ("part", "part"), ("bram", "BRAM %"), ("dsp", "DSP %"), ("ff", "FF %"), ("lut", "LUT %"),
    ("latency", "latency (cycles)"),
)  # fmt: skip

_SECTIONS = {
    "name": None, "seed": None, "data": {"generator", "train", "test", "options"},
    "teacher": {"layers", "epochs", "batch_size", "learning_rate"},
    "student": {"layers", "epochs", "batch_size", "learning_rate"},
    "distill": {"temperature", "alpha", "baseline"},
    "prune": {"sparsity", "epochs", "end_fraction", "frequency", "learning_rate", "distill"},
    "quantize": {"mode", "bits", "beta", "weight_integers", "activation_bits", "activation_integers", "epochs", "learning_rate", "distill"},
    "build": {"board", "part", "io_type", "reuse", "config", "vectors"},
    "synth": {"enabled", "dsp", "timeout"},
    "assess": {"samples", "simulate"},
    "reference": None,
}  # fmt: skip
# The spec sections each stage is made from (besides those of the stages before it).
_DEPENDS = {
    "data": ("seed", "data"), "teacher": ("teacher",), "student": ("student", "distill"), "baseline": ("student", "distill"),
    "prune": ("prune",), "quantize": ("quantize",), "build": ("build",), "synth": ("synth",), "assess": ("assess",),
}  # fmt: skip


class WorkflowError(RtlgenError):
    """A workflow spec or stage that cannot run as asked."""


def _section(spec: dict, name: str) -> dict:
    v = spec.get(name)
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise ConfigError(f"workflow spec key '{name}' must be a mapping, not {type(v).__name__}")
    keys = _SECTIONS[name]
    if keys is not None:
        bad = sorted(set(v) - keys)
        if bad:
            raise ConfigError(f"workflow spec key '{name}' has unknown key(s) {', '.join(bad)}; allowed: {', '.join(sorted(keys))}")
    return dict(v)


def _num(where: str, v, kind=float, lo=0.0, hi=None, lo_open=False):
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and (kind is float or float(v).is_integer())
    if ok:
        v = kind(v)
        ok = (v > lo if lo_open else v >= lo) and (hi is None or v <= hi)
    if not ok:
        rng = f"{'>' if lo_open else '>='} {lo:g}" + (f" and <= {hi:g}" if hi is not None else "")
        raise ConfigError(f"workflow spec key '{where}' must be a{'n integer' if kind is int else ' number'} {rng}, not {v!r}")
    return v


def load_spec(path) -> dict:
    """Read and validate a workflow spec; return it with every default filled in. Paths in it are
    taken from the spec's folder."""
    import yaml

    from ._models import check_layers

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"workflow spec {str(path)!r} does not exist")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"workflow spec {str(path)!r} is not valid YAML ({' '.join(str(e).split())})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"workflow spec {str(path)!r} must be a mapping of sections (data, teacher, student, ...)")
    bad = sorted(set(raw) - set(_SECTIONS))
    if bad:
        raise ConfigError(f"workflow spec has unknown section(s) {', '.join(bad)}; allowed: {', '.join(_SECTIONS)}")
    spec = {"name": str(raw.get("name") or path.parent.name), "seed": _num("seed", raw.get("seed", 0), int), "base": str(path.parent.resolve())}
    d = _section(raw, "data")
    if "generator" not in d:
        raise ConfigError("workflow spec key 'data.generator' is missing; name a Python file defining generate(n, rng) -> (x, y)")
    gen = (path.parent / str(d["generator"])).resolve()
    if not gen.is_file():
        raise ConfigError(f"workflow spec key 'data.generator': {str(gen)!r} does not exist")
    spec["data"] = {"generator": str(gen), "train": _num("data.train", d.get("train", 10000), int, 1),
                    "test": _num("data.test", d.get("test", 2000), int, 1), "options": dict(d.get("options") or {})}  # fmt: skip
    for name, epochs, lr in (("teacher", 20, 3e-3), ("student", 30, 3e-3)):
        s = _section(raw, name)
        spec[name] = {"layers": check_layers(f"{name}.layers", s.get("layers")), "epochs": _num(f"{name}.epochs", s.get("epochs", epochs), int),
                      "batch_size": _num(f"{name}.batch_size", s.get("batch_size", 256), int, 1),
                      "learning_rate": _num(f"{name}.learning_rate", s.get("learning_rate", lr), float, 0, lo_open=True)}  # fmt: skip
    s = _section(raw, "distill")
    spec["distill"] = {"temperature": _num("distill.temperature", s.get("temperature", 4.0), float, 0, lo_open=True),
                       "alpha": _num("distill.alpha", s.get("alpha", 0.1), float, 0, 1), "baseline": bool(s.get("baseline", True))}  # fmt: skip
    s = _section(raw, "prune")
    spec["prune"] = {"sparsity": _num("prune.sparsity", s.get("sparsity", 0.0), float, 0, 0.99),
                     "epochs": _num("prune.epochs", s.get("epochs", 10), int), "end_fraction": _num("prune.end_fraction", s.get("end_fraction", 0.7), float, 0, 1, True),
                     "frequency": _num("prune.frequency", s.get("frequency", 10), int, 1),
                     "learning_rate": _num("prune.learning_rate", s.get("learning_rate", 1e-3), float, 0, lo_open=True),
                     "distill": bool(s.get("distill", True))}  # fmt: skip
    s = _section(raw, "quantize")
    mode = s.get("mode", "uniform")
    if mode not in ("uniform", "hgq"):
        raise ConfigError(f"workflow spec key 'quantize.mode' must be 'uniform' (fixed widths) or 'hgq' (per-weight widths), not {mode!r}")
    spec["quantize"] = {"mode": mode, "bits": _num("quantize.bits", s.get("bits", 8), int, 2, 32),
                        "beta": _num("quantize.beta", s.get("beta", 1e-6), float),
                        "weight_integers": _num("quantize.weight_integers", s.get("weight_integers", 1), int, -8, 16),
                        "activation_bits": _num("quantize.activation_bits", s.get("activation_bits", 8), int, 2, 32),
                        "activation_integers": _num("quantize.activation_integers", s.get("activation_integers", 3), int, -8, 16),
                        "epochs": _num("quantize.epochs", s.get("epochs", 10), int),
                        "learning_rate": _num("quantize.learning_rate", s.get("learning_rate", 1e-3), float, 0, lo_open=True),
                        "distill": bool(s.get("distill", True))}  # fmt: skip
    s = _section(raw, "build")
    board, part = s.get("board"), s.get("part")
    target = None
    if board is not None:
        from ..boards import get_board

        b = get_board(str(board))
        board, target = b.name, b.target
        part = part or b.part
    if part is None:
        raise ConfigError("workflow spec key 'build' needs a board (rtlgen boards lists them) or a part (e.g. part: xc7a35t)")
    from ..synth import PARTS, find_part

    if target is None:
        key = str(part).lower()
        target = next((PARTS[n].target for n in sorted(PARTS, key=len, reverse=True) if key.startswith(n)), "xcup" if key.startswith("xc") else None)
    try:
        part = find_part(target or "xc7", str(part)).name
    except ValueError as e:
        raise ConfigError(f"workflow spec key 'build.part': {e}") from None
    io = s.get("io_type", "io_parallel")
    if io not in ("io_parallel", "io_stream"):
        raise ConfigError(f"workflow spec key 'build.io_type' must be io_parallel or io_stream, not {io!r}")
    config = s.get("config") or {}
    if not isinstance(config, dict):
        raise ConfigError("workflow spec key 'build.config' must be a mapping of hls4ml configuration keys")
    spec["build"] = {"board": board, "part": part, "target": target, "io_type": io, "reuse": _num("build.reuse", s.get("reuse", 1), int, 1),
                     "config": config, "vectors": _num("build.vectors", s.get("vectors", 100), int, 1)}  # fmt: skip
    s = _section(raw, "synth")
    spec["synth"] = {"enabled": bool(s.get("enabled", True)), "dsp": bool(s.get("dsp", True)),
                     "timeout": _num("synth.timeout", s.get("timeout", 3600), float, 0, lo_open=True)}  # fmt: skip
    s = _section(raw, "assess")
    spec["assess"] = {"samples": _num("assess.samples", s.get("samples", 1000), int, 1), "simulate": bool(s.get("simulate", True))}
    ref = raw.get("reference")
    if ref is not None and not isinstance(ref, dict):
        raise ConfigError("workflow spec key 'reference' must be a mapping of the results table's columns")
    spec["reference"] = ref
    return spec


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (Yosys, Verilator, the C++ compiler)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _fingerprint(spec: dict, stage: str) -> str:
    keys = []
    for s in STAGES[: STAGES.index(stage) + 1]:
        keys += [k for k in _DEPENDS[s] if k not in keys]
    text = json.dumps({k: spec.get(k) for k in keys}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class _Echo:
    """Stage lines for people, and a rich progress bar over the training steps of a stage."""

    def __init__(self, out, progress: bool | None):
        self.out = out
        self.progress = sys.stderr.isatty() if progress is None else progress

    def __call__(self, text: str) -> None:
        if self.out is not None:
            print(text, file=self.out, flush=True)
        log.info(text)

    def bar(self, label: str):
        """A Keras callback drawing one bar over all the steps of a ``fit`` (or none)."""
        import keras

        if not self.progress:
            return None
        try:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
        except ImportError:
            log.warning("progress bars need rich: pip install 'rtlgen[report]'")
            return None

        class Bar(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                total = (self.params.get("epochs") or 1) * (self.params.get("steps") or 1)
                self.p = Progress(TextColumn(f"  {label:<9}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                                  TimeElapsedColumn(), TimeRemainingColumn(), transient=True)  # fmt: skip
                self.p.start()
                self.task = self.p.add_task("", total=total)

            def on_train_batch_end(self, batch, logs=None):
                logs = logs or {}
                acc = logs.get("accuracy", logs.get("student_accuracy"))
                desc = f"loss {logs['loss']:.4f}" if "loss" in logs else ""
                self.p.update(self.task, advance=1, description=desc + (f" acc {acc:.4f}" if acc is not None else ""))

            def on_train_end(self, logs=None):
                self.p.stop()

        return Bar()


def _load_generator(path: str):
    spec = importlib.util.spec_from_file_location(f"_rtlgen_workflow_data_{abs(hash(path))}", path)
    mod = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(mod)
    except Exception as e:
        raise WorkflowError(f"data generator {path!r} failed to load: {type(e).__name__}: {e}") from None
    if not callable(getattr(mod, "generate", None)):
        raise WorkflowError(f"data generator {path!r} defines no generate(n, rng) -> (x, y)")
    return mod.generate


def _make_data(spec: dict) -> dict:
    d = spec["data"]
    gen = _load_generator(d["generator"])
    out = {}
    for part, n, seed in (("train", d["train"], spec["seed"]), ("test", d["test"], spec["seed"] + 1)):
        x, y = gen(n, np.random.default_rng(seed), **d["options"])
        x, y = np.asarray(x, dtype=np.float32), np.asarray(y).reshape(-1)
        if len(x) != n or len(y) != n or not np.all(y == np.round(y)) or y.min() < 0:
            raise WorkflowError(f"data generator {d['generator']!r}: generate({n}, rng) must return {n} inputs and {n} class indices, "
                                f"not {x.shape} and {y.shape}")  # fmt: skip
        out[f"x_{part}"], out[f"y_{part}"] = x, y.astype(np.int64)
    return out


def _save_model(model, path: Path) -> None:
    tmp = path.with_name(path.stem + ".tmp.keras")
    model.save(tmp)
    os.replace(tmp, path)


def _load_model(path: Path):
    import hgq  # noqa: F401  (registers HGQ2's layers for loading)
    import keras

    return keras.models.load_model(path, compile=False)


class _State:
    """The workflow's folder: saved stages (``stages/<stage>.json``) with their fingerprints."""

    def __init__(self, spec: dict, out: Path, restart: str | None):
        self.spec, self.out = spec, out
        self.stale = False
        self.restart = restart
        (out / "models").mkdir(parents=True, exist_ok=True)
        (out / "stages").mkdir(parents=True, exist_ok=True)

    def done(self, stage: str) -> dict | None:
        """The saved record of ``stage`` when it is still valid (None: run it)."""
        if self.restart == stage:
            self.stale = True
        if self.stale:
            return None
        p = self.out / "stages" / f"{stage}.json"
        if not p.exists():
            self.stale = True
            return None
        rec = json.loads(p.read_text())
        if rec.get("fingerprint") != _fingerprint(self.spec, stage):
            self.stale = True
            return None
        return rec

    def save(self, stage: str, rec: dict) -> dict:
        rec = {"stage": stage, "fingerprint": _fingerprint(self.spec, stage), **rec}
        p = self.out / "stages" / f"{stage}.json"
        tmp = p.with_suffix(".tmp")
        tmp.write_text(json.dumps(rec, indent=2, sort_keys=True, default=float) + "\n")
        os.replace(tmp, p)
        return rec


def run(spec_path, out, *, restart: str | None = None, progress: bool | None = None, echo=sys.stdout) -> dict:
    """Run the workflow of ``spec_path`` into ``out``; return ``results.json``'s content.

    ``restart``: run again from this stage (one of :data:`STAGES`) even when saved.
    ``progress``: progress bars (default: when stderr is a terminal). ``echo``: where the stage
    lines go (None: only the log).
    """
    t_start, cpu_start = time.perf_counter(), _cpu_seconds()
    spec = load_spec(spec_path)
    if restart is not None and restart not in STAGES:
        raise ConfigError(f"restart stage must be one of {', '.join(STAGES)}, not {restart!r}")
    out = Path(out)
    say = _Echo(echo, progress)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    from . import _blocks as B
    from ._models import build as build_model

    st = _State(spec, out, restart)
    say(f"rtlgen workflow: {spec['name']} -> {out}")
    rec = {}

    def cbs(label):
        bar = say.bar(label)
        return [bar] if bar is not None else []

    def stage_line(name, r, extra=""):
        s = r.get("summary") or {}
        acc = f"accuracy {100 * s['accuracy']:.2f} %" if s.get("accuracy") is not None else ""
        size = f"{s['parameters']} parameters ({s['nonzero']} non-zero, sparsity {100 * s['sparsity']:.1f} %, {s['bits']:g} bits)" if s else ""
        say(f"  {name:<9} {'(saved) ' if r.get('_resumed') else ''}{', '.join(t for t in (size, acc, extra) if t)}"
            + (f" [{r['seconds']:.0f} s]" if r.get("seconds") and not r.get("_resumed") else ""))  # fmt: skip

    # data
    data_file = out / "data.npz"
    r = st.done("data")
    if r is None or not data_file.exists():
        st.stale = True
        data = _make_data(spec)
        tmp = out / "data.tmp.npz"
        np.savez(tmp, **data)
        os.replace(tmp, data_file)
        r = st.save("data", {"shape": list(data["x_train"].shape[1:]), "classes": int(max(data["y_train"].max(), data["y_test"].max()) + 1)})
    else:
        r["_resumed"] = True
    data = dict(np.load(data_file))
    shape, classes = tuple(r["shape"]), r["classes"]
    xtr, ytr, xte, yte = data["x_train"], data["y_train"], data["x_test"], data["y_test"]
    say(f"  data      {len(xtr)} training and {len(xte)} test samples of shape {shape}, {classes} classes")

    def model_stage(name, make, ref=None):
        path = out / "models" / f"{name}.keras"
        r = st.done(name)
        if r is not None and path.exists():
            model = _load_model(path)
            r["_resumed"] = True
        else:
            st.stale = True
            t0 = time.perf_counter()
            keras.utils.set_random_seed(spec["seed"] + STAGES.index(name))
            model = make()
            _save_model(model, path)
            r = st.save(name, {"summary": B.summary(model, xte, yte, reference_parameters=ref), "seconds": round(time.perf_counter() - t0, 1)})
        rec[name] = r
        return model

    def student_model():
        keras.utils.set_random_seed(spec["seed"] + 100)  # the same initial student with and without a teacher
        return build_model(spec["student"]["layers"], shape, classes, name="student")

    S, T, D, P, Q = spec["student"], spec["teacher"], spec["distill"], spec["prune"], spec["quantize"]
    teacher = model_stage("teacher", lambda: B.train(build_model(T["layers"], shape, classes, name="teacher"), xtr, ytr, epochs=T["epochs"],
                                                    batch_size=T["batch_size"], learning_rate=T["learning_rate"], callbacks=cbs("teacher")))  # fmt: skip
    stage_line("teacher", rec["teacher"])
    tparams = rec["teacher"]["summary"]["parameters"]
    student = model_stage("student", lambda: B.distill(teacher, student_model(), xtr, ytr, temperature=D["temperature"], alpha=D["alpha"],
                                                      epochs=S["epochs"], batch_size=S["batch_size"], learning_rate=S["learning_rate"],
                                                      callbacks=cbs("student")), tparams)  # fmt: skip
    stage_line("student", rec["student"], f"distilled (T = {D['temperature']:g}, alpha = {D['alpha']:g})")
    if D["baseline"]:
        model_stage("baseline", lambda: B.train(student_model(), xtr, ytr, epochs=S["epochs"], batch_size=S["batch_size"],
                                               learning_rate=S["learning_rate"], callbacks=cbs("baseline")), tparams)  # fmt: skip
        stage_line("baseline", rec["baseline"], "same student, no teacher")
    kd = {"teacher": teacher, "temperature": D["temperature"], "alpha": D["alpha"]}
    pruned = model_stage("prune", lambda: B.prune(
        student, xtr, ytr, sparsity=P["sparsity"], epochs=P["epochs"], batch_size=S["batch_size"], learning_rate=P["learning_rate"],
        end_fraction=P["end_fraction"], frequency=P["frequency"], callbacks=cbs("prune"), **(kd if P["distill"] else {})), tparams)  # fmt: skip
    stage_line("prune", rec["prune"], f"target sparsity {100 * P['sparsity']:g} %")
    qkw = {k: Q[k] for k in ("mode", "bits", "beta", "weight_integers", "activation_bits", "activation_integers")}
    final = model_stage("quantize", lambda: B.quantize(
        pruned, xtr, ytr, epochs=Q["epochs"], batch_size=S["batch_size"], learning_rate=Q["learning_rate"], callbacks=cbs("quantize"),
        **qkw, **(kd if Q["distill"] else {})), tparams)  # fmt: skip
    how = "per-weight widths" if Q["mode"] == "hgq" else f"uniform {Q['bits']}-bit"
    stage_line("quantize", rec["quantize"], f"HGQ2 {how}")
    final_path = out / "models" / "quantize.keras"

    build_dir = out / "build"
    _hardware(spec, st, rec, say, final, final_path, build_dir, xte, yte)

    results = _results(spec, rec, t_start, cpu_start)
    _write_results(out, results)
    say(f"  wrote {out / 'results.md'}, results.json, report.html")
    for line in _markdown_table(results)[2:]:
        say("  " + line)
    say(f"  wall time {results['wall_seconds']:.0f} s, CPU time {results['cpu_seconds']:.0f} s (user + system, this process and the tools it ran)")
    return results


def _hardware(spec, st, rec, say, final, final_path, build_dir, xte, yte) -> None:
    from ..design import convert, load_design

    B = spec["build"]
    r = st.done("build")
    if r is None or not (build_dir / "graph.json").exists():
        st.stale = True
        t0 = time.perf_counter()
        cfg = copy.deepcopy(B["config"])
        cfg["IOType"] = B["io_type"]
        cfg.setdefault("Model", {}).setdefault("ReuseFactor", B["reuse"])
        design = convert(final_path, cfg)
        design.write(build_dir, n_vectors=B["vectors"], boards=[B["board"]] if B["board"] else [])
        # The golden model against HGQ2's predict on the whole test set: the same numbers exactly.
        gold = np.asarray(design.predict(xte)).reshape(len(xte), -1).astype(np.float32)
        ref = np.asarray(final.predict(xte, batch_size=1024, verbose=0)).reshape(len(xte), -1)
        exact = int(np.sum(np.all(gold == ref, axis=1)))
        r = st.save("build", {"latency": int(design.latency), "interval": int(design.initiation_interval), "top": design.top_name,
                              "golden_equals_keras": exact, "golden_accuracy": float(np.mean(np.argmax(gold, 1) == yte)),
                              "samples": len(xte), "seconds": round(time.perf_counter() - t0, 1)})  # fmt: skip
    else:
        r["_resumed"] = True
    rec["build"] = r
    say(f"  build     {'(saved) ' if r.get('_resumed') else ''}{build_dir}: latency {r['latency']} cycles, interval {r['interval']}; "
        f"golden model == HGQ2 predict on {r['golden_equals_keras']} of {r['samples']} test samples")  # fmt: skip
    if r["golden_equals_keras"] != r["samples"]:
        say(f"  warning: the golden model differs from HGQ2's predict on {r['samples'] - r['golden_equals_keras']} samples")

    Y = spec["synth"]
    if Y["enabled"]:
        r = st.done("synth")
        if r is None:
            st.stale = True
            r = st.save("synth", _synthesize(build_dir, B, Y, say))
        else:
            r["_resumed"] = True
        rec["synth"] = r
        u = r.get("utilisation") or {}
        say(f"  synth     {'(saved) ' if r.get('_resumed') else ''}{B['part']}: "
            + ", ".join(f"{k.upper()} {r.get(k):g} ({u.get(k, 0):g} %)" for k in ("lut", "ff", "dsp", "bram") if r.get(k) is not None)
            + (f" [{r['yosys_seconds']:.0f} s]" if r.get("yosys_seconds") and not r.get("_resumed") else ""))  # fmt: skip

    A = spec["assess"]
    r = st.done("assess")
    if r is None:
        st.stale = True
        from ..assess import assess, format_table

        n = min(A["samples"], len(xte))
        load_design(build_dir)  # a readable build, or one clear error
        a = assess(build_dir, xte[:n], yte[:n], model=str(final_path), simulate=A["simulate"])
        r = st.save("assess", {"assessment": a, "table": format_table(a)})
    else:
        r["_resumed"] = True
    rec["assess"] = r
    say(f"  assess    {'(saved) ' if r.get('_resumed') else ''}" + "\n            ".join(r["table"]))


def _synthesize(build_dir: Path, B: dict, Y: dict, say) -> dict:
    from ..synth import SynthesisError, synthesize_layers

    report_path = build_dir / "report.json"
    report = json.loads(report_path.read_text())
    from ..design import load_design

    design = load_design(build_dir)
    top = design.top_name
    work = build_dir / "synth" / B["target"]
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        res = synthesize_layers([build_dir / "rtl" / f"{top}.v"], top, target=B["target"], workdir=work, dsp=Y["dsp"],
                                part=B["part"], timeout=Y["timeout"])  # fmt: skip
    except SynthesisError as e:
        raise WorkflowError(f"synthesis of {build_dir} for {B['part']} failed: {e}") from None
    entry = {k: v for k, v in res.items() if k not in ("log", "netlist")}
    report.setdefault("synthesis", {})[B["target"]] = entry
    report_path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    from ..report_html import write_html

    write_html(report, build_dir / "report.html")
    keep = ("lut", "ff", "dsp", "bram", "carry", "utilisation", "available", "part", "fmax_estimate_mhz", "path_delay_ns", "yosys_seconds")
    return {**{k: entry.get(k) for k in keep}, "seconds": round(time.perf_counter() - t0, 1)}


def _results(spec: dict, rec: dict, t_start: float, cpu_start: float) -> dict:
    q, t = rec["quantize"]["summary"], rec["teacher"]["summary"]
    syn = rec.get("synth") or {}
    util = syn.get("utilisation") or {}
    a = rec["assess"]["assessment"]
    rtl = next((r for r in a["rows"] if r["stage"].startswith("RTL")), None)
    row = {
        "model": spec["name"], "teacher_params": t["parameters"], "teacher_accuracy": round(100 * t["accuracy"], 2),
        "student_params": q["parameters"], "compression": q.get("compression"), "layers": q["layers"],
        "accuracy": round(100 * q["accuracy"], 2), "bits": q["bits"], "sparsity": round(100 * q["sparsity"], 1),
        "part": spec["build"]["part"], **{k: util.get(k) for k in ("bram", "dsp", "ff", "lut")},
        "latency": rec["build"]["latency"],
    }  # fmt: skip
    stages = {k: {kk: vv for kk, vv in v.items() if not kk.startswith("_") and kk != "fingerprint"} for k, v in rec.items()}
    res = {
        "row": row, "reference": spec.get("reference"), "stages": stages,
        "distillation": {
            "distilled_accuracy": rec["student"]["summary"]["accuracy"],
            "baseline_accuracy": rec["baseline"]["summary"]["accuracy"] if "baseline" in rec else None,
        },
        "hardware": {
            "golden_equals_keras": f"{rec['build']['golden_equals_keras']} of {rec['build']['samples']}",
            "golden_accuracy": rec["build"]["golden_accuracy"],
            "rtl_bit_exact": f"{a['samples'] - rtl['mismatches']} of {a['samples']}" if rtl else None,
            "latency_measured": rtl.get("latency_measured") if rtl else None, "interval": rec["build"]["interval"],
            "resources": {k: syn.get(k) for k in ("lut", "ff", "dsp", "bram")}, "fmax_estimate_mhz": syn.get("fmax_estimate_mhz"),
            "board": spec["build"]["board"], "io_type": spec["build"]["io_type"],
        },
        "wall_seconds": round(time.perf_counter() - t_start, 1), "cpu_seconds": round(_cpu_seconds() - cpu_start, 1),
    }  # fmt: skip
    d = res["distillation"]
    if d["baseline_accuracy"] is not None:
        d["gain_points"] = round(100 * (d["distilled_accuracy"] - d["baseline_accuracy"]), 2)
    return res




def _markdown_table(results: dict) -> list[str]:
    head = ["model", *(h for _, h in COLUMNS)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    rows = [("rtlgen: " + results["row"]["model"], results["row"])]
    if results.get("reference"):
        rows.append(("reference", results["reference"]))
    for name, r in rows:
        lines.append("| " + " | ".join([name, *(format_number(r.get(k)) for k, _ in COLUMNS)]) + " |")
    return lines


def _write_results(out: Path, results: dict) -> None:
    from html import escape

    d, h = results["distillation"], results["hardware"]
    md = [f"# {results['row']['model']}", "", *_markdown_table(results), ""]
    if d.get("baseline_accuracy") is not None:
        md.append(f"- distilled student {100 * d['distilled_accuracy']:.2f} % against {100 * d['baseline_accuracy']:.2f} % for the same student "
                  f"trained without a teacher ({d['gain_points']:+.2f} points; float students, before pruning and quantization)")  # fmt: skip
    md += [
        f"- golden model == HGQ2 predict on {h['golden_equals_keras']} test samples; RTL == golden on {h['rtl_bit_exact']} samples "
        f"(latency measured {h['latency_measured']} cycles, interval {h['interval']})",
        f"- resources: Yosys estimate (synth_xilinx, out of context) of the network alone on the {results['row']['part']}; "
        f"path-delay estimate {h['fmax_estimate_mhz']} MHz",
        f"- wall time {results['wall_seconds']:.0f} s, CPU time {results['cpu_seconds']:.0f} s (user + system, the workflow and the tools it ran)",
    ]  # fmt: skip
    for name, text in (("results.md", "\n".join(md) + "\n"), ("results.json", json.dumps(results, indent=2, sort_keys=True, default=float) + "\n")):
        tmp = out / (name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, out / name)
    table = _markdown_table(results)
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in table if not line.startswith("|---")]
    thead = "".join(f"<th>{escape(c)}</th>" for c in cells[0])
    tbody = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in r) + "</tr>" for r in cells[1:])
    stages = "".join(
        f"<tr><td>{escape(k)}</td><td>{escape(json.dumps(v.get('summary') or {k2: v[k2] for k2 in v if k2 not in ('assessment', 'table')}, default=float))}</td></tr>"
        for k, v in results["stages"].items()
    )  # fmt: skip
    notes = "".join(f"<li>{escape(line[2:])}</li>" for line in md if line.startswith("- "))
    html = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(results['row']['model'])}</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;"
        "text-align:right}td:first-child{text-align:left}</style></head><body>"
        f"<h1>{escape(results['row']['model'])}</h1><table><thead><tr>{thead}</tr></thead><tbody>{tbody}</tbody></table>"
        f"<ul>{notes}</ul><h2>Stages</h2><table>{stages}</table>"
        "<p>The build's own report: <a href='build/report.html'>build/report.html</a></p></body></html>\n"
    )  # fmt: skip
    (out / "report.html").write_text(html)
