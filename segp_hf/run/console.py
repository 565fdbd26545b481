"""What a run prints: the Trainer's bar per task (losses in its postfix), one bar per evaluation round,
one summary line per task; ``--quiet`` (only the final results and problems) and ``--debug`` (every log line).

The mode is set once by the command line (``set_mode``); the library default is "normal".
"""

from __future__ import annotations

import logging
import math
from contextlib import contextmanager

from tqdm.auto import tqdm
from transformers import PrinterCallback, ProgressCallback

MODES = ("normal", "quiet", "debug")
_mode = "normal"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def set_mode(mode: str) -> None:
    """Console mode and the matching log levels of ours and of the libraries we drive."""
    global _mode
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    _mode = mode
    import datasets
    import transformers

    level = {"normal": logging.INFO, "quiet": logging.WARNING, "debug": logging.DEBUG}[mode]
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)  # a no-op where the caller configured logging
    logging.getLogger("segp_hf").setLevel(level)
    if mode == "quiet":
        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
        datasets.disable_progress_bars()
    else:
        (transformers.utils.logging.set_verbosity_info if mode == "debug" else transformers.utils.logging.set_verbosity_warning)()
        transformers.utils.logging.enable_progress_bar()
        datasets.enable_progress_bars()


def mode() -> str:
    return _mode


def say(line: str) -> None:
    """A line for the user (kept clear of progress bars); nothing under --quiet."""
    if _mode != "quiet":
        tqdm.write(line)


def bars_enabled(args) -> bool:
    return _mode != "quiet" and not getattr(args, "disable_tqdm", False)


class ConsoleCallback(ProgressCallback):
    """The Trainer's ProgressCallback with (a) the loss terms in the training bar instead of a printed dict
    per logging step (printed under --debug) and (b) prediction steps counted on the current evaluation
    round's bar when there is one, so a round of T evaluations is one bar, not T."""

    def __init__(self):
        super().__init__()
        self.round_bar = None

    def on_prediction_step(self, args, state, control, eval_dataloader=None, **kwargs):
        if self.round_bar is None:
            return super().on_prediction_step(args, state, control, eval_dataloader=eval_dataloader, **kwargs)
        if state.is_world_process_zero:
            self.round_bar.update(1)

    def on_evaluate(self, args, state, control, **kwargs):
        if self.round_bar is None:
            super().on_evaluate(args, state, control, **kwargs)

    def on_predict(self, args, state, control, **kwargs):
        if self.round_bar is None:
            super().on_predict(args, state, control, **kwargs)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if _mode == "debug":
            return super().on_log(args, state, control, logs=logs, **kwargs)
        if state.is_world_process_zero and self.training_bar is not None and logs and "loss" in logs:
            shown = {key: f"{logs[key]:.3g}" for key in ("loss", "loss_cls", "loss_acgd", "loss_tsgr")
                     if isinstance(logs.get(key), (int, float))}
            self.training_bar.set_postfix(shown, refresh=False)


def install_console(trainer) -> ConsoleCallback | None:
    """Replace the Trainer's own progress/printer callbacks by ours (none at all under --quiet)."""
    trainer.remove_callback(ProgressCallback)
    if not bars_enabled(trainer.args):
        if _mode == "quiet":
            trainer.remove_callback(PrinterCallback)
        return None
    trainer.remove_callback(PrinterCallback)
    console = ConsoleCallback()
    trainer.add_callback(console)
    return console


@contextmanager
def evaluation_round(console: ConsoleCallback | None, total_batches: int, description: str):
    """One bar for every evaluation of the block (a no-op without bars)."""
    if console is None:
        yield
        return
    console.round_bar = tqdm(total=total_batches, desc=description, leave=False, dynamic_ncols=True)
    try:
        yield
    finally:
        console.round_bar.close()
        console.round_bar = None


def progress(iterable, args, description: str, total: int | None = None):
    """A bar over ``iterable`` for a phase of our own (anchor building), on the main process only."""
    from .distributed import distributed_world

    disable = not bars_enabled(args) or distributed_world()[0] != 0
    return tqdm(iterable, desc=description, total=total, leave=False, disable=disable, dynamic_ncols=True)


def _percent(value) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.1f}"


def task_summary(task: int, num_tasks: int, classes_seen: int, metrics: dict, seconds: float,
                 retention: dict | None = None) -> str:
    """One line after each task: A_i over the classes seen so far, Avg and forgetting so far, the task's time,
    and zero-shot retention where it was measured after this task."""
    from .timing import format_seconds

    line = (f"task {task + 1}/{num_tasks}: accuracy on the {classes_seen} classes seen {_percent(metrics.get('last'))}%"
            f"  Avg {_percent(metrics.get('avg'))}  Forgetting {_percent(metrics.get('forgetting'))}")
    if retention:
        line += "  zero-shot " + ", ".join(f"{name} {_percent(value)}%" for name, value in retention.items())
    return line + f"  ({format_seconds(seconds)})"
