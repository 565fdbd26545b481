"""The paper's benchmarks, offline: each Hub dataset is fabricated tiny with its real schema (column names
and feature types as on the Hub, stated per fabricator) and fed to the loaders through a patched
``datasets.load_dataset`` (or ``data_dir``). Proves the loader, the split, the class order, the names,
the prompts, the recipes and the plan check."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import numpy as np
import pytest
from hub_fakes import (
    BENCHMARK_HUB_ID,
    FAKES,
    PNG,
    fake_cifar100,
    fake_imagenet_r,
    fake_load_dataset,
    fake_ucf101,
    ucf_hub_names,
)

from segp_hf.cli import main
from segp_hf.commands.plan import build_plan, dry_run_overrides
from segp_hf.data.hub_sources import LABEL_ALIASES, SOURCES
from segp_hf.data.imagenet_r import stratified_test_positions
from segp_hf.data.labels import NATIVE_LABEL, normalise_name
from segp_hf.data.protocol_assets import RAPF_TEMPLATE, imagenet_r_manifest, protocol, rapf_imagenet_r_split
from segp_hf.data.registry import load_benchmark
from segp_hf.data.spec import CARDS, DataError
from segp_hf.data.ucf101 import middle_frame_positions
from segp_hf.data.zero_shot_sets import ZeroShotSet, clip_imagenet_names, load_zero_shot_set
from segp_hf.errors import RecipeError
from segp_hf.recipe import load_recipe, parse_config

RECIPES = Path(__file__).resolve().parents[1] / "segp_hf" / "recipes"
PAPER_BENCHMARKS = ("cifar100", "imagenet_r", "imagenet_sub", "cub200", "ucf101")


@pytest.fixture(scope="session")
def fabricated():
    return {dataset_id: make() for dataset_id, make in FAKES.items()}


@pytest.fixture(scope="session")
def saved_copies(fabricated, tmp_path_factory):
    """One save_to_disk copy per paper benchmark's Hub dataset, shared by the tests."""
    root = tmp_path_factory.mktemp("hub_copies")
    copies = {}
    for benchmark, dataset_id in BENCHMARK_HUB_ID.items():
        folder = root / dataset_id.replace("/", "--")
        if not folder.exists():
            fabricated[dataset_id].save_to_disk(str(folder))
        copies[benchmark] = str(folder)
    return copies


@pytest.fixture
def hub(monkeypatch, fabricated, tmp_path):
    """Patch ``datasets.load_dataset`` with the Hub stand-in; kept rows are stored under tmp_path.
    Returns the calls: (id, revision, split, columns)."""
    calls = []
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset(fabricated, calls))
    monkeypatch.setenv("SEGP_HF_DATA_CACHE", str(tmp_path / "kept"))
    return calls


def serve(monkeypatch, tmp_path, dataset_id, copy):
    """Serve one fabricated copy as the Hub would; returns the calls."""
    calls = []
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset({dataset_id: copy}, calls))
    monkeypatch.setenv("SEGP_HF_DATA_CACHE", str(tmp_path / "kept"))
    return calls


def hub_cache():
    import os

    return Path(os.environ["SEGP_HF_DATA_CACHE"])


def load_from_kept(root, folder_name):
    """The row sets stored for one dataset (one per split and filter)."""
    return [datasets.load_from_disk(str(p.parent)) for p in sorted((root / folder_name).glob("*/*/dataset_info.json"))]


def asked(calls):
    """(id, revision, split) asked for, without repeats."""
    return sorted({(path, revision, split) for path, revision, split, _ in calls})


def data_args_for(benchmark, *overrides):
    _, data_args, _ = parse_config({"benchmark": benchmark, "use_cpu": True}, list(overrides))
    return data_args


# ---- protocol data ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cifar100", "imagenet_r", "imagenet100", "cub200", "ucf101"])
def test_protocol_orders_are_permutations_and_names_unique_after_normalising(name):
    info = protocol(name)
    n = info["num_classes"]
    for key in ("class_order", "class_order_seed1993", "class_order_mgclip"):
        if key in info:
            assert sorted(info[key]) == list(range(n)), key
    assert len(info["class_names"]) == n
    assert len({normalise_name(c) for c in info["class_names"]}) == n


