"""Continual-learning metrics from the accuracy matrix, and an offline accuracy `evaluate.Metric`."""

from __future__ import annotations

import math

import datasets
import evaluate
import numpy as np


def _as_matrix(acc_matrix) -> np.ndarray:
    rows = [[math.nan if value is None else float(value) for value in row] for row in acc_matrix]
    matrix = np.asarray(rows, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] == 0:
        raise ValueError(f"acc_matrix must be a non-empty square T x T matrix, got shape {matrix.shape}")
    return matrix


def seen_accuracies(acc_matrix, task_weights=None) -> np.ndarray:
    """A_i: accuracy on every task seen after task i (weighted by test-image counts when given)."""
    matrix = _as_matrix(acc_matrix)
    num_tasks = matrix.shape[0]
    weights = np.ones(num_tasks) if task_weights is None else np.asarray(task_weights, dtype=np.float64)
    return np.array([np.average(matrix[i, : i + 1], weights=weights[: i + 1]) for i in range(num_tasks)])


def continual_metrics(acc_matrix, task_weights=None) -> dict[str, float]:
    """Avg, Last, Forgetting (Chaudhry), BWT and FWT of ``acc_matrix[i][j]`` (task j after task i).

    Entries above the diagonal are the zero-shot accuracies on future tasks; they may be NaN/None,
    and then ``fwt`` is NaN. With a single task, forgetting, BWT and FWT are NaN.
    """
    matrix = _as_matrix(acc_matrix)
    last_row = matrix.shape[0] - 1
    seen = seen_accuracies(matrix, task_weights)
    old_tasks = range(last_row)
    nan = float("nan")
    forgetting = [matrix[j:last_row, j].max() - matrix[last_row, j] for j in old_tasks]
    bwt = [matrix[last_row, j] - matrix[j, j] for j in old_tasks]
    fwt = [matrix[i - 1, i] for i in range(1, last_row + 1)]
    return {
        "avg": float(seen.mean()),
        "last": float(seen[-1]),
        "forgetting": float(np.mean(forgetting)) if forgetting else nan,
        "bwt": float(np.mean(bwt)) if bwt else nan,
        "fwt": float(np.mean(fwt)) if fwt else nan,
    }


class AccuracyMetric(evaluate.Metric):
    """Top-1 accuracy as an `evaluate.Metric` defined here, so it never fetches a script from the Hub."""

    def _info(self):
        return evaluate.MetricInfo(
            description="Top-1 accuracy of class predictions.",
            citation="",
            inputs_description="predictions and references: integer class indices",
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references):
        predictions = np.asarray(predictions)
        references = np.asarray(references)
        accuracy = float((predictions == references).mean()) if len(references) else float("nan")
        return {"accuracy": accuracy}
