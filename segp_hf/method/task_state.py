"""The state one task shares between the trainer, its callbacks and the continual loop.

Callbacks never see the Trainer, so everything they produce (anchors, prototypes, teacher targets)
lives here, and the trainer reads it in ``compute_loss`` / ``prediction_step``. Who writes what: the runner
(``begin_task``; the prototypes on resume), ``teacher.prepare_teacher_targets`` (anchors, reference_text,
tsgr_neighbours, lwf_teacher_logits, teacher_task), ``prototypes.update_prototypes`` (prototypes), the callbacks
and the runner (timing). The trainer only reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .anchors import AnchorSet
from .switches import MethodSwitches, method_switches


@dataclass
class TaskState:
    switches: MethodSwitches
    text_inputs: dict  # tokenized prompts of ALL classes, in class-order positions
    logit_scale: float = 100.0
    task: int = 0
    bounds: tuple[int, int] = (0, 0)  # current task's class positions [start, end)
    train_dataset: object = None  # current task's training set (transformed), for callbacks
    data_collator: object = None
    prototypes: torch.Tensor | None = None  # (classes with a prototype, D), positions 0..n-1
    anchors: AnchorSet | None = None
    reference_text: torch.Tensor | None = None  # (seen, D) reference geometry for TSGR
    tsgr_neighbours: torch.Tensor | None = None  # (new classes, k)
    lwf_teacher_logits: torch.Tensor | None = None  # (train images, old classes), LwF variant
    teacher_task: int | None = None  # the task whose teacher targets (above) are computed
    pixel_normalizer: object = None  # data.pixel_cache.PixelNormalizer: cached uint8 batches -> model input
    timing: dict = field(default_factory=dict)  # this task's seconds per phase (run/timing.py), filled as it runs

    @classmethod
    def for_run(cls, variant: str, text_inputs: dict | None = None, logit_scale: float = 100.0, pixel_normalizer=None,
                prototypes: torch.Tensor | None = None) -> TaskState:
        """The one way a run's task state is made (the loop, ``segp-hf eval``, tests, benchmarks): ``variant``'s
        switches, the prompts' token ids of every class, the model's logit scale, the cached pixels' normaliser and,
        for a saved task, its prototype bank."""
        return cls(switches=method_switches(variant), text_inputs=text_inputs, logit_scale=logit_scale,
                   pixel_normalizer=pixel_normalizer, prototypes=prototypes)

    @property
    def start(self) -> int:
        return self.bounds[0]

    @property
    def end(self) -> int:
        return self.bounds[1]

    def begin_task(self, task: int, bounds: tuple[int, int], train_dataset, data_collator):
        self.task = task
        self.bounds = bounds
        self.train_dataset = train_dataset
        self.data_collator = data_collator
        self.anchors = None
        self.reference_text = None
        self.tsgr_neighbours = None
        self.lwf_teacher_logits = None
        self.teacher_task = None
        self.timing = {}

    def seen_text_inputs(self, device, classes=None):
        """Token ids of the classes at ``classes`` positions (default: all seen so far)."""
        index = torch.arange(self.end) if classes is None else classes.cpu()
        return {key: value[index].to(device) for key, value in self.text_inputs.items()}
