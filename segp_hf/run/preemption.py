"""Being told to stop: SIGTERM (SLURM's time limit or preemption, a spot notice) and SIGINT (Ctrl-C).

The first signal is only noted. Inside a task, the next optimizer step ends with an in-task Trainer checkpoint
(``StopCallback``: ``control.should_save`` at that step; every rank agrees on the step under DDP) and the run
stops with :class:`~segp_hf.errors.RunStopped` once it is written; between tasks (evaluating, saving) the task
in hand is finished and saved first. Rerunning the same command resumes from there (the in-task resume of
``run/continual.py``: teacher targets recomputed, anchors drawn by step, prototypes and competitor state from
task-(k-1), the trackers' step axis from the saved metrics).

A second signal stops at once (``RunStopped`` raised where the process is): nothing already saved is lost, as
task folders are renamed into place whole and the Trainer writes ``trainer_state.json`` last (a checkpoint cut
short is skipped on resume). The exit code is 128 + the signal's number (143 for SIGTERM, 130 for SIGINT).

Why not ``TrainingArguments.enable_jit_checkpoint``: it handles SIGTERM only, waits 3 s before acting, may save
before the optimizer step, and lets ``train()`` return as if the task were finished.
"""

from __future__ import annotations

import logging
import signal
import threading
from contextlib import contextmanager

import torch
from transformers import TrainerCallback

from ..errors import RunStopped

logger = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequest:
    """Which stop signal arrived first (None: none yet); a second one raises ``RunStopped`` at once."""

    def __init__(self):
        self.signum: int | None = None

    def handle(self, signum, frame=None):
        if self.signum is not None:
            raise RunStopped(signum, "stopped at once by a second signal; everything saved before it is kept")
        self.signum = signum
        logger.warning("%s received: stopping at the next step boundary (send it again to stop at once)",
                       signal.Signals(signum).name)

    def agreed(self, world_size: int = 1, device=None) -> int | None:
        """The signal, as every rank sees it: under DDP the largest signal number any rank got (a collective:
        every rank calls it at the same point)."""
        if world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            flag = torch.tensor([self.signum or 0], dtype=torch.int64, device=device)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            if flag.item() and self.signum is None:
                self.signum = int(flag.item())
        return self.signum

    def stop_here(self, where: str, world_size: int = 1, device=None) -> None:
        """Raise ``RunStopped`` when a signal arrived (the point a run may stop at without losing anything)."""
        signum = self.agreed(world_size, device)
        if signum is not None:
            raise RunStopped(signum, where)


@contextmanager
def stop_requests():
    """Catch SIGTERM and SIGINT for the ``with`` block (the previous handlers come back after it). Outside the
    main thread no handler can be installed: the request then never fires."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    previous = {signum: signal.signal(signum, request.handle) for signum in STOP_SIGNALS}
    try:
        yield request
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class StopCallback(TrainerCallback):
    """After each optimizer step: when a stop was requested (on any rank), save a Trainer checkpoint now;
    once it is written (``on_save``, every rank), stop the run with ``RunStopped``."""

    def __init__(self, request: StopRequest, task: int):
        self.request, self.task = request, task
        self.stopping: int | None = None  # the signal as every rank agreed on it at the last step's end

    def on_step_end(self, args, state, control, **kwargs):
        self.stopping = self.request.agreed(args.world_size, args.device)
        if self.stopping is not None:
            control.should_save = True  # a checkpoint at this step: the rerun resumes right after it
        return control

    def on_save(self, args, state, control, **kwargs):
        if self.stopping is not None:  # not the live flag: a signal landing during the save waits for the next step
            folder = f"{args.output_dir}/checkpoint-{state.global_step}"
            raise RunStopped(self.stopping, f"inside task {self.task} after step {state.global_step} "
                             f"of {state.max_steps} (checkpoint {folder})")
        return control
