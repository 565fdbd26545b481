"""The rules every setting must satisfy, checked before any model or data is loaded.

``RULES`` is the single table: each rule names a setting (or a command-line argument of one command), its
kind (``range``, ``choice``, ``path`` or ``combination``), what is allowed, and what to do when it is not.
Settings are checked where their dataclass is built (``__post_init__``), so a value is refused before
TrainingArguments' own set-up runs; combinations are checked by ``recipe.parse_config`` once all three
argument objects exist; command-line arguments by ``cli.py``. The README's Troubleshooting table of these
rules is generated from ``RULES`` (``python -m segp_hf.validation``) and a test keeps the two equal.

A failed rule raises ``RecipeError`` with one line: the setting, the value given and what is allowed.
The kinds of rule and their builders are in ``validation.py``; the checks that look beyond one value (paths,
the benchmark registry, the parallel set-up) in ``validation.py``.
"""

from __future__ import annotations

import difflib
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .errors import EXIT_CODES, RecipeError
from .method.switches import VARIANTS

# The kinds of validation rule (range, choice, path, combination) and the builders the rule table is written
# with (``validation.RULES``): each rule knows what it allows, in words, and checks a value against it.

@dataclass(frozen=True)
class Range:
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # low itself not allowed
    high_open: bool = False
    optional: bool = False  # None allowed (the setting's "unset")
    also: tuple = ()  # single values allowed outside the interval (e.g. max_steps -1)

    def ok(self, value) -> bool:
        if value is None:
            return self.optional
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            return False
        if value in self.also:
            return True
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return not (self.high is not None and (value > self.high or (self.high_open and value == self.high)))

    def describe(self) -> str:
        if self.low is not None and self.high is not None:
            text = f"in {'(' if self.low_open else '['}{_num(self.low)}, {_num(self.high)}{')' if self.high_open else ']'}"
        elif self.low is not None:
            text = f"{'>' if self.low_open else '>='} {_num(self.low)}"
        else:
            text = f"{'<' if self.high_open else '<='} {_num(self.high)}"
        extra = [_num(v) for v in self.also] + (["unset (None)"] if self.optional else [])
        return text + "".join(f" or {e}" for e in extra)

    def outside(self) -> float:
        """A value this range refuses (for the test that walks every numeric setting)."""
        if self.low is not None:
            candidate = self.low - 1 if not self.low_open else self.low
            while candidate in self.also:
                candidate -= 1
            return candidate
        return self.high + 1 if not self.high_open else self.high


