"""One run per output directory (run/lock.py): a live holder refuses a second ``segp-hf train`` at once (exit 2,
one line naming it) before any model or data is loaded; a stale lock is taken over with a warning; only the
main process locks; the lock is given back when the run ends. (A second train beside a live subprocess run:
tests/test_preemption.py.)"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
import yaml
from conftest import tiny_settings

from segp_hf import cli
from segp_hf.errors import RecipeError
from segp_hf.run import continual, lock


def _write_lock(folder, record):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / lock.LOCK_FILE).write_text(json.dumps(record))


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_live_holder_refuses_train_at_once(tiny_clip_dir, tmp_path, monkeypatch, capsys):
    output_dir = tmp_path / "run"
    _write_lock(output_dir, lock.holder_record(os.getppid()))  # pytest's parent: alive, not us
    monkeypatch.setattr(continual, "ContinualRunner", None)  # refused before any model or data is loaded
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(tiny_settings(tiny_clip_dir, output_dir)))
    assert cli.main(["train", "--config", str(recipe)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"output_dir {output_dir} is in use by another run (pid {os.getppid()} on host {socket.gethostname()}" in err
    assert json.loads((output_dir / lock.LOCK_FILE).read_text())["pid"] == os.getppid()  # left alone


def test_a_stale_lock_is_taken_over_with_a_warning_and_given_back(tmp_path, caplog):
    _write_lock(tmp_path, {**lock.holder_record(), "pid": _dead_pid()})
    with caplog.at_level(logging.WARNING, logger="segp_hf.run.lock"):
        with lock.output_dir_lock(SimpleNamespace(output_dir=str(tmp_path), process_index=0)) as path:
            held = json.loads(path.read_text())
            assert held["pid"] == os.getpid() and held["host"] == socket.gethostname() and held["started"]
    assert "Taking over the lock" in caplog.text
    assert not (tmp_path / lock.LOCK_FILE).exists()


def test_a_reused_pid_is_not_the_holder(tmp_path):
    """The holder's pid now runs another process (started at another time): the lock is stale."""
    record = {**lock.holder_record(os.getppid()), "start_ticks": -1}
    assert lock.holder_alive(lock.holder_record(os.getppid())) and not lock.holder_alive(record)
    assert lock.holder_alive({**record, "host": "another-node"})  # cannot be checked by pid: its heartbeat counts


def test_a_lock_from_another_host_is_stale_once_its_heartbeat_stops(tmp_path, monkeypatch):
    _write_lock(tmp_path, {**lock.holder_record(), "host": "another-node"})
    config = SimpleNamespace(output_dir=str(tmp_path), process_index=0)
    with pytest.raises(RecipeError, match="on host another-node"):
        with lock.output_dir_lock(config):
            pass
    old = time.time() - lock.STALE_AFTER_S - 1
    os.utime(tmp_path / lock.LOCK_FILE, (old, old))
    monkeypatch.setattr(lock, "HEARTBEAT_S", 0.01)
    with lock.output_dir_lock(config) as path:
        os.utime(path, (old, old))
        time.sleep(0.3)
        assert time.time() - path.stat().st_mtime < 1  # the holder's heartbeat touches it


def test_only_the_main_process_locks(tmp_path):
    _write_lock(tmp_path, lock.holder_record(os.getppid()))
    with lock.output_dir_lock(SimpleNamespace(output_dir=str(tmp_path), process_index=1)) as path:
        assert path is None  # a rank of the holding run shares the directory
    with pytest.raises(RecipeError, match="is in use by another run"):
        with lock.output_dir_lock(SimpleNamespace(output_dir=str(tmp_path), process_index=0)):
            pass
