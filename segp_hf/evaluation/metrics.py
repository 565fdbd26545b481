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


CONVENTIONS = ("textbook", "continuum")


def continual_metrics(acc_matrix, task_weights=None, convention: str = "textbook") -> dict[str, float]:
    """Avg, Last, Forgetting, BWT and FWT of ``acc_matrix[i][j]`` (task j after task i).

    ``textbook`` (SPEC.md): forgetting after Chaudhry et al., BWT over the final row, FWT from the zero-shot
    accuracies on future tasks (entries above the diagonal; NaN/None there makes ``fwt`` NaN).
    ``continuum``: the definitions of the continuum library's Logger, which the tables SeGP-CL compares
    against (RAPF, MG-CLIP) report; see :func:`continuum_metrics`. Avg and Last are the same in both.
    With a single task, forgetting, BWT and FWT are NaN.
    """
    if convention == "continuum":
        return continuum_metrics(acc_matrix, task_weights)
    if convention != "textbook":
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
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


def continuum_metrics(acc_matrix, task_weights=None) -> dict[str, float]:
    """The continuum library's Logger definitions (its ``evaluation/metrics.py``: backward_transfer, forward_transfer,
    forgetting), with R[i][j] the accuracy on task j after task i and T tasks:

    - BWT = sum_{i=1}^{T-1} sum_{j=0}^{i-2} (R[i][j] - R[j][j]) / (T(T-1)/2)
    - FWT = sum_{i} sum_{j<i} R[i][j] / (T(T-1)/2)
    - forgetting = sum_{j=0}^{T-3} (max_{l in [j, T-3]} R[l][j] - R[T-1][j]) / (T-1)

    They read only the seen tasks (on or below the diagonal), so the upper triangle may be NaN. Same units as
    the matrix; Avg and Last as in the textbook convention.
    """
    matrix = _as_matrix(acc_matrix)
    num_tasks = matrix.shape[0]
    seen = seen_accuracies(matrix, task_weights)
    nan = float("nan")
    if num_tasks < 2:
        return {"avg": float(seen.mean()), "last": float(seen[-1]), "forgetting": nan, "bwt": nan, "fwt": nan}
    pairs = num_tasks * (num_tasks - 1) / 2
    bwt = sum(matrix[i, j] - matrix[j, j] for i in range(1, num_tasks) for j in range(i - 1))
    fwt = sum(matrix[i, j] for i in range(num_tasks) for j in range(i))
    last = num_tasks - 1
    forgetting = sum(matrix[j:last - 1, j].max() - matrix[last, j] for j in range(last - 1))
    return {
        "avg": float(seen.mean()),
        "last": float(seen[-1]),
        "forgetting": float(forgetting / last),
        "bwt": float(bwt / pairs),
        "fwt": float(fwt / pairs),
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
