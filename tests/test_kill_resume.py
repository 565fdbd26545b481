"""A real kill: ``segp-hf train`` is SIGKILLed inside task 1 and the same command is run again. It must
resume task 1 from the Trainer's checkpoint and end with exactly the results of an uninterrupted run
(on CPU, same machine and thread count: every step is deterministic)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import datasets
import pytest
import torch
import yaml
from conftest import make_colour_dataset, tiny_settings
from safetensors.torch import load_file

from segp_hf.recipe import load_recipe, parse_config
from segp_hf.run import checkpoints as ckpt
from segp_hf.run.continual import run_continual

EPOCHS = 4  # 3 steps per epoch: a checkpoint at step 3 and 9 steps still to go when the kill lands


def _recipe(tmp_path, tiny_clip_dir, output_dir):
    data_dir = tmp_path / "data"
    if not data_dir.exists():
        datasets.DatasetDict(
            train=make_colour_dataset(per_class=6, seed=0), test=make_colour_dataset(per_class=4, seed=1)
        ).save_to_disk(str(data_dir))
    recipe = tiny_settings(tiny_clip_dir, output_dir, benchmark="custom", data_dir=str(data_dir), num_train_epochs=EPOCHS)
    path = tmp_path / f"{output_dir.name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return str(path)


def _train_command(recipe):
    return [sys.executable, "-m", "segp_hf", "train", "--config", recipe]


def _wait_for(predicate, process, timeout=300):
    deadline = time.monotonic() + timeout
    while not predicate():
        if process.poll() is not None:
            pytest.fail(f"training ended (exit {process.returncode}) before the kill point was reached")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("the kill point was not reached in time")
        time.sleep(0.01)


def test_sigkill_inside_a_task_then_rerun_gives_the_uninterrupted_results(tiny_clip_dir, tmp_path):
    output_dir = tmp_path / "killed"
    recipe = _recipe(tmp_path, tiny_clip_dir, output_dir)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.Popen(_train_command(recipe), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _wait_for(lambda: ckpt.last_trainer_checkpoint(ckpt.trainer_dir(output_dir, 1)) is not None, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert ckpt.completed_tasks(output_dir) == 1, "the kill must land inside task 1"
    assert not (output_dir / "task-1").exists()

    rerun = subprocess.run(_train_command(recipe), env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "Resuming task 1 from the Trainer checkpoint" in rerun.stderr
    resumed = json.loads((output_dir / "results.json").read_text())

    reference_dir = tmp_path / "uninterrupted"
    reference = run_continual(*parse_config(load_recipe(_recipe(tmp_path, tiny_clip_dir, reference_dir))))
    assert resumed["acc_matrix"] == reference["acc_matrix"]
    for key in ("avg", "last", "forgetting", "bwt", "fwt"):
        assert resumed[key] == reference[key]
    for task in range(3):
        saved = load_file(output_dir / f"task-{task}" / "adapter_model.safetensors")
        expected = load_file(reference_dir / f"task-{task}" / "adapter_model.safetensors")
        assert all(torch.equal(saved[k], expected[k]) for k in expected)
