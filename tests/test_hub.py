"""Per-task Hub pushes (autospecced HfApi), model cards, load_task (local dir, fabricated offline HF cache),
segp-hf eval / push / train --resume_from. Nothing here reaches the network."""

from __future__ import annotations

import json
import secrets
import shutil
from pathlib import Path
from unittest import mock

import pytest
import torch
from conftest import tiny_settings
from huggingface_hub import HfApi, ModelCard

from segp_hf import cli
from segp_hf.data.pixel_cache import model_pixels
from segp_hf.errors import RecipeError, TaskNotFoundError
from segp_hf.hub import inference
from segp_hf.hub import push as hub
from segp_hf.hub.model_card import build_model_card, write_task_card
from segp_hf.hub.tasks import parse_checkpoint_ref
from segp_hf.recipe import parse_config
from segp_hf.run import checkpoints as ckpt
from segp_hf.run.continual import ContinualRunner, build_scenario, run_continual

REPO = "someone/segp-tiny"
BENCH = "tiny-colours"


def _autospec_api(monkeypatch):
    api_class = mock.create_autospec(HfApi)
    api = api_class.return_value
    api.whoami.return_value = {"name": "someone"}
    monkeypatch.setattr(hub, "HfApi", api_class)
    return api


@pytest.fixture
def tiny_registry(monkeypatch, tiny_benchmark):
    from segp_hf.data import registry

    monkeypatch.setitem(registry.BENCHMARKS, BENCH, registry.BenchmarkSpec(BENCH, "test colours", lambda _: tiny_benchmark))


def _settings(tiny_clip_dir, output_dir, **overrides):
    return tiny_settings(tiny_clip_dir, output_dir, **{"benchmark": BENCH, "hub_push_backoff": 0, **overrides})


@pytest.fixture(scope="module")
def pushed_run(tiny_clip_dir, tiny_benchmark, tmp_path_factory):
    """A 3-task run pushing to an autospecced HfApi."""
    output_dir = tmp_path_factory.mktemp("pushed")
    with pytest.MonkeyPatch.context() as patch:
        api = _autospec_api(patch)
        settings = _settings(tiny_clip_dir, output_dir, push_to_hub=True, hub_model_id=REPO)
        results = run_continual(*parse_config(settings), benchmark=tiny_benchmark)
    return output_dir, results, api


def _push_calls(api):
    """The Hub calls made, as (name, key arguments)."""
    calls = []
    for name, args, kwargs in api.method_calls:
        if name == "whoami":
            calls.append(("whoami",))
        elif name == "create_repo":
            calls.append(("create_repo", args[0] if args else kwargs["repo_id"], kwargs.get("exist_ok")))
        elif name == "create_branch":
            calls.append(("create_branch", args[0], kwargs["branch"], kwargs["revision"]))
        elif name == "upload_folder":
            calls.append(("upload_folder", kwargs["repo_id"], Path(kwargs["folder_path"]).name, kwargs["revision"]))
        else:
            calls.append((name,))
    return calls


def test_push_sequence_per_task(pushed_run):
    output_dir, _, api = pushed_run
    expected = [("whoami",), ("create_repo", REPO, True)]
    for task in range(3):
        parent = "main" if task == 0 else f"task-{task - 1}"
        expected += [
            ("create_branch", REPO, f"task-{task}", parent),
            ("upload_folder", REPO, f"task-{task}", f"task-{task}"),  # the task dir, to its branch
            ("upload_folder", REPO, f"task-{task}", "main"),  # main follows the latest task
        ]
    assert _push_calls(api) == expected


def test_inner_trainer_never_pushes(tiny_clip_dir, tiny_benchmark, tmp_path):
    settings = _settings(tiny_clip_dir, tmp_path, push_to_hub=True, hub_model_id=REPO)
    runner = ContinualRunner(*parse_config(settings), benchmark=tiny_benchmark)
    assert runner.config.push_to_hub and not runner.task_args(0).push_to_hub


