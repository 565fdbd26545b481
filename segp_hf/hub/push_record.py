"""What each branch of a Hub repo already holds, as this output dir pushed it: ``OUTPUT/.hub-push.json``.

One entry per repo and revision (``task-k`` or ``main``): the task it holds and the fingerprint (SHA-256 over
file names and bytes) of the task folder that was uploaded. An entry is written only after its upload
returned, so a push that dropped halfway leaves the record of what did land; the next push (``segp-hf push``
or a resumed run) skips what the record says is there unchanged and uploads only the rest. ``main`` is only
ever uploaded after its task's own branch holds the task, and never moved back to an earlier task.

The record is this directory's memory, not the Hub's: delete the file to push every task again.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..run import checkpoints as ckpt

RECORD_FILE = ".hub-push.json"


def fingerprint(folder) -> str:
    """SHA-256 over the names and bytes of the files of ``folder`` (hidden files left out)."""
    digest = hashlib.sha256()
    for path in sorted(Path(folder).iterdir()):
        if path.is_file() and not path.name.startswith("."):
            digest.update(path.name.encode() + b"\0")
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


class PushRecord:
    def __init__(self, output_dir, repo_id: str):
        self.path, self.repo_id = Path(output_dir) / RECORD_FILE, repo_id
        try:
            self.all = ckpt.read_json(self.path)
        except (OSError, ValueError):
            self.all = {}  # none yet (or unreadable): everything is pushed again, which is safe
        self.revisions = self.all.setdefault(repo_id, {})

    def holds(self, revision: str, task: int, print_: str) -> bool:
        """Whether ``revision`` holds exactly this task folder."""
        return self.revisions.get(revision) == {"task": task, "fingerprint": print_}

    def main_is_past(self, task: int) -> bool:
        """Whether ``main`` already follows a later task (it is never moved back)."""
        return self.revisions.get("main", {}).get("task", -1) > task

    def has_branch(self, revision: str) -> bool:
        return revision in self.revisions

    def mark(self, revision: str, task: int, print_: str) -> None:
        self.revisions[revision] = {"task": task, "fingerprint": print_}
        ckpt.write_json_atomic(self.path, self.all)
