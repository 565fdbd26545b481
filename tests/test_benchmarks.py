"""The paper's benchmarks, offline: each Hub dataset is fabricated tiny with its real schema (column names
and feature types as on the Hub, stated per fabricator) and fed to the loaders through a patched
``datasets.load_dataset`` (or ``data_dir``). Proves the loader, the split, the class order, the names,
the prompts, the recipes and the plan check."""

from __future__ import annotations

import io
import json
from pathlib import Path

import datasets
import numpy as np
import pytest
from PIL import Image

from segp_hf.cli import main
from segp_hf.config import RecipeError, load_recipe, parse_config
from segp_hf.data import benchmarks as B
from segp_hf.data.registry import load_benchmark, resolve_class_order
from segp_hf.data.scenario import DataError
from segp_hf.plan import build_plan, dry_run_overrides

RECIPES = Path(__file__).resolve().parents[1] / "segp_hf" / "recipes"
PAPER_BENCHMARKS = ("cifar100", "imagenet_r", "imagenet_sub", "cub200", "ucf101")


def _png(value=0):
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (value, 100, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


PNG = _png()


def _image(path=None):
    return {"bytes": PNG, "path": path}


# ---- fabricators: tiny copies with the Hub schema --------------------------------------------------


def fake_cifar100(train_per_class=2, test_per_class=1, drop_test_class=None):
    """uoft-cs/cifar100: img (Image), fine_label (ClassLabel 100), coarse_label (ClassLabel 20); train/test."""
    names = B.protocol("cifar100")["class_names"]
    features = datasets.Features({
        "img": datasets.Image(),
        "fine_label": datasets.ClassLabel(names=names),
        "coarse_label": datasets.ClassLabel(names=[f"superclass_{i}" for i in range(20)]),
    })

    def split(per_class, drop=None):
        labels = [c for c in range(100) for _ in range(per_class) if c != drop]
        return datasets.Dataset.from_dict(
            {"img": [_image() for _ in labels], "fine_label": labels, "coarse_label": [c % 20 for c in labels]},
            features=features,
        )

    return datasets.DatasetDict(train=split(train_per_class), test=split(test_per_class, drop_test_class))


def rapf_rows(per_class_train=2, per_class_test=1):
    """A few real (wnid/file, side) entries of RAPF's list per class."""
    chosen = {}
    for key, side in B.rapf_imagenet_r_split().items():
        wnid = key.split("/")[0]
        sides = chosen.setdefault(wnid, {"train": [], "test": []})
        if len(sides[side]) < (per_class_train if side == "train" else per_class_test):
            sides[side].append(key)
    return chosen


def fake_imagenet_r(with_paths=True):
    """axiong/imagenet-r: image (Image), wnid (string), class_name (string); one split 'test'."""
    info = B.protocol("imagenet_r")
    chosen = rapf_rows()
    rows = {"image": [], "wnid": [], "class_name": []}
    for wnid, name in zip(info["wnids"], info["class_names"]):
        for key in chosen[wnid]["test"] + chosen[wnid]["train"]:
            rows["image"].append(_image(f"imagenet-r/{key}" if with_paths else None))
            rows["wnid"].append(wnid)
            rows["class_name"].append(name.lower())
    features = datasets.Features({"image": datasets.Image(), "wnid": datasets.Value("string"),
                                  "class_name": datasets.Value("string")})
    return datasets.DatasetDict(test=datasets.Dataset.from_dict(rows, features=features))


def fake_imagenet1k(train_per_class=2, val_per_class=1, classes=range(106)):
    """ILSVRC/imagenet-1k: image (Image), label (ClassLabel 1000, 'tench, Tinca tinca' style names);
    train/validation/test."""
    names = [f"class {i}, synonym {i}" for i in range(1000)]
    names[8] = "hen"  # some real names have no synonym and equal the CLIP-style name
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=names)})

    def split(per_class):
        labels = [c for c in classes for _ in range(per_class)]
        return datasets.Dataset.from_dict({"image": [_image() for _ in labels], "label": labels}, features=features)

    return datasets.DatasetDict(train=split(train_per_class), validation=split(val_per_class), test=split(1))