def test_imagenet_r_manifest_is_the_seeded_stratified_split_of_the_real_counts():
    manifest = imagenet_r_manifest()
    wnids = protocol("imagenet_r")["wnids"]
    counts = [manifest["classes"][w]["n"] for w in wnids]
    assert sum(counts) == 30000 and manifest["n_test"] == 6000 and manifest["n_train"] == 24000
    assert [manifest["classes"][w]["test"] for w in wnids] == stratified_test_positions(counts)
    rapf = rapf_imagenet_r_split()
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
    assert asked(hub) == [("uoft-cs/cifar100", SOURCES["cifar100"].revision, "test"),
                          ("uoft-cs/cifar100", SOURCES["cifar100"].revision, "train")]
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
    assert asked(hub) == [("axiong/imagenet-r", "f4be3aeec67c5214a04365c388ea9d1fc4b74f36", "test")]
    assert "RAPF's split file" in bench.info["split"]
    assert (len(bench.train), len(bench.test)) == (400, 200)
    rapf = rapf_imagenet_r_split()
    wnids = protocol("imagenet_r")["wnids"]
    for ds, side in ((bench.train, "train"), (bench.test, "test")):  # stored paths keep the file name only
        files = [p["path"].rsplit("/", 1)[-1] for p in ds.cast_column("image", datasets.Image(decode=False))["image"]]
        keys = [f"{wnids[label]}/{f}" for label, f in zip(ds[bench.label_column], files)]
        assert {rapf[k] for k in keys} == {side}
    assert bench.class_order[:4] == [29, 75, 18, 9]
    assert bench.extra_orders["seed1993"][:3] == [168, 136, 51]
    assert bench.extra_orders["mgclip"][:3] == [150, 119, 193]
    plan = build_plan(data_args_for("imagenet_r"), bench)
    assert len(plan.tasks[0].class_ids) == 20
    assert plan.tasks[0].class_names[:3] == ["American_lobster", "lion", "centipede"]
    assert plan.tasks[0].prompts[0] == "a good photo of a American lobster."


def test_imagenet_r_falls_back_to_stratified_split_without_paths(monkeypatch, tmp_path):
    serve(monkeypatch, tmp_path, "axiong/imagenet-r", fake_imagenet_r(with_paths=False))
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
    revision = "49e2ee26f3810fb5a7536bbf732a7b07389a47b5"
    assert asked(hub) == [("ILSVRC/imagenet-1k", revision, "train"), ("ILSVRC/imagenet-1k", revision, "validation")]
    train, test = np.asarray(bench.train["label"]), np.asarray(bench.test["label"])
    assert sorted(set(train.tolist())) == list(range(100)) == sorted(set(test.tolist()))
    assert (len(train), len(test)) == (200, 100)
    # only the kept rows are stored: the copy served has classes 0-105
    stored = load_from_kept(hub_cache(), "ILSVRC--imagenet-1k")
    assert sorted(len(d) for d in stored) == [100, 200]
    assert bench.class_names[:3] == ["tench", "goldfish", "great white shark"]
    assert bench.class_order[:4] == [68, 56, 78, 8] == bench.extra_orders["seed1993"][:4]
    assert "validation" in bench.info["split"]


def test_cub200_official_split_and_names(hub):
    bench = load_benchmark(data_args_for("cub200"))
    assert asked(hub) == [("bentrevett/caltech-ucsd-birds-200-2011", "1ef09e021b0b65b40337f6f285909656f407f6e0", s)
                          for s in ("test", "train")]
    assert (len(bench.train), len(bench.test)) == (400, 200)
    assert bench.label_column == "label"  # Hub ids = class_id - 1 = native ids
    assert bench.class_names[0] == "Black_footed_Albatross"
    assert bench.class_order[:4] == [110, 54, 8, 122]
    plan = build_plan(data_args_for("cub200"), bench)
    assert plan.tasks[0].prompts[0] == "a good photo of a Loggerhead Shrike."
    assert len(plan.tasks) == 10 and all(len(t.class_ids) == 20 for t in plan.tasks)


