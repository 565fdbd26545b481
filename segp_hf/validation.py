"""The rules every setting must satisfy, checked before any model or data is loaded.

``RULES`` is the single table: each rule names a setting (or a command-line argument of one command), its
kind (``range``, ``choice``, ``path`` or ``combination``), what is allowed, and what to do when it is not.
Settings are checked where their dataclass is built (``__post_init__``), so a value is refused before
TrainingArguments' own set-up runs; combinations are checked by ``config.parse_config`` once all three
argument objects exist; command-line arguments by ``cli.py``. The README's Troubleshooting table of these
rules is generated from ``RULES`` (``python -m segp_hf.validation``) and a test keeps the two equal.

A failed rule raises ``RecipeError`` with one line: the setting, the value given and what is allowed.
The kinds of rule and their builders are in ``rule_kinds.py``; the checks that look beyond one value (paths,
the benchmark registry, the parallel set-up) in ``setting_checks.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .errors import RecipeError
from .rule_kinds import (
    Range, Rule, at_least, choice, combination, enum_values, fraction, path_rule, positive, range_rule,
)
from .setting_checks import (
    both_precisions, checkpoint_ref, class_order_ids, existing_folder, global_batch, local_model, not_a_file,
    recipe_file, registered_benchmarks, retention_sets, tasks_vs_classes, variant_list,
)
from .switches import VARIANTS

# The linear layers of CLIP's two towers that can carry LoRA (transformers' CLIP module names).
CLIP_LINEAR_LAYERS = ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")
SEED_MAX = 2**32 - 1  # numpy's seeding (transformers.set_seed) refuses anything larger


# ------------------------------------------------------------------------------------------ the table
RULES: tuple[Rule, ...] = (
    # model
    at_least("lora_r", 1),
    positive("lora_alpha", optional=True),
    fraction("lora_dropout", high_open=True),
    choice("lora_target_modules", CLIP_LINEAR_LAYERS, "list CLIP linear layers only", many=True),
    path_rule("model_name_or_path", "a Hub id, `toy-clip`, or an existing local folder", local_model,
              "point it at a saved CLIP folder or use a Hub id"),
    # data
    at_least("num_tasks", 1),
    at_least("max_train_images_per_class", 1, optional=True),
    at_least("max_eval_images_per_class", 1, optional=True),
    choice("zero_shot_sets", retention_sets, "list held-out sets by name", many=True),
    at_least("zero_shot_max_images", 1, optional=True),
    path_rule("zero_shot_data_dir", "an existing folder (or unset)", existing_folder("zero_shot_data_dir"),
              "point it at a folder holding one folder per zero-shot set"),
    choice("image_preprocessing", ("hf", "openai")),
    choice("pixel_cache", ("memory", "disk", "off")),
    positive("pixel_cache_budget_gb"),
    Rule("benchmark", "choice", "one of the registered benchmarks (checked by `load_benchmark`, first thing, so a "
         "test or library caller may pass its own benchmark object)", "pick one from the list in the message",
         lambda value: None if value in registered_benchmarks() else f"unknown benchmark '{value}'", deferred=True),
    choice("imagenet_r_split", ("auto", "rapf", "stratified")),
    path_rule("data_dir", "an existing folder (or unset)", existing_folder("data_dir"),
              "point --data_dir at a save_to_disk copy or an image folder"),
    # method
    choice("variant", VARIANTS),
    at_least("lambda_acgd", 0),
    positive("acgd_temperature"),
    at_least("anchor_batch_size", 1),
    at_least("lambda_tsgr", 0),
    at_least("tsgr_k", 1),
    positive("tsgr_temperature"),
    choice("tsgr_reference", ("pretrained", "teacher")),
    at_least("anchors_per_class", 1),
    at_least("dpgd_steps", 0, "0 keeps the seed images unperturbed"),
    at_least("dpgd_step_size", 0),
    at_least("dpgd_epsilon", 0),
    at_least("dpgd_lambda_visual", 0),
    at_least("dpgd_batch_size", 1),
    choice("prototype_transfer", ("weighted", "mean")),
    positive("prototype_temperature"),
    at_least("beta", 0),
    choice("raw_feature", ("pre_projection", "projected")),
    choice("cls_classes", ("current", "seen")),
    at_least("hub_push_retries", 0),
    at_least("hub_push_backoff", 0),
    # training (TrainingArguments)
    positive("learning_rate"),
    positive("num_train_epochs"),
    range_rule("max_steps", Range(1, also=(-1, 0)), "-1 (or 0) trains num_train_epochs"),
    at_least("per_device_train_batch_size", 1),
    at_least("per_device_eval_batch_size", 1),
    at_least("global_train_batch_size", 1, optional=True),
    at_least("gradient_accumulation_steps", 1),
    at_least("eval_accumulation_steps", 1, optional=True),
    at_least("warmup_steps", 0, "a value below 1 is a fraction of the steps"),
    at_least("weight_decay", 0),
    at_least("max_grad_norm", 0, "0 turns clipping off"),
    fraction("adam_beta1", high_open=True),
    fraction("adam_beta2", high_open=True),
    at_least("adam_epsilon", 0),
    fraction("label_smoothing_factor", high_open=True),
    positive("neftune_noise_alpha", optional=True),
    positive("logging_steps", "a value below 1 is a fraction of the steps"),
    positive("save_steps", "a value below 1 is a fraction of the steps"),
    positive("eval_steps", optional=True),
    at_least("eval_delay", 0),
    at_least("save_total_limit", 1, "unset keeps every checkpoint", optional=True),
    range_rule("seed", Range(0, SEED_MAX)),
    range_rule("data_seed", Range(0, SEED_MAX, optional=True)),
    at_least("dataloader_num_workers", 0),
    at_least("dataloader_prefetch_factor", 1, optional=True),
    at_least("torch_empty_cache_steps", 1, optional=True),
    at_least("ddp_bucket_cap_mb", 1, optional=True),
    at_least("ddp_timeout", 1),
    at_least("local_rank", -1, "set by the launcher; leave it alone"),
    choice("optim", enum_values("OptimizerNames")),
    choice("lr_scheduler_type", enum_values("SchedulerType")),
    choice("save_strategy", enum_values("SaveStrategy")),
    choice("eval_strategy", enum_values("IntervalStrategy")),
    choice("logging_strategy", enum_values("IntervalStrategy")),
    path_rule("output_dir", "a folder (created if missing), not a file", not_a_file("output_dir"),
              "choose another --output_dir"),
    # combinations
    combination("class_order + benchmark", "comma-separated ids: each class id exactly once", class_order_ids,
                "give every native label id exactly once"),
    combination("num_tasks + benchmark", "num_tasks <= the benchmark's classes", tasks_vs_classes,
                "lower num_tasks (uneven splits are fine)"),
    combination("global_train_batch_size + gradient_accumulation_steps",
                "global batch divisible by devices x gradient_accumulation_steps", global_batch,
                "choose a global batch that is a multiple of devices x gradient_accumulation_steps"),
    combination("bf16 + fp16", "at most one of them", both_precisions, "set only one"),
    # command-line arguments of one command
    path_rule("--config", "an existing recipe file", recipe_file, "pass a YAML recipe file",
              command="train|eval|ablate"),
    path_rule("--checkpoint", "an existing run/task folder or a Hub repo id, @task-K", checkpoint_ref,
              "give a run's output dir or a Hub repo", command="eval"),
    path_rule("output_dir", "an existing run folder", existing_folder("output_dir", optional=False),
              "give the output dir of a run", command="push"),
    at_least("--seeds", 1, command="ablate"),
    Rule("--variants", "choice", "comma-separated variants, each one of `" + "`, `".join(VARIANTS) + "`",
         "pick from the list in the message", variant_list, command="ablate"),
    at_least("--retries", 0, command="push"),
    at_least("--backoff", 0, command="push"),
    at_least("--k", 1, optional=True, command="diagnose"),
    range_rule("--confusion_threshold", Range(0, 1), "a share of an old class's images", command="diagnose"),
)


def setting_rules() -> list[Rule]:
    return [rule for rule in RULES if rule.command is None and rule.kind != "combination" and not rule.deferred]


def rules_for(setting: str) -> list[Rule]:
    return [rule for rule in setting_rules() if rule.setting == setting]


def check_values(args) -> None:
    """Every range, choice and path rule of the settings ``args`` (a dataclass) has."""
    for rule in setting_rules():
        if hasattr(args, rule.setting):
            problem = rule.check(getattr(args, rule.setting))
            if problem:
                raise RecipeError(rule.message(problem))


def check_combinations(model_args, data_args, config) -> None:
    for rule in RULES:
        if rule.kind == "combination":
            problem = rule.check(model_args, data_args, config)
            if problem:
                raise RecipeError(rule.message(problem))


def check_command(command: str, args) -> None:
    """The rules of ``command``'s own arguments (an argparse namespace)."""
    for rule in RULES:
        if rule.command and command in rule.command.split("|"):
            name = rule.setting.lstrip("-")
            value = getattr(args, name, None)
            if rule.kind == "path" and value is None:
                continue
            problem = rule.check(value)
            if problem:
                raise RecipeError(rule.message(problem))


