"""A run's class-incremental scenario from a loaded benchmark and the run's data settings (class order, tasks,
per-class caps, pixel cache)."""

from __future__ import annotations

from pathlib import Path

from .benchmark_spec import LoadedBenchmark
from .errors import DataError
from .pixel_cache import plan_cache
from .scenario import ClassIncrementalScenario


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
