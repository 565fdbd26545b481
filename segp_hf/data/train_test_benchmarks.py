"""The benchmarks whose Hub copy has its own train and test splits: CIFAR-100, CUB-200-2011 and ImageNet-Sub
(ImageNet-1k classes 0-99)."""

from __future__ import annotations

import logging

from .fetching import fetch_splits, pick_split, split_columns
from .hub_sources import LABEL_ALIASES, SOURCES
from .labels import name_lookup, native_split, shared_label_column
from .protocol_assets import RAPF_TEMPLATE, extra_orders, protocol
from .spec import BenchmarkSpec, LoadedBenchmark

logger = logging.getLogger(__name__)


def _train_test_benchmark(name, protocol_name, keys_per_class, data_args, index_fallback=None,
                          test_aliases=("test", "validation", "val"), hub_filters=None) -> LoadedBenchmark:
    info = protocol(protocol_name)
    source = SOURCES[name]
    splits, kind, provenance = fetch_splits(source, data_args, filters=hub_filters)
    image_column, label_column = split_columns(source, kind, data_args)
    aliases = LABEL_ALIASES.get(name, {})
    lookup = name_lookup(keys_per_class, aliases)
    n = info["num_classes"]
    names = {"class_names": info["class_names"], "aliases": aliases}
    train_raw = pick_split(splits, source.train_split, name, "training", aliases=("train",))
    test_raw = pick_split(splits, source.test_split, name, "test", aliases=test_aliases)
    train, train_label = native_split(train_raw, image_column, label_column, lookup, n, f"{name} train split",
                                      index_fallback, **names)
    test, test_label = native_split(test_raw, image_column, label_column, lookup, n, f"{name} test split",
                                    index_fallback, **names)
    train, test, label_column = shared_label_column(train, test, train_label, test_label)
    return LoadedBenchmark(
        train=train, test=test, class_names=list(info["class_names"]), class_order=list(info["class_order"]),
        template=RAPF_TEMPLATE, image_column=image_column, label_column=label_column,
        extra_orders=extra_orders(info),
        info={**provenance, "split": f"train = '{source.train_split}', test = '{source.test_split}'"},
    )


def load_cifar100(data_args) -> LoadedBenchmark:
    info = protocol("cifar100")
    return _train_test_benchmark("cifar100", "cifar100", [[n] for n in info["class_names"]], data_args)


def load_cub200(data_args) -> LoadedBenchmark:
    info = protocol("cub200")
    keys = [[name, f"{i + 1:03d}.{name}"] for i, name in enumerate(info["class_names"])]
    bench = _train_test_benchmark("cub200", "cub200", keys, data_args)
    sizes = (len(bench.train), len(bench.test))
    if sizes != (5994, 5794):
        logger.warning("cub200: %d train / %d test images; the official split has 5,994 / 5,794", *sizes)
    bench.info["split"] = "official train_test_split.txt (Hub train/test splits)"
    return bench


def load_imagenet_sub(data_args) -> LoadedBenchmark:
    info = protocol("imagenet100")
    keys = [[name, wnid] for name, wnid in zip(info["class_names"], info["wnids"])]
    # From the Hub only classes 0-99 are stored (ImageNet-1k's label ids are its class index).
    keep = {"keep_labels": list(range(info["num_classes"]))}
    bench = _train_test_benchmark("imagenet_sub", "imagenet100", keys, data_args, index_fallback=1000,
                                  hub_filters={"train": keep, "validation": keep})
    bench.info["split"] = "ImageNet-1k classes 0-99: train = 'train', test = 'validation' (50 per class)"
    return bench


CIFAR100 = BenchmarkSpec("cifar100", "CIFAR-100, 100 classes", load_cifar100, num_classes=100)
IMAGENET_SUB = BenchmarkSpec("imagenet_sub", "ImageNet-Sub (ImageNet-1k classes 0-99), 100 classes", load_imagenet_sub,
                             num_classes=100)
CUB200 = BenchmarkSpec("cub200", "CUB-200-2011, 200 classes", load_cub200, num_classes=200)
