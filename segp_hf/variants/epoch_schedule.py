"""A Trainer mix-in: the learning rate stepped per epoch when the run asks for it (``epoch_lr_schedule``:
RAPF's multistep S1, MG-CLIP's cosine S2), Trainer's own per-step ``lr_scheduler_type`` otherwise."""

from __future__ import annotations

from .schedules import epoch_scheduler


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