def fake_cub200():
    """bentrevett/caltech-ucsd-birds-200-2011: image (Image), label (ClassLabel '001.Black_footed_Albatross'),
    bbox (4 floats); train/test."""
    names = [f"{i + 1:03d}.{n}" for i, n in enumerate(B.protocol("cub200")["class_names"])]
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=names),
                                  "bbox": datasets.Sequence(datasets.Value("float32"), length=4)})

    def split(per_class):
        labels = [c for c in range(200) for _ in range(per_class)]
        return datasets.Dataset.from_dict(
            {"image": [_image() for _ in labels], "label": labels, "bbox": [[0.0, 0.0, 4.0, 4.0]] * len(labels)},
            features=features,
        )

    return datasets.DatasetDict(train=split(2), test=split(1))


def ucf_hub_names():
    """The 101 UCF101 class names as the Hub spells them (CamelCase, sorted)."""
    camel = [n.replace(" ", "") for n in B.protocol("ucf101")["class_names"]]
    camel = ["HandstandPushups" if n == "HandStandPushups" else n for n in camel]
    return sorted(camel + ["YoYo"])


def fake_ucf101(reverse_labels=False):
    """flwrlabs/ucf101: image (Image), video_id (string), clip_id (string), frame (int64), label (ClassLabel
    101, CamelCase); train/test; several frames per clip."""
    names = ucf_hub_names()
    if reverse_labels:
        names = names[::-1]
    features = datasets.Features({"image": datasets.Image(), "video_id": datasets.Value("string"),
                                  "clip_id": datasets.Value("string"), "frame": datasets.Value("int64"),
                                  "label": datasets.ClassLabel(names=names)})

    def split(clips, frames):
        rows = {k: [] for k in features}
        for label, name in enumerate(names):
            for clip in range(clips):
                for frame in reversed(frames):  # rows not in frame order
                    rows["image"].append(_image())
                    rows["video_id"].append(f"v_{name}_g0{clip}")
                    rows["clip_id"].append(f"v_{name}_g0{clip}_c01")
                    rows["frame"].append(frame)
                    rows["label"].append(label)
        return datasets.Dataset.from_dict(rows, features=features)

    return datasets.DatasetDict(train=split(2, [0, 10, 20]), test=split(1, [0, 5, 10, 15]))


def fake_food101():
    """ethz/food101: image (Image), label (ClassLabel 101 'apple_pie'...); train/validation."""
    features = datasets.Features({"image": datasets.Image(),
                                  "label": datasets.ClassLabel(names=["apple_pie", "baby_back_ribs", "baklava"])})
    ds = datasets.Dataset.from_dict({"image": [_image()] * 3, "label": [0, 1, 2]}, features=features)
    return datasets.DatasetDict(train=ds, validation=ds)


FAKES = {
    "uoft-cs/cifar100": fake_cifar100,
    "axiong/imagenet-r": fake_imagenet_r,
    "ILSVRC/imagenet-1k": fake_imagenet1k,
    "bentrevett/caltech-ucsd-birds-200-2011": fake_cub200,
    "flwrlabs/ucf101": fake_ucf101,
    "ethz/food101": fake_food101,
}


@pytest.fixture(scope="module")
def fabricated():
    return {dataset_id: make() for dataset_id, make in FAKES.items()}


@pytest.fixture
def hub(monkeypatch, fabricated):
    """Patch ``datasets.load_dataset``: serve fabricated copies, record the (id, revision) asked for."""
    calls = []

    def fake_load_dataset(path, name=None, revision=None, **kwargs):
        calls.append((path, revision))
        if path not in fabricated:
            raise ConnectionError(f"Couldn't reach '{path}' on the Hub (LocalEntryNotFoundError)")
        return fabricated[path]

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    return calls


def data_args_for(benchmark, *overrides):
    _, data_args, _ = parse_config({"benchmark": benchmark, "use_cpu": True}, list(overrides))
    return data_args


# ---- protocol data ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cifar100", "imagenet_r", "imagenet100", "cub200", "ucf101"])
def test_protocol_orders_are_permutations_and_names_unique_after_normalising(name):
    info = B.protocol(name)
    n = info["num_classes"]
    for key in ("class_order", "class_order_seed1993", "class_order_mgclip"):
        if key in info:
            assert sorted(info[key]) == list(range(n)), key
    assert len(info["class_names"]) == n
    assert len({B.normalise_name(c) for c in info["class_names"]}) == n


