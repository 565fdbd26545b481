"""What a run reports: results.json with its pictures, each task's saved record, and the trackers' numbers."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..evaluation.metrics import seen_accuracies
from . import checkpoints as ckpt

# Human-readable output of a run: the accuracy matrix as text and as a heatmap PNG.

def format_matrix(acc_matrix) -> str:
    size = len(acc_matrix)
    header = "after \\ on " + "".join(f"{f'T{j}':>7}" for j in range(size))
    lines = [header]
    for i, row in enumerate(acc_matrix):
        cells = "".join(f"{'-':>7}" if v is None or math.isnan(v) else f"{v:7.1f}" for v in row)
        lines.append(f"{f'task {i}':<11}{cells}")
    return "\n".join(lines)


def format_metrics(metrics: dict) -> str:
    parts = []
    for key in ("avg", "last", "forgetting", "bwt", "fwt"):
        value = metrics.get(key)
        parts.append(f"{key.capitalize() if key != 'bwt' and key != 'fwt' else key.upper()}: "
                     + ("n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.2f}"))
    if "last_til" in metrics:  # eval_task_incremental
        parts.append(f"(task-IL: Last {_number(metrics['last_til'])}  Forgetting {_number(metrics['forgetting_til'])})")
    return "  ".join(parts)


def _number(value) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.2f}"


def save_heatmap(acc_matrix, path, title: str = "Accuracy matrix (%)") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    matrix = np.array([[math.nan if v is None else v for v in row] for row in acc_matrix], dtype=float)
    size = matrix.shape[0]
    fig, ax = plt.subplots(figsize=(max(3.4, 1.0 + 0.6 * size), max(2.8, 0.8 + 0.5 * size)))
    image = ax.imshow(matrix, vmin=0, vmax=100, cmap="viridis")
    for i in range(size):
        for j in range(size):
            if not math.isnan(matrix[i, j]):
                ax.text(j, i, f"{matrix[i, j]:.0f}", ha="center", va="center", fontsize=7,
                        color="white" if matrix[i, j] < 60 else "black")
    ax.set_xlabel("evaluated on task")
    ax.set_ylabel("after training task")
    ax.set_xticks(range(size))
    ax.set_yticks(range(size))
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# Pictures of results: the A_i curve (accuracy over the classes seen so far, after each task) of one or
# several runs, and the ablation's curves and Last/Avg/forgetting bars with error bars over seeds. Matplotlib's
# Agg backend only (no display needed); every function writes one PNG and returns its path.

BAR_METRICS = (("last", "Last"), ("avg", "Avg"), ("forgetting", "Forgetting"))


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def seen_curve(acc_matrix, task_weights=None) -> list[float]:
    """A_i for every task whose row is measured (a run stopped early has NaN rows after its last task)."""
    rows = [[math.nan if v is None else float(v) for v in row] for row in acc_matrix]
    done = sum(1 for i, row in enumerate(rows) if not math.isnan(row[i]))
    if done == 0:
        return []
    weights = None if not task_weights or not any(task_weights[:done]) else list(task_weights[:done])
    trimmed = [row[:done] for row in rows[:done]]
    return [float(v) for v in seen_accuracies(trimmed, weights)]


def save_seen_curve(runs: dict, path, task_weights=None, title: str = "Accuracy on the classes seen so far") -> Path:
    """One line per run (``{label: acc_matrix}`` with ``task_weights`` for all, or ``{label: (acc_matrix,
    test_sizes)}``): A_i after each task."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    for label, matrix in runs.items():
        matrix, weights = matrix if isinstance(matrix, tuple) else (matrix, task_weights)
        curve = seen_curve(matrix, weights)
        ax.plot(range(1, len(curve) + 1), curve, marker="o", markersize=3, label=label)
    _curve_axes(ax, title, legend=len(runs) > 1)
    return _save(fig, path)


def save_ablation_curves(curves: dict, path, title: str = "Accuracy on the classes seen so far (mean ± std over seeds)") -> Path:
    """``{variant: [A_i curve of each seed]}``: the mean curve with a band of one standard deviation."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for variant, per_seed in curves.items():
        length = min(len(c) for c in per_seed) if per_seed else 0
        if length == 0:
            continue
        values = np.array([c[:length] for c in per_seed], dtype=float)
        mean, std = values.mean(axis=0), values.std(axis=0)
        steps = np.arange(1, length + 1)
        ax.plot(steps, mean, marker="o", markersize=3, label=variant)
        if len(per_seed) > 1:
            ax.fill_between(steps, mean - std, mean + std, alpha=0.15)
    _curve_axes(ax, title, legend=True)
    return _save(fig, path)


def save_ablation_bars(rows: list[dict], path) -> Path:
    """Last / Avg / Forgetting per variant (``ablation_row`` dicts), mean with std error bars over seeds."""
    plt = _pyplot()
    metrics = [(key, name) for key, name in BAR_METRICS if any(f"{key}_mean" in row for row in rows)]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(rows) + 2), 3.8))
    width = 0.8 / max(len(metrics), 1)
    positions = np.arange(len(rows))
    for index, (key, name) in enumerate(metrics):
        means = [_finite(row.get(f"{key}_mean")) for row in rows]
        stds = [_finite(row.get(f"{key}_std"), 0.0) for row in rows]
        ax.bar(positions + (index - (len(metrics) - 1) / 2) * width, means, width, yerr=stds, capsize=3, label=name)
    ax.set_xticks(positions)
    ax.set_xticklabels([row["variant"] for row in rows], rotation=25, ha="right", fontsize=8)
    ax.set_ylabel("%")
    seeds = max((len(row.get("seeds", [])) for row in rows), default=0)
    ax.set_title(f"Last, Avg and forgetting (mean ± std over {seeds} seed{'s' if seeds != 1 else ''})")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def _finite(value, default=math.nan):
    return default if value is None or not math.isfinite(value) else float(value)


def _curve_axes(ax, title, legend):
    ax.set_xlabel("after task")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.xaxis.get_major_locator().set_params(integer=True)
    if legend:
        ax.legend(fontsize=7)


def _save(fig, path) -> Path:
    path = Path(path)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    _pyplot().close(fig)
    return path


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
