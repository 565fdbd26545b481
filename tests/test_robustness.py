"""User errors and failures: clear messages, non-zero exits, nothing already written lost."""

from __future__ import annotations

import json
import os

import pytest
from conftest import TEMPLATE, make_colour_dataset, tiny_settings

from segp_hf.data.spec import DataError, LoadedBenchmark
from segp_hf.errors import RecipeError, TrainingDivergedError
from segp_hf.recipe import parse_config
from segp_hf.run import checkpoints as ckpt
from segp_hf.run.continual import ContinualRunner
from segp_hf.trainer import SeGPTrainer


def _runner(tiny_clip_dir, benchmark, output_dir, **overrides):
    model_args, data_args, config = parse_config(tiny_settings(tiny_clip_dir, output_dir, **overrides))
    return ContinualRunner(model_args, data_args, config, benchmark=benchmark)


def test_nan_loss_stops_the_task_and_keeps_earlier_checkpoints(tiny_clip_dir, tiny_benchmark, tmp_path, monkeypatch):
    original = SeGPTrainer.compute_loss

    def nan_in_task_1(self, model, inputs, *args, **kwargs):
        loss = original(self, model, inputs, *args, **kwargs)
        return loss * float("nan") if self.task_state.task == 1 else loss

    monkeypatch.setattr(SeGPTrainer, "compute_loss", nan_in_task_1)
    with pytest.raises(TrainingDivergedError, match="task 1") as error:
        _runner(tiny_clip_dir, tiny_benchmark, tmp_path).run()
    assert f"--resume_from {tmp_path}@task-0" in str(error.value)
    assert ckpt.completed_tasks(tmp_path) == 1
    assert not (tmp_path / "task-1").exists()
    assert not ckpt.trainer_dir(tmp_path, 1).exists()  # its in-task checkpoints may hold NaN weights
    assert json.loads((tmp_path / "results.json").read_text())["tasks_completed"] == 1


def test_after_divergence_a_branch_with_a_lower_learning_rate_goes_on(tiny_clip_dir, tiny_benchmark, tmp_path):
    """The advice of the divergence message: --resume_from OUT@task-k --output_dir NEW with new settings."""
    from segp_hf.hub.tasks import fetch_task_dirs

    first = tmp_path / "first"
    _runner(tiny_clip_dir, tiny_benchmark, first).run()
    with pytest.raises(RecipeError, match="learning_rate"):  # in the same directory: a contradiction
        _runner(tiny_clip_dir, tiny_benchmark, first, learning_rate=0.01).run()
    fetch_task_dirs(str(first), 0, tmp_path / "branch")
    model_args, data_args, config = parse_config(tiny_settings(tiny_clip_dir, tmp_path / "branch", learning_rate=0.01))
    results = ContinualRunner(model_args, data_args, config, benchmark=tiny_benchmark, allow_changed_settings=True).run()
    assert results["acc_matrix"][0] == json.loads((first / "results.json").read_text())["acc_matrix"][0]
    assert ckpt.read_json(tmp_path / "branch" / "task-2" / ckpt.CONFIG_FILE)["learning_rate"] == 0.01
    model_args, data_args, config = parse_config(tiny_settings(tiny_clip_dir, tmp_path / "other", num_tasks=2))
    fetch_task_dirs(str(first), 0, tmp_path / "other")
    with pytest.raises(RecipeError, match="num_tasks differ.*task sequence"):  # a branch keeps the task split
        ContinualRunner(model_args, data_args, config, benchmark=tiny_benchmark, allow_changed_settings=True).run()


def test_duplicate_class_names(tiny_clip_dir, tiny_benchmark, tmp_path):
    names = list(tiny_benchmark.class_names)
    names[1] = names[0]
    bad = LoadedBenchmark(tiny_benchmark.train, tiny_benchmark.test, names, tiny_benchmark.class_order, TEMPLATE)
    with pytest.raises(DataError, match="unique"):
        _runner(tiny_clip_dir, bad, tmp_path)


