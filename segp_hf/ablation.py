"""``segp-hf ablate``: every variant over several seeds, one table."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .checkpoints import nan_to_none, write_json_atomic
from .config import VARIANTS, parse_config
from .continual import run_continual

METRICS = ("last", "avg", "forgetting", "bwt", "fwt")
TASK_IL_METRICS = ("last_til", "forgetting_til")  # with eval_task_incremental: the label space held fixed


def summarise(values) -> tuple[float, float]:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return math.nan, math.nan
    return float(np.mean(finite)), float(np.std(finite))


def ablation_row(variant: str, per_seed: list[dict]) -> dict:
    row = {"variant": variant, "seeds": [r["seed"] for r in per_seed], "per_seed": per_seed}
    for key in (*METRICS, *TASK_IL_METRICS):
        if all(key in r for r in per_seed):
            row[f"{key}_mean"], row[f"{key}_std"] = summarise([r[key] for r in per_seed])
    return row


def markdown_table(rows: list[dict]) -> str:
    columns = [key for key in (*METRICS, *TASK_IL_METRICS) if all(f"{key}_mean" in row for row in rows)]
    header = "| variant | " + " | ".join(columns) + " |"
    lines = [header, "|---|" + "---|" * len(columns)]
    for row in rows:
        cells = []
        for key in columns:
            mean, std = row[f"{key}_mean"], row[f"{key}_std"]
            cells.append("n/a" if mean is None or math.isnan(mean) else f"{mean:.1f} ± {std:.1f}")
        lines.append(f"| {row['variant']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_ablation(recipe: dict, overrides: list[str], seeds: int, output_dir, variants=VARIANTS, benchmark=None) -> list[dict]:
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
            per_seed.append({"seed": seed, **{key: results[key] for key in (*METRICS, *TASK_IL_METRICS) if key in results}})
        rows.append(ablation_row(variant, per_seed))
        # written after every variant so a long ablation shows progress and survives interruption
        write_json_atomic(output_dir / "ablation.json", nan_to_none(rows))
        (output_dir / "ablation.md").write_text(markdown_table(rows) + "\n")
    print(markdown_table(rows))
    return rows
