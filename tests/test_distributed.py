"""Two processes under ``accelerate launch`` (DDP over gloo on CPU) against one process, same recipe.

Launcher: ``accelerate launch --multi_gpu --num_processes 2`` with ``use_cpu: true`` in the recipe. (With
accelerate 1.15, ``accelerate launch --cpu --num_processes 2`` starts ONE process: several CPU processes
need an MPI hostfile there. The torchrun-based launcher plus ``use_cpu`` gives real 2-rank DDP on gloo.)

Why the two runs must agree: the 2-process run uses per-device batch 2, the 1-process run batch 4. The
seeded sampler draws the same permutation in both, and accelerate hands consecutive batches to the ranks,
so every optimizer step sees the same 4 images; DDP averages the two per-rank mean losses' gradients,
which is the 4-image mean. Anchors are identical on both ranks (built from the whole task, broadcast from
rank 0) and each rank draws the same anchor mini-batch, so the ACGD and TSGR terms are identical too.
Prototypes: per-rank sums and counts, all-reduced. What remains is floating-point summation order: the
weights agree to ~1e-6 (measured max 8e-7 on the adapter, 1.2e-6 on prototypes), so the asserted
tolerance is 1e-4 on weights and prototypes and, for the accuracy matrix, equality except that at most
one test image may flip at a near-tie (one image = 100 / images-per-task points, in at most one cell).
Measured: the accuracy matrices are identical.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import datasets
import decode_counter
import pytest
import yaml
from conftest import make_colour_dataset, save_tiny_clip, tiny_settings
from safetensors.torch import load_file

from segp_hf import cli
from segp_hf.run import checkpoints as ckpt

TEST_PER_CLASS = 4
CLASSES_PER_TASK = 2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _accelerate() -> list[str]:
    script = Path(sys.executable).parent / "accelerate"
    if script.exists():
        return [str(script)]
    found = shutil.which("accelerate")
    assert found, "the accelerate launcher is not installed; it is a dependency of segp_hf"
    return [found]


@pytest.fixture(scope="module")
def on_disk(tmp_path_factory):
    """A tiny CLIP and a tiny dataset written to disk (a subprocess cannot receive Python objects)."""
    root = tmp_path_factory.mktemp("dist")
    clip = save_tiny_clip(root / "clip")
    datasets.DatasetDict(
        train=make_colour_dataset(per_class=6, seed=0), test=make_colour_dataset(per_class=TEST_PER_CLASS, seed=1)
    ).save_to_disk(str(root / "data"))
    recipe = tiny_settings(clip, root / "unused", benchmark="custom", data_dir=str(root / "data"),
                           class_order="3,0,5,1,4,2")
    path = root / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return root, path


HELD_OUT_IMAGES = 40  # shapes_heldout, capped: each rank scores 20


def _two_ranks(recipe: Path, output_dir: Path, extra_env: dict) -> str:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **extra_env}
    command = _accelerate() + [
        "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
        "--dynamo_backend", "no", "--main_process_port", str(_free_port()),
        "-m", "segp_hf", "train", "--config", str(recipe), "--output_dir", str(output_dir),
        "--per_device_train_batch_size", "2",
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-4000:]
    return log


def _held_out_keys() -> set[str]:
    """The pixel hashes decode_counter logs for the capped held-out set's images."""
    from segp_hf.evaluation.zero_shot import load_retention_set

    images = load_retention_set("shapes_heldout", max_images=HELD_OUT_IMAGES).dataset["image"]
    return {hashlib.sha1(image.tobytes()).hexdigest() for image in images}