def test_cub200_revision_override(hub):
    load_benchmark(data_args_for("cub200", "--dataset_revision", "main"))
    assert {revision for _, revision, _ in asked(hub)} == {"main"}


@pytest.mark.parametrize("reverse", [False, True])
def test_ucf101_middle_frame_per_clip_100_classes(monkeypatch, tmp_path, reverse):
    calls = serve(monkeypatch, tmp_path, "flwrlabs/ucf101", fake_ucf101(reverse_labels=reverse))
    bench = load_benchmark(data_args_for("ucf101"))
    # the metadata pass reads no image column; the image pass stores only the middle frames
    meta = {c for *_, c in calls if c}
    assert meta == {("label", "video_id", "clip_id", "frame")}
    stored = load_from_kept(tmp_path / "kept", "flwrlabs--ucf101")
    assert sorted(len(d) for d in stored) == [101, 202]  # one frame per clip, YoYo's clips still there
    assert (len(bench.train), len(bench.test)) == (200, 100)  # 2 / 1 clips per class, YoYo dropped
    assert set(bench.train["frame"]) == {10} and set(bench.test["frame"]) == {5}
    names = protocol("ucf101")["class_names"]
    for row in bench.train.select_columns(["video_id", bench.label_column]):  # label follows the name
        assert normalise_name(row["video_id"]) == "v" + normalise_name(names[row[bench.label_column]]) + "g00" \
            or normalise_name(row["video_id"]) == "v" + normalise_name(names[row[bench.label_column]]) + "g01"
    assert (bench.label_column == NATIVE_LABEL) == reverse
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


def test_zero_shot_sets_fetch_only_their_evaluation_split(hub):
    food = load_zero_shot_set("food101")
    assert asked(hub) == [("ethz/food101", "e06acf2a88084f04bce4d4a525165d68e0a36c38", "validation")]
    assert food.class_names[:3] == ["apple_pie", "baby_back_ribs", "baklava"] and len(food.dataset) == 101
    hub.clear()
    imagenet = load_zero_shot_set("imagenet1k", max_images=5)
    assert {split for *_, split in asked(hub)} == {"validation"} and len(imagenet.dataset) == 5
    assert len(load_from_kept(hub_cache(), "ILSVRC--imagenet-1k")[0]) == 5  # only the rows asked for are stored
    # CLIP's curated names, not the Hub's first synonyms ('cock', 'kite', 'crane' twice)
    assert imagenet.class_names[:3] == ["tench", "goldfish", "great white shark"]
    assert imagenet.class_names[7] == "rooster" and imagenet.class_names[21] == "kite (bird of prey)"
    assert (imagenet.class_names[134], imagenet.class_names[517]) == ("crane bird", "construction crane")
    pets = load_zero_shot_set("oxford_pets")
    assert len(pets.class_names) == 37 and ("timm/oxford-iiit-pet", None, "test") in asked(hub)
    with pytest.raises(DataError, match="unknown zero-shot set"):
        load_zero_shot_set("mnist")


def test_evaluate_zero_shot_matches_clip_logits(tiny_clip_dir):
    import torch
    from conftest import TINY_COLOURS, make_colour_dataset
    from transformers import CLIPImageProcessor, CLIPModel, PreTrainedTokenizerFast

    from segp_hf.evaluation.zero_shot import evaluate_zero_shot

    model = CLIPModel.from_pretrained(tiny_clip_dir).eval()
    processor = CLIPImageProcessor.from_pretrained(tiny_clip_dir)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(tiny_clip_dir)
    zero_shot = ZeroShotSet("colours", make_colour_dataset(per_class=3), [f"{c} square" for c in TINY_COLOURS],
                              "a good photo of a {}.")
    accuracy = evaluate_zero_shot(model, processor, tokenizer, zero_shot, batch_size=7)
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


def test_missing_split_lists_available_ones(fabricated, tmp_path):
    datasets.DatasetDict(train=fabricated["uoft-cs/cifar100"]["train"]).save_to_disk(str(tmp_path / "copy"))
    with pytest.raises(DataError, match=r"no 'test' split.*available splits: \['train'\]"):
        load_benchmark(data_args_for("cifar100", "--data_dir", str(tmp_path / "copy")))


