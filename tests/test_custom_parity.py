"""``benchmark custom`` has everything a registered benchmark has (issue 26, item 1): one tiny dataset of its own
schema (``picture`` / ``kind``, splits train / validation, ClassLabel names with underscores) through the pixel cache
(each image decoded once), a zero-shot set, resume, push (autospec'd HfApi) and its card, ``load_task`` and
``segp-hf report``; the exact class names in the metadata, spaces in the prompts; and the Hub-id path over real HTTP
(the ``hub_server`` fixture), its commit recorded with the settings."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from unittest import mock

import datasets
import pytest
import yaml
from conftest import TINY_COLOURS, make_colour_dataset, tiny_settings
from decode_counter import count_decode_rgb
from huggingface_hub import HfApi, ModelCard

from segp_hf import cli

NAMES = [f"{c}_square" for c in TINY_COLOURS]  # exact names keep their underscores; prompts read "red square"


def _own_schema(per_class, seed):
    ds = make_colour_dataset(per_class=per_class, seed=seed).rename_columns({"image": "picture", "label": "kind"})
    return ds.cast_column("kind", datasets.ClassLabel(names=NAMES))


@pytest.fixture(scope="module")
def custom_run(tiny_clip_dir, tmp_path_factory):
    """A 3-task run of the custom dataset, pixel cache on, a zero-shot set, pushed to an autospec'd HfApi."""
    from segp_hf.hub import push as hub

    root = tmp_path_factory.mktemp("custom")
    data_dir = root / "mine"
    datasets.DatasetDict(train=_own_schema(4, 0), validation=_own_schema(3, 1)).save_to_disk(str(data_dir))
    speed = {k: v for k, v in tiny_settings(tiny_clip_dir, root).items() if k not in ("num_tasks", "output_dir")}
    (root / "speed.yaml").write_text(yaml.safe_dump({**speed, "hub_push_backoff": 0}))
    argv = ["train", "--config", str(root / "speed.yaml"), "--benchmark", "custom", "--data_dir", str(data_dir),
            "--num_tasks", "3", "--output_dir", str(root / "out"), "--pixel_cache", "memory",
            "--zero_shot_sets", "shapes_heldout", "--zero_shot_max_images", "20",
            "--push_to_hub", "true", "--hub_model_id", "someone/mine-cl"]
    with pytest.MonkeyPatch.context() as patch:
        api_class = mock.create_autospec(HfApi)
        api_class.return_value.whoami.return_value = {"name": "someone"}
        patch.setattr(hub, "HfApi", api_class)
        counts = count_decode_rgb(patch)
        assert cli.main(argv) == 0
    return root, argv, counts, api_class.return_value


def test_cache_zero_shot_and_push_work_as_for_a_registered_benchmark(custom_run):
    root, _, counts, api = custom_run
    results = json.loads((root / "out" / "results.json").read_text())
    assert len(results["acc_matrix"]) == 3
    assert len(counts) == 6 * 7 + 20 and max(counts.values()) == 1  # every image (and the set's 20) decoded once
    assert results["zero_shot_retention"]["shapes_heldout"]["after"] is not None
    pushed = [kw["revision"] for name, _, kw in api.method_calls if name == "upload_folder"]
    assert {"task-0", "task-1", "task-2"} <= set(pushed)
    card = ModelCard.load(root / "out" / "task-2" / "README.md")
    assert "# SeGP-CL on your dataset `mine` (custom)" in card.text
    assert card.data.datasets is None  # a local folder is no Hub dataset: the card claims none


def test_exact_names_in_metadata_spaces_in_prompts(custom_run, capsys):
    import segp_hf

    root, argv, _, _ = custom_run
    classes = json.loads((root / "out" / "task-2" / "classes.json").read_text())
    assert sorted(classes["class_names_seen"]) == sorted(NAMES)  # underscores and all
    assert "green_square" in ModelCard.load(root / "out" / "task-2" / "README.md").text
    loaded = segp_hf.load_task(str(root / "out"), task=2, device="cpu")
    assert loaded.class_names == classes["class_names_seen"]
    dry = [a for a in argv if a not in ("--push_to_hub", "true", "--hub_model_id", "someone/mine-cl")]
    assert cli.main([*dry[:-4], "--dry_run"]) == 0
    out = capsys.readouterr().out
    assert "a good photo of a red square." in out and "classes: red_square" in out


