"""Evaluation: the one dual-path scorer that the trainer's evaluation and a loaded task (hub/inference.py) share,
and the accuracy-matrix round the continual loop runs after each task.

CLIP zero-shot accuracy on a labelled image set (retention) is ``evaluation/zero_shot.py``'s."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch


# ------------------------------------------------------------------ accuracy-matrix rounds
@dataclass
class RoundResult:
    """One row of the accuracy matrix (and of the task-IL matrix), in percent; NaN where not evaluated."""

    row: list[float]
    til_row: dict[int, float] = field(default_factory=dict)
    test_sizes: dict[int, int] = field(default_factory=dict)

    @property
    def images(self) -> int:
        return sum(self.test_sizes.values())


def evaluated_tasks(task: int, num_tasks: int, future_tasks: bool) -> list[int]:
    """The tasks scored after learning ``task``: the seen ones, and (for FWT) the future ones if asked."""
    return [other for other in range(num_tasks) if other <= task or future_tasks]


def scored_classes(scenario, task: int, other: int) -> torch.Tensor:
    """Class positions a test set of ``other`` is scored over after ``task``: every seen class; for a future
    task (FWT), the seen classes plus that task's own."""
    seen = torch.arange(scenario.seen_end(task))
    return seen if other <= task else torch.cat([seen, torch.arange(*scenario.bounds[other])])


def round_batches(tests: dict, task: int, per_batch: int, task_incremental: bool) -> int:
    """Evaluation batches in one round (for its progress bar): task-IL scores each seen test set twice."""
    return sum(math.ceil(len(test) / per_batch) * (2 if other <= task and task_incremental else 1)
               for other, test in tests.items())


def accuracy_round(trainer, scenario, task: int, tests: dict, num_tasks: int, task_incremental: bool) -> RoundResult:
    """Accuracy (%) of ``trainer``'s model on every test set of ``tests`` ({task: dataset}) after learning ``task``."""
    result = RoundResult(row=[math.nan] * num_tasks)
    for other, test in tests.items():
        result.test_sizes[other] = len(test)
        result.row[other] = _accuracy(trainer, test, scored_classes(scenario, task, other), f"task{other}")
        if other <= task and task_incremental:
            classes = torch.arange(*scenario.bounds[other])
            result.til_row[other] = _accuracy(trainer, test, classes, f"task{other}_til")
    return result


def _accuracy(trainer, test, classes, prefix: str) -> float:
    with trainer.scoring(classes):
        metrics = trainer.evaluate(eval_dataset=test, metric_key_prefix=prefix)
    return 100.0 * metrics[f"{prefix}_accuracy"]
