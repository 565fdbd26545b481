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
import logging
import math
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..errors import DamagedCheckpointError, OutputWriteError, RecipeError

logger = logging.getLogger(__name__)

TASK_PREFIX = "task-"
PROTOTYPES_FILE = "prototypes.safetensors"
CLASSES_FILE = "classes.json"
CONFIG_FILE = "segp_config.json"
METRICS_FILE = "metrics.json"
RESULTS_FILE = "results.json"
ADAPTER_FILE = "adapter_model.safetensors"
ADAPTER_CONFIG_FILE = "adapter_config.json"
# What a complete task-k holds (prototypes only for variants that use them).
TASK_FILES = (ADAPTER_CONFIG_FILE, ADAPTER_FILE, CLASSES_FILE, CONFIG_FILE, METRICS_FILE)


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
    """The newest intact ``checkpoint-N`` in ``folder``. The Trainer writes ``trainer_state.json`` last, so
    a checkpoint a kill cut short lacks it (or holds it truncated); one with any file that does not read
    back (truncated or corrupt weights, optimizer, scheduler, RNG state) is skipped too, with a warning
    naming the file, and the next older one is used. No intact one (or the folder's settings unreadable):
    None, and the task restarts from its beginning."""
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

    settings = Path(folder) / CONFIG_FILE
    if not settings.is_file():
        return None
    if file_damage(settings):
        logger.warning("%s is damaged (%s): the task restarts from its beginning", settings, file_damage(settings))
        return None
    steps = []
    for path in Path(folder).glob(f"{PREFIX_CHECKPOINT_DIR}-*"):
        suffix = path.name.rsplit("-", 1)[-1]
        if suffix.isdigit() and (path / "trainer_state.json").is_file():
            steps.append((int(suffix), path))
    for _, path in sorted(steps, reverse=True):
        damaged = damaged_files(path)
        if not damaged:
            return path
        logger.warning("Skipping the in-task checkpoint %s: %s is damaged (%s)", path, *damaged[0])
    return None


def check_writable(output_dir: Path) -> None:
    """Create ``output_dir`` and prove a file can be written there, before any training."""
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        probe = output_dir / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as error:
        raise RecipeError(
            f"output_dir {output_dir} is not writable ({error.strerror}); choose another --output_dir"
        ) from None


def free_space(folder) -> str:
    """Free space on the disk holding ``folder`` (or its nearest existing parent), in words."""
    folder = Path(folder).resolve()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return "unknown space"
    return f"{free / 2**30:.2f} GB" if free >= 2**30 else f"{free / 2**20:.1f} MB"


def write_failure(folder, error: OSError, what: str) -> OutputWriteError:
    """The one-line error of a write that failed in ``folder`` (a full disk, a lost mount): the folder, why, the
    free space, and that what was saved before is intact."""
    why = error.strerror or f"{type(error).__name__}: {error}"
    return OutputWriteError(
        f"could not write {what} to {folder}: {why}; {free_space(folder)} free there. The finished tasks and the last "
        "in-task checkpoint are intact: free space and rerun the same command to continue")


def file_damage(path: Path) -> str | None:
    """Why ``path`` does not read back, or None. JSON is parsed, safetensors' header is checked against
    the file's length (a truncated file fails), torch's zip files (optimizer, scheduler, RNG state) have
    every member's CRC checked. A flipped bit inside safetensors data cannot be seen (no checksum)."""
    path = Path(path)
    try:
        if path.suffix == ".json":
            read_json(path)
        elif path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), "pt") as handle:
                list(handle.keys())
        elif path.suffix in (".pt", ".pth", ".bin"):
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
            if bad is not None:
                return f"member {bad} fails its CRC check"
    except Exception as error:  # any failure to read back is damage; the caller names the file
        return " ".join(f"{type(error).__name__}: {error}".split())[:200]
    return None


def damaged_files(folder: Path, required=()) -> list[tuple[str, str]]:
    """``(file name, why)`` for each file of ``folder`` that does not read back, and each required one missing."""
    folder = Path(folder)
    problems = [(name, "missing") for name in required if not (folder / name).is_file()]
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if path.is_file() and not path.name.startswith("."):
            why = file_damage(path)
            if why:
                problems.append((path.name, why))
    return problems


def verify_task(folder: Path, task: int, advice: str = "", required=()) -> None:
    """Raise ``DamagedCheckpointError`` naming the first damaged or missing file of task ``task``'s folder
    (``required``: the files a variant keeps besides :data:`TASK_FILES`, e.g. a competitor's state)."""
    problems = damaged_files(folder, (*TASK_FILES, *required))
    if problems:
        name, why = problems[0]
        if not advice:
            advice = (f"Earlier tasks are not affected: restore this file or use task-{task - 1}." if task > 0
                      else "Restore this file (or fetch the task again).")
        raise DamagedCheckpointError(f"task-{task}: {Path(folder) / name} is damaged ({why}). {advice}")


def read_task_json(folder: Path, name: str, task: int | None = None):
    """A JSON file of a task folder; a damaged one raises ``DamagedCheckpointError`` naming it and the task."""
    path = Path(folder) / name
    try:
        return read_json(path)
    except ValueError as error:
        which = f"task-{task}" if task is not None else f"the checkpoint {folder}"
        raise DamagedCheckpointError(f"{which}: {path} is damaged ({type(error).__name__}: {error})") from None


def check_resumable(output_dir, done: int, required=()) -> None:
    """Before resuming after task ``done - 1``: that task's files all read back, and every earlier task's
    metrics. A damaged task is never skipped or deleted here: the message says how to resume from the one before."""
    last = task_dir(output_dir, done - 1)
    if done > 1:
        advice = (f"Nothing was changed. To resume from task-{done - 2} instead, move {last} out of "
                  f"{output_dir} (task-{done - 1} is then trained again) and rerun.")
    else:
        advice = f"Nothing was changed. To start the run over, move {last} out of {output_dir} and rerun."
    verify_task(last, done - 1, advice, required)
    for task in range(done - 1):
        read_task_json(task_dir(output_dir, task), METRICS_FILE, task)


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


def save_task(output_dir, task: int, model, prototypes, classes: dict, config: dict, metrics: dict,
              variant_state=None) -> Path:
    """Write task ``task``'s checkpoint atomically; ``metrics.json`` last marks it complete (``variant_state``:
    a competitor's state across tasks, segp_hf/variants/)."""
    final = task_dir(output_dir, task)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.tmp-"))
    try:
        getattr(model, "module", model).save_pretrained(staging)
        if prototypes is not None:
            save_file({"prototypes": prototypes.detach().float().cpu().contiguous()}, staging / PROTOTYPES_FILE)
        if variant_state is not None:
            variant_state.save(staging)
        write_json_atomic(staging / CLASSES_FILE, classes)
        write_json_atomic(staging / CONFIG_FILE, config)
        write_json_atomic(staging / METRICS_FILE, metrics)
        if final.exists():  # an older, superseded copy of this task (e.g. rerun after a change)
            shutil.rmtree(final)
        os.replace(staging, final)
    except BaseException as error:
        shutil.rmtree(staging, ignore_errors=True)  # the task's older copy, if any, is still in place
        if isinstance(error, OSError):
            raise write_failure(final.parent, error, f"task-{task}") from None
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
