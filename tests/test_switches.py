"""The variant table and the one-way settings layers (issue 13): the rule checks never import the settings
modules that call them, so recipe.py / recipe.py <-> validation.py is no circle."""

from __future__ import annotations

import ast
from pathlib import Path

import segp_hf
from segp_hf.method.switches import VARIANTS, method_switches

PACKAGE = Path(segp_hf.__file__).parent


def test_distillation_says_what_each_variant_distils():
    assert method_switches("lwf").distillation == "new_images"
    assert [v for v in VARIANTS if method_switches(v).distillation == "anchors"] == [
        "lora+acgd", "lora+acgd+tsgr", "lora+acgd+tsgr+proto", "segp-cl", "segp-cl-onlyclip"]
    assert method_switches("lora").distillation is None and method_switches("zero-shot").distillation is None


def _imported_modules(path: Path) -> set[str]:
    """Every segp_hf module a file imports (absolute dotted names), at module level or inside a function."""
    package = ["segp_hf", *path.parent.relative_to(PACKAGE).parts]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            names.add(".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else [])))
    return names


def test_rule_checks_do_not_import_the_settings_they_check():
    settings = {"segp_hf.config", "segp_hf.recipe"}
    for module in ("errors", "method/switches", "validation", "run/distributed"):
        imported = _imported_modules(PACKAGE / f"{module}.py")
        assert not imported & settings, f"{module}.py imports {imported & settings}"
