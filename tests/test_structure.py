"""The package's shape, checked from its source with ast (no device needed):
imports flow one way (no cycle, in-function imports included), no module
is over MAX_LINES, and ops and the executor use public seams only."""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "clnet"
MAX_LINES = 500


def _modules() -> dict:
    """Dotted module name -> path, for every module of the package."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imported(module: str, path: Path, node: ast.AST) -> list:
    """Dotted names an import statement may load (the module and each name)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    if node.level:
        parts = package.split(".")
        base = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
    else:
        base = node.module or ""
    return [base] + [f"{base}.{alias.name}" for alias in node.names]


def import_graph() -> dict:
    """module -> the package modules it imports, anywhere in its body."""
    modules = _modules()
    edges = defaultdict(set)
    for module, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for name in _imported(module, path, node):
                while name and name not in modules:     # a function or class: its module
                    name = name.rpartition(".")[0]
                if name and name not in (module, PACKAGE.name):
                    edges[module].add(name)
    return {m: edges[m] for m in modules}


def cycles(graph: dict) -> list:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def _private_reads(path: Path, owner: str) -> list:
    """`owner._name` attribute reads in a file (line, text)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [(node.lineno, f"{owner}.{node.attr}") for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
            and node.value.id == owner and node.attr.startswith("_")
            and not node.attr.startswith("__")]


def test_no_import_cycles():
    found = cycles(import_graph())
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_over_the_limit():
    sizes = {m: p.read_text(encoding="utf-8").count("\n") + 1 for m, p in _modules().items()}
    over = {m: n for m, n in sizes.items() if n > MAX_LINES}
    assert not over, f"modules over {MAX_LINES} lines: {over}"


def test_ops_read_no_private_member_of_the_lowering_context():
    hits = [f"{p.relative_to(PACKAGE)}:{line} {text}"
            for p in sorted((PACKAGE / "ops").rglob("*.py")) for line, text in _private_reads(p, "ctx")]
    assert not hits, "private LowerCtx members read by ops: " + ", ".join(hits)


def test_only_the_runtime_calls_private_session_methods():
    hits = [f"{p.relative_to(PACKAGE)}:{line} {text}"
            for p in sorted(PACKAGE.rglob("*.py")) if p.name != "runtime.py"
            for line, text in _private_reads(p, "session")]
    assert not hits, "private session members used outside runtime.py: " + ", ".join(hits)


def test_every_package_is_in_the_wheel():
    """pyproject.toml lists packages explicitly: a new subpackage must be named."""
    tomllib = __import__("pytest").importorskip("tomllib")
    config = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(config["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(PACKAGE.parent).parts)
             for p in PACKAGE.rglob("__init__.py")}
    assert found <= listed, f"packages missing from pyproject.toml: {sorted(found - listed)}"
