"""What a paper run costs: the CIFAR-100 recipe end to end at the paper's data size, on one GPU.

``recipes/cifar100_10tasks.yaml`` as it is (10 tasks of 10 classes, segp-cl, bf16, SGD, batch 128 + 32 anchors,
LoRA r=32, 5 anchors per old class with 10 DPGD steps, prototypes, evaluation of every task after each task,
pixel cache, 4 DataLoader workers) on a fabricated uoft-cs/cifar100 copy in its Hub schema (50,000 random 32x32
train images, 10,000 test: 500 / 100 per class; real_size.fabricated_cifar100), read through the registry's
``data_dir`` path, with a ViT-B/16 CLIP of random weights from the shipped config (gpu_check.save_model; no
download). Left out: the recipe's zero-shot sets (Food-101, Oxford-Pets, ImageNet-1k need downloads).

Epochs are cut (``--epochs``, default 2 of the recipe's 10) and the training phase is extrapolated per task from
the epochs' own wall times (a callback times each epoch; torch.cuda.synchronize at both ends):
    train(10 epochs) = train_s - sum(epochs) + epoch_1 + 9 x mean(epochs 2..n)
(with one epoch run: epoch_1 x 10; epoch 1 includes the pixel cache's first pass). The other phases (anchors:
seed scoring + DPGD; prototypes; evaluation; the rest: saving, setting up) do not depend on the epochs and are
taken as measured. The JSON is rewritten after every task, so a run stopped by a time limit keeps what it did.

    python benchmarks/paper_scale.py --out results.json        # one GPU (gpu_check.py runs it)
    python benchmarks/paper_scale.py --tiny --out results.json # CPU, seconds: toy model, 2+1 images per class
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from _common import add_task_callback, machine, write_json  # noqa: E402

PAPER_EPOCHS = 10
PHASES = ("train_s", "anchors_s", "prototypes_s", "eval_s")


def _sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def epoch_recorder(runner, epochs: dict):
    """Makes every task's Trainer record its epochs' wall times into ``epochs[task]``."""
    from transformers import TrainerCallback

    class TimeEpochs(TrainerCallback):
        def __init__(self, task):
            self.task, self.start = task, None

        def on_epoch_begin(self, args, state, control, **kwargs):
            _sync()
            self.start = time.perf_counter()

        def on_epoch_end(self, args, state, control, **kwargs):
            _sync()
            epochs.setdefault(self.task, []).append(time.perf_counter() - self.start)

    add_task_callback(runner, TimeEpochs)


def extrapolate_train(train_s: float, epochs: list[float], paper_epochs: int = PAPER_EPOCHS) -> float:
    """The training phase of one task at ``paper_epochs`` from the measured one (see the module docstring)."""
    if not epochs:
        return train_s
    outside = max(train_s - sum(epochs), 0.0)
    steady = statistics.mean(epochs[1:]) if len(epochs) > 1 else epochs[0]
    return outside + epochs[0] + (paper_epochs - 1) * steady


def extrapolated_totals(timing: list[dict], epochs: dict, paper_epochs: int = PAPER_EPOCHS) -> dict:
    """Seconds per phase summed over the tasks done: as measured and at the paper's epochs."""
    measured = {phase: sum(t[phase] for t in timing) for phase in PHASES}
    measured["other_s"] = sum(t["total_s"] - sum(t[phase] for phase in PHASES) for t in timing)
    paper = dict(measured)
    paper["train_s"] = sum(extrapolate_train(t["train_s"], epochs.get(task, []), paper_epochs)
                           for task, t in enumerate(timing))
    measured["total_s"], paper["total_s"] = sum(measured.values()), sum(paper.values())
    return {"measured": measured, "at_paper_epochs": paper, "paper_epochs": paper_epochs}


def recipe_overrides(model_dir: str, data_dir: str, output: Path, epochs: int) -> dict:
    on_gpu = torch.cuda.is_available()
    return dict(model_name_or_path=model_dir, data_dir=data_dir, num_train_epochs=epochs, output_dir=str(output),
                save_strategy="no", use_cpu=not on_gpu, report_to="none", disable_tqdm=True)


def run(model_dir: str, data_dir: str, output: Path, epochs: int, out: str, tiny: bool, report: dict) -> dict:
    """The recipe's tasks through ContinualRunner; ``report['paper_scale']`` rewritten to ``out`` after each task."""
    from segp_hf.recipe import load_recipe, parse_config
    from segp_hf.run.continual import ContinualRunner

    recipe = load_recipe(str(HERE.parent / "segp_hf" / "recipes" / "cifar100_10tasks.yaml"))
    recipe.update(recipe_overrides(model_dir, data_dir, output, epochs))
    if tiny:  # toy sizes on the CPU: fewer anchors and PGD steps
        recipe.update(anchors_per_class=1, dpgd_steps=1, dataloader_num_workers=0)
    recipe.pop("zero_shot_sets", None)  # held-out sets need downloads
    start = time.perf_counter()
    runner = ContinualRunner(*parse_config(recipe))
    runner.check_output_dir()
    epoch_times: dict[int, list[float]] = {}
    epoch_recorder(runner, epoch_times)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    result = report["paper_scale"] = {"setup_s": time.perf_counter() - start, "epochs_run": epochs, "train_images": 0}
    for task in range(runner.data_args.num_tasks):
        metrics = runner.run_task(task)
        result["train_images"] += len(runner.state.train_dataset)
        timing = runner.timing[: task + 1]
        result.update(tasks_completed=task + 1, timing=timing, epoch_s=epoch_times, last_accuracy=metrics.get("last"),
                      wall_s=time.perf_counter() - start, phases=extrapolated_totals(timing, epoch_times))
        if torch.cuda.is_available():
            result["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
        write_json(out, report)
    result["settings"] = {key: recipe[key] for key in ("num_tasks", "global_train_batch_size", "anchor_batch_size",
                                                       "anchors_per_class", "dpgd_steps", "bf16", "pixel_cache",
                                                       "dataloader_num_workers", "num_train_epochs")}
    write_json(out, report)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="Toy model, 2 train + 1 test images per class (CPU).")
    parser.add_argument("--epochs", type=int, default=2, help="Epochs run per task (the recipe's 10 extrapolated).")
    parser.add_argument("--out", default=str(HERE / "results" / "paper_scale.json"))
    args = parser.parse_args(argv)
    from gpu_check import save_model
    from real_size import cifar_words, fabricated_cifar100

    report = {"machine": machine(), "tiny": args.tiny,
              "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None}
    with tempfile.TemporaryDirectory(prefix="segp-paper-scale-") as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        model_dir = save_model(tmp / "model", args.tiny, cifar_words())
        data_dir = fabricated_cifar100(tmp / "cifar100", *((2, 0, 1) if args.tiny else (500, 0, 100)))
        report["prepare_s"] = time.perf_counter() - start
        run(model_dir, data_dir, tmp / "run", args.epochs, args.out, args.tiny, report)
    print(table(report["paper_scale"]))
    return report


def table(result: dict) -> str:
    measured, paper = result["phases"]["measured"], result["phases"]["at_paper_epochs"]
    lines = [f"CIFAR-100 recipe, {result['tasks_completed']} tasks, {result['epochs_run']} epochs run per task "
             f"-> {result['phases']['paper_epochs']} extrapolated",
             f"{'phase':14} {'measured s':>11} {'paper epochs s':>15}"]
    for phase in (*PHASES, "other_s", "total_s"):
        lines.append(f"{phase[:-2]:14} {measured[phase]:>11.1f} {paper[phase]:>15.1f}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
