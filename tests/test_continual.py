"""End to end on the tiny CLIP: 3 tasks, full accuracy matrix, checkpoints, resume."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from conftest import tiny_settings

from segp_hf.errors import RecipeError
from segp_hf.method.switches import VARIANTS, method_switches
from segp_hf.recipe import parse_config
from segp_hf.run import checkpoints as ckpt
from segp_hf.run.continual import ContinualRunner, run_continual


def _run(tiny_clip_dir, tiny_benchmark, output_dir, **overrides):
    model_args, data_args, config = parse_config(tiny_settings(tiny_clip_dir, output_dir, **overrides))
    return run_continual(model_args, data_args, config, benchmark=tiny_benchmark)


@pytest.fixture(scope="module")
def full_run(tiny_clip_dir, tiny_benchmark, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("full")
    return output_dir, _run(tiny_clip_dir, tiny_benchmark, output_dir)


def _task_accuracy(loaded, benchmark, classes):
    """Accuracy (%) of a loaded checkpoint on the test images of ``classes`` (native labels), scored by
    ``LoadedTask.predict`` from PIL images: an independent path from the run's own evaluation."""
    test = benchmark.test
    rows = [i for i, label in enumerate(test["label"]) if label in classes]
    prediction = loaded.predict([test[i]["image"] for i in rows])
    truth = [loaded.class_order.index(test[i]["label"]) for i in rows]
    return 100.0 * sum(p == t for p, t in zip(prediction.indices.tolist(), truth)) / len(rows)


def _check_matrix_against_checkpoints(output_dir, results, benchmark, merge=False):
    """Every seen entry of the accuracy matrix equals the accuracy of that task's saved checkpoint, and
    every metric equals its definition applied to the matrix."""
    from segp_hf.evaluation.metrics import continual_metrics
    from segp_hf.hub.inference import load_task

    matrix = results["acc_matrix"]
    for task in range(len(matrix)):
        loaded = load_task(str(output_dir), task=task, merge=merge)
        for other, (start, end) in enumerate(loaded.classes["task_bounds"]):
            expected = _task_accuracy(loaded, benchmark, loaded.class_order[start:end])
            assert matrix[task][other] == pytest.approx(expected, abs=1e-9), (task, other)
    textbook = continual_metrics(matrix, task_weights=results["test_sizes"])
    continuum = continual_metrics(matrix, task_weights=results["test_sizes"], convention="continuum")
    for key in ("avg", "last", "forgetting", "bwt", "fwt"):
        assert results[key] == pytest.approx(textbook[key])
        assert results["metrics_continuum"][key] == pytest.approx(continuum[key])


def test_full_matrix_metrics_and_checkpoints(full_run, tiny_benchmark):
    output_dir, results = full_run
    matrix = results["acc_matrix"]
    assert len(matrix) == 3 and all(len(row) == 3 for row in matrix)
    assert all(v is not None and 0 <= v <= 100 for row in matrix for v in row)  # future tasks too (FWT)
    assert results["test_sizes"] == [8, 8, 8]
    _check_matrix_against_checkpoints(output_dir, results, tiny_benchmark)
    on_disk = json.loads((output_dir / "results.json").read_text())
    assert on_disk["acc_matrix"] == matrix
    assert (output_dir / "acc_matrix.png").stat().st_size > 0
    for task in range(3):
        folder = output_dir / f"task-{task}"
        for name in ("adapter_model.safetensors", "adapter_config.json", "prototypes.safetensors",
                     "classes.json", "segp_config.json", "metrics.json"):
            assert (folder / name).is_file(), f"{folder / name} missing"
        classes = json.loads((folder / "classes.json").read_text())
        assert len(classes["class_names_seen"]) == 2 * (task + 1)
        assert classes["class_order_seen"] == [3, 0, 5, 1, 4, 2][: 2 * (task + 1)]
        assert classes["class_names_seen"][0] == "yellow square"
        assert ckpt.load_prototypes(folder).shape == (2 * (task + 1), 32)
        assert ckpt.read_json(folder / ckpt.CONFIG_FILE)["max_grad_norm"] == 0.0
    assert not list(output_dir.glob(".task-*"))  # no staging directory left behind


def test_adapter_changes_between_tasks(full_run):
    from safetensors.torch import load_file

    output_dir, _ = full_run
    first = load_file(output_dir / "task-0" / "adapter_model.safetensors")
    last = load_file(output_dir / "task-2" / "adapter_model.safetensors")
    assert any(not torch.equal(first[k], last[k]) for k in first)


