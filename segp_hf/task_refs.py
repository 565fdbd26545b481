"""Naming task checkpoints: the branch of task k, ``SOURCE@task-k`` references, and what looks like a Hub id."""

from __future__ import annotations

import re
from pathlib import Path

from . import checkpoints as ckpt
from .errors import RecipeError

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def branch_name(task: int) -> str:
    return f"{ckpt.TASK_PREFIX}{task}"


def looks_like_hub_id(value) -> bool:
    return isinstance(value, str) and bool(_HUB_ID.match(value)) and not Path(value).exists()


def parse_checkpoint_ref(ref: str) -> tuple[str, int | None]:
    """``"SOURCE@task-3"`` (or ``SOURCE@3``) -> ``("SOURCE", 3)``; no ``@`` -> ``(SOURCE, None)`` (latest)."""
    source, sep, suffix = ref.rpartition("@")
    if not sep:
        return ref, None
    match = re.fullmatch(r"(?:task-)?(\d+)", suffix.strip())
    if not source or not match:
        raise RecipeError(f"checkpoint '{ref}' must look like REPO_OR_DIR@task-K (e.g. user/run@task-3)")
    return source, int(match.group(1))