def test_model_card_contents(pushed_run):
    output_dir, results, _ = pushed_run
    for task in range(3):
        folder = output_dir / f"task-{task}"
        for name in ("README.md", "acc_matrix.png", "accuracy_seen.png", "adapter_model.safetensors", "prototypes.safetensors",
                     "classes.json", "segp_config.json", "metrics.json"):
            assert (folder / name).is_file(), name
    card = ModelCard.load(output_dir / "task-2" / "README.md")
    assert {"continual-learning", "clip", "lora", "segp-cl"} <= set(card.data.tags)
    assert card.data.library_name == "peft"
    meta = card.data.segp_cl
    assert meta["task"] == 2 and meta["classes_seen"] == 6
    for key in ("avg", "last", "forgetting", "bwt"):
        assert meta["metrics"][key] == pytest.approx(results[key])
    assert meta["acc_matrix"] == results["acc_matrix"]
    assert sorted(r.metric_value for r in card.data.eval_results) == pytest.approx(sorted([results["avg"], results["last"]]))
    text = card.text
    assert "![accuracy matrix](acc_matrix.png)" in text
    assert "](accuracy_seen.png)" in text  # the A_i curve, drawn from the same rows
    assert f'segp_hf.load_task("{REPO}", task=2)' in text and f"{REPO}@task-2" in text
    assert 'revision="task-2"' in text
    first = ModelCard.load(output_dir / "task-0" / "README.md").data.segp_cl
    assert first["task"] == 0 and len(first["acc_matrix"]) == 1  # only the metrics so far


def test_card_metadata_names_hub_base_and_dataset(pushed_run, tmp_path):
    output_dir, _, _ = pushed_run
    copy = tmp_path / "run"
    shutil.copytree(output_dir / "task-0", copy / "task-0")
    config = json.loads((copy / "task-0" / "segp_config.json").read_text())
    config.update(model_name_or_path="openai/clip-vit-base-patch16", dataset_name="uoft-cs/cifar100")
    (copy / "task-0" / "segp_config.json").write_text(json.dumps(config))
    card = build_model_card(copy, 0, REPO)
    assert card.data.base_model == "openai/clip-vit-base-patch16"
    assert card.data.datasets == ["uoft-cs/cifar100"]


def test_the_card_carries_each_accuracy_in_the_metadata_the_hub_renders(pushed_run, tmp_path):
    """model-index (README.md) and .eval_results/ (the Hub's eval-results format), read back by huggingface_hub's
    own classes: a cifar100 run's card names uoft-cs/cifar100 at the commit it loaded (before: the benchmark's name,
    'cifar100', and no dataset at all), with Avg, Last, task-IL Last and the zero-shot accuracy after the task."""
    import yaml
    from huggingface_hub.repocard_data import model_index_to_eval_results

    run, sha, food_sha = tmp_path / "run", "c" * 40, "f" * 40
    shutil.copytree(pushed_run[0], run)
    config = json.loads((run / "task-2" / "segp_config.json").read_text())
    config.update(benchmark="cifar100", dataset_commit=sha, zero_shot_revisions=f"food101={food_sha}")
    (run / "task-2" / "segp_config.json").write_text(json.dumps(config))
    saved = json.loads((run / "task-2" / "metrics.json").read_text())
    saved["metrics"]["last_til"] = 91.25
    saved["zero_shot_retention"] = {"food101": {"before": 40.0, "after": 38.5}, "shapes_heldout": {"before": 1.0}}
    (run / "task-2" / "metrics.json").write_text(json.dumps(saved))
    write_task_card(run, 2, REPO)

    card = ModelCard.load(run / "task-2" / "README.md")
    assert card.data.datasets == ["uoft-cs/cifar100"]
    metrics = saved["metrics"]
    found = {(r.task_type, r.dataset_type, r.dataset_revision, r.metric_value) for r in card.data.eval_results}
    assert found == {("image-classification", "uoft-cs/cifar100", sha, metrics["avg"]),
                     ("image-classification", "uoft-cs/cifar100", sha, metrics["last"]),
                     ("image-classification", "uoft-cs/cifar100", sha, 91.25),
                     ("zero-shot-image-classification", "ethz/food101", food_sha, 38.5)}
    front = yaml.safe_load((run / "task-2" / "README.md").read_text().split("---")[1])
    name, again = model_index_to_eval_results(front["model-index"])  # the Hub's own reading of the model-index
    assert name == REPO and [r.metric_value for r in again] == [r.metric_value for r in card.data.eval_results]

    written = yaml.safe_load((run / "task-2" / ".eval_results" / "segp-cl.yaml").read_text())
    from huggingface_hub import parse_eval_result_entries  # huggingface_hub >= 1.4 (the installed one has it)

    entries = {e.task_id: e for e in parse_eval_result_entries(written)}
    assert set(entries) == {"class-incremental-3-tasks-avg", "class-incremental-3-tasks-last",
                            "class-incremental-3-tasks-last-til", "zero-shot"}
    assert (entries["class-incremental-3-tasks-last"].dataset_id, entries["class-incremental-3-tasks-last"].value,
            entries["class-incremental-3-tasks-last"].dataset_revision) == ("uoft-cs/cifar100",
                                                                            round(metrics["last"], 4), sha)
    assert (entries["zero-shot"].dataset_id, entries["zero-shot"].value) == ("ethz/food101", 38.5)
    assert entries["zero-shot"].source_url.endswith(f"/{REPO}/tree/task-2")
    assert not (pushed_run[0] / "task-2" / ".eval_results").exists()  # the toy colours are on no Hub