def test_class_order_not_a_permutation(hub):
    with pytest.raises(RecipeError, match="permutation"):  # refused from the registry's class count, no data loaded
        data_args_for("cifar100", "--class_order", "1,2,3")


def test_task_without_images(monkeypatch, tmp_path):
    serve(monkeypatch, tmp_path, "uoft-cs/cifar100", fake_cifar100(drop_test_class=52))
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


@pytest.mark.parametrize("name", PAPER_BENCHMARKS)
def test_recipe_passes_the_plan_check_on_a_saved_copy_with_the_hub_schema(name, saved_copies, capsys):
    """Done-when of issue 14: a copy with the real Hub schema (CIFAR-100's 'cra' included) passes
    ``segp-hf train --config recipes/<benchmark>_10tasks.yaml --data_dir COPY --dry_run``."""
    copy = saved_copies[name]
    assert main(["train", "--config", str(RECIPES / f"{name}_10tasks.yaml"), "--data_dir", copy, "--dry_run"]) == 0
    out = capsys.readouterr().out
    assert "plan check passed" in out and "task 9:" in out and f"local copy at {copy}; nothing is downloaded" in out


def test_plan_check_says_what_is_downloaded_before_fetching(monkeypatch, capsys):
    monkeypatch.setattr(datasets, "load_dataset", _raise_offline)
    code = main(["train", "--config", str(RECIPES / "imagenet_sub_10tasks.yaml"), "--dry_run"])
    captured = capsys.readouterr()
    assert code == 2 and "could not load" in captured.err  # the fetch failed ...
    out = captured.out  # ... after the estimate was printed
    assert "data: hub ILSVRC/imagenet-1k@49e2ee26f3810fb5a7536bbf732a7b07389a47b5 (gated" in out
    assert "a full run downloads ~153.2 GB and stores ~15.5 GB" in out
    assert "split train: download ~146.5 GB, store ~14.9 GB" in out
    main(["train", "--config", str(RECIPES / "ucf101_10tasks.yaml"), "--dry_run"])
    assert "newest (not pinned:" in capsys.readouterr().out


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
    assert set(CARDS) == set(PAPER_BENCHMARKS)
    assert json.loads(json.dumps({k: v.paper_avg_last for k, v in CARDS.items()}))["cifar100"] == "89.8 / 84.6"


# ---- Hub spellings, pins, bad input (issue 14) -------------------------------------------------------


def test_cifar100_hub_spells_crab_cra_and_the_prompt_still_says_crab(hub):
    assert fake_cifar100()["train"].features["fine_label"].names[26] == "cra"  # as on the Hub
    bench = load_benchmark(data_args_for("cifar100"))
    assert bench.label_column == "fine_label"  # ids unchanged: 'cra' is mapped to native id 26
    assert 26 in set(bench.train["fine_label"]) and bench.class_names[26] == "crab"
    plan = build_plan(data_args_for("cifar100"), bench)
    prompts = [p for t in plan.tasks for p in t.prompts]
    assert "a good photo of a crab." in prompts and not any(p.endswith(" cra.") for p in prompts)


def test_labels_not_covering_the_classes_name_the_missing_ones_and_the_aliases(hub, monkeypatch):
    monkeypatch.setitem(LABEL_ALIASES, "cifar100", {})  # without the alias table 'cra' matches nothing
    with pytest.raises(DataError, match=r"do not cover 1 of the benchmark's 100 classes \(missing: \['crab'\].*"
                                        r"aliases tried: none"):
        load_benchmark(data_args_for("cifar100"))
    monkeypatch.setitem(LABEL_ALIASES, "cifar100", {"cra": "crab"})
    with pytest.raises(DataError, match=r"missing: \['apple', 'aquarium_fish'.*aliases tried: 'cra' -> 'crab'"):
        load_benchmark(data_args_for("cifar100", "--label_column", "coarse_label"))