def killed_as_task_starts(monkeypatch, task: int, run) -> None:
    """Call ``run()`` with a simulated kill (KeyboardInterrupt) as ``task`` starts; ``run_task`` is restored after."""
    original = ContinualRunner.run_task

    def crash(self, current):
        if current == task:
            raise KeyboardInterrupt("simulated kill")
        return original(self, current)

    monkeypatch.setattr(ContinualRunner, "run_task", crash)
    with pytest.raises(KeyboardInterrupt):
        run()
    monkeypatch.setattr(ContinualRunner, "run_task", original)


def test_resume_after_interruption_gives_identical_results(tiny_clip_dir, tiny_benchmark, tmp_path, full_run, monkeypatch):
    _, uninterrupted = full_run
    killed_as_task_starts(monkeypatch, 2, lambda: _run(tiny_clip_dir, tiny_benchmark, tmp_path))
    assert ckpt.completed_tasks(tmp_path) == 2
    partial = json.loads((tmp_path / "results.json").read_text())
    assert partial["tasks_completed"] == 2

    original = ContinualRunner.run_task
    calls = []
    monkeypatch.setattr(ContinualRunner, "run_task", lambda self, task: calls.append(task) or original(self, task))
    resumed = _run(tiny_clip_dir, tiny_benchmark, tmp_path)
    assert calls == [2]  # only the unfinished task runs again
    assert resumed["acc_matrix"] == uninterrupted["acc_matrix"]
    for key in ("avg", "last", "forgetting", "bwt", "fwt"):
        assert resumed[key] == uninterrupted[key]


def test_resume_refuses_contradicting_settings(tiny_clip_dir, tiny_benchmark, tmp_path, full_run):
    output_dir, _ = full_run
    model_args, data_args, config = parse_config(tiny_settings(tiny_clip_dir, output_dir, lambda_acgd=1.0))
    with pytest.raises(RecipeError, match="lambda_acgd"):
        ContinualRunner(model_args, data_args, config, benchmark=tiny_benchmark).run()


def test_a_setting_added_after_a_run_was_saved_counts_as_its_default(tiny_clip_dir, tiny_benchmark, tmp_path, full_run):
    """A run saved before ``eval_task_incremental`` existed resumes under the default and is refused otherwise."""
    output_dir, uninterrupted = full_run
    old_run = tmp_path / "old"
    shutil.copytree(output_dir, old_run)
    for task in range(3):
        path = old_run / f"task-{task}" / ckpt.CONFIG_FILE
        saved = ckpt.read_json(path)
        assert saved.pop("eval_task_incremental") is False
        path.write_text(json.dumps(saved))
    assert _run(tiny_clip_dir, tiny_benchmark, old_run)["acc_matrix"] == uninterrupted["acc_matrix"]
    with pytest.raises(RecipeError, match="eval_task_incremental: saved False vs now True"):
        _run(tiny_clip_dir, tiny_benchmark, old_run, eval_task_incremental=True)


# Which loss terms each variant logs in task 1 (its first task with old classes) and whether it keeps prototypes.
VARIANT_TERMS = {
    "zero-shot": None,  # nothing trains
    "lora": {"loss_cls"},
    "lwf": {"loss_cls", "loss_acgd"},
    "lora+acgd": {"loss_cls", "loss_acgd"},
    "lora+acgd+tsgr": {"loss_cls", "loss_acgd", "loss_tsgr"},
    "lora+acgd+tsgr+proto": {"loss_cls", "loss_acgd", "loss_tsgr"},
    "segp-cl-onlyclip": {"loss_cls", "loss_acgd", "loss_tsgr"},
}