def _num(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Rule:
    setting: str  # a setting name, a command-line argument ("--seeds"), or "a + b" for a combination
    kind: str  # "range" | "choice" | "path" | "combination"
    allowed: str  # what is allowed, in words (README and messages)
    fix: str  # what to do
    check: Callable[..., str | None]  # returns None when fine, else what is wrong
    command: str | None = None  # command-line argument of this command only (None: a setting of every command)
    range: Range | None = None
    deferred: bool = False  # checked by the code that first needs it (still before any data or model)

    def message(self, problem: str) -> str:
        return f"{problem}; {self.fix}" if self.fix else problem


def range_rule(setting, range_: Range, fix: str = "", command: str | None = None) -> Rule:
    def check(value):
        if range_.ok(value):
            return None
        return f"{setting}={value!r} is out of range: it must be {range_.describe()}"

    return Rule(setting, "range", range_.describe(), fix, check, command, range_)


def each_at_least(setting, low, fix=""):
    """A list setting whose every element is >= ``low`` (e.g. lr_milestones)."""
    range_ = Range(low)

    def check(value):
        values = value if isinstance(value, (list, tuple)) else [value]
        wrong = [v for v in values if not range_.ok(v)]
        return f"{setting}={value!r} is out of range: it must be a list with each {range_.describe()}" if wrong else None

    return Rule(setting, "range", f"each {range_.describe()}", fix, check, None, range_)


def positive(setting, fix="", optional=False):
    return range_rule(setting, Range(0, low_open=True, optional=optional), fix)


def at_least(setting, low, fix="", optional=False, command=None):
    return range_rule(setting, Range(low, optional=optional), fix, command)


def fraction(setting, fix="", high_open=False):
    return range_rule(setting, Range(0, 1, high_open=high_open), fix)


def choice(setting, allowed: Callable[[], tuple] | tuple, fix="", many=False) -> Rule:
    def options():
        return tuple(allowed() if callable(allowed) else allowed)

    def check(value):
        values = value if many and isinstance(value, (list, tuple)) else [value]
        wrong = [v for v in values if str(getattr(v, "value", v)) not in options()]
        if not wrong:
            return None
        shown = wrong[0] if not many else wrong
        close = difflib.get_close_matches(str(getattr(wrong[0], "value", wrong[0])), options(), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return f"{setting}={shown!r} is not valid{hint}; choose {'from' if many else 'one of'}: {', '.join(options())}"

    words = "one of the registered benchmarks" if callable(allowed) and setting == "benchmark" else (
        ("each one of " if many else "one of ") + ", ".join(f"`{o}`" for o in options()) if len(options()) <= 8
        else f"one of the {len(options())} names transformers knows")
    return Rule(setting, "choice", words, fix, check)


def path_rule(setting, allowed, check, fix="", command=None) -> Rule:
    return Rule(setting, "path", allowed, fix, check, command)


def combination(setting, allowed, check, fix) -> Rule:
    return Rule(setting, "combination", allowed, fix, check)


def enum_values(name: str) -> Callable[[], tuple]:
    def values():
        from transformers import trainer_utils, training_args

        enum = getattr(training_args, name, None) or getattr(trainer_utils, name)
        return tuple(e.value for e in enum)
    return values


# The checks behind the validation rules that look beyond one value: paths on this machine, the benchmark
# registry (class counts, class orders), the parallel set-up, the held-out sets. Each returns None when fine, else
# what is wrong, in one line (``validation.RULES`` adds what to do).

# ------------------------------------------------------------------------------------------- paths
def _looks_local(value: str) -> bool:
    """A value the user meant as a path on this machine (not a Hub id)."""
    return value.startswith(("/", "./", "../", "~"))


def not_a_file(setting):
    def check(value):
        if value is not None and Path(value).expanduser().is_file():
            return f"{setting}={value!r} is a file, not a folder"
        return None
    return check


def existing_folder(setting, optional=True):
    def check(value):
        if value is None and optional:
            return None
        path = Path(str(value)).expanduser()
        if not path.exists():
            return f"{setting}={value!r} does not exist"
        if not path.is_dir():
            return f"{setting}={value!r} is a file, not a folder"
        return None
    return check


def existing_file(value):
    if value is None:
        return None
    path = Path(str(value)).expanduser()
    if not path.is_file():
        return f"class_names_file={value!r} {'is a folder, not a file' if path.is_dir() else 'does not exist'}"
    return None


def split_name(setting):
    def check(value):
        return f"{setting}={value!r} is empty" if value is not None and not str(value).strip() else None
    return check


def local_model(value):
    if value is None or not _looks_local(str(value)):
        return None  # a Hub id, or the toy CLIP's name
    path = Path(str(value)).expanduser()
    if not path.is_dir():
        return f"model_name_or_path={value!r} {'is not a folder' if path.exists() else 'does not exist'}"
    return None


def recipe_file(value):
    """A path that must exist; a bare name is a shipped recipe's, checked by ``recipe.find_recipe``."""
    if value is None:
        return None
    path = Path(value).expanduser()
    if not path.exists() and path.name == str(value):
        return None
    if not path.exists():
        return f"--config {value!r}: recipe file not found"
    if path.is_dir():
        return f"--config {value!r} is a folder, not a recipe file"
    return None


def checkpoint_ref(value):
    source = str(value).rpartition("@")[0] or str(value)
    path = Path(source).expanduser()
    if path.is_file():
        return f"--checkpoint {value!r}: {source} is a file, not a run or task folder"
    if _looks_local(source) and not path.exists():
        return f"--checkpoint {value!r}: {source} does not exist"
    return None


# ------------------------------------------------------------------------------- benchmark registry
def registered_benchmarks() -> tuple:
    from .data.registry import BENCHMARKS

    return tuple(sorted(BENCHMARKS))


def benchmark_class_count(data_args) -> int | None:
    """The number of classes a run's class order spans, known without loading data (None: unknown)."""
    from .data.registry import BENCHMARKS

    known = getattr(BENCHMARKS.get(data_args.benchmark), "num_classes", None)
    order = str(data_args.class_order)
    if known is None and re.fullmatch(r"[\d,\s]+", order) and re.search(r"\d", order):
        return len([item for item in order.replace(" ", "").split(",") if item])
    return known


# ------------------------------------------------------------------------------------- combinations
def tasks_vs_classes(model_args, data_args, config):
    classes = benchmark_class_count(data_args)
    if classes is not None and data_args.num_tasks > classes:
        return f"num_tasks={data_args.num_tasks} is more than the {classes} classes of {data_args.benchmark}"
    return None


CUSTOM_ORDERS = ("default", "seed1993")  # the named class orders of benchmark custom (data/custom.py)


def class_order_ids(model_args, data_args, config):
    order = str(data_args.class_order)
    if not re.fullmatch(r"[\d,\s]+", order):
        if data_args.benchmark == "custom" and order not in CUSTOM_ORDERS:
            return f"class_order={order!r} is no order of benchmark custom: {', '.join(CUSTOM_ORDERS)} or ids"
        return None
    from .data.registry import BENCHMARKS

    total = getattr(BENCHMARKS.get(data_args.benchmark), "num_classes", None)
    ids = [int(item) for item in order.replace(" ", "").split(",") if item]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        return f"class_order names ids {repeated[:10]} more than once: not a permutation"
    if total is not None and sorted(ids) != list(range(total)):
        return (f"class_order has {len(ids)} ids, not a permutation of the {total} classes 0..{total - 1} of "
                f"{data_args.benchmark}")
    return None


def custom_source(model_args, data_args, config):
    if data_args.benchmark != "custom":
        unused = [s for s in ("train_split", "test_split", "class_names_file", "dataset_config")
                  if getattr(data_args, s) is not None]
        return f"{', '.join(unused)} only apply to benchmark custom (benchmark={data_args.benchmark})" if unused else None
    given = [s for s in ("data_dir", "dataset_name") if getattr(data_args, s)]
    if len(given) != 1:
        return "benchmark custom needs exactly one of data_dir and dataset_name" + (" (both given)" if given else "")
    return None


def distinct_splits(model_args, data_args, config):
    train = data_args.train_split or "train"
    if data_args.test_split is not None and data_args.test_split == train:
        return f"test_split={data_args.test_split!r} is the training split: a run would test on its training images"
    return None


def global_batch(model_args, data_args, config):
    from .run.distributed import global_batch_problem

    total = getattr(config, "global_train_batch_size", None)
    if total is None:
        return None
    return global_batch_problem(total, getattr(config, "world_size", 1), config.gradient_accumulation_steps)


def both_precisions(model_args, data_args, config):
    if config.bf16 and config.fp16:
        return "bf16 and fp16 are both set"
    return None


def one_slot_template(value):
    """A prompt template takes the class name in exactly one ``{}`` (no other field, no stray brace)."""
    import string

    if value is None:
        return None
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(value) if name is not None]
    except ValueError as error:
        return f"prompt_template={value!r} is not a template ({error})"
    if fields != [""]:
        return f"prompt_template={value!r} has {len(fields)} fields {fields}, not exactly one '{{}}' for the class name"
    return None


def variant_list(value):
    unknown = [v for v in (value or "").split(",") if v and v not in VARIANTS] if value else []
    return f"--variants: unknown variant(s) {unknown}; choose from: {', '.join(VARIANTS)}" if unknown else None


def zero_shot_revisions(value):
    from .data.spec import DataError
    from .data.zero_shot_sets import parse_set_revisions

    try:
        parse_set_revisions(value)
    except DataError as error:
        return str(error)
    return None


def retention_sets():
    from .evaluation.zero_shot import retention_set_names

    return retention_set_names()


# The linear layers of the encoder blocks of both towers that can carry LoRA (transformers' module names, the same in
# CLIP and SigLIP); each is checked again against the loaded model's own layers (modeling/families.py).
CLIP_LINEAR_LAYERS = ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")
SEED_MAX = 2**32 - 1  # numpy's seeding (transformers.set_seed) refuses anything larger


# ------------------------------------------------------------------------------------------ the table
RULES: tuple[Rule, ...] = (
    # model
    at_least("lora_r", 1),
    positive("lora_alpha", optional=True),
    fraction("lora_dropout", high_open=True),
    choice("lora_target_modules", CLIP_LINEAR_LAYERS, "list linear layers of the encoder blocks only", many=True),
    path_rule("model_name_or_path", "a Hub id, `toy-clip`, or an existing local folder", local_model,
              "point it at a saved CLIP or SigLIP folder or use a Hub id"),
    # data
    at_least("num_tasks", 1),
    Rule("prompt_template", "text", "a prompt with exactly one `{}` (the class name), or unset", "e.g. "
         "'a photo of a {}.'", one_slot_template),
    at_least("max_train_images_per_class", 1, optional=True),
    at_least("max_eval_images_per_class", 1, optional=True),
    choice("zero_shot_sets", retention_sets, "list held-out sets by name", many=True),
    Rule("zero_shot_revisions", "choice", "comma-separated `SET=REVISION`, each SET a Hub zero-shot set named once "
         "(or unset: every set at its pin)", "e.g. food101=COMMIT,imagenet1k=COMMIT", zero_shot_revisions),
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
              "point --data_dir at a save_to_disk copy, a parquet folder or an image folder"),
    range_rule("holdout_fraction", Range(0, 1, low_open=True, high_open=True),
               "a share of each class's train images, e.g. 0.2"),
    path_rule("class_names_file", "an existing text file, one class name a line (or unset)", existing_file,
              "point it at a text file with one class name a line"),
    path_rule("train_split", "a split name, not empty (or unset)", split_name("train_split"), "name a split"),
    path_rule("test_split", "a split name, not empty (or unset)", split_name("test_split"), "name a split"),
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
    # competitors (docs/variants.md)
    choice("epoch_lr_schedule", ("none", "multistep", "cosine")),
    each_at_least("lr_milestones", 0, "list epochs counted from 0"),
    positive("lr_gamma"),
    fraction("lr_min_ratio"),
    choice("lora_trainable", ("B", "AB")),
    choice("lora_init_A", ("kaiming", "xavier")),
    range_rule("rapf_beta", Range(0.1), "int(10 beta) replayed samples must be at least 1"),
    at_least("rapf_replay_classes", 1),
    positive("rapf_threshold"),
    at_least("rapf_margin", 0),
    at_least("rapf_mix_bias", 0),
    choice("mgclip_epochs", ("fixed", "auto")),
    positive("mgclip_gap_tolerance"),
    at_least("mgclip_probe_epochs", 1),
    positive("mgclip_agent_lr"),
    at_least("mgclip_agent_batch_size", 1),
    at_least("mgclip_agent_epochs", 0, "0 keeps the agent rows at the class means"),
    at_least("mgclip_agent_weight", 0),
    at_least("mgclip_clip_weight", 0),
    choice("mgclip_clip_softmax", ("twice", "once")),
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
    combination("class_order + benchmark", "comma-separated ids: each class id exactly once; custom: `default`, "
                "`seed1993` or ids", class_order_ids,
                "give every native label id exactly once"),
    combination("num_tasks + benchmark", "num_tasks <= the benchmark's classes", tasks_vs_classes,
                "lower num_tasks (uneven splits are fine)"),
    combination("benchmark + data_dir + dataset_name", "custom: exactly one of data_dir, dataset_name; the split "
                "and class-name settings only with custom", custom_source,
                "give --data_dir DIR or --dataset_name ID (and drop the custom-only settings for other benchmarks)"),
    combination("train_split + test_split", "two different splits", distinct_splits,
                "name another test split, or leave test_split unset for a hold-out of the train split"),
    combination("global_train_batch_size + gradient_accumulation_steps",
                "global batch divisible by devices x gradient_accumulation_steps", global_batch,
                "choose a global batch that is a multiple of devices x gradient_accumulation_steps"),
    combination("bf16 + fp16", "at most one of them", both_precisions, "set only one"),
    # command-line arguments of one command
    path_rule("--config", "an existing recipe file, or the name of a shipped recipe (`segp-hf recipes`; an "
              "unknown name is refused by `load_recipe` with the list)", recipe_file,
              "pass a YAML recipe file or a shipped recipe's name",
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


EXIT_BEGIN = "<!-- exit codes: generated from segp_hf/errors.py by `python -m segp_hf.validation`; do not edit by hand -->"
EXIT_END = "<!-- end of exit codes -->"


def readme_block() -> str:
    return f"{README_BEGIN}\n{markdown_table()}\n{README_END}"


def exit_code_block() -> str:
    lines = ["| exit code | meaning | what to do |", "|---|---|---|"]
    lines += [f"| {code} | {name} | {what} |" for code, name, what in EXIT_CODES]
    return f"{EXIT_BEGIN}\n" + "\n".join(lines) + f"\n{EXIT_END}"


def _replace_block(text: str, begin: str, end: str, block: str) -> str:
    start, stop = text.index(begin), text.index(end) + len(end)
    return text[:start] + block + text[stop:]


def update_readme(path) -> bool:
    """Rewrite the generated blocks of ``path`` (the rules, the exit codes); True when it changed."""
    text = Path(path).read_text()
    new = _replace_block(text, README_BEGIN, README_END, readme_block())
    new = _replace_block(new, EXIT_BEGIN, EXIT_END, exit_code_block())
    Path(path).write_text(new)
    return new != text


if __name__ == "__main__":
    if sys.argv[1:2] == ["--write"]:
        print("README updated" if update_readme(sys.argv[2] if len(sys.argv) > 2 else "docs/troubleshooting.md") else "README up to date")
    else:
        print(markdown_table())
