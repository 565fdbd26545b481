"""The Trainer's ``report_to`` integrations (TensorBoard, W&B, trackio, ...) on one step axis for a whole run.

The continual loop builds a fresh Trainer per task, and each Trainer counts ``state.global_step`` from 0, so
trackers would draw every task on top of the previous one (and TensorBoard would discard the earlier task's
points as "orphaned" when the step goes back). Here the integration callbacks the first task's Trainer
creates are kept for the whole run, and every event reaches them through :class:`GlobalStepForwarder`, which
shows them a copy of the Trainer state whose ``global_step`` is shifted by the optimizer steps of the tasks
before (``TrackerRun.offset``). The Trainer's own state, and so its checkpoints and resume, are untouched.

Every integration reads the step from ``state.global_step`` in ``on_log`` (transformers 5.24,
integrations/integration_utils.py: TensorBoard ``add_scalar(k, v, state.global_step)``, W&B and trackio
``"train/global_step": state.global_step``), so shifting the state is enough for all of them.
"""

from __future__ import annotations

import copy
import logging
import os
from pathlib import Path

from transformers import TrainerCallback
from transformers.integrations import INTEGRATION_TO_CALLBACK

logger = logging.getLogger(__name__)

INTEGRATION_CLASSES = tuple({cls for cls in INTEGRATION_TO_CALLBACK.values() if isinstance(cls, type)})
EVENTS = tuple(name for name in vars(TrainerCallback) if name.startswith("on_"))
TRACKER_DIR = "runs"  # TensorBoard event files, under the run's output_dir (the task Trainers' dirs are removed)


def shifted_state(state, offset: int):
    """A shallow copy of the Trainer state on the run's step axis."""
    shifted = copy.copy(state)
    shifted.global_step = state.global_step + offset
    return shifted


class GlobalStepForwarder(TrainerCallback):
    """Forwards every Trainer event to the run's integration callbacks with the step shifted; ``on_train_end``
    is held back until the run ends (it closes TensorBoard's writer and finishes a trackio run)."""

    def __init__(self, run: "TrackerRun"):
        self.run = run


def _forward(event):
    def method(self, args, state, control, **kwargs):
        if event == "on_train_end":
            self.run.pending_end = (args, state, control, kwargs)
            return None
        result = None
        for callback in self.run.callbacks:
            outcome = getattr(callback, event)(args, shifted_state(state, self.run.offset), control, **kwargs)
            result = outcome if outcome is not None else result
        return result

    method.__name__ = event
    return method


for _event in EVENTS:
    setattr(GlobalStepForwarder, _event, _forward(_event))


class TrackerRun:
    """The integrations of one continual run. ``attach`` each task's Trainer with the global step its task
    starts at; ``log`` run-level metrics (per-task accuracies, Avg/Last/forgetting so far, timings);
    ``log_image`` the heatmap and curves; ``close`` at the end."""

    def __init__(self, output_dir):
        self.logging_dir = Path(output_dir) / TRACKER_DIR
        self.callbacks: list | None = None
        self.offset = 0
        self.trainer = None
        self.pending_end = None

    def attach(self, trainer, offset: int) -> None:
        own = [cb for cb in trainer.callback_handler.callbacks if isinstance(cb, INTEGRATION_CLASSES)]
        for callback in own:
            trainer.callback_handler.remove_callback(callback)
        if self.callbacks is None:
            self.callbacks = own
            for callback in own:
                if hasattr(callback, "tb_writer") and os.getenv("TENSORBOARD_LOGGING_DIR") is None:
                    callback.logging_dir = str(self.logging_dir)
        self.offset = offset
        self.trainer = trainer
        if self.callbacks:
            trainer.add_callback(GlobalStepForwarder(self))

    @property
    def active(self) -> bool:
        return bool(self.callbacks) and self.trainer is not None and self.trainer.is_world_process_zero()

    def _state_at(self, step: int):
        state = copy.copy(self.trainer.state)
        state.global_step = step
        return state

    def log(self, metrics: dict, step: int) -> None:
        """Scalars at ``step`` of the run's axis (names as the Trainer logs them: ``eval_x`` is shown as
        ``eval/x``, anything else as ``train/x``)."""
        if not self.active:
            return
        trainer = self.trainer
        for callback in self.callbacks:
            callback.on_log(trainer.args, self._state_at(step), trainer.control, logs=dict(metrics),
                            model=trainer.model)

    def log_image(self, tag: str, path, step: int) -> None:
        """A PNG written by run/results.py, for the integrations that take images (TensorBoard, W&B, trackio)."""
        if not self.active:
            return
        for callback in self.callbacks:
            try:
                _log_image(callback, self.trainer.args, tag, Path(path), step)
            except Exception as error:  # a tracker failing to take a picture must not end a finished run
                logger.warning("Could not send %s to %s: %s", tag, type(callback).__name__, error)

    def close(self) -> None:
        if self.pending_end is None or not self.callbacks:
            return
        args, state, control, kwargs = self.pending_end
        self.pending_end = None
        for callback in self.callbacks:
            callback.on_train_end(args, shifted_state(state, self.offset), control, **kwargs)


def _log_image(callback, args, tag: str, path: Path, step: int) -> None:
    if hasattr(callback, "tb_writer"):  # TensorBoardCallback
        import numpy as np
        from PIL import Image

        if callback.tb_writer is None:
            callback._init_summary_writer(args)
        pixels = np.asarray(Image.open(path).convert("RGB"))
        callback.tb_writer.add_image(tag, pixels, step, dataformats="HWC")
        callback.tb_writer.flush()
    elif getattr(callback, "_wandb", None) is not None and getattr(callback, "_initialized", False):
        callback._wandb.log({tag: callback._wandb.Image(str(path)), "train/global_step": step})
    elif getattr(callback, "_trackio", None) is not None and hasattr(callback._trackio, "Image"):
        if not getattr(callback, "_initialized", True):
            return
        # as the Trainer's TrackioCallback does: the step in ``train/global_step`` (trackio's own counts log calls)
        callback._trackio.log({tag: callback._trackio.Image(str(path)), "train/global_step": step})
