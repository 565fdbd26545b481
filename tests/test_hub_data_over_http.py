"""Every paper benchmark and zero-shot set over real HTTP: each one a fabricated git repo in its Hub layout (README
front matter with ``configs`` and ``dataset_info``, parquet shards named as the Hub's parquet conversion names them,
committed as git-lfs pointers as the Hub stores them), served by olah (tests/hub_server.py), loaded by our real
loaders with ``streaming=True`` in a fresh process pointed at it with ``HF_ENDPOINT`` and an empty HF cache. Then the
CIFAR-100 recipe's dry run through the server, and a tiny toy-CLIP run of it at a given commit.

Where each fact comes from: the schemas (columns, features, ClassLabel names, split names) are tests/hub_fakes.py's,
which says its sources (docs/benchmarks.md "Schemas the loaders expect"); the layouts are in ``LAYOUTS``, each with
its source. Food-101 is tests/test_hub_server.py's. Skipped where olah is not installed."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest
import yaml
from hub_fakes import fake_cifar100, fake_cub200, fake_imagenet1k, fake_imagenet_r, fake_oxford_pets, fake_ucf101
from hub_server import client_env

# repo id -> (fabricator, config name, folder of the shards, shards per split, where the layout comes from)
LAYOUTS = {
    "uoft-cs/cifar100": (
        fake_cifar100, "cifar100", "cifar100", {"train": 2, "test": 1},
        ("the Hub's 'Convert dataset to Parquet (#4)' commit (aadb3af, docs/benchmarks.md): one config named cifar100, "
        "shards under cifar100/ (recalled from the Hub's file listing, not re-read in this project)")),
    "axiong/imagenet-r": (
        fake_imagenet_r, "default", "data", {"test": 2},
        ("datasets' parquet layout (data/<split>-NNNNN-of-NNNNN.parquet, config default), this repo's own listing not "
        "re-read here; the image paths kept in the Image struct (RAPF's file names)")),
    "ILSVRC/imagenet-1k": (
        fake_imagenet1k, "default", "data", {"train": 3, "validation": 2, "test": 1},
        ("the parquet revision 49e2ee2 (docs/benchmarks.md): data/train-*, data/validation-*, data/test-* in many "
        "shards (not re-read here); test labels -1")),
    "bentrevett/caltech-ucsd-birds-200-2011": (
        fake_cub200, "default", "data", {"train": 2, "test": 1}, "datasets' parquet layout; not re-read here"),
    "flwrlabs/ucf101": (
        fake_ucf101, "default", "data", {"train": 2, "test": 2},
        "datasets' parquet layout, every frame a row; not re-read here"),
    "timm/oxford-iiit-pet": (
        fake_oxford_pets, "default", "data", {"test": 1},
        "datasets' parquet layout; not re-read here (the test split only: all a set reads)"),
}


def hub_layout_files(splits: dict, config: str, folder: str, shards: dict[str, int]) -> dict[str, bytes]:
    """A dataset repo's files as the Hub's parquet conversion writes them: ``.gitattributes`` sending parquet to
    LFS (the Hub's default), README front matter with ``configs`` (data_files per split, by glob) and
    ``dataset_info`` (features, per-split rows), the rows in ``<folder>/<split>-NNNNN-of-NNNNN.parquet``."""
    files = {".gitattributes": b"*.parquet filter=lfs diff=lfs merge=lfs -text\n"}
    info = {"config_name": config, "features": None, "splits": []}
    for split, count in shards.items():
        dataset = splits[split]
        info["features"] = dataset.features._to_yaml_list()
        info["splits"].append({"name": split, "num_examples": len(dataset)})
        for index in range(count):
            shard = io.BytesIO()
            dataset.shard(count, index, contiguous=True).to_parquet(shard)
            files[f"{folder}/{split}-{index:05d}-of-{count:05d}.parquet"] = shard.getvalue()
    card = {"configs": [{"config_name": config, "data_files": [{"split": s, "path": f"{folder}/{s}-*"} for s in shards]}],
            "dataset_info": info}
    files["README.md"] = f"---\n{yaml.safe_dump(card, sort_keys=False)}---\n# fabricated for the tests\n".encode()
    return files


@pytest.fixture(scope="module")
def served(hub_server):
    """Every repo of LAYOUTS on the server; CIFAR-100 twice (its first commit, then main moved to a copy without
    class 99's test image). Repo id -> commit (CIFAR-100: the first)."""
    commits = {}
    for repo_id, (fabricate, config, folder, shards, _) in LAYOUTS.items():
        commits[repo_id] = hub_server.dataset_repo(repo_id, hub_layout_files(fabricate(), config, folder, shards),
                                                   lfs=(".parquet",))
    moved = hub_layout_files(fake_cifar100(drop_test_class=99), *LAYOUTS["uoft-cs/cifar100"][1:4])
    hub_server.dataset_repo("uoft-cs/cifar100", moved, "main moves on", lfs=(".parquet",))
    return commits


LOAD_EVERYTHING = """
import json, sys
from segp_hf import cli
from segp_hf.data.registry import load_benchmark
from segp_hf.evaluation.zero_shot import load_retention_set
from segp_hf.recipe import parse_config
commits, out = json.loads(sys.argv[1]), sys.argv[2]
ids = {"cifar100": "uoft-cs/cifar100", "imagenet_r": "axiong/imagenet-r", "imagenet_sub": "ILSVRC/imagenet-1k",
       "cub200": "bentrevett/caltech-ucsd-birds-200-2011", "ucf101": "flwrlabs/ucf101"}
for name, repo in ids.items():
    _, data_args, _ = parse_config({"benchmark": name, "dataset_revision": commits[repo], "use_cpu": True})
    bench = load_benchmark(data_args)
    print("LOADED", json.dumps({"name": name, "train": len(bench.train), "test": len(bench.test),
                                "names": bench.class_names, "commit": bench.info.get("commit")}))
for name, repo in (("oxford_pets", "timm/oxford-iiit-pet"), ("imagenet1k", "ILSVRC/imagenet-1k")):
    held = load_retention_set(name, revision=commits[repo])
    print("LOADED", json.dumps({"name": name, "test": len(held.dataset), "names": held.class_names}))
first = commits["uoft-cs/cifar100"]
print("DRY", cli.main(["train", "--config", "cifar100_10tasks", "--dry_run", "--dataset_revision", first,
                       "--zero_shot_revisions", f"oxford_pets={commits['timm/oxford-iiit-pet']}"]))
print("TRAIN", cli.main(["train", "--config", "cifar100_10tasks", "--dataset_revision", first, "--model_name_or_path",
                         "toy-clip", "--num_tasks", "2", "--num_train_epochs", "1", "--max_train_images_per_class", "1",
                         "--global_train_batch_size", "16", "--lora_r", "4", "--anchors_per_class", "1",
                         "--dpgd_steps", "1", "--dataloader_num_workers", "0", "--bf16", "false", "--use_cpu", "true",
                         "--zero_shot_sets", "none", "--report_to", "none", "--output_dir", out]))
"""


@pytest.fixture(scope="module")
def over_http(served, hub_server, tmp_path_factory):
    """One fresh process, empty HF cache, everything through the server: (stdout lines, run folder, HF home)."""
    scratch = tmp_path_factory.mktemp("data-over-http")
    home = scratch / "hf"
    done = subprocess.run([sys.executable, "-c", LOAD_EVERYTHING, json.dumps(served), str(scratch / "run")],
                          env=client_env(hub_server.endpoint, home, SEGP_HF_DATA_CACHE=str(scratch / "kept")),
                          cwd=scratch, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout.splitlines(), scratch / "run", home


def _loaded(over_http) -> dict[str, dict]:
    return {row["name"]: row for row in (json.loads(line[7:]) for line in over_http[0] if line.startswith("LOADED "))}


def test_every_benchmark_and_zero_shot_set_streams_over_http_in_its_hub_layout(over_http, served, hub_server):
    import urllib.request

    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only
    with direct.open(f"{hub_server.endpoint}/api/datasets/uoft-cs/cifar100/tree/main/cifar100", timeout=60) as answer:
        listing = json.loads(answer.read())
    assert {entry["path"] for entry in listing} == {"cifar100/train-00000-of-00002.parquet",
                                                     "cifar100/train-00001-of-00002.parquet",
                                                     "cifar100/test-00000-of-00001.parquet"}
    assert all(entry["lfs"]["size"] == entry["size"] > 150 for entry in listing)  # served from LFS pointers
    loaded = _loaded(over_http)
    sizes = {name: (row.get("train"), row["test"]) for name, row in loaded.items()}
    assert sizes == {"cifar100": (200, 100), "imagenet_r": (400, 200), "imagenet_sub": (200, 100),
                     "cub200": (400, 200), "ucf101": (200, 100),  # UCF101: the middle frame of each clip, YoYo dropped
                     "oxford_pets": (None, 37), "imagenet1k": (None, 106)}
    assert loaded["cifar100"]["names"][26] == "crab" and "cra" not in loaded["cifar100"]["names"]
    assert loaded["cifar100"]["commit"] == served["uoft-cs/cifar100"]  # the first commit, not main's
    assert loaded["imagenet_sub"]["names"][0] == "tench" and len(loaded["imagenet_sub"]["names"]) == 100
    assert loaded["cub200"]["names"][0] == "Black_footed_Albatross"
    assert loaded["oxford_pets"]["names"][:2] == ["pet breed 0", "pet breed 1"]
    assert len(loaded["imagenet1k"]["names"]) == 1000


def test_the_cifar100_recipes_dry_run_through_the_server_plans_ten_tasks_of_ten_with_crab(over_http, served):
    lines = over_http[0]
    assert "DRY 0" in lines
    plan = lines[: lines.index("DRY 0")]
    tasks = [line for line in plan if line.startswith("task ") and " classes, " in line]
    assert len(tasks) == 10 and all(line.split(":")[1].strip().startswith("10 classes") for line in tasks)
    classes = ", ".join(line for line in plan if line.strip().startswith("classes:"))
    assert "crab" in classes.split(", ") or ", crab" in classes
    assert not any(name.strip() == "cra" for line in plan if line.strip().startswith("classes:")
                   for name in line.split(":", 1)[1].split(","))
    assert any(f"uoft-cs/cifar100@{served['uoft-cs/cifar100']}" in line for line in plan)
    pets = f"oxford_pets: hub timm/oxford-iiit-pet@{served['timm/oxford-iiit-pet']}"
    assert any(pets in line for line in plan) and any("food101: hub ethz/food101@e06acf2" in line for line in plan)


def test_a_tiny_toy_clip_run_trains_at_the_given_commit_with_a_fresh_cache(over_http, served):
    lines, run, home = over_http
    assert "TRAIN 0" in lines
    results = json.loads((run / "results.json").read_text())
    assert results["tasks_completed"] == 2
    saved = json.loads((run / "task-1" / "segp_config.json").read_text())
    assert saved["dataset_commit"] == served["uoft-cs/cifar100"] and saved["dataset_revision"] == saved["dataset_commit"]
    assert sum(json.loads((run / "task-1" / "metrics.json").read_text())["test_sizes"]) == 100  # class 99's is there
    assert (home / "hub").is_dir()  # the HF cache the run was given, empty before it
