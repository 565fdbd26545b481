"""Per-task checkpoints: ``OUTPUT/task-k/`` written atomically, and reading them back for resume.

A task directory holds the adapter (PEFT format), ``prototypes.safetensors``, ``classes.json`` (class
order and names seen so far), ``segp_config.json`` (the run's settings) and ``metrics.json`` (this
task's accuracy-matrix row and the metrics so far). It is built under a temporary name and renamed
into place, so a kill never leaves a half-written ``task-k``.

While task k trains, the Trainer's own checkpoints go to ``OUTPUT/.trainer/task-k/checkpoint-N`` (with the
run's settings beside them); a rerun after a kill resumes the task from the newest complete one, and the
folder is removed once ``task-k`` is saved.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

TASK_PREFIX = "task-"
PROTOTYPES_FILE = "prototypes.safetensors"
CLASSES_FILE = "classes.json"
CONFIG_FILE = "segp_config.json"
METRICS_FILE = "metrics.json"
RESULTS_FILE = "results.json"


TRAINER_DIR = ".trainer"


def task_dir(output_dir, task: int) -> Path:
    return Path(output_dir) / f"{TASK_PREFIX}{task}"


def trainer_dir(output_dir, task: int) -> Path:
    """Where the Trainer writes its checkpoints inside task ``task`` (removed once the task is saved)."""
    return Path(output_dir) / TRAINER_DIR / f"{TASK_PREFIX}{task}"


def start_trainer_dir(output_dir, task: int, config: dict) -> Path:
    """A fresh Trainer directory for ``task`` holding the run's settings (checked before resuming in it)."""
    folder = trainer_dir(output_dir, task)
    shutil.rmtree(folder, ignore_errors=True)
    write_json_atomic(folder / CONFIG_FILE, config)
    return folder


def remove_trainer_dir(output_dir, task: int) -> None:
    folder = trainer_dir(output_dir, task)
    shutil.rmtree(folder, ignore_errors=True)
    try:
        folder.parent.rmdir()  # .trainer itself, once no task is in progress
    except OSError:
        pass


def last_trainer_checkpoint(folder: Path) -> Path | None:
    """The newest complete ``checkpoint-N`` in ``folder``. The Trainer writes ``trainer_state.json``
    last, so a checkpoint a kill cut short lacks it (or holds it truncated) and is skipped."""
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

    if not (Path(folder) / CONFIG_FILE).is_file():
        return None
    steps = []
    for path in Path(folder).glob(f"{PREFIX_CHECKPOINT_DIR}-*"):
        suffix = path.name.rsplit("-", 1)[-1]
        if suffix.isdigit() and _readable_json(path / "trainer_state.json"):
            steps.append((int(suffix), path))
    return max(steps)[1] if steps else None


def _readable_json(path: Path) -> bool:
    try:
        read_json(path)
    except (OSError, ValueError):
        return False
    return True


def nan_to_none(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, (list, tuple)):
        return [nan_to_none(v) for v in value]
    if isinstance(value, dict):
        return {k: nan_to_none(v) for k, v in value.items()}
    return value


def none_to_nan(row):
    return [math.nan if v is None else float(v) for v in row]


def write_json_atomic(path: Path, payload) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as handle:
        json.dump(nan_to_none(payload), handle, indent=2, allow_nan=False)
        handle.write("\n")
    os.replace(handle.name, path)


def save_task(output_dir, task: int, model, prototypes, classes: dict, config: dict, metrics: dict) -> Path:
    """Write task ``task``'s checkpoint atomically; ``metrics.json`` last marks it complete."""
    final = task_dir(output_dir, task)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.tmp-"))
    try:
        getattr(model, "module", model).save_pretrained(staging)
        if prototypes is not None:
            save_file({"prototypes": prototypes.detach().float().cpu().contiguous()}, staging / PROTOTYPES_FILE)
        write_json_atomic(staging / CLASSES_FILE, classes)
        write_json_atomic(staging / CONFIG_FILE, config)
        write_json_atomic(staging / METRICS_FILE, metrics)
        if final.exists():  # an older, superseded copy of this task (e.g. rerun after a change)
            shutil.rmtree(final)
        os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


def is_complete(path: Path) -> bool:
    return (Path(path) / METRICS_FILE).is_file()


def completed_tasks(output_dir) -> int:
    """How many tasks, from task-0 on without a gap, have a complete checkpoint."""
    count = 0
    while is_complete(task_dir(output_dir, count)):
        count += 1
    return count


def read_json(path):
    with open(path) as handle:
        return json.load(handle)


def load_prototypes(path: Path) -> torch.Tensor | None:
    file = Path(path) / PROTOTYPES_FILE
    return load_file(file)["prototypes"] if file.is_file() else None


def load_adapter_weights(model, path: Path) -> None:
    """Load a saved adapter's weights into the live PeftModel (same architecture)."""
    from peft import set_peft_model_state_dict

    weights = load_file(Path(path) / "adapter_model.safetensors")
    result = set_peft_model_state_dict(getattr(model, "module", model), weights)
    unexpected = getattr(result, "unexpected_keys", None)
    if unexpected:
        raise ValueError(f"checkpoint {path} has weights this model lacks: {unexpected[:5]}")
