"""Benchmark registry: where each benchmark's data comes from and how it is named, ordered and prompted."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import datasets

from .errors import DataError
from .scenario import ClassIncrementalScenario


@dataclass
class LoadedBenchmark:
    """What the continual loop needs from a benchmark, whatever its source."""

    train: datasets.Dataset
    test: datasets.Dataset
    class_names: list[str]  # indexed by native label id
    class_order: list[int]  # default learning order (native ids)
    template: str
    image_column: str = "image"
    label_column: str = "label"
    extra_orders: dict[str, list[int]] = field(default_factory=dict)
    info: dict[str, str] = field(default_factory=dict)  # provenance for the plan: source, split


@dataclass
class BenchmarkSpec:
    name: str
    description: str
    loader: Callable[..., LoadedBenchmark]
    num_classes: int | None = None  # known without loading data: lets settings be checked first (None: unknown)


def _load_shapes(data_args) -> LoadedBenchmark:
    from .shapes import TASK_CLASSES, make_shapes_dataset

    train = make_shapes_dataset("shifted", "train", seed=0)
    test = make_shapes_dataset("shifted", "test", seed=0)
    return LoadedBenchmark(
        train=train,
        test=test,
        class_names=list(TASK_CLASSES),
        class_order=list(range(len(TASK_CLASSES))),
        template="a good photo of a {}.",
    )


BENCHMARKS: dict[str, BenchmarkSpec] = {
    "shapes": BenchmarkSpec("shapes", "offline shapes world (shifted domain), 50 classes", _load_shapes, num_classes=50),
}


def register_benchmark(spec: BenchmarkSpec) -> None:
    BENCHMARKS[spec.name] = spec


def _load_local_disk(data_args) -> LoadedBenchmark:
    """``benchmark: local``: a ``DatasetDict.save_to_disk`` folder at ``data_dir`` with ``train`` and ``test``
    splits, an ``image`` column and a ``ClassLabel`` ``label`` column (class names from its ``names``,
    default order = label ids)."""
    if not data_args.data_dir:
        raise DataError("benchmark 'local' needs --data_dir: a DatasetDict.save_to_disk folder with train/test splits")
    try:
        splits = datasets.load_from_disk(data_args.data_dir)
    except FileNotFoundError as error:
        raise DataError(f"benchmark 'local': {data_args.data_dir} is not a save_to_disk folder ({error})") from None
    missing = [name for name in ("train", "test") if name not in splits]
    label = splits["train"].features.get("label") if not missing else None
    if missing or not isinstance(label, datasets.ClassLabel):
        raise DataError(f"benchmark 'local' needs train and test splits with a ClassLabel 'label' column in {data_args.data_dir}")
    return LoadedBenchmark(
        train=splits["train"], test=splits["test"], class_names=list(label.names),
        class_order=list(range(label.num_classes)), template="a good photo of a {}.",
    )


register_benchmark(BenchmarkSpec("local", "a save_to_disk DatasetDict at --data_dir (ClassLabel names)", _load_local_disk))


def load_benchmark(data_args) -> LoadedBenchmark:
    name = data_args.benchmark
    if name not in BENCHMARKS:
        import difflib

        close = difflib.get_close_matches(name, BENCHMARKS, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise DataError(f"unknown benchmark '{name}'; known: {', '.join(sorted(BENCHMARKS))}.{hint}")
    return BENCHMARKS[name].loader(data_args)


def scenario_for(benchmark: LoadedBenchmark, data_args, image_processor, cache_dir=None, workers: int = 0,
                 rank: int = 0):
    """The class-incremental split of ``benchmark`` under a run's data settings, with its pixel cache
    (``data_args.pixel_cache``: memory / disk under ``cache_dir`` / off, within ``pixel_cache_budget_gb``;
    ``workers``: the DataLoader workers that will fill it; ``rank``: names this process's disk store)."""
    scenario = ClassIncrementalScenario(
        train=benchmark.train,
        test=benchmark.test,
        class_names=benchmark.class_names,
        class_order=resolve_class_order(data_args.class_order, benchmark),
        num_tasks=data_args.num_tasks,
        image_processor=image_processor,
        image_column=benchmark.image_column,
        label_column=benchmark.label_column,
        max_train_per_class=data_args.max_train_images_per_class,
        max_eval_per_class=data_args.max_eval_images_per_class,
    )
    mode = getattr(data_args, "pixel_cache", "off")
    if image_processor is not None and mode != "off":
        from pathlib import Path

        from .pixel_cache import plan_cache

        directory = Path(cache_dir) / "pixel-cache" if cache_dir is not None else None
        scenario.pixel_cache = plan_cache(mode, image_processor, scenario.cache_need_bytes(),
                                          data_args.pixel_cache_budget_gb, directory, workers=workers, rank=rank)
    return scenario


def resolve_class_order(spec: str, benchmark: LoadedBenchmark) -> list[int]:
    """'default', a named extra order (e.g. 'seed1993'), or comma-separated native ids."""
    if spec == "default":
        return list(benchmark.class_order)
    if spec in benchmark.extra_orders:
        return list(benchmark.extra_orders[spec])
    try:
        return [int(item) for item in spec.replace(" ", "").split(",") if item]
    except ValueError:
        named = ", ".join(["default", *benchmark.extra_orders])
        raise DataError(f"class_order '{spec}' is neither a known order ({named}) nor comma-separated ids") from None


# The paper's benchmarks register themselves here (imported last: it uses the names above).
from . import benchmarks as _benchmarks  # noqa: E402,F401
