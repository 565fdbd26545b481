"""Benchmark registry: every benchmark by name (the built-ins from their loaders' modules, plus any registered
later), and loading one by a run's ``benchmark`` setting."""

from __future__ import annotations

import datasets

from .imagenet_r import IMAGENET_R
from .spec import BenchmarkSpec, DataError, LoadedBenchmark
from .train_test_benchmarks import CIFAR100, CUB200, IMAGENET_SUB
from .ucf101 import UCF101

# The benchmarks that need no Hub: the offline shapes world and a ``save_to_disk`` folder at ``data_dir``.

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


def load_local_disk(data_args) -> LoadedBenchmark:
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


SHAPES = BenchmarkSpec("shapes", "offline shapes world (shifted domain), 50 classes", load_shapes, num_classes=50)
LOCAL = BenchmarkSpec("local", "a save_to_disk DatasetDict at --data_dir (ClassLabel names)", load_local_disk)


BENCHMARKS: dict[str, BenchmarkSpec] = {
    spec.name: spec for spec in (SHAPES, LOCAL, CIFAR100, IMAGENET_R, IMAGENET_SUB, CUB200, UCF101)
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
