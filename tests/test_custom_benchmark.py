"""``benchmark: custom`` (issue 26, item 1): your own dataset, its columns, splits and class names found from the
data or named; a save_to_disk dataset named unlike any benchmark runs 3 tasks end to end and loads back."""

from __future__ import annotations

import json

import datasets
import pytest
import yaml
from conftest import TINY_COLOURS, make_colour_dataset, tiny_settings

from segp_hf import cli
from segp_hf.data.custom import load_custom
from segp_hf.recipe import parse_config

NAMES = [f"{c}_square" for c in TINY_COLOURS]  # underscores: the prompts must read "red square"


def _renamed(per_class, seed, **extra):
    """The tiny colour squares with their own schema: ``picture`` (Image), ``kind`` (ClassLabel), a string column."""
    ds = make_colour_dataset(per_class=per_class, seed=seed).rename_columns({"image": "picture", "label": "kind"})
    ds = ds.cast_column("kind", datasets.ClassLabel(names=NAMES))
    return ds.add_column("note", [f"row {i}" for i in range(len(ds))])


def _data_args(data_dir, *overrides):
    return parse_config({}, ["--benchmark", "custom", "--data_dir", str(data_dir), "--num_tasks", "3",
                             "--output_dir", "unused", *overrides])[1]


def test_own_schema_runs_three_tasks_and_loads_back(tiny_clip_dir, tmp_path):
    from segp_hf.hub.inference import load_task

    data_dir = tmp_path / "mine"
    datasets.DatasetDict(train=_renamed(6, 0), validation=_renamed(4, 1)).save_to_disk(str(data_dir))
    speed = {k: v for k, v in tiny_settings(tiny_clip_dir, tmp_path).items()
             if k not in ("model_name_or_path", "num_tasks", "output_dir")}
    (tmp_path / "speed.yaml").write_text(yaml.safe_dump(speed))
    out = tmp_path / "out"
    argv = ["train", "--config", str(tmp_path / "speed.yaml"), "--benchmark", "custom", "--data_dir", str(data_dir),
            "--num_tasks", "3", "--model_name_or_path", tiny_clip_dir, "--output_dir", str(out)]
    assert cli.main(argv) == 0
    assert len(json.loads((out / "results.json").read_text())["acc_matrix"]) == 3
    loaded = load_task(str(out), task=2, device="cpu")
    assert sorted(loaded.class_names) == sorted(NAMES)  # exact names in the metadata
    assert loaded.config["benchmark"] == "custom" and loaded.config["data_dir"] == str(data_dir)
    assert loaded.config["holdout_fraction"] == 0.2 and loaded.config["test_split"] is None  # recorded


