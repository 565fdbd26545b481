"""Thin Trainer hooks around ``Trainer.train`` for one task (Mammoth's begin_task / end_task):

- ``TeacherTargetsCallback`` (train begin): the teacher's targets for the task (method/teacher.py).
- ``PrototypeCallback`` (train end): the prototype bank's update (method/prototypes.py).
- ``NonFiniteLossCallback`` (each log): stops a task whose loss diverged before anything of it is saved.
"""

from __future__ import annotations

import math

from transformers import TrainerCallback

from .errors import TrainingDivergedError
from .method.prototypes import update_prototypes
from .method.teacher import prepare_teacher_targets
from .run.timing import timed


def diverged_advice(task: int, output_dir) -> str:
    """What to do after task ``task`` diverged (its checkpoints are dropped; the finished tasks are intact)."""
    if task == 0:
        return ("nothing of task 0 was saved (no task was finished yet). To go on, rerun with a lower "
                "--learning_rate (or lower loss weights) and a new --output_dir")
    return (f"nothing of task {task} was saved (tasks 0..{task - 1} are intact in {output_dir}). To go on, "
            f"continue from task {task - 1} in a new directory: add --resume_from {output_dir}@task-{task - 1} "
            f"--output_dir NEW_DIR --learning_rate LOWER to your command")


class NonFiniteLossCallback(TrainerCallback):
    """Stops the task at the first logged non-finite loss (the logged loss is not NaN-filtered here)."""

    def __init__(self, task_state):
        self.state = task_state

    def on_log(self, args, state, control, logs=None, **kwargs):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            raise TrainingDivergedError(f"the loss became {loss} at step {state.global_step} of task {self.state.task}")


class TeacherTargetsCallback(TrainerCallback):
    def __init__(self, task_state):
        self.state = task_state

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        with timed(self.state.timing, "anchors_s"):
            prepare_teacher_targets(model, self.state, args)


class PrototypeCallback(TrainerCallback):
    def __init__(self, task_state):
        self.state = task_state

    def on_train_end(self, args, state, control, model=None, **kwargs):
        with timed(self.state.timing, "prototypes_s"):
            update_prototypes(model, self.state, args)
