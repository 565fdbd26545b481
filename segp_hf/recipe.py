"""A run's configuration from a recipe and the command line: read a recipe (flat YAML of settings: a file, or the
name of a recipe shipped in the package, ``segp-hf recipes``), refuse unknown keys, parse recipe + ``--key value``
overrides into (ModelArguments, DataArguments, SeGPConfig) (the dataclasses in ``config.py``), and the flat form of
the settings written to every checkpoint.
"""

from __future__ import annotations

import difflib
import textwrap
from dataclasses import MISSING, fields
from importlib import resources
from pathlib import Path

import yaml
from transformers import HfArgumentParser, TrainingArguments

from .config import ARGUMENT_CLASSES, DataArguments, ModelArguments, SeGPConfig
from .errors import RecipeError
from .run.distributed import apply_global_batch
from .validation import check_combinations
from .variants.mg_clip import config as mg_clip_config
from .variants.rapf import config as rapf_config


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


def shipped_recipes() -> dict[str, str]:
    """The recipes shipped in the package (``segp_hf/recipes/*.yaml``): name (file stem) -> path."""
    folder = resources.files("segp_hf") / "recipes"
    found = [entry for entry in folder.iterdir() if entry.name.endswith(".yaml") and entry.is_file()]
    return {entry.name[: -len(".yaml")]: str(entry) for entry in sorted(found, key=lambda e: e.name)}


def recipe_summary(path: str) -> str:
    """A recipe's first comment line (what ``segp-hf recipes`` shows for it)."""
    for line in Path(path).read_text().splitlines():
        if line.startswith("#"):
            return line.lstrip("#").strip()
    return ""


