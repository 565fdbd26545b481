"""The package's layout (issue 13): imports go one way (no circle, lazy imports included; nothing under data/
imports from outside it), modules and functions stay short, and the README's table names every module."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "segp_hf"
README = PACKAGE.parent / "README.md"
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 380, 65  # the issue's ~350 and ~60, with a little slack


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, tree: ast.Module) -> set[str]:
    """segp_hf modules ``path`` imports anywhere (function-level too), except inside a module ``__getattr__``
    (a deprecation shim that answers old import places of moved names)."""
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    shims = {id(node) for top in tree.body if isinstance(top, ast.FunctionDef) and top.name == "__getattr__"
             and path.name != "__init__.py" for node in ast.walk(top)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in shims or not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            found |= {f"{base}.{alias.name}" for alias in node.names} if node.module is None else {base}
        elif node.module and node.module.startswith("segp_hf"):
            found.add(node.module)
    return found


def _graph() -> dict[str, set[str]]:
    trees = {path: ast.parse(path.read_text()) for path in PACKAGE.rglob("*.py")}
    names = {_module_name(path) for path in trees}
    return {_module_name(path): {d for d in _imports(path, tree) if d in names and d != _module_name(path)}
            for path, tree in trees.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
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

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_circle():
    assert _cycles(_graph()) == []


def test_the_cycle_finder_finds_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_nothing_under_data_imports_from_outside_it():
    upward = {(m, d) for m, deps in _graph().items() if m.startswith("segp_hf.data") for d in deps
              if not d.startswith("segp_hf.data")}
    assert upward == set()


def test_modules_and_functions_stay_short():
    long_modules, long_functions = [], []
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        if len(text.splitlines()) > MAX_MODULE_LINES:
            long_modules.append(path.name)
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= MAX_FUNCTION_LINES:
                long_functions.append(f"{path.name}:{node.name}")
    assert long_modules == [] and long_functions == []


def test_the_readme_table_names_every_module():
    readme = README.read_text()
    section = readme[readme.index("## Where things live"):]
    named = set(re.findall(r"`((?:[a-z_]+/)*[a-z_0-9]+\.py)`", section))
    modules = {str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py")
               if path.name not in ("__init__.py", "__main__.py")}
    assert sorted(modules - named) == [] and sorted(named - modules) == []