def test_every_dataset_is_pinned_or_says_why_not():
    for name, source in SOURCES.items():
        if name in ("ucf101", "oxford_pets"):
            assert source.revision is None  # no commit could be read from a public copy (docs/benchmarks.md)
        else:
            assert source.revision and len(source.revision) == 40, name
    doc = (Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md").read_text()
    for source in SOURCES.values():
        assert source.dataset_id in doc and (source.revision or "not pinned") in doc


def test_gated_and_missing_revision_errors_say_what_to_do(monkeypatch):
    from datasets.exceptions import DatasetNotFoundError

    def gated(path, *a, **k):  # the message datasets gives for a gated dataset without access
        raise DatasetNotFoundError(f"Dataset '{path}' is a gated dataset on the Hub. You must be authenticated "
                                   "to access it.")

    monkeypatch.setattr(datasets, "load_dataset", gated)
    with pytest.raises(DataError, match=r"'ILSVRC/imagenet-1k' is gated.*Accept its terms.*hf auth login"):
        load_benchmark(data_args_for("imagenet_sub"))

    def no_revision(path, *a, revision=None, **k):  # ... and for a revision that does not exist
        raise DatasetNotFoundError(f"Revision '{revision}' doesn't exist for dataset '{path}' on the Hub.")

    monkeypatch.setattr(datasets, "load_dataset", no_revision)
    with pytest.raises(DataError, match=r"pinned revision 'aadb3af.*' of 'uoft-cs/cifar100' no longer exists.*"
                                        r"--dataset_revision"):
        load_benchmark(data_args_for("cifar100"))


def test_ucf101_clips_are_grouped_by_label_not_by_names_in_ids(monkeypatch, tmp_path):
    """Every class uses the same ids: grouping by ids alone would merge 101 classes' clips into one."""
    serve(monkeypatch, tmp_path, "flwrlabs/ucf101", fake_ucf101(ids_without_names=True))
    bench = load_benchmark(data_args_for("ucf101"))
    assert (len(bench.train), len(bench.test)) == (200, 100)
    assert sorted(set(bench.test[bench.label_column])) == list(range(100))


def test_middle_frame_positions_hand_computed():
    # clip A (label 0): frames 3, 1, 2 at rows 0-2 -> middle frame 2 (row 2); clip B (label 1, same ids):
    # frames 0, 1, 2, 3 at rows 3-6 -> lower middle frame 1 (row 4)
    label = np.array([0, 0, 0, 1, 1, 1, 1])
    video = np.array(["v"] * 7)
    clip = np.array(["c"] * 7)
    frame = np.array([3, 1, 2, 0, 1, 2, 3])
    assert middle_frame_positions(label, video, clip, frame).tolist() == [2, 4]


def test_no_two_prompts_of_any_benchmark_are_equal():
    from segp_hf.data.scenario import prompts_for

    sets = {name: protocol(p)["class_names"] for name, p in (("cifar100", "cifar100"), ("imagenet_r", "imagenet_r"),
            ("imagenet_sub", "imagenet100"), ("cub200", "cub200"), ("ucf101", "ucf101"))}
    sets["imagenet1k"] = clip_imagenet_names()
    sets["food101"] = __import__("hub_fakes").FOOD101_HUB
    for name, names in sets.items():
        prompts = prompts_for(names, RAPF_TEMPLATE)
        assert len(set(prompts)) == len(prompts), name
    # the names they replace would fail: first synonyms repeat 'crane' and 'maillot'; CLIP's own list repeats two
    first = [n.split(",")[0] for n in __import__("hub_fakes").IMAGENET_HUB_0_99]
    assert len(set(first)) == len(first)  # (within 0-99 they happen to be unique)
    clip_raw = protocol("imagenet1k")["clip_class_names"]
    assert len(set(prompts_for(clip_raw, RAPF_TEMPLATE))) == 998


def test_clip_imagenet_names_extend_the_shipped_imagenet100_names():
    assert clip_imagenet_names()[:100] == protocol("imagenet100")["class_names"]
    assert len(clip_imagenet_names()) == 1000 and "openai/CLIP" in protocol("imagenet1k")["source"]