def test_load_task_predicts_what_the_run_scored(custom_run):
    import segp_hf
    from segp_hf.data.custom import load_custom
    from segp_hf.recipe import parse_config

    root, _, _, _ = custom_run
    results = json.loads((root / "out" / "results.json").read_text())
    config = json.loads((root / "out" / "task-2" / "segp_config.json").read_text())
    _, data_args, _ = parse_config({}, ["--benchmark", "custom", "--data_dir", config["data_dir"], "--num_tasks", "3",
                                        "--output_dir", "unused"])
    bench = load_custom(data_args)
    loaded = segp_hf.load_task(str(root / "out"), task=2, device="cpu")
    seen = {name: i for i, name in enumerate(bench.class_names)}
    classes = json.loads((root / "out" / "task-2" / "classes.json").read_text())
    for task, (start, end) in enumerate(classes["task_bounds"]):
        wanted = {seen[n] for n in classes["class_names_seen"][start:end]}
        rows = [r for r in bench.test if r[bench.label_column] in wanted]
        predicted = loaded.predict([r["picture"] for r in rows]).class_names
        correct = sum(p == NAMES[r[bench.label_column]] for p, r in zip(predicted, rows))
        assert 100.0 * correct / len(rows) == pytest.approx(results["acc_matrix"][2][task], abs=1e-6)


def test_resume_after_losing_the_last_task_and_the_report(custom_run, tmp_path):
    root, argv, _, _ = custom_run
    copy = tmp_path / "out"
    shutil.copytree(root / "out", copy)
    before = json.loads((copy / "results.json").read_text())
    shutil.rmtree(copy / "task-2")
    (copy / "results.json").unlink()
    resume = [*argv[: argv.index("--output_dir")], "--output_dir", str(copy), *argv[argv.index("--output_dir") + 2:]]
    resume = resume[: resume.index("--push_to_hub")]
    assert cli.main(resume) == 0
    after = json.loads((copy / "results.json").read_text())
    assert after["acc_matrix"] == before["acc_matrix"]
    assert cli.main(["report", str(root / "out"), "--output_dir", str(tmp_path / "report")]) == 0
    assert (tmp_path / "report" / "index.html").read_text().count("custom") >= 1


def test_a_hub_dataset_of_its_own_schema_trains_over_http_at_its_commit(hub_server, tmp_path):
    from hub_server import client_env
    from test_hub_data_over_http import hub_layout_files

    def own(per_class, seed):
        ds = make_colour_dataset(per_class=per_class, seed=seed).rename_columns({"image": "img", "label": "category"})
        return ds.cast_column("category", datasets.ClassLabel(names=NAMES))

    splits = {"train": own(2, 0), "validation": own(1, 1)}
    files = hub_layout_files(splits, "default", "data", {"train": 2, "validation": 1})
    commit = hub_server.dataset_repo("someone/colour-squares", files, lfs=(".parquet",))
    out = tmp_path / "run"
    argv = ["-m", "segp_hf", "train", "--benchmark", "custom", "--dataset_name", "someone/colour-squares",
            "--dataset_revision", commit, "--num_tasks", "2", "--model_name_or_path", "toy-clip", "--lora_r", "4",
            "--num_train_epochs", "1", "--per_device_train_batch_size", "4", "--anchors_per_class", "1",
            "--dpgd_steps", "1", "--use_cpu", "true", "--zero_shot_sets", "none", "--report_to", "none",
            "--disable_tqdm", "true", "--output_dir", str(out)]
    done = subprocess.run([sys.executable, *argv], env=client_env(hub_server.endpoint, tmp_path / "home"),
                          cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    config = json.loads((out / "task-1" / "segp_config.json").read_text())
    assert config["dataset_commit"] == commit and config["dataset_revision"] == commit
    classes = json.loads((out / "task-1" / "classes.json").read_text())
    assert sorted(classes["class_names_seen"]) == sorted(NAMES)
    card = ModelCard.load(out / "task-1" / "README.md")
    assert card.data.datasets == ["someone/colour-squares"] and "# SeGP-CL on someone/colour-squares" in card.text
