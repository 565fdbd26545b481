"""Tasks over real HTTP: a tiny shapes run (the shipped toy CLIP) pushes its tasks through the push code to an
autospec'd ``HfApi`` whose writes are recorded as commits on branches of a local git repo (tests/hub_server.py
``RecordedPushes``); olah serves that repo, and a fresh process with an empty HF cache, pointed at it with
``HF_ENDPOINT``, loads ``ORG/NAME@task-1``, runs ``segp-hf eval`` and ``segp-hf train --resume_from`` through the
real ``huggingface_hub`` / ``peft`` clients: a push followed by a load, end to end, equal to the local folder.
Skipped where olah is not installed."""

from __future__ import annotations

import json
import subprocess
import sys
from unittest import mock

import pytest
import torch
from hub_server import RecordedPushes, client_env
from huggingface_hub import HfApi

from segp_hf import load_recipe, parse_config
from segp_hf.errors import RecipeError
from segp_hf.hub import inference
from segp_hf.hub import push as hub
from segp_hf.run.continual import run_continual

REPO = "someone/shapes-over-http"
NUM_TASKS = 5  # 50 shapes classes: 10 a task


def shapes_settings(output_dir, **overrides) -> dict:
    """The shipped shapes recipe (toy CLIP), cut to seconds: 2 images a class, one epoch, one PGD step."""
    settings = load_recipe("shapes")
    settings.update(num_tasks=NUM_TASKS, max_train_images_per_class=2, max_eval_images_per_class=2, num_train_epochs=1,
                    zero_shot_sets=[], eval_task_incremental=False, anchors_per_class=1, dpgd_steps=1,
                    per_device_train_batch_size=8, output_dir=str(output_dir), disable_tqdm=True, report_to="none",
                    use_cpu=True, hub_push_backoff=0, **overrides)
    return settings


@pytest.fixture(scope="module")
def pushed(hub_server, tmp_path_factory):
    """The run, its pushes recorded into the served repo; (output_dir, results, recorder)."""
    output_dir = tmp_path_factory.mktemp("shapes-run")
    recorder = RecordedPushes(hub_server)
    with pytest.MonkeyPatch.context() as patch:
        api_class = mock.create_autospec(HfApi)
        recorder.wire(api_class.return_value)
        patch.setattr(hub, "HfApi", api_class)
        results = run_continual(*parse_config(shapes_settings(output_dir, push_to_hub=True, hub_model_id=REPO)))
    return output_dir, results, recorder


def test_the_recorded_push_lays_out_one_branch_per_task_each_from_the_last(pushed):
    output_dir, _, recorder = pushed
    git = lambda *args: recorder._git(REPO, *args)
    assert set(git("for-each-ref", "--format=%(refname:short)", "refs/heads").split()) == {
        "main", *(f"task-{k}" for k in range(NUM_TASKS))}
    for task in range(NUM_TASKS):
        assert json.loads(git("show", f"task-{task}:classes.json"))["task"] == task
        landed = subprocess.run(["git", "show", f"task-{task}:adapter_model.safetensors"], cwd=recorder.folder(REPO),
                                check=True, capture_output=True).stdout
        assert landed == (output_dir / f"task-{task}" / "adapter_model.safetensors").read_bytes()
        parent = f"task-{task - 1}" if task else git("rev-list", "--max-parents=0", "main")  # task-0: main's first
        subprocess.run(["git", "merge-base", "--is-ancestor", parent, f"task-{task}"], cwd=recorder.folder(REPO),
                       check=True)
    assert json.loads(git("show", "main:classes.json"))["task"] == NUM_TASKS - 1  # main follows the latest task


OVER_HTTP = """
import json, sys
import torch
from segp_hf import cli, load_task
repo, pixels, out = sys.argv[1:4]
loaded = load_task(repo + "@task-1")
torch.save({"task": loaded.task, "names": loaded.class_names, "logits": loaded.logits(torch.load(pixels))},
           out + "/loaded.pt")
codes = [cli.main(["eval", "--checkpoint", repo + "@task-1"]),
         cli.main(["train", "--resume_from", repo + "@task-2", "--output_dir", out + "/resumed", "--push_to_hub", "False"])]
print(json.dumps({"codes": codes}))
"""


def test_load_eval_and_resume_over_http_equal_the_local_folder(pushed, hub_server, tmp_path):
    output_dir, results, _ = pushed
    local = inference.load_task(str(output_dir), task=1)
    size = local.model.config.vision_config.image_size
    pixels = torch.rand(4, 3, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1
    torch.save(pixels, tmp_path / "pixels.pt")
    home = tmp_path / "fresh-hf"
    done = subprocess.run([sys.executable, "-c", OVER_HTTP, REPO, str(tmp_path / "pixels.pt"), str(tmp_path)],
                          env=client_env(hub_server.endpoint, home), cwd=tmp_path, capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines[-1] == {"codes": [0, 0]}, done.stderr[-3000:]
    assert (home / "hub" / f"models--{REPO.replace('/', '--')}" / "refs" / "task-1").is_file()  # fetched over HTTP
    remote = torch.load(tmp_path / "loaded.pt")
    assert remote["task"] == 1 and remote["names"] == local.class_names
    torch.testing.assert_close(remote["logits"], local.logits(pixels))
    evaluated = next(line for line in lines if line.get("checkpoint") == f"{REPO}@task-1")
    assert evaluated["acc_per_task"] == pytest.approx(results["acc_matrix"][1][:2], abs=1e-9)
    resumed = json.loads((tmp_path / "resumed" / "results.json").read_text())
    assert resumed["acc_matrix"] == results["acc_matrix"]  # tasks 3, 4 trained again over the fetched 0..2


def test_load_task_takes_the_command_lines_task_reference(pushed):
    output_dir, _, _ = pushed
    assert inference.load_task(f"{output_dir}@task-2").task == 2
    with pytest.raises(RecipeError, match="names task-1 but task=2"):
        inference.load_task("someone/run@task-1", task=2)