def test_imagenet_r_manifest_is_the_seeded_stratified_split_of_the_real_counts():
    manifest = B.imagenet_r_manifest()
    wnids = B.protocol("imagenet_r")["wnids"]
    counts = [manifest["classes"][w]["n"] for w in wnids]
    assert sum(counts) == 30000 and manifest["n_test"] == 6000 and manifest["n_train"] == 24000
    assert [manifest["classes"][w]["test"] for w in wnids] == B.stratified_test_positions(counts)
    rapf = B.rapf_imagenet_r_split()
    assert len(rapf) == 30000 and sum(v == "test" for v in rapf.values()) == 6000
    per_class = {w: 0 for w in wnids}
    for key in rapf:
        per_class[key.split("/")[0]] += 1
    assert [per_class[w] for w in wnids] == counts
    for w, n in zip(wnids, counts):  # stratified: every class 19-21% test
        assert 0.18 <= len(manifest["classes"][w]["test"]) / n <= 0.22


# ---- loaders -----------------------------------------------------------------------------------------


def test_cifar100_loader_split_order_names_prompts(hub):
    bench = load_benchmark(data_args_for("cifar100"))
    assert hub == [("uoft-cs/cifar100", None)]
    assert (bench.image_column, bench.label_column) == ("img", "fine_label")
    assert (len(bench.train), len(bench.test)) == (200, 100)
    assert bench.class_order[:4] == [87, 0, 52, 58]
    assert bench.extra_orders["seed1993"][:5] == [68, 56, 78, 8, 23]
    assert bench.class_names[1] == "aquarium_fish" and bench.template == "a good photo of a {}."
    plan = build_plan(data_args_for("cifar100"), bench)
    assert plan.tasks[0].class_names[:3] == ["television", "apple", "oak_tree"]
    assert plan.tasks[0].prompts[2] == "a good photo of a oak tree."
    assert [(t.num_train, t.num_test) for t in plan.tasks] == [(20, 10)] * 10
    seed = build_plan(data_args_for("cifar100", "--class_order", "seed1993"), bench)
    assert seed.tasks[0].class_ids[:4] == [68, 56, 78, 8]


def test_imagenet_r_uses_rapf_list_when_file_names_match(hub):
    bench = load_benchmark(data_args_for("imagenet_r"))
    assert hub == [("axiong/imagenet-r", "f4be3aeec67c5214a04365c388ea9d1fc4b74f36")]
    assert "RAPF's split file" in bench.info["split"]
    assert (len(bench.train), len(bench.test)) == (400, 200)
    rapf = B.rapf_imagenet_r_split()
    for ds, side in ((bench.train, "train"), (bench.test, "test")):
        paths = [p.split("imagenet-r/")[1] for p in ds.cast_column("image", datasets.Image(decode=False))["image"]
                 for p in [p["path"]]]
        assert {rapf[p] for p in paths} == {side}
        wnids = B.protocol("imagenet_r")["wnids"]
        assert [wnids[label] for label in ds[bench.label_column]] == [p.split("/")[0] for p in paths]
    assert bench.class_order[:4] == [29, 75, 18, 9]
    assert bench.extra_orders["seed1993"][:3] == [168, 136, 51]
    assert bench.extra_orders["mgclip"][:3] == [150, 119, 193]
    plan = build_plan(data_args_for("imagenet_r"), bench)
    assert len(plan.tasks[0].class_ids) == 20
    assert plan.tasks[0].class_names[:3] == ["American_lobster", "lion", "centipede"]
    assert plan.tasks[0].prompts[0] == "a good photo of a American lobster."


