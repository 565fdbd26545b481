"""Told to stop (run/preemption.py): a real ``segp-hf train`` gets SIGTERM inside task 1, is rerun, gets SIGINT
inside task 2, is rerun again, and ends with exactly the results of an uninterrupted run. Each stop saves an
in-task checkpoint at the next step, prints one line (where, and the command that continues), no traceback,
and exits with 128 + the signal within the grace period."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml
from test_kill_resume import _recipe as _kill_recipe
from test_kill_resume import _train_command, _wait_for

from segp_hf import cli
from segp_hf.cli import stopped_message
from segp_hf.errors import EXIT_CODES, RunStopped
from segp_hf.recipe import load_recipe, parse_config
from segp_hf.run import checkpoints as ckpt
from segp_hf.run import lock
from segp_hf.run.continual import run_continual
from segp_hf.run.preemption import StopRequest, stop_requests

GRACE_S = 20  # generous on a loaded CPU; the stop itself is one step and one checkpoint save
EPOCHS = 2  # 6 steps a task; no in-task checkpoint but the one a stop saves (save_strategy "no")


def _recipe(tmp_path, tiny_clip_dir, output_dir):
    path = _kill_recipe(tmp_path, tiny_clip_dir, output_dir)
    recipe = yaml.safe_load(open(path))
    recipe.update(num_train_epochs=EPOCHS, save_strategy="no")
    with open(path, "w") as handle:
        yaml.safe_dump(recipe, handle)
    return path


def _stop_inside(recipe, output_dir, task, signum, env, also=lambda: None):
    """Run the command, send ``signum`` once task ``task`` has begun training (``also``: done while the run
    lives); the result and how long it took to exit after the signal."""
    process = subprocess.Popen(_train_command(recipe), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True)
    _wait_for(lambda: (output_dir / lock.LOCK_FILE).is_file(), process)
    also()
    _wait_for(lambda: (ckpt.trainer_dir(output_dir, task) / ckpt.CONFIG_FILE).is_file(), process)
    sent = time.monotonic()
    process.send_signal(signum)
    try:
        _, stderr = process.communicate(timeout=GRACE_S)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail(f"no exit within {GRACE_S} s of the signal")
    return process.returncode, stderr, time.monotonic() - sent


def _second_train_refused(recipe, output_dir):
    assert cli.main(["train", "--config", recipe]) == 2  # the first one holds output_dir


def _check_stop(returncode, stderr, signum, task, output_dir):
    assert returncode == 128 + signum, stderr[-3000:]
    assert "Traceback" not in stderr
    line = [text for text in stderr.splitlines() if text.startswith("segp-hf: stopped by")]
    assert len(line) == 1, stderr[-3000:]
    assert f"stopped by {signal.Signals(signum).name} inside task {task} after step" in line[0]
    assert line[0].endswith("to continue, run: segp-hf train --config " + str(output_dir) + ".yaml")
    saved = ckpt.last_trainer_checkpoint(ckpt.trainer_dir(output_dir, task))
    assert saved is not None and saved.name in line[0]  # the stop's own checkpoint: none is saved otherwise
    assert ckpt.completed_tasks(output_dir) == task


def test_sigterm_then_sigint_inside_tasks_then_rerun_gives_the_uninterrupted_results(tiny_clip_dir, tmp_path):
    output_dir = tmp_path / "stopped"
    recipe = _recipe(tmp_path, tiny_clip_dir, output_dir)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    code, stderr, took = _stop_inside(recipe, output_dir, 1, signal.SIGTERM, env,
                                      also=lambda: _second_train_refused(recipe, output_dir))
    _check_stop(code, stderr, signal.SIGTERM, 1, output_dir)
    code, stderr, took_int = _stop_inside(recipe, output_dir, 2, signal.SIGINT, env)
    assert "Resuming task 1 from the Trainer checkpoint" in stderr
    _check_stop(code, stderr, signal.SIGINT, 2, output_dir)

    rerun = subprocess.run(_train_command(recipe), env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "Resuming task 2 from the Trainer checkpoint" in rerun.stderr
    resumed = json.loads((output_dir / "results.json").read_text())
    reference = run_continual(*parse_config(load_recipe(_recipe(tmp_path, tiny_clip_dir, tmp_path / "whole"))))
    assert resumed["acc_matrix"] == reference["acc_matrix"]
    for key in ("avg", "last", "forgetting", "bwt"):
        assert resumed[key] == reference[key]
    assert max(took, took_int) < GRACE_S


def test_a_second_signal_stops_at_once_and_the_handlers_come_back():
    before = signal.getsignal(signal.SIGTERM)
    with stop_requests() as request:
        assert signal.getsignal(signal.SIGTERM) == request.handle
        os.kill(os.getpid(), signal.SIGTERM)  # the first is only noted
        assert request.signum == signal.SIGTERM
        with pytest.raises(RunStopped) as stopped:
            os.kill(os.getpid(), signal.SIGINT)  # the second raises where the process is
    assert stopped.value.exit_code == 130
    assert signal.getsignal(signal.SIGTERM) == before


def test_stop_here_only_after_a_signal_and_the_message_names_the_command():
    request = StopRequest()
    request.stop_here("before task 0")  # nothing arrived: no stop
    request.handle(signal.SIGTERM)
    with pytest.raises(RunStopped) as stopped:
        request.stop_here("after task 2 (saved in out/task-2)")
    message = stopped_message(stopped.value, ["train", "--config", "my recipe.yaml"])
    assert message == ("segp-hf: stopped by SIGTERM after task 2 (saved in out/task-2); to continue, run: "
                       "segp-hf train --config 'my recipe.yaml'")
    assert {code for code, _, _ in EXIT_CODES} >= {2, 3, 4, 5, 130, 143}
