"""Per-task checkpoints on the Hub: pushing task k to branch ``task-k``, finding and fetching tasks back.

One repo per run, one branch per task. ``task-k`` is created from ``task-(k-1)`` (``task-0`` from
``main``), the task directory is uploaded with ``revision="task-k"``, then the same files are uploaded to
``main`` so that it always follows the latest task. A push that still fails after its retries is kept
in a queue (later tasks wait behind it, as their branch is created from it) and reported at the end of
the run together with the ``segp-hf push OUTPUT_DIR REPO_ID`` command that finishes it.
"""

from __future__ import annotations

import logging
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import HfApi

from . import checkpoints as ckpt
from .errors import RecipeError
from .model_card import build_model_card, write_task_card  # noqa: F401 - build_model_card: old imports
from .task_refs import branch_name, looks_like_hub_id, parse_checkpoint_ref  # noqa: F401 - parse_checkpoint_ref: old imports

logger = logging.getLogger(__name__)


def _backoff_sleep(seconds: float) -> None:
    """The wait between push attempts (a module function so tests can replace just this wait)."""
    time.sleep(seconds)


@dataclass
class PushFailure:
    task: int
    error: str


class HubPusher:
    """Pushes task directories in order, with retries and exponential backoff; never raises on a
    failed push (the failure is recorded and the task stays queued)."""

    def __init__(self, repo_id: str, token: str | None = None, private: bool | None = None,
                 retries: int = 3, backoff: float = 2.0, api=None, sleep=None):
        if api is None:
            api = HfApi(token=token)
        self.api, self.repo_id, self.token, self.private = api, repo_id, token, private
        self.retries, self.backoff, self.sleep = max(0, int(retries)), float(backoff), sleep or _backoff_sleep
        self.pending: list[int] = []
        self.pushed: list[int] = []
        self.failures: list[PushFailure] = []
        self._repo_ready = False

    def check_credentials(self) -> str:
        try:
            user = self.api.whoami(token=self.token)
        except Exception as error:  # any failure: no token, bad token, no network
            raise RecipeError(
                f"pushing to the Hub was requested (repo '{self.repo_id}') but the credentials could not be "
                f"checked: {type(error).__name__}: {error}. Log in (`hf auth login`), set HF_TOKEN or "
                "--hub_token, or drop --push_to_hub. Nothing was trained."
            ) from None
        return user.get("name", "?") if isinstance(user, dict) else "?"

    def _attempt(self, what: str, call):
        delay = self.backoff
        for attempt in range(self.retries + 1):
            try:
                return call()
            except Exception as error:
                if attempt == self.retries:
                    raise
                logger.warning("Hub %s failed (%s: %s); retry %d/%d in %.1fs", what, type(error).__name__,
                               error, attempt + 1, self.retries, delay)
                self.sleep(delay)
                delay *= 2

    def _push_one(self, output_dir, task: int):
        folder = ckpt.task_dir(output_dir, task)
        write_task_card(output_dir, task, self.repo_id)  # the card names this repo in its load commands
        if not self._repo_ready:
            self._attempt("create_repo", lambda: self.api.create_repo(
                self.repo_id, token=self.token, private=self.private, exist_ok=True))
            self._repo_ready = True
        branch = branch_name(task)
        parent = branch_name(task - 1) if task > 0 else "main"
        self._attempt(f"create_branch {branch}", lambda: self.api.create_branch(
            self.repo_id, branch=branch, revision=parent, token=self.token, exist_ok=True))
        message = f"SeGP-CL task {task}"
        for revision in (branch, "main"):
            self._attempt(f"upload to {revision}", lambda revision=revision: self.api.upload_folder(
                repo_id=self.repo_id, folder_path=str(folder), revision=revision, token=self.token,
                commit_message=f"{message} ({branch})"))

    def push(self, output_dir, task: int) -> bool:
        """Queue ``task`` and push everything queued, in order. True when nothing is left pending."""
        if task not in self.pending and task not in self.pushed:
            self.pending.append(task)
            self.pending.sort()
        return self.push_pending(output_dir)

    def push_pending(self, output_dir) -> bool:
        while self.pending:
            task = self.pending[0]
            try:
                self._push_one(output_dir, task)
            except Exception as error:
                message = f"{type(error).__name__}: {error}"
                self.failures.append(PushFailure(task, message))
                logger.error("Could not push task %d to %s (%s); training goes on, the local checkpoint is kept",
                             task, self.repo_id, message)
                return False
            self.pending.pop(0)
            self.pushed.append(task)
            logger.info("Pushed task %d to %s (branch %s, main updated)", task, self.repo_id, branch_name(task))
        return True

    def report(self, output_dir) -> str | None:
        """What was not pushed and how to push it later (None when everything was pushed)."""
        if not self.pending:
            return None
        last_error = {f.task: f.error for f in self.failures}
        lines = [f"Not pushed to {self.repo_id} (the local checkpoints are complete):"]
        lines += [f"  {branch_name(t)}: {last_error.get(t, 'waiting for an earlier task')}" for t in self.pending]
        lines.append(f"Push them later with:  segp-hf push {Path(output_dir).resolve()} {self.repo_id}")
        return "\n".join(lines)


