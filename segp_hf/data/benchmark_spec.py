"""What a benchmark loader returns (``LoadedBenchmark``) and a named loader (``BenchmarkSpec``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import datasets


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
