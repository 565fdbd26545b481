"""Every error a user can cause, outside the data package (which has its own ``data.spec.DataError``), each
printed by ``segp-hf`` as one line with its own exit code (``EXIT_CODES``)."""

from __future__ import annotations


class RecipeError(ValueError):
    """A recipe or command-line setting the user has to fix."""


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; the task is stopped before anything of it is saved."""


class DamagedCheckpointError(RecipeError):
    """A checkpoint file that is there but does not read back (truncated or corrupt)."""


class TaskNotFoundError(RecipeError):
    """The requested task has no checkpoint at that source."""


class PushIncompleteError(RuntimeError):
    """Some tasks could not be pushed (exit code 4)."""


class OutputWriteError(RuntimeError):
    """A checkpoint or result could not be written (a full disk, a lost mount); exit code 5."""


class RunStopped(BaseException):
    """The run was told to stop (SIGTERM, SIGINT) and stopped where nothing is lost; exit code 128 + the signal.

    A BaseException, like KeyboardInterrupt: no ``except Exception`` on the way (a push's retries) may swallow it."""

    def __init__(self, signum: int, where: str):
        super().__init__(where)
        self.signum, self.where = signum, where

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


# Every exit code of ``segp-hf`` (cli.py returns them; docs/troubleshooting.md's table is generated from this).
EXIT_CODES = (
    (0, "done", "the command finished"),
    (2, "user error", "a setting, a recipe, the data, a damaged checkpoint, or an output dir in use by another "
        "run: the one-line message says what to fix"),
    (3, "training diverged", "the loss became NaN or infinite; nothing of that task was saved (see the advice printed)"),
    (4, "push incomplete", "`segp-hf push` could not push every task; rerun it (only what is missing is uploaded)"),
    (5, "write failed", "a checkpoint or result could not be written (full disk); earlier tasks and the last in-task "
        "checkpoint are intact: free space and rerun the same command"),
    (130, "stopped by SIGINT", "Ctrl-C: the run saved where it was and stopped; rerun the same command to continue"),
    (143, "stopped by SIGTERM", "the scheduler's stop (SLURM time limit, preemption): saved and stopped; rerun (or "
          "requeue) the same command to continue"),
)