def test_imagenet_r_falls_back_to_stratified_split_without_paths(monkeypatch):
    fake = fake_imagenet_r(with_paths=False)
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: fake)
    bench = load_benchmark(data_args_for("imagenet_r"))
    assert "stratified" in bench.info["split"] and "no file paths" in bench.info["split"]
    train = np.asarray(bench.train[bench.label_column])
    test = np.asarray(bench.test[bench.label_column])
    assert np.bincount(test, minlength=200).tolist() == [1] * 200
    assert np.bincount(train, minlength=200).tolist() == [2] * 200
    with pytest.raises(DataError, match="imagenet_r_split='rapf'.*--data_dir"):
        load_benchmark(data_args_for("imagenet_r", "--imagenet_r_split", "rapf"))


def test_imagenet_sub_is_imagenet_classes_0_to_99_train_and_val(hub):
    bench = load_benchmark(data_args_for("imagenet_sub"))
    assert hub == [("ILSVRC/imagenet-1k", None)]
    train, test = np.asarray(bench.train["label"]), np.asarray(bench.test["label"])
    assert sorted(set(train.tolist())) == list(range(100)) == sorted(set(test.tolist()))
    assert (len(train), len(test)) == (200, 100)
    assert bench.class_names[:3] == ["tench", "goldfish", "great white shark"]
    assert bench.class_order[:4] == [68, 56, 78, 8] == bench.extra_orders["seed1993"][:4]
    assert "validation" in bench.info["split"]


def test_cub200_official_split_and_names(hub):
    bench = load_benchmark(data_args_for("cub200"))
    assert hub == [("bentrevett/caltech-ucsd-birds-200-2011", "1ef09e021b0b65b40337f6f285909656f407f6e0")]
    assert (len(bench.train), len(bench.test)) == (400, 200)
    assert bench.label_column == "label"  # Hub ids = class_id - 1 = native ids
    assert bench.class_names[0] == "Black_footed_Albatross"
    assert bench.class_order[:4] == [110, 54, 8, 122]
    plan = build_plan(data_args_for("cub200"), bench)
    assert plan.tasks[0].prompts[0] == "a good photo of a Loggerhead Shrike."
    assert len(plan.tasks) == 10 and all(len(t.class_ids) == 20 for t in plan.tasks)


def test_cub200_revision_override(hub):
    load_benchmark(data_args_for("cub200", "--dataset_revision", "main"))
    assert hub == [("bentrevett/caltech-ucsd-birds-200-2011", "main")]


@pytest.mark.parametrize("reverse", [False, True])
def test_ucf101_middle_frame_per_clip_100_classes(monkeypatch, reverse):
    fake = fake_ucf101(reverse_labels=reverse)
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: fake)
    bench = load_benchmark(data_args_for("ucf101"))
    assert (len(bench.train), len(bench.test)) == (200, 100)  # 2 / 1 clips per class, YoYo dropped
    assert set(bench.train["frame"]) == {10} and set(bench.test["frame"]) == {5}
    names = B.protocol("ucf101")["class_names"]
    for row in bench.train.select_columns(["video_id", bench.label_column]):  # label follows the name
        assert B.normalise_name(row["video_id"]) == "v" + B.normalise_name(names[row[bench.label_column]]) + "g00" \
            or B.normalise_name(row["video_id"]) == "v" + B.normalise_name(names[row[bench.label_column]]) + "g01"
    assert (bench.label_column == B.NATIVE_LABEL) == reverse
    assert bench.class_order[:3] == [68, 56, 78]
    plan = build_plan(data_args_for("ucf101"), bench)
    assert plan.tasks[0].class_names[:3] == ["Pommel Horse", "Parallel Bars", "Shotput"]
    assert plan.tasks[0].prompts[0] == "a good photo of a Pommel Horse."


def test_ucf101_from_a_local_image_folder(tmp_path):
    """A mid-frame image folder (CoOp-style class folders with underscores, YoYo included)."""
    for split in ("train", "test"):
        for name in ucf_hub_names():
            folder = tmp_path / split / name
            folder.mkdir(parents=True)
            (folder / f"v_{name}_g01_c01.png").write_bytes(PNG)
    bench = load_benchmark(data_args_for("ucf101", "--data_dir", str(tmp_path)))
    assert (len(bench.train), len(bench.test)) == (100, 100)
    assert sorted(set(bench.test[bench.label_column])) == list(range(100))
    assert "local folder" in bench.info["source"]


