"""Every error a user can cause, outside the data package (which has its own ``data.spec.DataError``).
``segp-hf`` (cli.py) prints each as one line: exit 2 for what the user fixes (``RecipeError`` and its kinds, and
``DataError``), 3 when training diverged, 4 when some tasks could not be pushed."""

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
