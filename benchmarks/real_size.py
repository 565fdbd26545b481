"""Real-size check on CPU: a ViT-B/16-shaped CLIP runs two tasks of the CIFAR-100 recipe, and the memory of one
training step and one DPGD step is measured per image and projected to the paper's GPU step.

Model: ``CLIPModel`` from the shipped ``segp_hf/assets/clip-vit-base-patch16/config.json`` with random weights
(no download; vision 768 wide x 12 layers, patch 16, 224 px; text 512 x 12; projection 512), a fabricated
word-level tokenizer. Data: a fabricated copy of uoft-cs/cifar100 in its Hub schema (``img``, ``fine_label`` with
the Hub's 100 names, ``coarse_label``; tests/hub_fakes.py's names), 32x32 random images, one image per class per
split, saved with ``save_to_disk`` and read through the registry's ``data_dir`` path.

Two-task run: ``recipes/cifar100_10tasks.yaml`` as it is (segp-cl, bf16, SGD, LoRA r=32 on k_proj, v_proj, fc1,
fc2, batch 128, pixel cache, 4 DataLoader workers) but CPU-sized: the 100 classes in 50 tasks of 2 (``--num_tasks``;
bf16 matmuls run ~6x slower than float32 on a CPU without bf16 instructions), 1 image per class, 1 epoch,
1 anchor per old class, 2 DPGD steps, no future-task evaluation, no zero-shot sets; tasks 0 and 1.

Memory: one fresh process per measurement (glibc's mmap threshold pinned at 64 KiB so that freed tensors leave
the resident set): resident-set growth over one step, after the model and optimiser exist, at two batch sizes.
  - ``train``: the paper's step, bf16 autocast with float32 weights: images (batch + anchors) and the text of all
    100 classes through the towers, CE on the logits, backward into lora_B, SGD with momentum;
  - ``dpgd``: one DPGD step as the callback runs it (float32: it runs outside the Trainer's autocast), a forward
    and a gradient w.r.t. the input pixels.
Per image = the slope between the two sizes; the projection adds the float32 weights and the anchors resident
on the device (5 per old class, 90 old classes at the last task), and the slope times the paper's batch
(128 + 32 anchors; DPGD: dpgd_batch_size 64). Not counted: the CUDA context (~0.3-0.5 GB) and allocator slack.

    python benchmarks/real_size.py           # ViT-B/16 on CPU (see benchmarks/README.md for the time)
    python benchmarks/real_size.py --tiny    # toy widths, same code (tests/test_real_size.py)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from _common import add_task_callback, machine, write_json  # noqa: E402
from gpu_check import WORDS, save_model  # noqa: E402

RECIPE = HERE.parent / "segp_hf" / "recipes" / "cifar100_10tasks.yaml"
PAPER = {"gpus": "2x NVIDIA RTX 4090", "gpu_memory_gib": 24, "batch": 128, "anchor_batch": 32, "dpgd_batch": 64,
         "anchors_resident": 5 * 90, "text_classes": 100}
MIB = 2**20


# ------------------------------------------------------------------------------------------------ data
def fabricated_cifar100(folder: Path, per_class: int = 1, seed: int = 0, test_per_class: int | None = None) -> str:
    """uoft-cs/cifar100's schema and names, random 32x32 images, train and test splits (``per_class`` and
    ``test_per_class`` images per class, default the same), saved to disk."""
    import datasets
    from PIL import Image

    sys.path.insert(0, str(HERE.parent / "tests"))
    from hub_fakes import CIFAR100_HUB_COARSE, CIFAR100_HUB_FINE

    rng = np.random.default_rng(seed)
    features = datasets.Features({"img": datasets.Image(), "fine_label": datasets.ClassLabel(names=CIFAR100_HUB_FINE),
                                  "coarse_label": datasets.ClassLabel(names=CIFAR100_HUB_COARSE)})

    def split(count):
        labels = [c for c in range(100) for _ in range(count)]
        images = [Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in labels]
        return datasets.Dataset.from_dict({"img": images, "fine_label": labels, "coarse_label": [c % 20 for c in labels]},
                                          features=features)

    test_count = per_class if test_per_class is None else test_per_class
    datasets.DatasetDict(train=split(per_class), test=split(test_count)).save_to_disk(str(folder))
    return str(folder)


def cifar_words() -> list[str]:
    """The words of CIFAR-100's class names: each prompt gets its own tokens (with unknown words every prompt
    would be the same and the text gradients of the classes would cancel)."""
    sys.path.insert(0, str(HERE.parent / "tests"))
    from hub_fakes import CIFAR100_HUB_FINE

    return sorted({word for name in CIFAR100_HUB_FINE for word in name.replace("_", " ").split()})


# ------------------------------------------------------------------------------------------- two tasks
def lora_b_gradient_norms(model) -> dict[str, float]:
    """The L2 norm of the lora_B gradients of each tower (the only LoRA weights the recipe trains)."""
    squares = {"text": 0.0, "vision": 0.0}
    for name, parameter in model.named_parameters():
        tower = "text" if ".text_model." in name else "vision" if ".vision_model." in name else None
        if tower and "lora_B" in name and parameter.grad is not None:
            squares[tower] += float(parameter.grad.detach().float().pow(2).sum())
    return {tower: square**0.5 for tower, square in squares.items()}


def gradient_recorder(runner, norms: list):
    """Makes every task's Trainer append {task, step, text, vision} lora_B gradient norms before each optimiser step."""
    from transformers import TrainerCallback

    class RecordNorms(TrainerCallback):
        def __init__(self, task):
            self.task = task

        def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
            norms.append({"task": self.task, "step": state.global_step, **lora_b_gradient_norms(model)})

    add_task_callback(runner, RecordNorms)


