"""Class-incremental task splits over a labelled HF dataset.

Classes are re-indexed by their position in the class order, so task t holds the contiguous label
range ``task_bounds[t]`` and "all classes seen after task t" is ``range(task_bounds[t][1])``.
Row selection happens on the label column before any transform is attached (cheap on big datasets).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
import torch

from .pixel_cache import (
    CachedImageLabelTransform,
    PixelNormalizer,
    PixelStore,
    decode_rgb,
    pixel_shape,
    plan_cache,
    store_bytes,
)
from .ready_batches import CachedSplit
from .spec import DataError, LoadedBenchmark


def task_bounds(num_classes: int, num_tasks: int) -> list[tuple[int, int]]:
    """Contiguous class ranges per task; when tasks do not divide the classes the first tasks get one more."""
    if not 1 <= num_tasks <= num_classes:
        raise DataError(f"num_tasks must be between 1 and the number of classes ({num_classes}), got {num_tasks}")
    sizes = [num_classes // num_tasks + (1 if t < num_classes % num_tasks else 0) for t in range(num_tasks)]
    ends = np.cumsum(sizes)
    return [(int(end - size), int(end)) for size, end in zip(sizes, ends)]


def check_class_order(class_order, num_classes: int) -> list[int]:
    order = [int(c) for c in class_order]
    if sorted(order) != list(range(num_classes)):
        missing = sorted(set(range(num_classes)) - set(order))
        repeated = sorted({c for c in order if order.count(c) > 1})
        raise DataError(
            f"class order must be a permutation of 0..{num_classes - 1} (got {len(order)} ids; "
            f"missing {missing[:10]}, repeated {repeated[:10]}, out of range "
            f"{sorted(c for c in order if not 0 <= c < num_classes)[:10]})"
        )
    return order


class ImageLabelTransform:
    """Batch transform: images -> CLIP ``pixel_values`` (RGB), native labels -> class-order positions."""

    def __init__(self, image_processor, position_of_label: np.ndarray, image_column="image", label_column="label"):
        self.image_processor = image_processor
        self.position_of_label = position_of_label
        self.image_column = image_column
        self.label_column = label_column

    def __call__(self, batch):
        images = [decode_rgb(image) for image in batch[self.image_column]]
        pixel_values = self.image_processor(images=images, return_tensors="pt")["pixel_values"]
        labels = torch.as_tensor(self.position_of_label[np.asarray(batch[self.label_column])], dtype=torch.long)
        out = {"pixel_values": pixel_values, "labels": labels}
        if "sample_index" in batch:
            out["sample_index"] = torch.as_tensor(batch["sample_index"], dtype=torch.long)
        return out


@dataclass
class ClassIncrementalScenario:
    train: datasets.Dataset
    test: datasets.Dataset
    class_names: list[str]  # indexed by native label id
    class_order: list[int]  # native label ids in learning order
    num_tasks: int
    image_processor: object
    image_column: str = "image"
    label_column: str = "label"
    max_train_per_class: int | None = None
    max_eval_per_class: int | None = None
    pixel_cache: object = None  # a pixel_cache.CachePlan; None: every image decoded at every use
    provenance: dict = field(default_factory=dict)  # the benchmark's info: source, split, the commit loaded
    bounds: list[tuple[int, int]] = field(init=False)

    def __post_init__(self):
        duplicated = sorted({n for n in self.class_names if self.class_names.count(n) > 1})
        if duplicated:
            raise DataError(f"class names must be unique (prompts would collide): {duplicated[:10]} appear twice")
        self.class_order = check_class_order(self.class_order, len(self.class_names))
        self.bounds = task_bounds(len(self.class_order), self.num_tasks)
        self.position_of_label = np.empty(len(self.class_order), dtype=np.int64)
        self.position_of_label[self.class_order] = np.arange(len(self.class_order))
        self._train_labels = self._labels(self.train, "train")
        self._test_labels = self._labels(self.test, "test")
        self._stores = {}  # split -> (PixelStore, slot of each split row or -1, source)

    def _labels(self, dataset, split):
        missing = [c for c in (self.image_column, self.label_column) if c not in dataset.column_names]
        if missing:
            raise DataError(
                f"the {split} split has no column(s) {missing}; available columns: {dataset.column_names}"
            )
        return np.asarray(dataset[self.label_column])

    @property
    def ordered_class_names(self) -> list[str]:
        return [self.class_names[c] for c in self.class_order]

    def classes_of_task(self, task: int) -> list[int]:
        """Native label ids learnt in ``task``."""
        start, end = self.bounds[task]
        return self.class_order[start:end]

    def seen_end(self, task: int) -> int:
        """Number of classes seen once ``task`` is learnt (their positions are 0..end-1)."""
        return self.bounds[task][1]

    def _rows(self, labels, task, cap, split, check=True) -> np.ndarray:
        native = self.classes_of_task(task)
        rows = np.flatnonzero(np.isin(labels, native))
        if cap is not None:
            rows = np.concatenate([rows[labels[rows] == c][:cap] for c in native])
            rows.sort()
        present = set(labels[rows].tolist())
        empty = [self.class_names[c] for c in native if c not in present]
        if empty and check:
            raise DataError(f"task {task} has no {split} images for class(es) {empty}")
        return rows

    def _subset(self, dataset, labels, task, cap, split, with_index=False):
        rows = self._rows(labels, task, cap, split)
        subset = dataset.select(rows)
        if isinstance(subset.features.get(self.image_column), datasets.Image):
            subset = subset.cast_column(self.image_column, datasets.Image(decode=False))  # decoded by decode_rgb
        if with_index:
            with _no_bookkeeping_bars():
                subset = subset.add_column("sample_index", np.arange(len(rows)))
        if self.cached:
            return self._cached_subset(subset, rows, split, task)
        transform = ImageLabelTransform(self.image_processor, self.position_of_label, self.image_column, self.label_column)
        return subset.with_transform(transform)

    # ---------------------------------------------------------------------------- pixel cache
    @property
    def cached(self) -> bool:
        return self.pixel_cache is not None and self.pixel_cache.mode != "off"

    def cache_need_bytes(self) -> int:
        """Pixels cached at once: the largest task's training images plus every task's test images."""
        shape = pixel_shape(self.image_processor) if self.image_processor is not None else None
        if shape is None:
            return 0
        # (unchecked: a task without images is reported when its data are first read, as without a cache)
        train = max(len(self._rows(self._train_labels, t, self.max_train_per_class, "training", check=False))
                    for t in range(self.num_tasks))
        test = sum(len(self._rows(self._test_labels, t, self.max_eval_per_class, "test", check=False))
                   for t in range(self.num_tasks))
        return store_bytes(train + test, shape)

    def _store_for(self, split, task):
        """Training images: one store per task (replaced at the next task). Test images: one store for every
        task's, kept for the run (each test set is evaluated after every task)."""
        key = "train" if split == "training" else "test"
        if key == "test" and key in self._stores:
            return self._stores[key]
        if key == "train" and key in self._stores and self._stores[key][3] == task:
            return self._stores[key]
        if key in self._stores:
            self._stores.pop(key)[0].close()
        if key == "train":
            labels, cap, source = self._train_labels, self.max_train_per_class, self.train
            rows = self._rows(labels, task, cap, split)
        else:
            labels, cap, source = self._test_labels, self.max_eval_per_class, self.test
            rows = np.unique(np.concatenate([self._rows(labels, t, cap, split) for t in range(self.num_tasks)]))
        slot_of_row = np.full(len(labels), -1, dtype=np.int64)
        slot_of_row[rows] = np.arange(len(rows))
        plan = self.pixel_cache
        # ranks sharing a store open the same file: a train store is named by its task
        name = f"{key}-rank0" if plan.peers[1] == 1 else key if key == "test" else f"{key}-task{task}"
        store = PixelStore(len(rows), plan.shape, plan.mode, path=plan.store_path(name), shared=plan.shared,
                           peers=plan.peers)
        source = source.select_columns([self.image_column])
        if isinstance(source.features.get(self.image_column), datasets.Image):
            source = source.cast_column(self.image_column, datasets.Image(decode=False))
        self._stores[key] = (store, slot_of_row, rows, task, source)
        return self._stores[key]

    def _cached_subset(self, subset, rows, split, task):
        store, slot_of_row, store_rows, _, source = self._store_for(split, task)
        slots = slot_of_row[rows]
        with _no_bookkeeping_bars():
            subset = subset.add_column("pixel_slot", slots)
        transform = CachedImageLabelTransform(store, store_rows, source, self.image_processor, self.position_of_label,
                                              self.image_column, self.label_column)
        labels = self._train_labels if split == "training" else self._test_labels
        sample_index = np.arange(len(rows)) if "sample_index" in subset.column_names else None
        return CachedSplit(subset, transform, slots, self.position_of_label[labels[rows]], sample_index)

    @property
    def pixel_normalizer(self):
        """Turns cached uint8 batches into the model's input (None when nothing is cached)."""
        if not self.cached:
            return None
        if "normalizer" not in self.__dict__:
            self.__dict__["normalizer"] = PixelNormalizer.from_processor(self.image_processor)
        return self.__dict__["normalizer"]

    def close_cache(self):
        """Drop every store (and its file, on disk)."""
        for store, *_ in self._stores.values():
            store.close()
        self._stores.clear()

    def train_dataset(self, task: int, with_index: bool = False) -> datasets.Dataset:
        return self._subset(self.train, self._train_labels, task, self.max_train_per_class, "training", with_index)

    def test_dataset(self, task: int) -> datasets.Dataset:
        return self._subset(self.test, self._test_labels, task, self.max_eval_per_class, "test")


