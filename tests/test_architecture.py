"""The import graph of the core: no cycles and no upward arrows.

Every ``import`` and ``from ... import`` in the source, at module level or inside a function, is
an arrow from one unit to another. The allowed arrows follow the data flow: numbers and errors at
the bottom, then the IR, the pure planners, the configuration, then importers and passes (which
read the IR and the configuration but never the hardware), then the hardware layers.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"rtlgen": ROOT / "rtlgen", "rtlgen.layers": ROOT / "layers", "rtlgen.importers": ROOT / "importers"}

# unit -> the units it may import (besides itself)
ALLOWED = {
    "errors": set(),
    "fixed": set(),
    "ir": {"fixed", "errors"},
    "plan": {"fixed", "errors", "ir"},
    "config": {"fixed", "errors", "ir", "plan"},
    "golden": {"fixed", "errors", "ir"},
    "passes": {"fixed", "errors", "ir", "plan", "config"},
    "importers": {"fixed", "errors", "ir", "plan", "config"},
    "layers": {"fixed", "errors", "ir", "plan"},
}


def _unit(module: str) -> str | None:
    """``rtlgen.ir.ops.dense`` -> ``ir``; ``rtlgen.layers._dense`` -> ``layers``."""
    parts = module.split(".")
    if parts[0] != "rtlgen" or len(parts) < 2:
        return None
    return parts[1]


def _modules():
    for package, folder in FOLDERS.items():
        for path in folder.rglob("*.py"):
            rel = path.relative_to(folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            yield ".".join([package, *parts]), path, path.name == "__init__.py"


def _imports(module: str, path: Path, is_package: bool):
    tree = ast.parse(path.read_text())
    here = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            yield target
            for a in node.names:  # "from rtlgen import ir" imports the unit rtlgen.ir
                yield f"{target}.{a.name}"


def _arrows():
    arrows = set()
    for module, path, is_package in _modules():
        src = _unit(module)
        for target in _imports(module, path, is_package):
            dst = _unit(target)
            if src and dst and src != dst and (dst in ALLOWED or target.count(".") >= 1):
                arrows.add((src, dst, module))
    return arrows


def test_core_units_import_only_downwards():
    wrong = sorted(
        f"{module} ({src} -> {dst})"
        for src, dst, module in _arrows()
        if src in ALLOWED and dst not in ALLOWED[src] and dst in {*ALLOWED, "layers", "design", "sim", "synth"}
    )
    assert wrong == []


def test_core_import_graph_has_no_cycles():
    graph: dict[str, set] = {}
    for src, dst, _ in _arrows():
        if src in ALLOWED and dst in ALLOWED:
            graph.setdefault(src, set()).add(dst)
    seen, stack = set(), []

    def visit(u):
        if u in stack:
            raise AssertionError(f"import cycle: {' -> '.join(stack[stack.index(u):] + [u])}")
        if u in seen:
            return
        stack.append(u)
        for v in sorted(graph.get(u, ())):
            visit(v)
        stack.pop()
        seen.add(u)

    for u in sorted(graph):
        visit(u)


def test_the_check_sees_function_level_imports(tmp_path):
    """The checker itself: an upward import inside a function is an arrow."""
    path = tmp_path / "probe.py"
    path.write_text("def f():\n    from rtlgen.layers import hardware\n")
    assert "rtlgen.layers" in set(_imports("rtlgen.ir.probe", path, False))


def test_every_op_has_golden_error_model_and_hardware():
    """What an op needs in one place: its IR module gives verification, the golden model and the
    error bound; exactly one hardware factory is registered for it."""
    import rtlgen.layers  # noqa: F401  (registers the factories)
    from rtlgen.ir import OPS, Op
    from rtlgen.layers._registry import FACTORIES

    for name, cls in OPS.items():
        assert issubclass(cls, Op), name
        assert cls.__module__.startswith("rtlgen.ir.ops."), name
        assert hasattr(cls, "error_bound"), f"{name} has no error_bound"
        assert cls.arity == 2 or "golden" in vars(cls), f"{name} has no golden model"
        assert cls in FACTORIES, f"{name} has no hardware factory"


def _config_reads(path: Path):
    """Lines where a module touches a configuration object: ``config.x`` / ``self.config.x`` or
    a Config method called on anything (``.precision(``, ``.has_precision(``, ``.reuse_factor(``...)."""
    config_methods = {"precision", "has_precision", "reuse_factor", "strategy", "layer_name", "layer_type",
                      "softmax_implementation", "maximum", "adder_levels", "io_type"}  # fmt: skip
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Attribute):
            continue
        v = node.value
        if isinstance(v, ast.Name) and v.id == "config" or isinstance(v, ast.Attribute) and v.attr == "config" and isinstance(v.value, ast.Name) and v.value.id == "self":
            yield node.lineno, node.attr
        elif node.attr in config_methods and isinstance(v, ast.Attribute) and v.attr in ("config", "_config"):
            yield node.lineno, node.attr


def test_only_the_precision_module_reads_the_configuration():
    """Importers ask :class:`Precisions` for every type; the precision rules live in one module."""
    offenders = [
        f"{path.name}:{line} .{attr}"
        for path in sorted((ROOT / "importers").glob("*.py"))
        if path.name != "_precision.py"
        for line, attr in _config_reads(path)
    ]
    assert offenders == []


def test_the_configuration_check_sees_a_read(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def f(self):\n    return self.config.precision('a', 'result')\n")
    assert list(_config_reads(f)) == [(2, "precision")]


def test_nothing_imports_a_source_folder_by_its_folder_name():
    """``layers/``, ``importers/``, ``sim/`` and ``boards/`` are installed as ``rtlgen.<name>``; importing
    them by folder name only works when the project root happens to be on ``sys.path``."""
    bare = {"layers", "importers", "sim", "boards"}
    found = []
    for folder in ("rtlgen", "layers", "importers", "sim", "boards", "tests", "benchmarks", "scripts"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
                found += [f"{path.relative_to(ROOT)}:{node.lineno}: {n}" for n in names if n.split(".")[0] in bare]
    assert not found, "import through rtlgen.<folder> instead:\n" + "\n".join(found)