def check_gradients(norms: list, tasks: int):
    """Both towers' lora_B received a non-zero, finite gradient in every task (the run trained both towers)."""
    for task in range(tasks):
        steps = [n for n in norms if n["task"] == task]
        for tower in ("text", "vision"):
            largest = max((n[tower] for n in steps), default=0.0)
            if not (largest > 0 and np.isfinite(largest)):
                raise AssertionError(f"task {task}: {tower} lora_B gradient norm {largest} over {len(steps)} steps")


def two_task_run(model_dir: str, data_dir: str, output: Path, num_tasks: int, tasks: int = 2) -> dict:
    """Tasks 0..tasks-1 of the CIFAR-100 recipe (CPU-sized, see the module docstring) through ContinualRunner."""
    from segp_hf.recipe import load_recipe, parse_config
    from segp_hf.run.continual import ContinualRunner

    recipe = load_recipe(str(RECIPE))
    overrides = dict(model_name_or_path=model_dir, data_dir=data_dir, num_tasks=num_tasks, max_train_images_per_class=1,
                     max_eval_images_per_class=1, num_train_epochs=1, anchors_per_class=1, dpgd_steps=2,
                     eval_future_tasks=False, output_dir=str(output), save_strategy="no",
                     use_cpu=True, report_to="none", disable_tqdm=True, logging_steps=1)
    recipe.update(overrides)
    recipe.pop("zero_shot_sets", None)  # held-out sets need downloads
    start = time.perf_counter()
    runner = ContinualRunner(*parse_config(recipe))
    runner.check_output_dir()
    norms = []
    gradient_recorder(runner, norms)
    for task in range(tasks):
        runner.run_task(task)
    results = runner.write_results(tasks - 1)
    check_gradients(norms, tasks)
    kept = {k: recipe[k] for k in ("variant", "bf16", "optim", "optim_args", "learning_rate", "lora_r",
                                   "lora_target_modules", "global_train_batch_size", "pixel_cache",
                                   "dataloader_num_workers", "lambda_acgd", "lambda_tsgr", "beta")}
    return {"seconds": time.perf_counter() - start, "tasks_completed": results["tasks_completed"],
            "acc_matrix": [row[:tasks] for row in results["acc_matrix"][:tasks]], "recipe_settings": kept,
            "lora_b_grad_norms": norms, "timing": results["timing"][:tasks],
            "cpu_sized_overrides": {k: v for k, v in overrides.items() if k not in ("model_name_or_path", "data_dir",
                                                                                  "output_dir")}}


# ---------------------------------------------------------------------------------------------- memory
def _status_mib(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {key}")


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current resident set (Linux >= 4.0)
        return True
    except OSError:
        return False


def measure_step(model_dir: str, kind: str, batch: int, text_classes: int, text_tokens: int) -> dict:
    """Resident-set growth (MiB) of one ``kind`` step ('train' or 'dpgd') at ``batch`` images, fresh process."""
    from segp_hf.method.anchors import dpgd_attack
    from segp_hf.modeling.student import build_lora_clip, encode_images, encode_texts, image_encoder

    torch.manual_seed(0)
    model = build_lora_clip(model_dir, r=32)
    config = model.base_model.model.config
    size, width = config.vision_config.image_size, config.vision_config.hidden_size
    params = sum(p.numel() * p.element_size() for p in model.parameters()) / MIB
    ids = torch.randint(4, 4 + len(WORDS), (text_classes, text_tokens))
    if kind == "train":
        model.train()
        optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3, momentum=0.9)
    else:
        model.eval()
        with torch.no_grad():
            old_text = encode_texts(model, ids)
    baseline = _status_mib("VmRSS")
    exact = _reset_peak()
    pixels = torch.randn(batch, 3, size, size)  # the normaliser's float32 output
    if kind == "train":
        with torch.autocast("cpu", dtype=torch.bfloat16):
            image, _ = encode_images(model, pixels)
            text = encode_texts(model, ids)
        loss = torch.nn.functional.cross_entropy(100 * image @ text.T, torch.arange(batch) % text_classes)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    else:  # one DPGD step, as TeacherTargetsCallback runs it (no autocast)
        prototypes = torch.randn(text_classes, width)
        dpgd_attack(image_encoder(model), pixels, torch.arange(batch) % text_classes, old_text, prototypes, steps=1)
    peak = _status_mib("VmHWM") if exact else __import__("resource").getrusage(0).ru_maxrss / 1024
    return {"kind": kind, "batch": batch, "step_mib": peak - baseline, "params_mib": params,
            "peak_kind": "VmHWM after clear_refs" if exact else "ru_maxrss (includes setup)"}


