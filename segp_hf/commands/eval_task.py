"""Using a saved task checkpoint from the command line: ``segp-hf eval --checkpoint REPO_OR_DIR@task-k``
and the settings behind ``segp-hf train --resume_from REPO_OR_DIR@task-k``."""

from __future__ import annotations

import dataclasses
import tempfile

from transformers import default_data_collator

from ..errors import RecipeError
from ..hub.inference import load_task
from ..hub.tasks import parse_checkpoint_ref, resolve_task_folder
from ..recipe import known_keys, parse_config
from ..run import checkpoints as ckpt

# Saved keys that are not settings of a new run.
_NOT_SETTINGS = {"output_dir"}


def saved_settings(source: str, task: int, cache_dir=None, token=None) -> dict:
    """The recipe a checkpoint was trained with (its segp_config.json, known settings only)."""
    folder, _ = resolve_task_folder(source, task, cache_dir, token)
    saved = ckpt.read_task_json(folder, ckpt.CONFIG_FILE, task)
    valid = set(known_keys()) - _NOT_SETTINGS
    return {key: value for key, value in saved.items() if key in valid and value is not None}


def evaluate_checkpoint(ref: str, recipe: dict | None = None, overrides: list[str] | None = None,
                        benchmark=None, cache_dir=None, token=None) -> dict:
    """Accuracy of task checkpoint ``ref`` on the test images of every task it has seen, scored exactly as
    the run scored them (SeGPTrainer.evaluate: dual-path over the seen classes, gathered across ranks), with
    the adapter merged into the base weights (``load_task``'s default: the logits equal the adapter's up to
    float rounding, prediction runs at the base CLIP's speed).

    The data settings are the checkpoint's own unless ``recipe`` / ``overrides`` change them (e.g.
    ``--data_dir``); the class names must match the checkpoint's."""
    from ..evaluation.rounds import accuracy_round
    from ..method.task_state import TaskState
    from ..run.continual import build_scenario
    from ..trainer import SeGPTrainer

    source, task = parse_checkpoint_ref(ref)
    loaded = load_task(source, task, cache_dir=cache_dir, token=token)
    task = loaded.task
    settings = {**saved_settings(source, task, cache_dir, token), **(recipe or {})}
    with tempfile.TemporaryDirectory(prefix="segp-eval-") as scratch:
        settings.update(output_dir=scratch, report_to="none", push_to_hub=False)
        model_args, data_args, config = parse_config(settings, overrides)
        scenario, _ = build_scenario(model_args, data_args, benchmark)
        end = len(loaded.class_names)
        if scenario.ordered_class_names[:end] != loaded.class_names:
            raise RecipeError(
                f"the dataset's classes in class order ({scenario.ordered_class_names[:end][:5]}...) differ from "
                f"the checkpoint's ({loaded.class_names[:5]}...); use the same benchmark and class_order"
            )
        state = TaskState.for_run(config.variant, loaded.text_inputs, loaded.logit_scale, scenario.pixel_normalizer,
                                  loaded.prototypes)
        state.begin_task(task, scenario.bounds[task], None, default_data_collator)
        trainer = SeGPTrainer(model=loaded.model, args=dataclasses.replace(config, push_to_hub=False),
                              data_collator=default_data_collator, task_state=state, variant_state=loaded.variant_state)
        tests = {other: scenario.test_dataset(other) for other in range(task + 1)}
        result = accuracy_round(trainer, scenario, task, tests, task + 1, task_incremental=False)
        row, sizes = result.row, [result.test_sizes[other] for other in range(task + 1)]
    accuracy = sum(a * n for a, n in zip(row, sizes)) / sum(sizes)
    return {"checkpoint": ref, "task": task, "classes_seen": end, "acc_per_task": row, "test_sizes": sizes,
            "accuracy": accuracy}
