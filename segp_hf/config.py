"""A run's configuration from a recipe and the command line: read a recipe (flat YAML of settings), refuse
unknown keys, parse recipe + ``--key value`` overrides into (ModelArguments, DataArguments, SeGPConfig)
(the dataclasses in ``arguments.py``), and the flat form of the settings written to every checkpoint.
"""

from __future__ import annotations

import difflib
from dataclasses import fields

import yaml
from transformers import HfArgumentParser, TrainingArguments

# moved to arguments.py; kept for old imports
from .arguments import (  # noqa: F401
    ARGUMENT_CLASSES, TOY_CLIP, DataArguments, ModelArguments, SeGPConfig,
)
from .errors import RecipeError  # moved to errors.py; kept importable from here for old imports
from .parallel import apply_global_batch
from .switches import VARIANTS, MethodSwitches, method_switches  # noqa: F401 - moved to switches.py; kept for old imports
from .validation import check_combinations


def known_keys() -> list[str]:
    return sorted({f.name for cls in ARGUMENT_CLASSES for f in fields(cls) if f.init})


def _recipe_to_argv(recipe: dict) -> list[str]:
    argv = []
    for key, value in recipe.items():
        if isinstance(value, (list, tuple)):
            if value:  # an empty list is the default of every list setting, and argparse needs a value
                argv += [f"--{key}", *map(str, value)]
        elif value is None:
            continue
        else:
            argv += [f"--{key}", str(value)]
    return argv


def _check_keys(keys, source: str):
    valid = set(known_keys())
    for key in keys:
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise RecipeError(f"unknown setting '{key}' in {source}.{hint}")


def load_recipe(path: str | None) -> dict:
    if path is None:
        return {}
    try:
        with open(path) as handle:
            recipe = yaml.safe_load(handle) or {}
    except FileNotFoundError:
        raise RecipeError(f"recipe file not found: {path}") from None
    except IsADirectoryError:
        raise RecipeError(f"recipe {path} is a folder, not a YAML file") from None
    except yaml.YAMLError as error:
        raise RecipeError(f"recipe {path} is not valid YAML: {error}") from None
    if not isinstance(recipe, dict):
        raise RecipeError(f"recipe {path} must be a mapping of setting: value")
    _check_keys(recipe, f"recipe {path}")
    return recipe


def parse_config(recipe: dict | None = None, overrides: list[str] | None = None):
    """Build (ModelArguments, DataArguments, SeGPConfig) from a recipe dict and ``--key value`` overrides
    (command line wins)."""
    recipe = dict(recipe or {})
    overrides = list(overrides or [])
    _check_keys(recipe, "the recipe")
    _check_keys([arg[2:].split("=", 1)[0] for arg in overrides if arg.startswith("--")], "the command line")
    parser = HfArgumentParser(ARGUMENT_CLASSES)
    parser.error = _raise_parse_error  # argparse's own message (e.g. a non-numeric value), as one line
    argv = _recipe_to_argv(recipe) + overrides
    try:
        model_args, data_args, config, unknown = parser.parse_args_into_dataclasses(
            args=argv, return_remaining_strings=True
        )
    except RecipeError:
        raise
    except ValueError as error:  # TrainingArguments' own checks (e.g. bf16 without a GPU)
        raise RecipeError(" ".join(str(error).split())) from None
    if unknown:
        raise RecipeError(f"unexpected command-line arguments: {' '.join(unknown)}")
    check_combinations(model_args, data_args, config)
    apply_global_batch(config)
    return model_args, data_args, config


def _raise_parse_error(message: str):
    raise RecipeError(message)


def config_to_dict(model_args, data_args, config) -> dict:
    """The settings that define a run, flat, as written to every task checkpoint."""
    flat = {}
    for args in (model_args, data_args):
        flat.update({f.name: getattr(args, f.name) for f in fields(args)})
    method_fields = {f.name for f in fields(SeGPConfig)} - {f.name for f in fields(TrainingArguments)}
    training = config.to_dict()
    flat.update({name: training[name] for name in training if name in method_fields or name in _TRAINING_KEYS})
    return flat


# Settings whose default changed after runs were saved without them: what those runs really used.
LEGACY_DEFAULTS = {
    "max_grad_norm": 1.0,  # recorded since 0.2; before, TrainingArguments' default clipped at 1.0
}


def default_settings() -> dict:
    """:func:`config_to_dict` of a run with every default: what a run saved before a setting existed used
    (:data:`LEGACY_DEFAULTS` where the default has changed since)."""
    return {**config_to_dict(ModelArguments(), DataArguments(), SeGPConfig(output_dir="unused")), **LEGACY_DEFAULTS}


_TRAINING_KEYS = (
    "learning_rate", "optim", "optim_args", "lr_scheduler_type", "per_device_train_batch_size",
    "num_train_epochs", "weight_decay", "gradient_accumulation_steps", "seed", "bf16", "fp16",
    "warmup_steps", "max_steps", "max_grad_norm",
)