def test_data_dir_save_to_disk_copy(tmp_path, fabricated):
    fabricated["uoft-cs/cifar100"].save_to_disk(str(tmp_path / "cifar"))
    bench = load_benchmark(data_args_for("cifar100", "--data_dir", str(tmp_path / "cifar")))
    assert (len(bench.train), len(bench.test)) == (200, 100) and "local disk" in bench.info["source"]


# ---- zero-shot sets ----------------------------------------------------------------------------------


def test_zero_shot_set_loader(hub):
    food = B.load_zero_shot_set("food101")
    assert hub == [("ethz/food101", None)]
    assert food.class_names == ["apple_pie", "baby_back_ribs", "baklava"] and len(food.dataset) == 3
    imagenet = B.load_zero_shot_set("imagenet1k", max_images=5)
    assert imagenet.class_names[0] == "class 0" and imagenet.class_names[8] == "hen" and len(imagenet.dataset) == 5
    with pytest.raises(DataError, match="unknown zero-shot set"):
        B.load_zero_shot_set("mnist")


def test_evaluate_zero_shot_matches_clip_logits(tiny_clip_dir):
    import torch
    from transformers import CLIPImageProcessor, CLIPModel, PreTrainedTokenizerFast

    from conftest import TINY_COLOURS, make_colour_dataset

    model = CLIPModel.from_pretrained(tiny_clip_dir).eval()
    processor = CLIPImageProcessor.from_pretrained(tiny_clip_dir)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(tiny_clip_dir)
    zero_shot = B.ZeroShotSet("colours", make_colour_dataset(per_class=3), [f"{c} square" for c in TINY_COLOURS],
                              "a good photo of a {}.")
    accuracy = B.evaluate_zero_shot(model, processor, tokenizer, zero_shot, batch_size=7)
    data = zero_shot.dataset[:]
    text = tokenizer([f"a good photo of a {c} square." for c in TINY_COLOURS], padding=True, return_tensors="pt")
    pixels = processor(images=[i.convert("RGB") for i in data["image"]], return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        logits = model(input_ids=text["input_ids"], attention_mask=text["attention_mask"],
                       pixel_values=pixels).logits_per_image
    expected = float((logits.argmax(-1) == torch.as_tensor(data["label"])).float().mean())
    assert accuracy == pytest.approx(expected)


# ---- clear errors ------------------------------------------------------------------------------------


def _raise_offline(path, *args, **kwargs):
    raise ConnectionError(f"Couldn't reach '{path}' on the Hub (offline mode is enabled)")


def test_unreachable_dataset_says_how_to_work_offline(monkeypatch):
    monkeypatch.setattr(datasets, "load_dataset", _raise_offline)
    with pytest.raises(DataError, match=r"could not load the dataset 'flwrlabs/ucf101'.*save_to_disk.*--data_dir"):
        load_benchmark(data_args_for("ucf101"))
    with pytest.raises(DataError, match=r"'axiong/imagenet-r', revision='f4be3ae"):
        load_benchmark(data_args_for("imagenet_r"))


def test_missing_data_dir_is_a_clear_error(tmp_path):
    with pytest.raises(RecipeError, match="data_dir=.* does not exist"):  # refused when the settings are parsed
        data_args_for("cifar100", "--data_dir", str(tmp_path / "nowhere"))
    data_args = data_args_for("cifar100")
    data_args.data_dir = str(tmp_path / "nowhere")  # and by the loader, for a caller that builds its own settings
    with pytest.raises(DataError, match="does not exist"):
        load_benchmark(data_args)


def test_wrong_column_lists_available_ones(hub):
    with pytest.raises(DataError, match=r"no column\(s\) \['picture'\]; available columns: \['img', 'fine_label', "
                                        r"'coarse_label'\].*--image_column"):
        load_benchmark(data_args_for("cifar100", "--image_column", "picture"))


def test_wrong_label_column_that_does_not_cover_the_classes(hub):
    with pytest.raises(DataError, match="do not cover"):
        load_benchmark(data_args_for("cifar100", "--label_column", "coarse_label"))


def test_missing_split_lists_available_ones(monkeypatch, fabricated):
    only_train = datasets.DatasetDict(train=fabricated["uoft-cs/cifar100"]["train"])
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: only_train)
    with pytest.raises(DataError, match=r"no 'test' split.*available splits: \['train'\]"):
        load_benchmark(data_args_for("cifar100"))