def hub_repo_id(config) -> str | None:
    """The run's repo id when pushing is requested (TrainingArguments' push_to_hub / hub_model_id)."""
    if not getattr(config, "push_to_hub", False):
        return None
    return config.hub_model_id or Path(config.output_dir).resolve().name


def pusher_from_config(config, api=None) -> HubPusher | None:
    repo_id = hub_repo_id(config)
    if repo_id is None:
        return None
    return HubPusher(repo_id, token=config.hub_token, private=config.hub_private_repo,
                     retries=getattr(config, "hub_push_retries", 3), backoff=getattr(config, "hub_push_backoff", 2.0),
                     api=api)


def push_output_dir(output_dir, repo_id: str, token=None, private=None, retries=3, backoff=2.0, api=None) -> HubPusher:
    """Push every complete task of a local run (``segp-hf push``)."""
    done = ckpt.completed_tasks(output_dir)
    if done == 0:
        raise RecipeError(f"{output_dir} holds no complete task checkpoint (task-0/metrics.json) to push")
    for task in range(done):  # a damaged task is named, never pushed
        ckpt.verify_task(ckpt.task_dir(output_dir, task), task)
    pusher = HubPusher(repo_id, token=token, private=private, retries=retries, backoff=backoff, api=api)
    pusher.check_credentials()
    pusher.pending = list(range(done))
    pusher.push_pending(output_dir)
    return pusher


# ------------------------------------------------------------------------------------------- finding tasks

class TaskNotFoundError(RecipeError):
    """The requested task has no checkpoint at that source."""


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

    if not constants.HF_HUB_OFFLINE:
        try:
            refs = HfApi(token=token).list_repo_refs(source)
            names = [branch.name for branch in refs.branches]
            return sorted(int(m.group(1)) for n in names if (m := re.fullmatch(rf"{ckpt.TASK_PREFIX}(\d+)", n)))
        except Exception:  # unreachable: fall back to what the cache holds
            pass
    return _cached_tasks(source, cache_dir)


def _missing_task(source, task, cache_dir=None, token=None, reason: str = "") -> TaskNotFoundError:
    found = available_tasks(source, cache_dir, token)
    listed = ", ".join(branch_name(t) for t in found) if found else "none"
    extra = f" ({reason})" if reason else ""
    return TaskNotFoundError(f"no checkpoint for {branch_name(task)} at '{source}'{extra}; available: {listed}")


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
    from huggingface_hub.errors import (EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError,
                                        RevisionNotFoundError)

    revision = "main" if task is None else branch_name(task)
    try:
        folder = snapshot_download(source, revision=revision, cache_dir=cache_dir, token=token)
    except RevisionNotFoundError:
        raise _missing_task(source, task, cache_dir, token) from None
    except RepositoryNotFoundError:
        raise TaskNotFoundError(f"Hub repo '{source}' not found (or not accessible with this token)") from None
    except (LocalEntryNotFoundError, EntryNotFoundError) as error:
        if task is None:
            raise TaskNotFoundError(f"'{source}' is not in the local cache and the Hub cannot be reached") from None
        raise _missing_task(source, task, cache_dir, token, reason=type(error).__name__) from None
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


def __getattr__(name):
    # Deprecated: loading and predicting moved to inference.py (they work from a local folder too); kept for old
    # imports such as ``from segp_hf.hub import load_task`` (lazy, so hub.py itself never imports inference.py).
    if name in ("load_task", "LoadedTask", "TaskPrediction"):
        import warnings

        from . import inference

        warnings.warn(f"segp_hf.hub.{name} moved to segp_hf.inference.{name}", DeprecationWarning, stacklevel=2)
        return getattr(inference, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
