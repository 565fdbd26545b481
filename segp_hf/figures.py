"""Pictures of results: the A_i curve (accuracy over the classes seen so far, after each task) of one or
several runs, and the ablation's curves and Last/Avg/forgetting bars with error bars over seeds. Matplotlib's
Agg backend only (no display needed); every function writes one PNG and returns its path."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .metrics import seen_accuracies

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