# ------------------------------------------------------------------------------------------- README
README_BEGIN = "<!-- validation rules: generated by `python -m segp_hf.validation`; do not edit by hand -->"
README_END = "<!-- end of validation rules -->"


def markdown_table() -> str:
    lines = ["| setting | kind | allowed | what to do |", "|---|---|---|---|"]
    for rule in RULES:
        where = f" (`segp-hf {rule.command.replace('|', '/')}`)" if rule.command else ""
        allowed = rule.allowed.replace("|", "\\|")
        lines.append(f"| `{rule.setting}`{where} | {rule.kind} | {allowed} | {rule.fix or 'use an allowed value'} |")
    return "\n".join(lines)


def readme_block() -> str:
    return f"{README_BEGIN}\n{markdown_table()}\n{README_END}"


def update_readme(path) -> bool:
    """Rewrite the generated block of ``path``; True when it changed."""
    text = Path(path).read_text()
    start, end = text.index(README_BEGIN), text.index(README_END) + len(README_END)
    new = text[:start] + readme_block() + text[end:]
    Path(path).write_text(new)
    return new != text


if __name__ == "__main__":
    if sys.argv[1:2] == ["--write"]:
        print("README updated" if update_readme(sys.argv[2] if len(sys.argv) > 2 else "docs/troubleshooting.md") else "README up to date")
    else:
        print(markdown_table())