def test_failed_push_is_retried_and_reported(tiny_clip_dir, tiny_benchmark, tmp_path, monkeypatch, capsys):
    api = _autospec_api(monkeypatch)
    attempts = {"n": 0}

    def flaky_upload(**kwargs):
        attempts["n"] += 1
        if kwargs["revision"] == "task-0" and attempts["n"] <= 2:
            raise ConnectionError("hub unreachable")  # twice, then fine: retries succeed
        if kwargs["revision"] == "task-1":
            raise ConnectionError("hub down for good")

    api.upload_folder.side_effect = flaky_upload
    sleeps = []
    monkeypatch.setattr(hub, "_backoff_sleep", sleeps.append)
    settings = _settings(tiny_clip_dir, tmp_path / "out", push_to_hub=True, hub_model_id=REPO, num_tasks=3,
                         variant="lora", hub_push_retries=2, hub_push_backoff=0.5)
    results = run_continual(*parse_config(settings), benchmark=tiny_benchmark)
    assert results["tasks_completed"] == 3 and ckpt.completed_tasks(tmp_path / "out") == 3  # training unaffected
    uploads = [(c.kwargs["revision"]) for c in api.upload_folder.call_args_list]
    assert uploads[:4] == ["task-0", "task-0", "task-0", "main"]  # 2 failures + success, then main
    assert sleeps[:2] == [0.5, 1.0]  # exponential backoff
    branches = [c.kwargs["branch"] for c in api.create_branch.call_args_list]
    assert "task-2" not in branches  # task-2 waits behind task-1 (its branch is created from task-1)
    out = capsys.readouterr().out
    assert "Not pushed to someone/segp-tiny" in out and "task-1: ConnectionError: hub down for good" in out
    assert "task-2: waiting for an earlier task" in out
    assert f"segp-hf push {(tmp_path / 'out').resolve()} {REPO}" in out

    # ... and that command pushes it later: only what the Hub lacks (task-0 landed whole), in order.
    api = _autospec_api(monkeypatch)
    assert cli.main(["push", str(tmp_path / "out"), REPO]) == 0
    assert [c.kwargs["branch"] for c in api.create_branch.call_args_list] == ["task-1", "task-2"]
    assert [c.kwargs["revision"] for c in api.create_branch.call_args_list] == ["task-0", "task-1"]
    assert "Skipped (already on someone/segp-tiny, unchanged): task-0, main (task 0)" in capsys.readouterr().out