def test_found_columns_and_splits_and_the_plan(tmp_path, capsys):
    data_dir = tmp_path / "mine"
    datasets.DatasetDict(train=_renamed(6, 0), validation=_renamed(4, 1)).save_to_disk(str(data_dir))
    bench = load_custom(_data_args(data_dir))
    assert (bench.image_column, bench.label_column) == ("picture", "kind")
    assert (len(bench.train), len(bench.test)) == (36, 24) and bench.class_names[0] == "red_square"
    assert cli.main(["train", "--benchmark", "custom", "--data_dir", str(data_dir), "--num_tasks", "3",
                     "--dry_run", "--output_dir", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "benchmark custom: 6 classes in 3 tasks, 36 train / 24 test images" in out
    assert "train = 'train', test = 'validation'" in out and "image = 'picture', label = 'kind'" in out
    assert "a good photo of a red square." in out


def test_an_image_folder_without_a_test_split_gets_a_stratified_holdout(tmp_path):
    for name, ds in (("train", make_colour_dataset(per_class=5, seed=0)),):
        for i, row in enumerate(ds):
            folder = tmp_path / "folder" / name / NAMES[row["label"]]
            folder.mkdir(parents=True, exist_ok=True)
            row["image"].save(folder / f"{i}.png")
    bench = load_custom(_data_args(tmp_path / "folder", "--holdout_fraction", "0.4"))
    assert (len(bench.train), len(bench.test)) == (18, 12)  # 2 of each class's 5 held out
    train_rows = set(bench.train["image"][i].tobytes() for i in range(len(bench.train)))
    assert not any(img.tobytes() in train_rows for img in bench.test["image"])
    assert "stratified hold-out of 0.4" in bench.info["split"]


def test_parquet_string_labels_and_a_names_file(tmp_path):
    ds = make_colour_dataset(per_class=3, seed=0)
    strings = ds.cast_column("label", datasets.Value("int64")).map(lambda r: {"colour": TINY_COLOURS[r["label"]]})
    folder = tmp_path / "pq"
    folder.mkdir()
    strings.remove_columns("label").to_parquet(str(folder / "train.parquet"))
    strings.remove_columns("label").to_parquet(str(folder / "test.parquet"))
    bench = load_custom(_data_args(folder, "--label_column", "colour"))
    assert bench.class_names == sorted(TINY_COLOURS)  # from the label strings, sorted
    ints = tmp_path / "ints"
    ints.mkdir()
    strings.remove_columns("colour").to_parquet(str(ints / "train.parquet"))
    strings.remove_columns("colour").to_parquet(str(ints / "test.parquet"))
    with pytest.raises(ValueError, match="integers with no names; give --class_names_file"):
        load_custom(_data_args(ints, "--label_column", "label"))
    (tmp_path / "names.txt").write_text("\n".join(NAMES) + "\n")
    bench = load_custom(_data_args(ints, "--label_column", "label", "--class_names_file", str(tmp_path / "names.txt")))
    assert bench.class_names == NAMES


def test_mistakes_are_one_line_errors(tmp_path, capsys):
    data_dir = tmp_path / "two_images"
    two = _renamed(2, 0)
    features = datasets.Features({**two.features, "thumb": datasets.Image()})
    two = datasets.Dataset.from_dict({**two.to_dict(), "thumb": two["picture"]}, features=features)
    datasets.DatasetDict(train=two, test=_renamed(1, 1)).save_to_disk(str(data_dir))
    empty, twice, short = tmp_path / "empty.txt", tmp_path / "twice.txt", tmp_path / "short.txt"
    empty.write_text("\n\n")
    twice.write_text("a\na\n")
    short.write_text("a\nb\n")
    cases = [
        (["--data_dir", str(data_dir)], "cannot tell the image column: 2 (['picture', 'thumb'])"),
        (["--data_dir", str(data_dir), "--image_column", "picture", "--num_tasks", "4"],
         "6 classes do not divide into num_tasks=4 equal tasks; choose num_tasks from [1, 2, 3, 6]"),
        (["--data_dir", str(data_dir), "--train_split", "nope"], "no split 'nope' for training"),
        ([], "benchmark custom needs exactly one of data_dir and dataset_name"),
        (["--data_dir", str(data_dir), "--test_split", "train"], "is the training split"),
        (["--data_dir", str(data_dir), "--holdout_fraction", "1"], "holdout_fraction=1.0 is out of range"),
        (["--data_dir", str(data_dir), "--class_names_file", str(tmp_path / "no.txt")], "does not exist"),
        (["--data_dir", str(data_dir), "--image_column", "picture", "--class_names_file", str(empty)], "holds no class names"),
        (["--data_dir", str(data_dir), "--image_column", "picture", "--class_names_file", str(twice)], "a class name appears twice"),
        (["--data_dir", str(data_dir), "--image_column", "picture", "--class_names_file", str(short)], "has 2 names; column 'kind' has 6"),
        (["--data_dir", str(data_dir), "--prompt_template", "a photo"], "not exactly one '{}'"),
        (["--data_dir", str(data_dir), "--class_order", "mgclip"], "no order of benchmark custom"),
        (["--data_dir", str(data_dir), "--class_order", "0,0,1,2,3,4"], "more than once: not a permutation"),
        (["--data_dir", str(data_dir), "--image_column", "picture", "--class_order", "0,1,2", "--num_tasks", "3"],
         "class order must be a permutation of 0..5"),
    ]
    for extra, expected in cases:
        argv = ["train", "--benchmark", "custom", "--dry_run", "--output_dir", str(tmp_path / "o"), *extra]
        code, err = cli.main(argv), capsys.readouterr().err
        (line,) = [line for line in err.splitlines() if "segp-hf: error:" in line]  # one line (bars aside)
        assert code == 2 and expected in line and line.startswith("segp-hf: error:"), (extra, err)
    code = cli.main(["train", "--test_split", "validation", "--output_dir", str(tmp_path / "o")])
    assert code == 2 and "only apply to benchmark custom" in capsys.readouterr().err
