"""Benchmark registry: every benchmark by name (the built-ins from their loaders' modules, plus any registered
later), and loading one by a run's ``benchmark`` setting."""

from __future__ import annotations

from .custom import load_custom
from .imagenet_r import IMAGENET_R
from .spec import BenchmarkSpec, DataError, LoadedBenchmark
from .train_test_benchmarks import CIFAR100, CUB200, IMAGENET_SUB
from .ucf101 import UCF101

# The offline shapes world (``custom``, your own dataset, is in custom.py).

def load_shapes(data_args) -> LoadedBenchmark:
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


SHAPES = BenchmarkSpec("shapes", "offline shapes world (shifted domain), 50 classes", load_shapes, num_classes=50)
CUSTOM = BenchmarkSpec("custom", "your own dataset: --data_dir (save_to_disk, image or parquet folder) or "
                       "--dataset_name; columns, splits and class names found or named (data/custom.py)", load_custom)


BENCHMARKS: dict[str, BenchmarkSpec] = {
    spec.name: spec for spec in (SHAPES, CUSTOM, CIFAR100, IMAGENET_R, IMAGENET_SUB, CUB200, UCF101)
}


def register_benchmark(spec: BenchmarkSpec) -> None:
    BENCHMARKS[spec.name] = spec


def load_benchmark(data_args) -> LoadedBenchmark:
    name = data_args.benchmark
    if name not in BENCHMARKS:
        import difflib

        close = difflib.get_close_matches(name, BENCHMARKS, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise DataError(f"unknown benchmark '{name}'; known: {', '.join(sorted(BENCHMARKS))}.{hint}")
    return BENCHMARKS[name].loader(data_args)