# segp-cl: full_run above; rapf, mg-clip: tests/test_competitors.py
@pytest.mark.parametrize("variant", [v for v in VARIANTS if v not in ("segp-cl", "rapf", "mg-clip")])
def test_every_variant_runs_its_own_parts(tiny_clip_dir, tiny_benchmark, tmp_path, variant, monkeypatch):
    from segp_hf.trainer import SeGPTrainer

    logged, anchors = [], []
    original_log = SeGPTrainer.log

    def spy(self, logs, *args, **kwargs):
        result = original_log(self, logs, *args, **kwargs)  # adds the loss terms to logs
        if "loss" in logs:
            logged.append((self.task_state.task, set(logs)))
            anchors.append((self.task_state.task, self.task_state.anchors is not None))
        return result

    monkeypatch.setattr(SeGPTrainer, "log", spy)
    results = _run(tiny_clip_dir, tiny_benchmark, tmp_path, variant=variant, num_tasks=2)
    assert len(results["acc_matrix"]) == 2 and results["last"] is not None
    has_prototypes = (tmp_path / "task-1" / "prototypes.safetensors").exists()
    assert has_prototypes == method_switches(variant).prototypes
    expected = VARIANT_TERMS[variant]
    if expected is None:  # nothing trains: the adapter stays at its zero-initialised B
        from safetensors.torch import load_file

        assert logged == []
        weights = load_file(tmp_path / "task-1" / "adapter_model.safetensors")
        assert all(torch.count_nonzero(w) == 0 for k, w in weights.items() if "lora_B" in k)
        return
    terms = {name for task, keys in logged if task == 1 for name in keys if name.startswith("loss_")}
    assert terms == expected
    assert all(not has for task, has in anchors if task == 0)
    assert all(has == (method_switches(variant).distillation == "anchors") for task, has in anchors if task == 1)
    _check_matrix_against_checkpoints(tmp_path, results, tiny_benchmark)  # onlyclip: CLIP path only


# ------------------------------------------------------------------ a kill inside a task
INTERRUPTIBLE = dict(num_train_epochs=2, per_device_train_batch_size=2, gradient_accumulation_steps=2)  # 3 steps/epoch


