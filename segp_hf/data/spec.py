"""What a benchmark is, to the rest of the data package: what its loader returns (``LoadedBenchmark``), a named
loader (``BenchmarkSpec``), what the README's table says of it (``BenchmarkCard``), and ``DataError``, the one
error type of the package."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import datasets

# The one error type of the data package: a dataset, class order or split the user has to fix (cli.py turns it
# into a one-line message and exit code 2).

class DataError(ValueError):
    """A dataset, class order or split the user has to fix."""


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


# What the README's benchmark table says about each benchmark (source, split, tasks, order, the paper's
# figures).

@dataclass(frozen=True)
class BenchmarkCard:
    """What the README table says about a benchmark."""

    source: str
    split: str
    classes_per_task: str
    order_source: str
    paper_avg_last: str


CARDS = {
    "cifar100": BenchmarkCard("uoft-cs/cifar100", "official 50,000 / 10,000", "10 x 10",
                              "RAPF class_orders/cifar100_order.yaml", "89.8 / 84.6"),
    "imagenet_r": BenchmarkCard("axiong/imagenet-r", "24,000 / 6,000 (RAPF list if file names match, else seeded stratified 80/20 manifest)",
                                "10 x 20", "RAPF class_orders/imagenet_R_order.yaml", "88.9 / 84.8"),
    "imagenet_sub": BenchmarkCard("ILSVRC/imagenet-1k, classes 0-99", "train / val (50 per class)", "10 x 10",
                                  "RAPF class_orders/imagenet100.yaml (= seed-1993 permutation)", "89.9 / 80.5"),
    "cub200": BenchmarkCard("bentrevett/caltech-ucsd-birds-200-2011", "official 5,994 / 5,794", "10 x 20",
                            "RAPF class_orders/cub200_order.yaml", "85.4 / 80.1"),
    "ucf101": BenchmarkCard("flwrlabs/ucf101, middle frame per clip", "the dataset's train / test, 100 classes (no YoYo)",
                            "10 x 10", "PROOF seed-1993 permutation (RAPF ships no UCF101)", "95.9 / 92.8"),
}
