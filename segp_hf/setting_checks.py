"""The checks behind the validation rules that look beyond one value: paths on this machine, the benchmark
registry (class counts, class orders), the parallel set-up, the held-out sets. Each returns None when fine, else
what is wrong, in one line (``validation.RULES`` adds what to do)."""

from __future__ import annotations

import re
from pathlib import Path

from .switches import VARIANTS


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


def local_model(value):
    if value is None or not _looks_local(str(value)):
        return None  # a Hub id, or the toy CLIP's name
    path = Path(str(value)).expanduser()
    if not path.is_dir():
        return f"model_name_or_path={value!r} {'is not a folder' if path.exists() else 'does not exist'}"
    return None


def recipe_file(value):
    if value is None:
        return None
    path = Path(value).expanduser()
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


def class_order_ids(model_args, data_args, config):
    order = str(data_args.class_order)
    if not re.fullmatch(r"[\d,\s]+", order):
        return None
    from .data.registry import BENCHMARKS

    total = getattr(BENCHMARKS.get(data_args.benchmark), "num_classes", None)
    ids = [int(item) for item in order.replace(" ", "").split(",") if item]
    if total is not None and sorted(ids) != list(range(total)):
        return (f"class_order has {len(ids)} ids, not a permutation of the {total} classes 0..{total - 1} of "
                f"{data_args.benchmark}")
    return None


def global_batch(model_args, data_args, config):
    from .parallel import global_batch_problem

    total = getattr(config, "global_train_batch_size", None)
    if total is None:
        return None
    return global_batch_problem(total, getattr(config, "world_size", 1), config.gradient_accumulation_steps)


def both_precisions(model_args, data_args, config):
    if config.bf16 and config.fp16:
        return "bf16 and fp16 are both set"
    return None


def variant_list(value):
    unknown = [v for v in (value or "").split(",") if v and v not in VARIANTS] if value else []
    return f"--variants: unknown variant(s) {unknown}; choose from: {', '.join(VARIANTS)}" if unknown else None


def retention_sets():
    from .retention import retention_set_names

    return retention_set_names()