def find_recipe(value: str) -> str:
    """The recipe file ``value`` names: an existing path always wins; else a bare name, with or without
    ``.yaml``, of a shipped recipe (so an installed package reaches its own recipes from any folder)."""
    if Path(value).expanduser().exists() or Path(value).name != value:  # a file, or meant as a path
        return value
    name = value[: -len(".yaml")] if value.endswith(".yaml") else value
    shipped = shipped_recipes()
    if name in shipped:
        return shipped[name]
    close = difflib.get_close_matches(name, shipped, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise RecipeError(f"--config {value!r}: no such recipe file, and no shipped recipe of that name{hint}; "
                      f"shipped recipes: {', '.join(shipped)} (segp-hf recipes lists them)")


def load_recipe(path: str | None) -> dict:
    """The settings of a recipe: a YAML file, or the name of a shipped recipe (:func:`find_recipe`)."""
    if path is None:
        return {}
    path = find_recipe(str(path))
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
    argv = _recipe_to_argv(recipe) + _recipe_to_argv(_competitor_defaults(recipe, overrides)) + overrides
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


def _given(overrides: list[str]) -> dict:
    """``{key: value}`` of the ``--key value`` / ``--key=value`` pairs on a command line (value None for a flag)."""
    given = {}
    for i, arg in enumerate(overrides):
        if arg.startswith("--"):
            key, _, value = arg[2:].partition("=")
            nxt = overrides[i + 1] if i + 1 < len(overrides) else None
            given[key] = value if _ else (nxt if nxt is not None and not nxt.startswith("--") else None)
    return given


PUBLISHED_DEFAULTS = {"rapf": rapf_config.published_defaults, "mg-clip": mg_clip_config.published_defaults}


def _competitor_defaults(recipe: dict, overrides: list[str]) -> dict:
    """The published settings of a competitor variant (its ``config.py``) that nothing explicit overrides:
    explicit = on the command line, or in a recipe written for that variant (its own ``variant`` key)."""
    given = _given(overrides)
    variant = given.get("variant") or recipe.get("variant", "segp-cl")
    published = PUBLISHED_DEFAULTS.get(variant)
    defaults = published(given.get("benchmark") or recipe.get("benchmark", "shapes")) if published else {}
    explicit = set(given) | (set(recipe) if recipe.get("variant") == variant else set())
    if explicit & {"per_device_train_batch_size", "gradient_accumulation_steps"}:
        explicit.add("global_train_batch_size")  # a batch given explicitly is never replaced
    return {key: value for key, value in defaults.items() if key not in explicit}


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


SAVED_BEFORE = {"mg-clip": mg_clip_config.SAVED_BEFORE}  # a variant's own settings whose default changed


def default_settings(variant: str | None = None) -> dict:
    """:func:`config_to_dict` of a run with every default: what a run saved before a setting existed used
    (:data:`LEGACY_DEFAULTS` where the default has changed since; for a run of ``variant``, also that variant's
    ``SAVED_BEFORE``)."""
    return {**config_to_dict(ModelArguments(), DataArguments(), SeGPConfig(output_dir="unused")), **LEGACY_DEFAULTS,
            **SAVED_BEFORE.get(variant, {})}


_TRAINING_KEYS = (
    "learning_rate", "optim", "optim_args", "lr_scheduler_type", "per_device_train_batch_size",
    "num_train_epochs", "weight_decay", "gradient_accumulation_steps", "seed", "bf16", "fp16",
    "warmup_steps", "max_steps", "max_grad_norm",
)


# ``segp-hf train --help``: our own settings grouped (model, data, method, rapf, mg-clip, run), each with its default and help
# text; every other TrainingArguments field is accepted too and documented by transformers.

TRAINING_ARGUMENTS_DOCS = "https://huggingface.co/docs/transformers/main_classes/trainer#transformers.TrainingArguments"
# SeGPConfig fields that are about running (not the method) although TrainingArguments lacks them.
RUN_FIELDS = {"global_train_batch_size", "hub_push_retries", "hub_push_backoff"}
# TrainingArguments fields SeGPConfig re-declares only to keep our columns and labels: not worth a user's eye.
PLUMBING = {"remove_unused_columns", "label_names", "ddp_find_unused_parameters"}


def _default(field) -> str:
    if field.default is not MISSING:
        return repr(field.default) if isinstance(field.default, str) else str(field.default)
    if field.default_factory is not MISSING:
        return str(field.default_factory())
    return "required"


def setting_groups() -> dict[str, list]:
    training = {f.name for f in fields(TrainingArguments)}
    declared = set(vars(SeGPConfig).get("__annotations__", {}))  # SeGPConfig's own fields and re-declarations
    ours = [f for f in fields(SeGPConfig) if f.init and f.name in declared and f.name not in PLUMBING]
    return {
        "model": [f for f in fields(ModelArguments) if f.init],
        "data": [f for f in fields(DataArguments) if f.init],
        "method": [f for f in ours if f.name not in training and f.name not in RUN_FIELDS],
        "rapf": list(fields(rapf_config.RAPFConfig)),
        "mg-clip": list(fields(mg_clip_config.MGCLIPConfig)),
        "run": [f for f in ours if f.name in training or f.name in RUN_FIELDS],
    }


def settings_epilog(width: int = 100) -> str:
    lines = []
    for group, members in setting_groups().items():
        lines.append(f"{group} settings (default in brackets):")
        for field in members:
            text = f"{field.metadata.get('help', '').strip()} [{_default(field)}]"
            head = f"  --{field.name}"
            body = textwrap.wrap(text, width=width - 30) or [""]
            first = f"{head:<30}{body[0]}" if len(head) < 29 else f"{head}\n{'':<30}{body[0]}"
            lines.append(first)
            lines.extend(f"{'':<30}{rest}" for rest in body[1:])
        lines.append("")
    lines.append(textwrap.fill(
        "Every other transformers.TrainingArguments field (bf16, gradient_accumulation_steps, save_steps, "
        "dataloader_num_workers, push_to_hub, ...) is accepted as --key value as well; see " + TRAINING_ARGUMENTS_DOCS,
        width=width))
    return "\n".join(lines)
