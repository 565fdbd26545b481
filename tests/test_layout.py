"""The package's layout (issues 13 and 23): a handful of wings; imports go one way (no circle, lazy imports
included; nothing under data/ imports from outside it); no re-export shim or module ``__getattr__`` outside the
top ``__init__.py``; a wing's ``__init__.py`` only says what the wing holds; modules and functions stay short;
the README's section names every wing. Each fence is checked to fail when broken (the ``*_finds_*`` tests)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "segp_hf"
README = PACKAGE.parent / "README.md"
MAX_MODULE_LINES, MAX_FUNCTION_LINES, MAX_TOP_LEVEL_MODULES = 600, 65, 12


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, tree: ast.Module) -> set[str]:
    """segp_hf modules ``path`` imports anywhere (function-level and lazy imports too)."""
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom):
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


def _top_level_imports(tree: ast.Module) -> dict[str, int]:
    """Names a module binds by importing from segp_hf at its top level -> line."""
    bound = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("segp_hf")):
            bound.update({alias.asname or alias.name: node.lineno for alias in node.names})
    return bound


def _re_exports(tree: ast.Module) -> list[str]:
    """Names imported from segp_hf that the module never uses: only there to be imported from here (a shim)."""
    used = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    used |= {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)
             and node.value.isidentifier()}  # __all__ entries count as exports, so they are caught below
    exported = set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(target, "id", "") == "__all__" for target in node.targets):
            exported = {elt.value for elt in getattr(node.value, "elts", ())}
    return sorted(name for name in _top_level_imports(tree) if name not in used - exported or name in exported)


def _modules():
    return {path: ast.parse(path.read_text()) for path in PACKAGE.rglob("*.py")}


def test_no_re_export_shim_and_no_module_getattr():
    shims, getattrs = [], []
    for path, tree in _modules().items():
        where = str(path.relative_to(PACKAGE))
        shims += [f"{where}:{name}" for name in _re_exports(tree)]
        if where != "__init__.py":
            getattrs += [where for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "__getattr__"]
    assert shims == [] and getattrs == []


def test_the_shim_finder_finds_a_re_export():
    tree = ast.parse("from .a import used, kept_for_old_imports\nfrom segp_hf.b import listed\n"
                     "__all__ = ['listed']\nprint(used)\n")
    assert _re_exports(tree) == ["kept_for_old_imports", "listed"]


def test_a_wing_init_only_says_what_the_wing_holds():
    """Nothing answers at an old import place: ``segp_hf.hub`` (once a module) is a wing that defines nothing."""
    talkative = [str(path.relative_to(PACKAGE)) for path, tree in _modules().items()
                 if path.name == "__init__.py" and path.parent != PACKAGE
                 and (len(tree.body) != 1 or not ast.get_docstring(tree))]
    assert talkative == []


def test_old_import_places_do_not_answer():
    import importlib.util

    gone = ["segp_hf.arguments", "segp_hf.inference", "segp_hf.evaluation.evaluation", "segp_hf.data.benchmarks",
            "segp_hf.switches", "segp_hf.continual", "segp_hf.variants.rapf_trainer", "segp_hf.task_refs"]
    assert [name for name in gone if importlib.util.find_spec(name) is not None] == []
    with __import__("pytest").raises(ImportError):
        from segp_hf.hub import load_task  # noqa: F401


def test_a_handful_of_modules_at_the_top():
    top = sorted(path.name for path in PACKAGE.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top


def _wings() -> set[str]:
    return {path.parent.relative_to(PACKAGE).as_posix() for path in PACKAGE.rglob("__init__.py") if path.parent != PACKAGE}


def test_the_readme_names_every_wing_and_top_level_module():
    readme = README.read_text()
    section = readme[readme.index("## Where things live"):]
    section = section[: section.find("\n## ", 1)] if "\n## " in section[1:] else section
    named = set(re.findall(r"`((?:[a-z_]+/)*[a-z_0-9]+(?:\.py|/))`", section))
    expected = {f"{wing}/" for wing in _wings()} | {path.name for path in PACKAGE.glob("*.py")
                                                      if path.name not in ("__init__.py", "__main__.py")}
    here = {path.relative_to(PACKAGE).as_posix() for path in PACKAGE.rglob("*")} | {
        path.name for path in PACKAGE.rglob("*.py")}  # a file named inside its wing's row (``math.py``)
    stale = {name for name in named if name.rstrip("/") not in here and not (PACKAGE.parent / name).exists()}
    assert sorted(expected - named) == [] and sorted(stale) == []


def test_every_wiring_mutation_finds_its_line_once():
    """A refactor that moves a mutated line must move its mutation too (tests/wiring_mutations.py)."""
    tree = ast.parse((Path(__file__).parent / "wiring_mutations.py").read_text())
    table = next(node.value for node in tree.body if isinstance(node, ast.Assign) and node.targets[0].id == "MUTATIONS")
    lost = [entry.elts[0].value for entry in table.elts
            if (PACKAGE.parent / entry.elts[1].value).read_text().count(entry.elts[2].value) != 1]
    assert lost == []