def memory_in_subprocesses(model_dir: str, kind: str, batches, text_classes: int, text_tokens: int,
                           in_process: bool = False) -> list[dict]:
    if in_process:  # --tiny: the same code without the process starts (figures meaningless there)
        return [measure_step(model_dir, kind, batch, text_classes, text_tokens) for batch in batches]
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    out = []
    for batch in batches:
        done = subprocess.run([sys.executable, __file__, "--measure", kind, "--batch", str(batch), "--model", model_dir,
                               "--text_classes", str(text_classes), "--text_tokens", str(text_tokens)],
                              capture_output=True, text=True, env=env, check=True)
        out.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return out


def project(points: list[dict], images: int, resident_mib: float) -> dict:
    """Linear fit through the two measured batch sizes, evaluated at ``images``, plus what stays resident."""
    (a, b) = points
    per_image = (b["step_mib"] - a["step_mib"]) / (b["batch"] - a["batch"])
    fixed = a["step_mib"] - per_image * a["batch"]
    step = fixed + per_image * images
    total = a["params_mib"] + resident_mib + step
    return {"per_image_mib": per_image, "step_fixed_mib": fixed, "images": images, "step_mib": step,
            "weights_mib": a["params_mib"], "resident_extra_mib": resident_mib, "projected_peak_gib": total / 1024,
            "measured": points}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="Toy widths (1 layer, 64 wide, 32 px): checks the code.")
    parser.add_argument("--batches", type=int, nargs=2, default=[1, 3], help="The two batch sizes measured.")
    parser.add_argument("--text_tokens", type=int, default=12, help="Prompt length ('a good photo of a {}.' ~ 8-12).")
    parser.add_argument("--skip_run", action="store_true", help="Only the memory measurements.")
    parser.add_argument("--skip_memory", action="store_true", help="Only the two-task run.")
    parser.add_argument("--num_tasks", type=int, default=50,
                        help="Tasks the 100 classes are split into (the recipe's 10 gives 10 images per task; 50 gives "
                             "2, which a CPU can afford at ViT-B/16 size in bf16).")
    parser.add_argument("--out", default=str(HERE / "results" / "real_size.json"))
    parser.add_argument("--measure", choices=["train", "dpgd"], help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--text_classes", type=int, default=PAPER["text_classes"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:  # the child of memory_in_subprocesses
        print(json.dumps(measure_step(args.model, args.measure, args.batch, args.text_classes, args.text_tokens)))
        return None
    report = {"machine": machine(), "tiny": args.tiny, "paper": PAPER}
    with tempfile.TemporaryDirectory(prefix="segp-real-size-") as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        model_dir = save_model(tmp / "model", args.tiny, cifar_words())
        report["model_build_s"] = time.perf_counter() - start
        if not args.skip_run:
            data_dir = fabricated_cifar100(tmp / "cifar100")
            report["two_task_run"] = two_task_run(model_dir, data_dir, tmp / "run", args.num_tasks)
        if args.skip_memory:
            write_json(args.out, report)
            print(json.dumps(report["two_task_run"], indent=1))
            return report
        start = time.perf_counter()
        anchor_bytes = PAPER["anchors_resident"] * 3 * 224 * 224 * 4 / MIB  # anchor pixels kept on the device
        train = memory_in_subprocesses(model_dir, "train", args.batches, PAPER["text_classes"], args.text_tokens, args.tiny)
        dpgd = memory_in_subprocesses(model_dir, "dpgd", args.batches, PAPER["text_classes"], args.text_tokens, args.tiny)
        report["memory"] = {
            "train_step": project(train, PAPER["batch"] + PAPER["anchor_batch"], anchor_bytes),
            "anchor_building": project(dpgd, PAPER["dpgd_batch"], anchor_bytes),
            "seconds": time.perf_counter() - start,
        }
    print(f"\n{'check':52} {'value':>12}")
    if "two_task_run" in report:
        run = report["two_task_run"]
        print(f"{'two-task run (CIFAR-100 recipe, CPU-sized) seconds':52} {run['seconds']:>12.1f}")
        print(f"{'tasks completed':52} {run['tasks_completed']:>12}")
    for name, label in (("train_step", "training step (128 + 32 anchors, bf16)"),
                        ("anchor_building", "DPGD step (64 anchors, fp32, input grads)")):
        m = report["memory"][name]
        print(f"{label + ': MiB per image':52} {m['per_image_mib']:>12.1f}")
        print(f"{label + ': projected peak GiB':52} {m['projected_peak_gib']:>12.2f}")
    print(f"{'paper: ' + PAPER['gpus'] + ', GiB each':52} {PAPER['gpu_memory_gib']:>12}")
    write_json(args.out, report)
    return report


if __name__ == "__main__":
    main()