@pytest.fixture(scope="module")
def interruptible_run(tiny_clip_dir, tiny_benchmark, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("interruptible")
    return output_dir, _run(tiny_clip_dir, tiny_benchmark, output_dir, **INTERRUPTIBLE)


def test_kill_inside_a_task_resumes_from_the_trainer_checkpoint(
    tiny_clip_dir, tiny_benchmark, tmp_path, interruptible_run, monkeypatch
):
    from safetensors.torch import load_file

    from segp_hf.trainer import SeGPTrainer

    reference_dir, uninterrupted = interruptible_run
    original_step = SeGPTrainer.training_step

    def killed_in_task_1_at_step_4(self, *args, **kwargs):
        if self.task_state.task == 1 and self.state.global_step == 4:
            raise KeyboardInterrupt("simulated kill")
        return original_step(self, *args, **kwargs)

    monkeypatch.setattr(SeGPTrainer, "training_step", killed_in_task_1_at_step_4)
    with pytest.raises(KeyboardInterrupt):
        _run(tiny_clip_dir, tiny_benchmark, tmp_path, **INTERRUPTIBLE)
    assert ckpt.completed_tasks(tmp_path) == 1
    assert ckpt.last_trainer_checkpoint(ckpt.trainer_dir(tmp_path, 1)).name == "checkpoint-3"  # end of epoch 1

    monkeypatch.setattr(SeGPTrainer, "training_step", original_step)
    resumed_from, steps_run = [], []
    original_train = SeGPTrainer.train

    def recording_train(self, resume_from_checkpoint=None, **kwargs):
        resumed_from.append(resume_from_checkpoint)
        output = original_train(self, resume_from_checkpoint=resume_from_checkpoint, **kwargs)
        steps_run.append(self.state.global_step - self._initial_global_step)
        return output

    monkeypatch.setattr(SeGPTrainer, "train", recording_train)
    resumed = _run(tiny_clip_dir, tiny_benchmark, tmp_path, **INTERRUPTIBLE)
    assert resumed_from[0] is not None and resumed_from[0].endswith("task-1/checkpoint-3")
    assert resumed_from[1:] == [None] and steps_run == [3, 6]  # task 1 ran only its second epoch again
    assert resumed["acc_matrix"] == uninterrupted["acc_matrix"]
    for key in ("avg", "last", "forgetting", "bwt", "fwt"):
        assert resumed[key] == uninterrupted[key]
    for task in range(3):  # identical weights (so lora_A stayed frozen through the resume) and prototypes
        saved = load_file(tmp_path / f"task-{task}" / "adapter_model.safetensors")
        reference = load_file(reference_dir / f"task-{task}" / "adapter_model.safetensors")
        assert all(torch.equal(saved[k], reference[k]) for k in reference)
        assert torch.equal(ckpt.load_prototypes(tmp_path / f"task-{task}"), ckpt.load_prototypes(reference_dir / f"task-{task}"))
    assert not (tmp_path / ckpt.TRAINER_DIR).exists()  # superseded by the task checkpoints, removed


def test_in_task_checkpoint_with_other_settings_is_refused(tiny_clip_dir, tiny_benchmark, tmp_path, monkeypatch):
    from segp_hf.trainer import SeGPTrainer

    original_step = SeGPTrainer.training_step

    def killed_in_task_0(self, *args, **kwargs):
        if self.state.global_step == 4:
            raise KeyboardInterrupt("simulated kill")
        return original_step(self, *args, **kwargs)

    monkeypatch.setattr(SeGPTrainer, "training_step", killed_in_task_0)
    with pytest.raises(KeyboardInterrupt):
        _run(tiny_clip_dir, tiny_benchmark, tmp_path, **INTERRUPTIBLE)
    monkeypatch.setattr(SeGPTrainer, "training_step", original_step)
    with pytest.raises(RecipeError, match="learning_rate"):  # no finished task yet: the in-task one is checked
        _run(tiny_clip_dir, tiny_benchmark, tmp_path, **{**INTERRUPTIBLE, "learning_rate": 0.01})
    assert ckpt.last_trainer_checkpoint(ckpt.trainer_dir(tmp_path, 0)) is not None  # refused, not deleted


def test_task_incremental_matrix(tiny_clip_dir, tiny_benchmark, tmp_path, full_run):
    """Scoring a task over its own classes only can never be below scoring it over all seen classes
    (the true class beating every seen class beats the task's own ones), and on task 0 they coincide."""
    _, class_il = full_run
    results = _run(tiny_clip_dir, tiny_benchmark, tmp_path, eval_task_incremental=True)
    assert results["acc_matrix"] == class_il["acc_matrix"]  # the extra evaluation changes nothing else
    til = results["acc_matrix_til"]
    for i in range(3):
        for j in range(3):
            if j <= i:
                assert til[i][j] >= results["acc_matrix"][i][j]
            else:
                assert til[i][j] is None  # future tasks: not scored task-incrementally
    assert til[0][0] == results["acc_matrix"][0][0]
    assert results["last_til"] is not None and results["forgetting_til"] is not None
    assert ckpt.read_json(tmp_path / "task-1" / ckpt.METRICS_FILE)["acc_row_til"][:2] == til[1][:2]


def test_zero_shot_retention_scores_the_pretrained_clip_before_and_the_last_task_after(
        tiny_clip_dir, tiny_benchmark, tmp_path, monkeypatch):
    from transformers import AutoTokenizer, CLIPModel

    from segp_hf.evaluation.zero_shot import evaluate_zero_shot, load_retention_set
    from segp_hf.hub.inference import load_task
    from segp_hf.modeling.preprocessing import build_image_processor

    results = _run(tiny_clip_dir, tiny_benchmark, tmp_path, num_tasks=2, zero_shot_sets=["shapes_heldout"],
                   zero_shot_max_images=30, learning_rate=0.2)
    held_out = load_retention_set("shapes_heldout", max_images=30)
    processor, tokenizer = build_image_processor(tiny_clip_dir), AutoTokenizer.from_pretrained(tiny_clip_dir)
    before = 100 * evaluate_zero_shot(CLIPModel.from_pretrained(tiny_clip_dir), processor, tokenizer, held_out)
    after = 100 * evaluate_zero_shot(load_task(str(tmp_path), task=1, merge=False).model, processor, tokenizer, held_out)
    table = results["zero_shot_retention"]["shapes_heldout"]
    assert table == {"before": pytest.approx(before), "after": pytest.approx(after)}
    assert json.loads((tmp_path / "results.json").read_text())["zero_shot_retention"] == results["zero_shot_retention"]
    assert (tmp_path / "zero_shot_before.json").is_file()
    # measured again after training (file gone): still the pretrained CLIP, the adapter switched off
    (tmp_path / "zero_shot_before.json").unlink()
    remeasured = _run(tiny_clip_dir, tiny_benchmark, tmp_path, num_tasks=2, zero_shot_sets=["shapes_heldout"],
                      zero_shot_max_images=30, learning_rate=0.2)
    assert remeasured["zero_shot_retention"]["shapes_heldout"]["before"] == pytest.approx(before)
    assert before != pytest.approx(after)  # so the two cannot be mixed up unnoticed
    # a finished run resumed: nothing is measured again, the table is read back
    monkeypatch.setattr(ContinualRunner, "measure_retention", lambda *a, **k: pytest.fail("measured again"))
    again = _run(tiny_clip_dir, tiny_benchmark, tmp_path, num_tasks=2, zero_shot_sets=["shapes_heldout"],
                 zero_shot_max_images=30, learning_rate=0.2)
    assert again["zero_shot_retention"] == results["zero_shot_retention"]
