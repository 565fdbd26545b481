"""Tasks over real HTTP: a tiny shapes run, on the shipped toy CLIP served as a base model repo and fetched over
HTTP, pushes its tasks through the push code to an autospec'd ``HfApi`` whose writes are recorded as commits on
branches of a local git repo (tests/hub_server.py ``RecordedPushes``); olah serves both repos, the base's main moves
on, and a fresh process with an empty HF cache, pointed at the server with ``HF_ENDPOINT``, loads
``ORG/NAME@task-1``, runs ``segp-hf eval`` and ``segp-hf train --resume_from`` through the real ``huggingface_hub``
/ ``peft`` clients: a push followed by a load, end to end, equal to the local folder with the base the run used.
Skipped where olah is not installed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hub_server import RecordedPushes, client_env, git_repo

from segp_hf import load_recipe
from segp_hf.errors import RecipeError
from segp_hf.hub import inference
from segp_hf.modeling.toy_clip import toy_clip_path

REPO = "someone/shapes-over-http"
BASE = "someone/toy-clip"  # the shipped toy CLIP, served as the base model repo
NUM_TASKS = 5  # 50 shapes classes: 10 a task


def shapes_settings(output_dir, **overrides) -> dict:
    """The shipped shapes recipe (toy CLIP), cut to seconds: 2 images a class, one epoch, one PGD step."""
    settings = load_recipe("shapes")
    settings.update(num_tasks=NUM_TASKS, max_train_images_per_class=2, max_eval_images_per_class=2, num_train_epochs=1,
                    zero_shot_sets=[], eval_task_incremental=False, anchors_per_class=1, dpgd_steps=1,
                    per_device_train_batch_size=8, output_dir=str(output_dir), disable_tqdm=True, report_to="none",
                    use_cpu=True, hub_push_backoff=0, **overrides)
    return settings


def base_files(shift: float = 0.0) -> dict[str, bytes]:
    """The toy CLIP's files; ``shift`` added to every float weight (a base whose main moved on)."""
    from safetensors.torch import load_file, save

    folder = Path(toy_clip_path())
    files = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    if shift:
        weights = load_file(folder / "model.safetensors")
        files["model.safetensors"] = save({k: v + shift if v.is_floating_point() else v for k, v in weights.items()})
    return files


TRAIN_AND_PUSH = """
import json, sys
from pathlib import Path
from unittest import mock
from huggingface_hub import HfApi
sys.path.insert(0, sys.argv[1])
from hub_server import RecordedPushes
from segp_hf import parse_config
from segp_hf.hub import push as hub
from segp_hf.run.continual import run_continual

class Server:
    mirrors = Path(sys.argv[2])

api_class = mock.create_autospec(HfApi)
RecordedPushes(Server).wire(api_class.return_value)
hub.HfApi = api_class
run_continual(*parse_config(json.loads(sys.argv[3])))
"""


@pytest.fixture(scope="module")
def pushed(hub_server, tmp_path_factory):
    """The run, trained in a fresh process on the base CLIP fetched over HTTP, its pushes recorded into the served
    repo; then the base repo's main moves on (a later base), so every later load must pin the commit the run used.
    (output_dir, results, recorder, base commit)."""
    output_dir = tmp_path_factory.mktemp("shapes-run")
    base_commit = git_repo(hub_server.mirrors / "models" / BASE, base_files(), "toy CLIP", lfs=(".safetensors",))
    settings = shapes_settings(output_dir, model_name_or_path=BASE, push_to_hub=True, hub_model_id=REPO)
    home = tmp_path_factory.mktemp("hf-train")
    done = subprocess.run([sys.executable, "-c", TRAIN_AND_PUSH, str(Path(__file__).parent), str(hub_server.mirrors),
                           json.dumps(settings)], env=client_env(hub_server.endpoint, home), cwd=output_dir,
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    git_repo(hub_server.mirrors / "models" / BASE, base_files(shift=0.05), "a later base", lfs=(".safetensors",))
    results = json.loads((output_dir / "results.json").read_text())
    return output_dir, results, RecordedPushes(hub_server), base_commit


def test_the_recorded_push_lays_out_one_branch_per_task_each_from_the_last(pushed):
    output_dir, _, recorder, base_commit = pushed
    assert json.loads((output_dir / "task-0" / "segp_config.json").read_text())["base_model_commit"] == base_commit
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
    output_dir, results, _, _ = pushed
    local = inference.load_task(str(output_dir), task=1, base_model=toy_clip_path())  # the base the run used
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
    output_dir = pushed[0]
    assert inference.load_task(f"{output_dir}@task-2", base_model=toy_clip_path()).task == 2
    with pytest.raises(RecipeError, match="names task-1 but task=2"):
        inference.load_task("someone/run@task-1", task=2)
