"""``segp-hf ablate``: every variant over several seeds, one table."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..recipe import parse_config
from ..run.checkpoints import nan_to_none, write_json_atomic
from ..run.continual import run_continual

METRICS = ("last", "avg", "forgetting", "bwt", "fwt")
TASK_IL_METRICS = ("last_til", "forgetting_til")  # with eval_task_incremental: the label space held fixed
CONTINUUM_METRICS = tuple(f"{key}_continuum" for key in ("forgetting", "bwt", "fwt"))  # metrics_continuum
RETENTION_METRICS = ("zero_shot_before", "zero_shot_after")  # mean over the run's zero_shot_sets

# The paper's CIFAR-100 ablation rows (SeGP-CL, CVPR 2026, Table "ablation": Last / Forgetting), in its order,
# and the variant that is each row. "+prototype transfer" keeps CLIP-path inference: the prototypes are built,
# transferred and used only by DPGD's visual term; "+visual branch" adds them to inference (the full method).
PAPER_LADDER = {
    "lora": "LoRA",
    "lora+acgd": "+ACGD",
    "lora+acgd+tsgr": "+TSGR",
    "segp-cl-onlyclip": "+prototype transfer",
    "segp-cl": "+visual branch (SeGP-CL)",
}
# Rows outside the paper's ladder: references, and the dual path without DPGD's visual term.
EXTRA_ROWS = {
    "zero-shot": "(pretrained CLIP)",
    "lwf": "(LwF on new images)",
    "lora+acgd+tsgr+proto": "(dual path, DPGD without its visual term)",
    "rapf": "(RAPF, ECCV 2024; docs/variants.md)",
    "mg-clip": "(MG-CLIP, ICCV 2025; docs/variants.md)",
}
ABLATION_ORDER = (*PAPER_LADDER, *EXTRA_ROWS)


def paper_row(variant: str) -> str:
    return PAPER_LADDER.get(variant) or EXTRA_ROWS.get(variant, "")


def run_metrics(results: dict) -> dict:
    """The numbers a table row takes from one run's results.json (and its A_i curve, for the figures)."""
    from ..run.results import seen_curve

    picked = {key: results[key] for key in (*METRICS, *TASK_IL_METRICS) if key in results}
    if results.get("acc_matrix"):
        picked["accuracy_seen"] = seen_curve(results["acc_matrix"], results.get("test_sizes"))
    for key, value in results.get("metrics_continuum", {}).items():
        if f"{key}_continuum" in CONTINUUM_METRICS:
            picked[f"{key}_continuum"] = value
    retention = results.get("zero_shot_retention")
    if retention:
        for when in ("before", "after"):
            values = [row[when] for row in retention.values() if row.get(when) is not None]
            if values:
                picked[f"zero_shot_{when}"] = float(np.mean(values))
    return picked


def summarise(values) -> tuple[float, float]:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return math.nan, math.nan
    return float(np.mean(finite)), float(np.std(finite))


def ablation_row(variant: str, per_seed: list[dict]) -> dict:
    row = {"variant": variant, "seeds": [r["seed"] for r in per_seed], "per_seed": per_seed}
    for key in (*METRICS, *TASK_IL_METRICS, *CONTINUUM_METRICS, *RETENTION_METRICS):
        if all(key in r for r in per_seed):
            row[f"{key}_mean"], row[f"{key}_std"] = summarise([r[key] for r in per_seed])
    return row


TABLE_COLUMNS = {
    "textbook": (*METRICS, *TASK_IL_METRICS, *RETENTION_METRICS),
    "continuum": ("last", "avg", *CONTINUUM_METRICS, *RETENTION_METRICS),
}


def markdown_table(rows: list[dict], convention: str = "textbook") -> str:
    """Mean ± std over seeds; the paper's ablation rows first, in its order, named as in the paper.
    ``convention``: forgetting, BWT and FWT as in SPEC.md ('textbook') or the continuum library's Logger."""
    columns = [key for key in TABLE_COLUMNS[convention] if all(f"{key}_mean" in row for row in rows)]
    rows = sorted(rows, key=lambda row: ABLATION_ORDER.index(row["variant"]) if row["variant"] in ABLATION_ORDER else 99)
    header = "| variant | paper row | " + " | ".join(columns) + " |"
    lines = [header, "|---|---|" + "---|" * len(columns)]
    for row in rows:
        cells = []
        for key in columns:
            mean, std = row[f"{key}_mean"], row[f"{key}_std"]
            cells.append("n/a" if mean is None or math.isnan(mean) else f"{mean:.1f} ± {std:.1f}")
        lines.append(f"| {row['variant']} | {paper_row(row['variant'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


ABLATION_FIGURES = {"curves": "ablation_curves.png", "bars": "ablation_bars.png"}


def write_ablation_figures(rows: list[dict], output_dir) -> dict:
    """Every variant's A_i curve (mean ± std over seeds) and the Last/Avg/forgetting bars, next to ablation.md."""
    from ..run.results import save_ablation_bars, save_ablation_curves

    output_dir = Path(output_dir)
    ordered = sorted(rows, key=lambda row: ABLATION_ORDER.index(row["variant"]) if row["variant"] in ABLATION_ORDER else 99)
    curves = {row["variant"]: [seed["accuracy_seen"] for seed in row["per_seed"] if seed.get("accuracy_seen")]
              for row in ordered}
    save_ablation_curves({variant: c for variant, c in curves.items() if c}, output_dir / ABLATION_FIGURES["curves"])
    save_ablation_bars(ordered, output_dir / ABLATION_FIGURES["bars"])
    return ABLATION_FIGURES


def figure_links(figures: dict) -> str:
    return ("\n![Accuracy on the classes seen so far, every variant](" + figures["curves"] + ")\n\n"
            "![Last, Avg and forgetting with error bars over seeds](" + figures["bars"] + ")\n")


def run_ablation(recipe: dict, overrides: list[str], seeds: int, output_dir, variants=ABLATION_ORDER, benchmark=None,
                 convention: str = "textbook") -> list[dict]:
    output_dir = Path(output_dir)
    rows = []
    for variant in variants:
        per_seed = []
        for seed in range(seeds):
            run_dir = output_dir / variant / f"seed-{seed}"
            model_args, data_args, config = parse_config(
                recipe, [*overrides, "--variant", variant, "--seed", str(seed), "--output_dir", str(run_dir)]
            )
            results = run_continual(model_args, data_args, config, benchmark=benchmark)
            per_seed.append({"seed": seed, **run_metrics(results)})
        rows.append(ablation_row(variant, per_seed))
        # written after every variant so a long ablation shows progress and survives interruption
        write_json_atomic(output_dir / "ablation.json", nan_to_none(rows))
        figures = write_ablation_figures(rows, output_dir)
        (output_dir / "ablation.md").write_text(markdown_table(rows) + "\n" + figure_links(figures))
        (output_dir / "ablation_continuum.md").write_text(markdown_table(rows, "continuum") + "\n")
    print(markdown_table(rows, convention))
    return rows
