"""Per-task checkpoints on the Hub: pushing task k to branch ``task-k`` (finding and fetching them back:
``hub/tasks.py``).

One repo per run, one branch per task. ``task-k`` is created from ``task-(k-1)`` (``task-0`` from
``main``), the task directory is uploaded with ``revision="task-k"``, then the same files are uploaded to
``main`` so that it always follows the latest task. A push that still fails after its retries is kept
in a queue (later tasks wait behind it, as their branch is created from it) and reported at the end of
the run together with the ``segp-hf push OUTPUT_DIR REPO_ID`` command that finishes it. What each branch
already holds is recorded in the output dir (``push_record.py``): a later push uploads only what is missing.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import HfApi

from ..errors import RecipeError
from ..run import checkpoints as ckpt
from .model_card import write_task_card
from .push_record import PushRecord, fingerprint
from .tasks import branch_name

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
        self.skipped: list[str] = []  # "task-k" / "main (task k)": already on the Hub, unchanged
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
        record, print_ = PushRecord(output_dir, self.repo_id), fingerprint(folder)
        branch = branch_name(task)
        if record.holds(branch, task, print_):
            self.skipped.append(branch)
        else:
            self._push_branch(folder, task, record.has_branch(branch))
            record.mark(branch, task, print_)
        if record.holds("main", task, print_) or record.main_is_past(task):
            self.skipped.append(f"main (task {task})")
            return
        # Only now that task-k holds the whole task does main follow it.
        self._attempt("upload to main", lambda: self.api.upload_folder(
            repo_id=self.repo_id, folder_path=str(folder), revision="main", token=self.token,
            commit_message=f"SeGP-CL task {task} ({branch})"))
        record.mark("main", task, print_)

    def _push_branch(self, folder, task: int, branch_exists: bool):
        if not self._repo_ready:
            self._attempt("create_repo", lambda: self.api.create_repo(
                self.repo_id, token=self.token, private=self.private, exist_ok=True))
            self._repo_ready = True
        branch = branch_name(task)
        parent = branch_name(task - 1) if task > 0 else "main"
        if not branch_exists:
            self._attempt(f"create_branch {branch}", lambda: self.api.create_branch(
                self.repo_id, branch=branch, revision=parent, token=self.token, exist_ok=True))
        self._attempt(f"upload to {branch}", lambda: self.api.upload_folder(
            repo_id=self.repo_id, folder_path=str(folder), revision=branch, token=self.token,
            commit_message=f"SeGP-CL task {task} ({branch})"))

    def held_already(self, task: int) -> bool:
        """Whether nothing of ``task`` had to be uploaded (its branch and main were skipped)."""
        return branch_name(task) in self.skipped and f"main (task {task})" in self.skipped

    def queue_unrecorded(self, output_dir, done: int) -> None:
        """A resumed run: queue its finished tasks whose branch the record lacks (an earlier life's failed pushes)."""
        record = PushRecord(output_dir, self.repo_id)
        missing = [task for task in range(done) if not record.has_branch(branch_name(task))]
        self.pending = sorted(set(self.pending) | set(missing))

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