def cached_images(dataset, image_column: str, label_column: str, image_processor, plan, name: str) -> CachedSplit:
    """Every row of ``dataset`` in a pixel store of its own (``plan``: a CachePlan; ``name`` names its file on
    disk), labels as they are: a held-out set's images decoded once per run and read by every measurement."""
    rows = np.arange(len(dataset))
    store = PixelStore(len(rows), plan.shape, plan.mode, path=plan.store_path(name), shared=plan.shared)
    labels = np.asarray(dataset[label_column], dtype=np.int64)
    source = dataset.select_columns([image_column])
    if isinstance(source.features.get(image_column), datasets.Image):
        source = source.cast_column(image_column, datasets.Image(decode=False))
    identity = np.arange(int(labels.max()) + 1 if len(labels) else 1)
    transform = CachedImageLabelTransform(store, rows, source, image_processor, identity, image_column, label_column)
    with _no_bookkeeping_bars():
        subset = source.add_column(label_column, labels).add_column("pixel_slot", rows)
    return CachedSplit(subset, transform, rows, labels)


def prompts_for(class_names, template: str) -> list[str]:
    """Prompt text per class: underscores become spaces (the exact names stay in metadata)."""
    return [template.format(name.replace("_", " ")) for name in class_names]


def tokenize_prompts(tokenizer, prompts) -> dict[str, torch.Tensor]:
    encoded = tokenizer(list(prompts), padding=True, truncation=True, return_tensors="pt")
    return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}