def test_push_command_reports_failure(pushed_run, monkeypatch, capsys):
    output_dir, _, _ = pushed_run
    api = _autospec_api(monkeypatch)
    api.create_branch.side_effect = OSError("nope")
    assert cli.main(["push", str(output_dir), "someone/another-repo", "--retries", "0"]) == 4  # REPO holds it all
    assert "segp-hf push" in capsys.readouterr().err


def test_a_push_that_drops_halfway_is_finished_by_uploading_only_what_is_missing(pushed_run, monkeypatch, capsys,
                                                                                 tmp_path):
    """The connection drops at task-1's branch upload, then (rerun) at main's upload of task 1: main never
    follows a task its branch lacks, and each rerun uploads only what did not land, saying what it skipped."""
    run = tmp_path / "run"
    shutil.copytree(pushed_run[0], run)
    repo = "someone/flaky"
    api = _autospec_api(monkeypatch)
    api.upload_folder.side_effect = lambda **kw: _drop_if(kw, revision="task-1")
    assert cli.main(["push", str(run), repo, "--retries", "0"]) == 4
    assert _uploads(api) == [("task-0", "task-0"), ("task-0", "main"), ("task-1", "task-1")]  # main stays at task 0

    api = _autospec_api(monkeypatch)
    api.upload_folder.side_effect = lambda **kw: _drop_if(kw, revision="main", folder="task-1")
    assert cli.main(["push", str(run), repo, "--retries", "0"]) == 4
    assert _uploads(api) == [("task-1", "task-1"), ("task-1", "main")]
    assert "Skipped (already on someone/flaky, unchanged): task-0, main (task 0)" in capsys.readouterr().out

    api = _autospec_api(monkeypatch)
    assert cli.main(["push", str(run), repo]) == 0
    assert _uploads(api) == [("task-1", "main"), ("task-2", "task-2"), ("task-2", "main")]
    assert [c.kwargs["branch"] for c in api.create_branch.call_args_list] == ["task-2"]  # task-1's exists
    out = capsys.readouterr().out
    assert f"Pushed task-1, task-2 to {repo}" in out and "unchanged): task-0, main (task 0), task-1" in out
    api = _autospec_api(monkeypatch)
    assert cli.main(["push", str(run), repo]) == 0 and _uploads(api) == []  # everything is there
    assert f"Pushed nothing new to {repo}" in capsys.readouterr().out


def _drop_if(kwargs, revision, folder=None):
    if kwargs["revision"] == revision and (folder is None or Path(kwargs["folder_path"]).name == folder):
        raise ConnectionError("connection reset by peer")


def _uploads(api):
    return [(Path(c.kwargs["folder_path"]).name, c.kwargs["revision"]) for c in api.upload_folder.call_args_list]


def test_bad_credentials_stop_before_training(tiny_clip_dir, tiny_benchmark, tmp_path, monkeypatch):
    api = _autospec_api(monkeypatch)
    api.whoami.side_effect = OSError("401 Unauthorized")
    monkeypatch.setattr(ContinualRunner, "run_task", lambda *a: pytest.fail("trained despite bad credentials"))
    settings = _settings(tiny_clip_dir, tmp_path, push_to_hub=True, hub_model_id=REPO)
    with pytest.raises(RecipeError, match="credentials could not be checked.*401 Unauthorized"):
        run_continual(*parse_config(settings), benchmark=tiny_benchmark)
    assert not list(tmp_path.glob("task-*"))
    api.create_repo.assert_not_called()


# ------------------------------------------------------------------------------------------- loading
def _scenario(tiny_clip_dir, tiny_benchmark, output_dir):
    model_args, data_args, _ = parse_config(_settings(tiny_clip_dir, output_dir))
    return build_scenario(model_args, data_args, tiny_benchmark)[0]


def _accuracy_row(loaded, scenario):
    row = []
    for other in range(loaded.task + 1):
        test = scenario.test_dataset(other)
        batch = test[: len(test)]
        pixels = model_pixels(batch["pixel_values"], "cpu", scenario.pixel_normalizer)  # cached: uint8
        predicted = loaded.predict(pixels).indices
        row.append(100.0 * float((predicted == batch["labels"]).float().mean()))
    return row


