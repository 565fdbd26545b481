"""Finding finished tasks: the branch of task k, ``SOURCE@task-k`` references, what looks like a Hub id, which
tasks a run directory, the HF cache or a Hub repo holds, and fetching them (for ``load_task``, ``segp-hf eval``
and ``train --resume_from``); the commit a Hub base model was loaded at (``base_model_commit``)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from huggingface_hub import HfApi

from ..errors import RecipeError, TaskNotFoundError
from ..run import checkpoints as ckpt

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def branch_name(task: int) -> str:
    return f"{ckpt.TASK_PREFIX}{task}"


def looks_like_hub_id(value) -> bool:
    return isinstance(value, str) and bool(_HUB_ID.match(value)) and not Path(value).exists()


_COMMIT = re.compile(r"[0-9a-f]{40}")


def model_commit(model_name_or_path: str, revision: str | None = None) -> str | None:
    """The commit Hub model ``model_name_or_path`` at ``revision`` (None: its default branch) was loaded at: the HF
    cache's ``snapshots/<commit>/config.json`` that ``from_pretrained`` read (transformers 5 no longer sets
    ``config._commit_hash``); None for a local folder or when it cannot be told."""
    if not looks_like_hub_id(model_name_or_path):
        return None
    if revision and _COMMIT.fullmatch(revision):
        return revision
    from huggingface_hub import hf_hub_download

    try:
        config = Path(hf_hub_download(model_name_or_path, "config.json", revision=revision))
    except Exception:  # noqa: BLE001 - the model loaded, so this only loses the record: None
        return None
    return config.parent.name if _COMMIT.fullmatch(config.parent.name) else None


def parse_checkpoint_ref(ref: str) -> tuple[str, int | None]:
    """``"SOURCE@task-3"`` (or ``SOURCE@3``) -> ``("SOURCE", 3)``; no ``@`` -> ``(SOURCE, None)`` (latest)."""
    source, sep, suffix = ref.rpartition("@")
    if not sep:
        return ref, None
    match = re.fullmatch(r"(?:task-)?(\d+)", suffix.strip())
    if not source or not match:
        raise RecipeError(f"checkpoint '{ref}' must look like REPO_OR_DIR@task-K (e.g. user/run@task-3)")
    return source, int(match.group(1))


def _local_tasks(output_dir: Path) -> list[int]:
    tasks = []
    for child in output_dir.glob(f"{ckpt.TASK_PREFIX}*"):
        match = re.fullmatch(rf"{ckpt.TASK_PREFIX}(\d+)", child.name)
        if match and ckpt.is_complete(child):
            tasks.append(int(match.group(1)))
    return sorted(tasks)


def _cached_tasks(repo_id: str, cache_dir=None) -> list[int]:
    from huggingface_hub import constants

    refs = Path(cache_dir or constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}" / "refs"
    names = [p.name for p in refs.glob(f"{ckpt.TASK_PREFIX}*")] if refs.is_dir() else []
    return sorted(int(m.group(1)) for n in names if (m := re.fullmatch(rf"{ckpt.TASK_PREFIX}(\d+)", n)))


def available_tasks(source: str, cache_dir=None, token=None) -> list[int]:
    """Tasks with a checkpoint at ``source``: local task dirs, the repo's task branches, or (offline,
    or when the Hub cannot be reached) the task branches in the local HF cache."""
    path = Path(source)
    if path.is_dir():
        return _local_tasks(path)
    from huggingface_hub import constants

    listed = None if constants.HF_HUB_OFFLINE else _hub_tasks(source, token)
    return listed if listed is not None else _cached_tasks(source, cache_dir)


def _hub_tasks(source: str, token=None) -> list[int] | None:
    """The task branches of Hub repo ``source``; None when its branches cannot be listed (no such repo, no access,
    unreachable)."""
    try:
        refs = HfApi(token=token).list_repo_refs(source)
    except Exception:  # noqa: BLE001 - told apart by the caller: the cache, or "not found"
        return None
    names = [branch.name for branch in refs.branches]
    return sorted(int(m.group(1)) for n in names if (m := re.fullmatch(rf"{ckpt.TASK_PREFIX}(\d+)", n)))


def _missing_task(source, task, cache_dir=None, token=None, reason: str = "") -> TaskNotFoundError:
    found = available_tasks(source, cache_dir, token)
    listed = ", ".join(branch_name(t) for t in found) if found else "none"
    extra = f" ({reason})" if reason else ""
    return TaskNotFoundError(f"no checkpoint for {branch_name(task)} at '{source}'{extra}; available: {listed}")


def _refused(source: str, task: int | None, error, token=None) -> TaskNotFoundError:
    """The Hub refused a revision of ``source``: a repo whose branches list (the Hub answers 404 for a missing
    branch, a mirror such as olah 401) lacks the task; otherwise the repo is missing or not accessible."""
    found = _hub_tasks(source, token) if task is not None else None
    if found is not None:
        listed = ", ".join(branch_name(t) for t in found) or "none"
        return TaskNotFoundError(f"no checkpoint for {branch_name(task)} at '{source}'; available: {listed}")
    status = getattr(getattr(error, "response", None), "status_code", None)
    return TaskNotFoundError(f"Hub repo '{source}' not found (or not accessible with this token; HTTP {status})")


def resolve_task_folder(source: str, task: int | None = None, cache_dir=None, token=None) -> tuple[Path, bool]:
    """The local folder holding ``task`` of ``source`` (a run's output dir, a task dir, or a Hub repo,
    fetched into / read from the HF cache). Returns ``(folder, from_hub)``."""
    path = Path(source)
    if path.is_dir():
        if ckpt.is_complete(path):  # a task directory itself
            saved = ckpt.read_task_json(path, ckpt.CLASSES_FILE)["task"]
            if task is not None and task != saved:
                raise TaskNotFoundError(f"'{source}' is the checkpoint of {branch_name(saved)}, not {branch_name(task)}")
            return path, False
        if task is None:
            tasks = _local_tasks(path)
            if not tasks:
                raise TaskNotFoundError(f"'{source}' holds no complete task checkpoint")
            task = tasks[-1]
        folder = ckpt.task_dir(path, task)
        if not ckpt.is_complete(folder):
            raise _missing_task(source, task)
        return folder, False
    if not looks_like_hub_id(source) and not re.fullmatch(r"[\w.-]+", source):
        raise TaskNotFoundError(f"'{source}' is neither a local directory nor a Hub repo id")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RevisionNotFoundError,
    )

    revision = "main" if task is None else branch_name(task)
    try:
        folder = snapshot_download(source, revision=revision, cache_dir=cache_dir, token=token)
    except RevisionNotFoundError:
        raise _missing_task(source, task, cache_dir, token) from None
    except (LocalEntryNotFoundError, EntryNotFoundError) as error:
        if task is None:
            raise TaskNotFoundError(f"'{source}' is not in the local cache and the Hub cannot be reached") from None
        raise _missing_task(source, task, cache_dir, token, reason=type(error).__name__) from None
    except HfHubHTTPError as error:  # RepositoryNotFoundError, or any status (a mirror answers 401 for a branch)
        raise _refused(source, task, error, token) from None
    if not ckpt.is_complete(folder):
        raise TaskNotFoundError(f"'{source}' at revision {revision} is not a SeGP-CL task checkpoint")
    return Path(folder), True


def fetch_task_dirs(source: str, task: int, output_dir, cache_dir=None, token=None) -> Path:
    """Copy (local) or download (Hub) the checkpoints of tasks 0..task of a run into ``output_dir``,
    so that the normal resume path continues with task + 1."""
    output_dir = Path(output_dir)
    existing = _local_tasks(output_dir) if output_dir.is_dir() else []
    if existing:
        raise RecipeError(
            f"--resume_from needs an output_dir without task checkpoints, but {output_dir} already holds "
            f"{', '.join(branch_name(t) for t in existing)}; choose a new --output_dir"
        )
    folders = [resolve_task_folder(source, t, cache_dir, token)[0] for t in range(task + 1)]
    for t, folder in enumerate(folders):  # all checked before any is copied
        ckpt.verify_task(folder, t)
    output_dir.mkdir(parents=True, exist_ok=True)
    for t, folder in enumerate(folders):
        target = ckpt.task_dir(output_dir, t)
        staging = output_dir / f".{target.name}.fetch"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(folder, staging, ignore=shutil.ignore_patterns(".cache", ".git*"))  # follows cache symlinks
        staging.rename(target)
    return output_dir