@contextlib.contextmanager
def _no_bookkeeping_bars():
    """``add_column`` on a ``select``-ed dataset flattens its index mapping with a progress bar of its own, once
    per task and split: internal bookkeeping of a few milliseconds, not progress a user waits on."""
    from datasets.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    was_disabled = are_progress_bars_disabled()
    disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            enable_progress_bars()


# A run's class-incremental scenario from a loaded benchmark and the run's data settings (class order, tasks,
# per-class caps, pixel cache).

def scenario_for(benchmark: LoadedBenchmark, data_args, image_processor, cache_dir=None, workers: int = 0,
                 peers: tuple[int, int] = (0, 1), shm_dir=None):
    """The class-incremental split of ``benchmark`` under a run's data settings, with its pixel cache
    (``data_args.pixel_cache``: memory / disk under ``cache_dir`` / off, within ``pixel_cache_budget_gb``;
    ``workers``: the DataLoader workers that will fill it; ``peers``: this process's index among the ranks of
    its machine and their number, who share one copy: in files under ``shm_dir`` in memory, under
    ``cache_dir`` on disk (the stores' own directory, e.g. output_dir/pixel-cache))."""
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
        provenance=dict(benchmark.info),
    )
    mode = getattr(data_args, "pixel_cache", "off")
    if image_processor is not None and mode != "off":
        directory = Path(cache_dir) if cache_dir is not None else None
        scenario.pixel_cache = plan_cache(mode, image_processor, scenario.cache_need_bytes(),
                                          data_args.pixel_cache_budget_gb, directory, workers=workers, peers=peers,
                                          shm_directory=Path(shm_dir) if shm_dir is not None else None)
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