def test_class_order_not_a_permutation(hub):
    with pytest.raises(RecipeError, match="permutation"):  # refused from the registry's class count, no data loaded
        data_args_for("cifar100", "--class_order", "1,2,3")


def test_task_without_images(monkeypatch):
    fake = fake_cifar100(drop_test_class=52)
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: fake)
    with pytest.raises(DataError, match=r"task 0 has no test images for class\(es\) \['oak_tree'\]"):
        build_plan(data_args_for("cifar100"))


def test_unknown_imagenet_r_split_mode(hub):
    with pytest.raises(RecipeError, match="imagenet_r_split='random' is not valid"):  # refused when parsed
        data_args_for("imagenet_r", "--imagenet_r_split", "random")
    data_args = data_args_for("imagenet_r")
    data_args.imagenet_r_split = "random"  # and by the loader, for settings built by hand
    with pytest.raises(DataError, match="imagenet_r_split"):
        load_benchmark(data_args)


# ---- recipes and the plan check ----------------------------------------------------------------------


@pytest.mark.parametrize("name", PAPER_BENCHMARKS)
def test_recipe_parses_with_the_paper_settings(name):
    recipe = load_recipe(str(RECIPES / f"{name}_10tasks.yaml"))
    model_args, data_args, config = parse_config(recipe, dry_run_overrides([]) + ["--use_cpu", "true"])
    assert data_args.benchmark == name and data_args.num_tasks == 10 and data_args.class_order == "default"
    assert model_args.model_name_or_path == "openai/clip-vit-base-patch16" and model_args.lora_r == 32
    assert model_args.lora_target_modules == ["k_proj", "v_proj", "fc1", "fc2"]
    assert (config.optim, config.learning_rate, config.lr_scheduler_type) == ("sgd", 1e-3, "cosine")
    assert (config.per_device_train_batch_size, config.num_train_epochs, config.bf16) == (128, 10, True)
    assert (config.lambda_acgd, config.acgd_temperature, config.lambda_tsgr, config.tsgr_temperature) == (5, 20, 1, 0.05)
    assert (config.anchors_per_class, config.dpgd_steps, config.dpgd_step_size, config.beta) == (5, 10, 1.5e-3, 0.5)
    assert config.dpgd_epsilon == pytest.approx(4 / 255) and config.variant == "segp-cl"
    assert config.output_dir == f"outputs/{name}_10tasks"


@pytest.mark.parametrize("name", PAPER_BENCHMARKS)
def test_recipe_passes_the_plan_check_on_fabricated_data(name, hub, capsys):
    assert main(["train", "--config", str(RECIPES / f"{name}_10tasks.yaml"), "--dry_run"]) == 0
    out = capsys.readouterr().out
    assert "plan check passed" in out and "task 9:" in out and "task 10:" not in out
    assert "openai/clip-vit-base-patch16 (not loaded)" in out and "a good photo of a " in out


def test_plan_check_reports_data_errors_in_one_line(hub, capsys):
    code = main(["train", "--config", str(RECIPES / "cifar100_10tasks.yaml"), "--dry_run", "--image_column", "x"])
    assert code == 2
    assert "available columns" in capsys.readouterr().err


def test_accelerate_configs():
    import yaml

    single = yaml.safe_load((RECIPES / "accelerate" / "single_gpu.yaml").read_text())
    multi = yaml.safe_load((RECIPES / "accelerate" / "multi_gpu.yaml").read_text())
    assert (single["distributed_type"], single["num_processes"], single["mixed_precision"]) == ("NO", 1, "bf16")
    assert (multi["distributed_type"], multi["mixed_precision"]) == ("MULTI_GPU", "bf16")
    assert multi["num_processes"] >= 2


def test_benchmark_cards_cover_every_paper_benchmark():
    assert set(B.CARDS) == set(PAPER_BENCHMARKS)
    assert json.loads(json.dumps({k: v.paper_avg_last for k, v in B.CARDS.items()}))["cifar100"] == "89.8 / 84.6"