@pytest.mark.parametrize("task", [0, 2])
def test_load_task_from_output_dir_predicts_like_the_run(pushed_run, tiny_clip_dir, tiny_benchmark, task):
    import segp_hf

    output_dir, results, _ = pushed_run
    loaded = segp_hf.load_task(str(output_dir), task=task)
    assert loaded.task == task and len(loaded.class_names) == 2 * (task + 1)
    assert loaded.class_names[0] == "yellow square" and loaded.beta == 0.5
    assert loaded.prototypes.shape[0] == 2 * (task + 1)
    scenario = _scenario(tiny_clip_dir, tiny_benchmark, output_dir)
    assert _accuracy_row(loaded, scenario) == pytest.approx(results["acc_matrix"][task][: task + 1], abs=1e-9)
    # PIL images in, class names out
    image = tiny_benchmark.test[0]["image"]
    prediction = loaded.predict([image])
    assert prediction.class_names[0] in loaded.class_names and prediction.logits.shape == (1, 2 * (task + 1))


def test_missing_task_lists_available(pushed_run):
    output_dir, _, _ = pushed_run
    with pytest.raises(TaskNotFoundError, match="task-7.*available: task-0, task-1, task-2"):
        inference.load_task(str(output_dir), task=7)


def _fabricate_cache(output_dir, tiny_clip_dir, cache):
    """An HF cache as a download would leave it: models--ORG--NAME/refs/<branch> -> snapshots/<sha>/."""
    base_repo, base_sha = "tiny-org/tiny-clip", secrets.token_hex(20)
    base = cache / "models--tiny-org--tiny-clip"
    shutil.copytree(tiny_clip_dir, base / "snapshots" / base_sha)
    (base / "refs").mkdir(parents=True)
    (base / "refs" / "main").write_text(secrets.token_hex(20))  # main moved on: the pin must be used
    repo = cache / f"models--{REPO.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    shas = {}
    for task in range(3):
        sha = shas[task] = secrets.token_hex(20)
        snapshot = repo / "snapshots" / sha
        shutil.copytree(output_dir / f"task-{task}", snapshot)
        config = json.loads((snapshot / "segp_config.json").read_text())
        config.update(model_name_or_path=base_repo, model_revision=None, base_model_commit=base_sha)
        (snapshot / "segp_config.json").write_text(json.dumps(config))
        (repo / "refs" / f"task-{task}").write_text(sha)
    (repo / "refs" / "main").write_text(shas[2])
    return shas


def test_load_task_by_revision_from_offline_cache(pushed_run, tiny_clip_dir, tiny_benchmark, tmp_path):
    from huggingface_hub import constants

    assert constants.HF_HUB_OFFLINE  # conftest: no network, everything comes from the cache
    output_dir, results, _ = pushed_run
    _fabricate_cache(output_dir, tiny_clip_dir, tmp_path)
    scenario = _scenario(tiny_clip_dir, tiny_benchmark, output_dir)
    for task in (1, 2):
        loaded = inference.load_task(REPO, task=task, cache_dir=tmp_path)
        assert loaded.task == task and len(loaded.class_names) == 2 * (task + 1)
        assert _accuracy_row(loaded, scenario) == pytest.approx(results["acc_matrix"][task][: task + 1], abs=1e-9)
        local = inference.load_task(str(output_dir), task=task)
        pixels = model_pixels(scenario.test_dataset(0)[:4]["pixel_values"], "cpu", scenario.pixel_normalizer)
        torch.testing.assert_close(loaded.logits(pixels), local.logits(pixels))
    assert inference.load_task(REPO, cache_dir=tmp_path).task == 2  # no task: main = latest
    with pytest.raises(TaskNotFoundError, match="task-5.*available: task-0, task-1, task-2"):
        inference.load_task(REPO, task=5, cache_dir=tmp_path)