def test_two_processes_match_one(on_disk):
    """Same matrix, same retention; the ranks share the pixel cache (every image decoded once across both) and
    each scores half of the zero-shot set."""
    root, recipe = on_disk
    one, two = root / "one", root / "two"
    zero_shot = ["--zero_shot_sets", "shapes_heldout", "--zero_shot_max_images", str(HELD_OUT_IMAGES)]
    decode_counter.install(root / "one-decodes.log")
    try:
        assert cli.main(["train", "--config", str(recipe), "--output_dir", str(one), *zero_shot]) == 0
    finally:
        decode_counter.uninstall()
    single_decodes = decode_counter.read(root / "one-decodes.log")
    assert decode_counter.decodes_per_image(single_decodes) <= 1.05

    counter_env = decode_counter.sitecustomize_dir(root / "site", root / "two-decodes.log")
    recipe_with_zero_shot = root / "recipe-zero-shot.yaml"
    recipe_with_zero_shot.write_text(yaml.safe_dump({**yaml.safe_load(recipe.read_text()),
                                                      "zero_shot_sets": ["shapes_heldout"],
                                                      "zero_shot_max_images": HELD_OUT_IMAGES}))
    log = _two_ranks(recipe_with_zero_shot, two, counter_env)

    # Really two ranks: 12 images per task at 2 per device -> 3 steps per task (6 in a single process).
    assert "'epoch': '0.3333'" in log and "'epoch': '0.1667'" not in log, log[-3000:]
    # One set of checkpoints, written once, nothing half-written.
    assert ckpt.completed_tasks(two) == 3
    assert sorted(p.name for p in two.iterdir() if p.name.startswith(("task-", ".task-"))) == ["task-0", "task-1", "task-2"]
    assert log.count("after \\ on") == 1  # the final matrix is printed by the main process only

    # Every image decoded once across both ranks, the work split between them; the same images as one process.
    decodes = decode_counter.read(root / "two-decodes.log")
    assert decode_counter.decodes_per_image(decodes) <= 1.05, len(decodes)
    assert {key for _, key in decodes} == {key for _, key in single_decodes}
    by_rank = {rank: {key for r, key in decodes if r == rank} for rank in ("0", "1")}
    assert by_rank["0"] and by_rank["1"] and not by_rank["0"] & by_rank["1"]
    held_out = _held_out_keys()
    assert held_out <= by_rank["0"] | by_rank["1"] and held_out & by_rank["0"] and held_out & by_rank["1"]
    assert not list((two / "pixel-cache").rglob("*.u8*")) if (two / "pixel-cache").exists() else True

    single = json.loads((one / "results.json").read_text())
    multi = json.loads((two / "results.json").read_text())
    assert multi["tasks_completed"] == 3
    assert multi["zero_shot_retention"] == single["zero_shot_retention"]  # each rank scored half, counts summed
    one_image = 100.0 / (TEST_PER_CLASS * CLASSES_PER_TASK)
    diffs = [abs(a - b) for ra, rb in zip(single["acc_matrix"], multi["acc_matrix"]) for a, b in zip(ra, rb)]
    assert sum(d > 1e-6 for d in diffs) <= 1 and max(diffs) <= one_image + 1e-6, (single["acc_matrix"], multi["acc_matrix"])
    for task in range(3):
        a = load_file(one / f"task-{task}" / "adapter_model.safetensors")
        b = load_file(two / f"task-{task}" / "adapter_model.safetensors")
        assert a.keys() == b.keys()
        assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-4
        pa, pb = ckpt.load_prototypes(one / f"task-{task}"), ckpt.load_prototypes(two / f"task-{task}")
        assert float((pa - pb).abs().max()) < 1e-4

    # Resume on two ranks: the last task again, in a new session of the cache (fresh files), the saved "before"
    # taken by both ranks from the main process, "after" scored again by both.
    shutil.rmtree(two / "task-2")
    (two / "results.json").unlink()
    _two_ranks(recipe_with_zero_shot, two, {})
    resumed = json.loads((two / "results.json").read_text())
    assert resumed["acc_matrix"] == multi["acc_matrix"]
    assert resumed["zero_shot_retention"] == multi["zero_shot_retention"]
