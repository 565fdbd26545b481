"""What a run reports: results.json with its pictures, each task's saved record, and the trackers' numbers."""

from __future__ import annotations

import math

from . import checkpoints as ckpt
from .figures import save_seen_curve
from .report import save_heatmap

HEATMAP_PNG, CURVE_PNG = "acc_matrix.png", "accuracy_seen.png"  # pictures of results.json, next to it


def write_results(output_dir, results: dict, variant: str, acc_matrix, test_sizes) -> dict:
    """results.json and its two pictures (the accuracy heatmap and the A_i curve)."""
    ckpt.write_json_atomic(output_dir / ckpt.RESULTS_FILE, results)
    save_heatmap(acc_matrix, output_dir / HEATMAP_PNG, title=f"{variant}: accuracy (%)")
    save_seen_curve({variant: acc_matrix}, output_dir / CURVE_PNG, task_weights=test_sizes)
    return results


def task_classes(scenario, task: int, num_tasks: int, template: str) -> dict:
    """A task checkpoint's classes.json: the classes seen so far in class order, and the task split."""
    end = scenario.seen_end(task)
    return {
        "task": task,
        "num_tasks": num_tasks,
        "class_order_seen": scenario.class_order[:end],
        "class_names_seen": scenario.ordered_class_names[:end],
        "task_bounds": scenario.bounds[: task + 1],
        "prompt_template": template,
    }


def tracker_metrics(task: int, metrics: dict, acc_row, retention: dict | None, timing: dict) -> dict:
    """What the trackers get after each task (``eval_x`` is shown as ``eval/x``, the rest as ``train/x``)."""
    logs = {"eval_task": task + 1, "eval_accuracy_seen": metrics["last"]}
    logs.update({f"eval_accuracy_T{other}": acc_row[other] for other in range(task + 1)})
    logs.update({f"eval_{key}": metrics[key] for key in ("avg", "last", "forgetting", "bwt") if key in metrics})
    logs.update({f"eval_zero_shot_{name}": value for name, value in (retention or {}).items()})
    logs.update({f"timing_{key}": value for key, value in timing.items() if value is not None})
    return {key: float(value) for key, value in logs.items() if value is not None and math.isfinite(value)}
