"""Benchmark registry: every benchmark by name (the built-ins from their loaders' modules, plus any registered
later), and loading one by a run's ``benchmark`` setting."""

from __future__ import annotations

# LoadedBenchmark, BenchmarkSpec moved to data/benchmark_spec.py, scenario_for and resolve_class_order to
# data/scenario_setup.py; kept for old imports
from .benchmark_spec import BenchmarkSpec, LoadedBenchmark
from .errors import DataError
from .imagenet_r import IMAGENET_R
from .local_benchmarks import LOCAL, SHAPES
from .scenario_setup import resolve_class_order, scenario_for  # noqa: F401
from .train_test_benchmarks import CIFAR100, CUB200, IMAGENET_SUB
from .ucf101 import UCF101

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
