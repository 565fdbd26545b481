"""Learning-rate multipliers the competitors' public code uses and Trainer does not ship (docs/variants.md, S1-S2).

Both are stepped per epoch in the authors' code; the caller passes the epoch index (or, for MG-CLIP's
visual agent, the optimizer step) and multiplies the base learning rate by the returned factor.
"""

from __future__ import annotations

import math


def multistep_factor(epoch: int, milestones=(4, 10), gamma: float = 0.1) -> float:
    """S1 (RAPF): ``gamma ** (number of milestones <= epoch)``; epochs count from 0."""
    return gamma ** sum(1 for milestone in milestones if epoch >= milestone)


def cosine_factor(step: int, total: int, min_ratio: float = 0.01) -> float:
    """S2 (MG-CLIP): ``min_ratio + (1 - min_ratio) * (1 + cos(pi * step / total)) / 2``.

    The closed form of a cosine annealing to ``min_ratio * lr`` over ``total`` steps (or epochs), evaluated
    at ``step``; ``step = 0`` gives 1."""
    if total <= 0:
        raise ValueError(f"cosine schedule needs total > 0, got {total}")
    return min_ratio + (1.0 - min_ratio) * (1.0 + math.cos(math.pi * step / total)) / 2.0


def epoch_factor(schedule: str, epoch: int, epochs: float, milestones=(4, 10), gamma: float = 0.1,
                 min_ratio: float = 0.01) -> float:
    """The lr factor of ``epoch`` (from 0) under the per-epoch ``schedule``: 'multistep' (S1) or 'cosine' (S2,
    over ``epochs``: the authors' ``CosineAnnealingLR(T_max=epochs)`` stepped per epoch)."""
    if schedule == "multistep":
        return multistep_factor(epoch, milestones, gamma)
    if schedule == "cosine":
        return cosine_factor(epoch, max(int(math.ceil(epochs)), 1), min_ratio)
    raise ValueError(f"unknown per-epoch schedule {schedule!r}")


def epoch_scheduler(optimizer, args, steps_per_epoch: int):
    """A LambdaLR that holds each epoch's factor over its ``steps_per_epoch`` optimizer steps (args: the
    run's settings: epoch_lr_schedule, num_train_epochs, lr_milestones, lr_gamma, lr_min_ratio)."""
    from torch.optim.lr_scheduler import LambdaLR

    def factor(step: int) -> float:
        return epoch_factor(args.epoch_lr_schedule, step // max(steps_per_epoch, 1), args.num_train_epochs,
                            tuple(args.lr_milestones), args.lr_gamma, args.lr_min_ratio)

    return LambdaLR(optimizer, factor)


# A Trainer mix-in: the learning rate stepped per epoch when the run asks for it (``epoch_lr_schedule``:
# RAPF's multistep S1, MG-CLIP's cosine S2), Trainer's own per-step ``lr_scheduler_type`` otherwise.

class PerEpochSchedule:
    def steps_per_epoch(self) -> int:
        """Optimizer steps in one epoch of the task (as Trainer counts them); one trainer = one task's data."""
        if getattr(self, "_steps_per_epoch", None) is None:
            batches = len(self.get_train_dataloader())
            self._steps_per_epoch = max(-(-batches // self.args.gradient_accumulation_steps), 1)
        return self._steps_per_epoch

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        if self.args.epoch_lr_schedule == "none":
            return super().create_scheduler(num_training_steps, optimizer)
        if self.lr_scheduler is None:
            self.lr_scheduler = epoch_scheduler(optimizer or self.optimizer, self.args, self.steps_per_epoch())
        return self.lr_scheduler