def test_class_order_not_a_permutation(tiny_clip_dir, tiny_benchmark, tmp_path):
    # benchmark named as a test one: its class count is unknown to the registry, so the scenario's own check runs
    # (for a registered benchmark the settings are refused before any data: tests/test_validation.py)
    # (an id given twice is refused by the rule table already, before any data: tests/test_custom_benchmark.py)
    settings = tiny_settings(tiny_clip_dir, tmp_path, class_order="0,1,2,3,4,9", benchmark="tiny-colours")
    with pytest.raises(DataError, match="permutation"):
        ContinualRunner(*parse_config(settings), benchmark=tiny_benchmark)


def test_uneven_split_is_supported(tiny_clip_dir, tiny_benchmark, tmp_path):
    runner = _runner(tiny_clip_dir, tiny_benchmark, tmp_path, num_tasks=4)
    assert runner.scenario.bounds == [(0, 2), (2, 4), (4, 5), (5, 6)]


def test_class_without_training_images(tiny_clip_dir, tiny_benchmark, tmp_path):
    train = tiny_benchmark.train.filter(lambda row: row["label"] != 0)
    bad = LoadedBenchmark(train, tiny_benchmark.test, tiny_benchmark.class_names, tiny_benchmark.class_order, TEMPLATE)
    runner = _runner(tiny_clip_dir, bad, tmp_path)
    with pytest.raises(DataError, match="no training images for class"):
        runner.run()


def test_missing_columns_are_listed(tiny_clip_dir, tiny_benchmark, tmp_path):
    train = tiny_benchmark.train.rename_column("image", "img")
    bad = LoadedBenchmark(train, tiny_benchmark.test, tiny_benchmark.class_names, tiny_benchmark.class_order, TEMPLATE)
    with pytest.raises(DataError, match=r"no column\(s\) \['image'\].*available columns: \['img', 'label'\]"):
        _runner(tiny_clip_dir, bad, tmp_path)


def test_grayscale_rgba_and_palette_images_are_converted(tiny_clip_dir, tiny_benchmark, tmp_path):
    dataset = make_colour_dataset(per_class=2, seed=3)
    modes = ["L", "RGBA", "P"]
    converted = dataset.cast_column("image", dataset.features["image"]).map(
        lambda row, i: {"image": row["image"].convert(modes[i % 3])}, with_indices=True
    )
    bench = LoadedBenchmark(converted, converted, tiny_benchmark.class_names, tiny_benchmark.class_order, TEMPLATE)
    runner = _runner(tiny_clip_dir, bench, tmp_path)
    batch = runner.scenario.train_dataset(0)[[0, 1, 2]]
    assert batch["pixel_values"].shape == (3, 3, 16, 16)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_output_dir(tiny_clip_dir, tiny_benchmark, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    with pytest.raises(RecipeError, match="not writable"):
        _runner(tiny_clip_dir, tiny_benchmark, locked / "out").run()


def test_output_dir_that_is_a_file(tiny_clip_dir, tiny_benchmark, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(RecipeError, match="not writable"):
        _runner(tiny_clip_dir, tiny_benchmark, blocker / "out").run()


def test_corrupt_and_truncated_images_are_named(tiny_clip_dir, tiny_benchmark, tmp_path):
    import io

    import datasets

    buffer = io.BytesIO()
    tiny_benchmark.train[0]["image"].save(buffer, format="PNG")
    truncated = buffer.getvalue()[: len(buffer.getvalue()) // 2]
    rows = {"image": [{"bytes": b"not an image", "path": "broken.jpg"}, {"bytes": truncated, "path": "cut.png"}],
            "label": [3, 3]}
    bad = datasets.Dataset.from_dict(rows, features=tiny_benchmark.train.features)
    train = datasets.concatenate_datasets([tiny_benchmark.train, bad])
    bench = LoadedBenchmark(train, tiny_benchmark.test, tiny_benchmark.class_names, tiny_benchmark.class_order, TEMPLATE)
    runner = _runner(tiny_clip_dir, bench, tmp_path)
    task0 = runner.scenario.train_dataset(0)
    last = len(task0) - 1
    with pytest.raises(DataError, match=r"cannot decode image cut\.png .*remove or replace it"):
        task0[[last]]
    with pytest.raises(DataError, match=r"cannot decode image broken\.jpg"):
        task0[[last - 1]]
    assert task0[[0]]["pixel_values"].shape == (1, 3, 16, 16)  # the good images still load
