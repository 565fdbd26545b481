"""The README's drift comparison: one markdown row per diagnosed run and split, from ``diagnostics.json``.

    segp-hf diagnose outputs/drift/lora --output_dir outputs/drift/diag-lora      # per variant
    python benchmarks/drift_table.py outputs/drift/diag-lora outputs/drift/diag-lora+acgd ...

The first directory is the baseline of the second table (drift each other run removes, per group).

Each cell is ``interface / core`` (the pooled means of ``segp_hf.diagnostics.group_means``: over every
(task, old class) pair of the tasks where both groups are non-empty) and, for the distances, their ratio.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from segp_hf.commands.diagnose import SPLITS
from segp_hf.evaluation.drift import DIAGNOSTICS_FILE

COLUMNS = (
    ("text_kl_before", "text KL, step", True),
    ("visual_shift_before", "class-mean shift, step", True),
    ("margin_change_before", "margin change, step", False),
    ("text_kl_pretrained", "text KL vs pretrained", True),
    ("new_class_confusion", "taken by new classes", False),
)


def cell(summary: dict, measure: str, ratio: bool) -> str:
    inside, outside = summary[measure]["interface"], summary[measure]["core"]
    if inside is None or outside is None:
        return "n/a"
    digits = 3 if max(abs(inside), abs(outside)) < 1 else 2
    text = f"{inside:.{digits}f} / {outside:.{digits}f}"
    return text + (f" (×{inside / outside:.2f})" if ratio and outside else "")


def reductions(base: dict, other: dict, split: str, measures=("text_kl_before", "visual_shift_before",
                                                                "text_kl_pretrained")) -> str:
    """How much of ``base``'s drift ``other`` removes, at the interface and in the core: absolute (relative)."""
    parts = []
    for measure in measures:
        cells = []
        for group in ("interface", "core"):
            b, o = base["summary"][split][measure][group], other["summary"][split][measure][group]
            cells.append("n/a" if b is None or o is None else f"{b - o:+.3f} ({100 * (b - o) / b:.0f}%)")
        parts.append(" / ".join(cells))
    return " | ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dirs", nargs="+", type=Path, help="output dirs of segp-hf diagnose")
    args = parser.parse_args()
    header = "| variant | split | pairs (I / C) | " + " | ".join(title for _, title, _ in COLUMNS) + " |"
    print(header)
    print("|" + "---|" * (3 + len(COLUMNS)))
    for split in SPLITS:
        for folder in args.dirs:
            result = json.loads((folder / DIAGNOSTICS_FILE).read_text())
            summary = result["summary"][split]
            pairs = summary[COLUMNS[0][0]]["pairs"]
            name = f"{split}" + (f", k={result['k']}" if split == "text" else
                                 f", ≥{result.get('confusion_threshold') or 0.1:g}")  # older files: None = default
            cells = " | ".join(cell(summary, measure, ratio) for measure, _, ratio in COLUMNS)
            print(f"| {result['variant']} | {name} | {pairs['interface']} / {pairs['core']} | {cells} |")
    base = json.loads((args.dirs[0] / DIAGNOSTICS_FILE).read_text())
    print(f"\nDrift removed relative to {base['variant']}, interface / core: absolute (relative)\n")
    print("| variant | split | text KL, step | class-mean shift, step | text KL vs pretrained |")
    print("|---|---|---|---|---|")
    for split in SPLITS:
        for folder in args.dirs[1:]:
            other = json.loads((folder / DIAGNOSTICS_FILE).read_text())
            print(f"| {other['variant']} | {split} | {reductions(base, other, split)} |")


if __name__ == "__main__":
    main()