def test_the_base_commit_is_read_from_the_hf_cache_and_a_resumed_run_loads_it(pushed_run, tmp_path, monkeypatch):
    """transformers 5 sets no ``config._commit_hash``: the commit a Hub base loaded at is read from the cache's
    snapshot folder (before: base_model_commit was always None); resuming without --model_revision loads the base at
    the commit the finished tasks used, not at a main that moved (before: the newest)."""
    from types import SimpleNamespace

    from huggingface_hub import constants

    from segp_hf.hub.tasks import model_commit
    from segp_hf.run.resume import resumed_base_revision

    sha = secrets.token_hex(20)
    snapshot = tmp_path / "cache" / "models--org--base" / "snapshots" / sha
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (tmp_path / "cache" / "models--org--base" / "refs").mkdir()
    (tmp_path / "cache" / "models--org--base" / "refs" / "main").write_text(sha)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    assert model_commit("org/base") == sha and model_commit("org/base", "f" * 40) == "f" * 40
    assert model_commit(str(snapshot)) is None  # a local folder

    run = tmp_path / "run"
    shutil.copytree(pushed_run[0], run)
    config = json.loads((run / "task-2" / "segp_config.json").read_text())
    config.update(model_name_or_path="org/base", base_model_commit=sha)
    (run / "task-2" / "segp_config.json").write_text(json.dumps(config))
    args = lambda name, revision=None: SimpleNamespace(model_name_or_path=name, model_revision=revision)
    assert resumed_base_revision(run, args("org/base")) == sha
    assert resumed_base_revision(run, args("org/base", "v2")) == "v2"  # the command line's wins
    assert resumed_base_revision(run, args("org/other")) is None
    assert resumed_base_revision(tmp_path / "nothing", args("org/base")) is None


def test_parse_checkpoint_ref():
    assert parse_checkpoint_ref("user/run@task-3") == ("user/run", 3)
    assert parse_checkpoint_ref("out/dir@2") == ("out/dir", 2)
    assert parse_checkpoint_ref("user/run") == ("user/run", None)
    with pytest.raises(RecipeError):
        parse_checkpoint_ref("user/run@latest")


# ---------------------------------------------------------------------------------- eval and resume
def test_eval_command_matches_the_run(pushed_run, tiny_registry, capsys):
    output_dir, results, _ = pushed_run
    assert cli.main(["eval", "--checkpoint", f"{output_dir}@task-1"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["task"] == 1 and result["classes_seen"] == 4
    assert result["acc_per_task"] == pytest.approx(results["acc_matrix"][1][:2], abs=1e-9)
    assert cli.main(["eval", "--checkpoint", f"{output_dir}@task-9"]) == 2
    assert "available: task-0, task-1, task-2" in capsys.readouterr().err


def test_train_resume_from_continues_the_sequence(pushed_run, tiny_registry, tmp_path, monkeypatch):
    output_dir, results, _ = pushed_run
    calls = []
    original = ContinualRunner.run_task
    monkeypatch.setattr(ContinualRunner, "run_task", lambda self, task: calls.append(task) or original(self, task))
    assert cli.main(["train", "--resume_from", f"{output_dir}@task-1", "--output_dir", str(tmp_path / "more"),
                     "--push_to_hub", "False"]) == 0
    assert calls == [2]  # tasks 0 and 1 come from the checkpoint
    resumed = json.loads((tmp_path / "more" / "results.json").read_text())
    assert resumed["acc_matrix"] == results["acc_matrix"]
    assert cli.main(["train", "--resume_from", f"{output_dir}@task-1", "--output_dir", str(tmp_path / "more")]) == 2


def test_a_resumed_run_queues_its_tasks_the_record_lacks(tmp_path):
    from segp_hf.hub.push_record import PushRecord

    PushRecord(tmp_path, REPO).mark("task-0", 0, "abc")
    pusher = hub.HubPusher(REPO, api=mock.create_autospec(HfApi, instance=True))
    pusher.queue_unrecorded(tmp_path, 3)
    assert pusher.pending == [1, 2]
    pusher.queue_unrecorded(tmp_path / "elsewhere", 0)
    assert pusher.pending == [1, 2]
