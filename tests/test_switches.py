"""The variant table and the one-way settings layers (issue 13): the rule checks never import the settings
modules that call them, so config.py <-> validation.py is no circle."""

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


def test_old_name_acgd_reads_distillation():
    for variant in VARIANTS:
        switches = method_switches(variant)
        assert switches.acgd == switches.distillation


def _imported_modules(path: Path) -> set[str]:
    """Every segp_hf module a file imports, at module level or inside a function."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_rule_checks_do_not_import_the_settings_they_check():
    for module in ("errors", "switches", "rule_kinds", "setting_checks", "validation", "parallel"):
        imported = _imported_modules(PACKAGE / f"{module}.py")
        assert not imported & {"config", "arguments"}, f"{module}.py imports {imported & {'config', 'arguments'}}"
