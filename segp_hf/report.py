"""Human-readable output of a run: the accuracy matrix as text and as a heatmap PNG."""

from __future__ import annotations

import math


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
