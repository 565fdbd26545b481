"""Which settings a resumed run may change: an interrupted run resumes only under its saved settings (but for
those that cannot change results), and a branch (``train --resume_from``) keeps the model, the adapter and the
task sequence."""

from __future__ import annotations

import logging
from pathlib import Path

from ..errors import RecipeError
from ..recipe import default_settings
from . import checkpoints as ckpt

logger = logging.getLogger(__name__)

# Settings that may differ between an interrupted run and its resumption without changing results.
RESUME_FREE_KEYS = {"output_dir", "logging_steps", "report_to", "per_device_eval_batch_size", "dpgd_batch_size",
                    "hub_push_retries", "hub_push_backoff", "base_model_commit", "dataset_commit", "zero_shot_sets",
                    "model_family",  # derived from the model, which is compared
                    "zero_shot_revisions", "zero_shot_every_task", "zero_shot_data_dir", "zero_shot_max_images",
                    "pixel_cache", "pixel_cache_budget_gb"}  # the cache gives bit-identical inputs
# What a branch (train --resume_from) must keep: the adapter's shape and the task sequence.
BRANCH_FIXED_KEYS = {"model_name_or_path", "model_revision", "lora_r", "lora_alpha", "lora_target_modules",
                     "benchmark", "num_tasks", "class_order", "dataset_name", "imagenet_r_split", "prompt_template"}


def read_saved_settings(folder: Path, current: dict) -> dict:
    """The settings saved in ``folder``, plus, for each setting they lack (a run saved before the setting existed),
    the setting's default, which is what that run used."""
    saved = ckpt.read_json(folder / ckpt.CONFIG_FILE)
    missing = [key for key in current if key not in saved]
    if not missing:
        return saved
    defaults = ckpt.nan_to_none(default_settings(saved.get("variant")))
    return {**{key: defaults.get(key) for key in missing}, **saved}


def changed_settings(saved: dict, current: dict) -> list[str]:
    return sorted(
        key for key in set(saved) | set(current)
        if key not in RESUME_FREE_KEYS and saved.get(key) != ckpt.nan_to_none(current.get(key))
    )


def check_resume_config(saved: dict, current: dict, path: Path):
    """Refuse to resume the run saved at ``path`` under settings that would change its results."""
    changed = changed_settings(saved, current)
    if changed:
        details = ", ".join(f"{k}: saved {saved.get(k)!r} vs now {current.get(k)!r}" for k in changed[:5])
        raise RecipeError(
            f"cannot resume from {path}: the settings differ from the saved run ({details}). "
            "Use the original settings or a new --output_dir."
        )


def check_branch_config(saved: dict, current: dict, path: Path):
    """Refuse to branch off the task saved at ``path`` with another model, adapter or task sequence; warn of the
    other changes."""
    changed = changed_settings(saved, current)
    fixed = [key for key in changed if key in BRANCH_FIXED_KEYS]
    if fixed:
        raise RecipeError(
            f"cannot continue after {path}: {', '.join(fixed)} differ from its run, and a branch must keep "
            f"the model, the adapter and the task sequence (saved: "
            f"{', '.join(f'{k}={saved.get(k)!r}' for k in fixed)})"
        )
    if changed:
        logger.warning("Continuing after %s with changed settings: %s", path, ", ".join(changed))


def resumed_base_revision(output_dir, model_args) -> str | None:
    """The base model revision to load: ``--model_revision`` when given; else, when ``output_dir`` holds finished
    tasks of the same base, the commit they were trained on (``base_model_commit``), so that a base whose default
    branch moved on meanwhile does not change a run (or a branch of it) halfway; else None (the newest)."""
    if model_args.model_revision:
        return model_args.model_revision
    done = ckpt.completed_tasks(output_dir) if Path(output_dir).is_dir() else 0
    if done == 0:
        return None
    try:
        saved = ckpt.read_json(ckpt.task_dir(output_dir, done - 1) / ckpt.CONFIG_FILE)
    except (OSError, ValueError):  # damaged: the resume itself names the file (ckpt.check_resumable)
        return None
    return saved.get("base_model_commit") if saved.get("model_name_or_path") == model_args.model_name_or_path else None
