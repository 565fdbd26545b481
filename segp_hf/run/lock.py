"""One run per output directory: ``OUTPUT/.segp-hf.lock`` names the run that holds it (pid, host, start time).

``run_continual`` takes it before any model or data is loaded and gives it back when the run ends (finished,
failed or stopped). A second ``segp-hf train`` on the same directory while the holder lives is refused at
once (``RecipeError``, exit 2) with a message naming the holder; a lock whose process is gone (a ``kill -9``,
a node that rebooted: same host, pid no longer running or running something else) is taken over with a
warning. A lock from another host (a requeued job on another node) cannot be checked by pid: its holder
touches it every ``HEARTBEAT_S`` seconds, and one untouched for ``STALE_AFTER_S`` counts as gone. Only the main process takes the lock (ranks of one run share the directory); ``eval``, ``report`` and
``diagnose`` only read and take none.

The file is written whole under a temporary name and hard-linked into place, so no reader ever sees half a
lock, and two runs starting together cannot both win.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from ..errors import RecipeError
from . import checkpoints as ckpt

logger = logging.getLogger(__name__)

LOCK_FILE = ".segp-hf.lock"
HEARTBEAT_S = 60.0  # the holder touches its lock this often
STALE_AFTER_S = 600.0  # a lock from another host untouched this long is taken over


def _start_ticks(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot, Linux), None where it cannot be read: a pid
    reused by another process then does not pass for the holder."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return int(handle.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def holder_record(pid: int | None = None) -> dict:
    pid = os.getpid() if pid is None else pid
    return {"pid": pid, "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "start_ticks": _start_ticks(pid)}


def holder_alive(holder: dict, touched_s_ago: float = 0.0) -> bool:
    """Whether the run named by ``holder`` may still be running (one on another host: while it keeps touching
    its lock)."""
    if holder.get("host") != socket.gethostname():
        return touched_s_ago < STALE_AFTER_S
    pid = holder.get("pid")
    if not isinstance(pid, int) or pid <= 0 or pid == os.getpid():
        return False  # our own pid: a lock left by an earlier life of this pid (a restarted container)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, another user's
    saved = holder.get("start_ticks")
    return saved is None or _start_ticks(pid) in (None, saved)


def _describe(holder: dict) -> str:
    return f"pid {holder.get('pid')} on host {holder.get('host')}, started {holder.get('started')}"


def _link_into_place(path: Path, record: dict) -> None:
    """Create ``path`` holding ``record``; FileExistsError when it is there already."""
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f"{path.name}.", delete=False) as handle:
        json.dump(record, handle)
    try:
        os.link(handle.name, path)
    finally:
        os.unlink(handle.name)


def _read_holder(path: Path) -> dict:
    try:
        return ckpt.read_json(path)
    except (OSError, ValueError):
        return {}  # unreadable: nobody can be named as holding it


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return 0.0


def _heartbeat(path: Path, stop: threading.Event) -> None:
    while not stop.wait(HEARTBEAT_S):
        try:
            os.utime(path)
        except OSError:
            pass  # a lost lock file is noticed by nobody but a second run, which then takes it


def acquire(output_dir) -> Path:
    """Take the lock of ``output_dir`` (created if missing) or raise ``RecipeError`` naming its live holder."""
    output_dir = Path(output_dir)
    ckpt.check_writable(output_dir)
    path = output_dir / LOCK_FILE
    for _ in range(3):  # a stale lock removed, then taken; a run racing us for it wins or loses once
        try:
            _link_into_place(path, holder_record())
            return path
        except FileExistsError:
            holder = _read_holder(path)
        if holder and holder_alive(holder, _age(path)):
            raise RecipeError(
                f"output_dir {output_dir} is in use by another run ({_describe(holder)}): wait for it to end or "
                f"choose another --output_dir (if that run is gone, delete {path})")
        logger.warning("Taking over the lock of %s from a run that is gone (%s)", output_dir,
                       _describe(holder) if holder else "unreadable lock file")
        path.unlink(missing_ok=True)
    raise RecipeError(f"could not take the lock {path}: other runs keep taking it; choose another --output_dir")


def release(path: Path) -> None:
    """Give the lock back, if it is still ours."""
    if _read_holder(path).get("pid") == os.getpid():
        path.unlink(missing_ok=True)


@contextmanager
def output_dir_lock(config):
    """Hold ``config.output_dir``'s lock for the ``with`` block; only the main process takes it."""
    if getattr(config, "process_index", 0) != 0:
        yield None
        return
    path = acquire(config.output_dir)
    stop = threading.Event()
    threading.Thread(target=_heartbeat, args=(path, stop), daemon=True, name="segp-hf-lock").start()
    try:
        yield path
    finally:
        stop.set()
        release(path)
