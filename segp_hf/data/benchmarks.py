"""The paper's benchmarks on HF ``datasets``: where each one lives on the Hub, how its train/test split is
formed, how its labels map onto the field's native class ids, names, prompt and class orders.

Facts (class orders, names, templates, the ImageNet-R split list) come from the public code of RAPF,
MG-CLIP and PROOF and are shipped in ``segp_hf/assets/protocol/`` (see its ``*.json`` ``source`` fields).
RAPF's order is the default (the paper follows RAPF); the seed-1993 permutation (PROOF/C3Box) is the extra
order ``seed1993``.

Native label ids are the field's: CIFAR-100 fine-label ids, sorted-WNID index for ImageNet-R, ImageNet-1k
index for ImageNet-Sub, CUB ``class_id - 1``, PROOF's UCF101 index. Hub labels are mapped onto them by
*name* (normalised: case, punctuation and ``NNN.`` prefixes ignored), so a Hub copy whose label order
differs still gets the right ids; a ``label`` column is only rewritten when the mapping is not the
identity.

Data sources, in order of precedence:
- ``data_dir``: a local copy, either ``DatasetDict.save_to_disk`` output of the Hub dataset (same schema),
  or an image folder (``<split>/<class folder>/<image>``; class folders named by class name or WNID).
- the Hub: ``datasets.load_dataset(dataset_id, revision=...)``. ``dataset_revision`` (DataArguments)
  overrides the pinned revision below; None = the pinned one, or the newest where none is pinned.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import datasets
import numpy as np

# moved to data/cards.py, data/fetching.py, data/labels.py, data/protocol_assets.py; kept for old imports
from .cards import CARDS, BenchmarkCard  # noqa: F401
from .fetching import check_columns, fetch_splits, hub_target, pick_split, split_columns
from .hub_sources import (  # noqa: F401 - re-exported: the old import place
    LABEL_ALIASES, SOURCES, HubSource, load_error_message, load_hub_split, read_columns, unreachable_message,
)
from .labels import (  # noqa: F401
    NATIVE_LABEL, arrow_column, name_lookup, native_label_array, native_split, normalise_name, shared_label_column,
    with_native_labels,
)
from .protocol_assets import RAPF_TEMPLATE, extra_orders, imagenet_r_manifest, protocol, rapf_imagenet_r_split
from .registry import BENCHMARKS, BenchmarkSpec, LoadedBenchmark, register_benchmark
from .scenario import DataError
from .zero_shot_sets import (  # noqa: F401 - moved to data/zero_shot_sets.py; kept for old imports
    ZERO_SHOT_SETS, ZeroShotSet, ZeroShotSpec, clip_imagenet_names, load_zero_shot_set,
)

logger = logging.getLogger(__name__)

IMAGENET_R_SPLIT_MODES = ("auto", "rapf", "stratified")
IMAGENET_R_STRATIFIED_SEED = 0
IMAGENET_R_TEST_FRACTION = 0.2


# ----------------------------------------------------------------------------------------------------
# benchmark loaders


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


UCF_CLIP_COLUMNS = ("video_id", "clip_id", "frame")


def middle_frame_positions(label, video, clip, frame) -> np.ndarray:
    """Positions of the middle frame of each clip (lower middle for an even count). A clip is keyed by
    (label, video_id, clip_id): ids need not contain the class name."""
    if len(frame) == 0:
        return np.zeros(0, dtype=np.int64)
    keys = np.char.add(np.char.add(np.char.add(np.asarray(label).astype(str), "/"), np.asarray(video).astype(str)),
                       np.char.add("/", np.asarray(clip).astype(str)))
    _, group = np.unique(keys, return_inverse=True)
    order = np.lexsort((np.asarray(frame).astype(np.int64), group))
    starts = np.flatnonzero(np.r_[True, group[order][1:] != group[order][:-1]])
    counts = np.diff(np.r_[starts, len(order)])
    return np.sort(order[starts + (counts - 1) // 2])


def _middle_frame_rows(dataset, native) -> np.ndarray:
    """Rows of the middle frame of each clip, benchmark classes only (metadata read through Arrow)."""
    keep = native >= 0
    if not set(UCF_CLIP_COLUMNS) <= set(dataset.column_names):
        return np.flatnonzero(keep)  # already one image per clip (e.g. a mid-frame image folder)
    rows = middle_frame_positions(native, *(arrow_column(dataset, c) for c in UCF_CLIP_COLUMNS))
    return rows[keep[rows]]


def _ucf_hub_filters(source, data_args, splits) -> dict:
    """Per Hub split, the (label, video_id, clip_id, frame) keys of the middle frames: found from the
    metadata columns alone, so only those rows' images are stored."""
    if getattr(data_args, "data_dir", None):
        return {}
    source, revision = hub_target(source, data_args)
    columns = (source.label_column, *UCF_CLIP_COLUMNS)
    filters = {}
    for split in splits:
        meta = read_columns(source, split, revision, columns)
        rows = middle_frame_positions(*(meta[c] for c in columns))
        keys = [tuple(str(meta[c][r]) for c in columns) for r in rows]
        filters[split] = {"keep_keys": keys, "key_columns": columns}
    return filters


def load_ucf101(data_args) -> LoadedBenchmark:
    info = protocol("ucf101")
    source = SOURCES["ucf101"]
    wanted = [source.train_split, source.test_split]
    splits, kind, provenance = fetch_splits(source, data_args, wanted, _ucf_hub_filters(source, data_args, wanted))
    image_column, label_column = split_columns(source, kind, data_args)
    aliases = LABEL_ALIASES.get("ucf101", {})
    lookup = name_lookup([[n] for n in info["class_names"]], aliases)
    out = {}
    for role, split in (("training", source.train_split), ("test", source.test_split)):
        raw = pick_split(splits, split, "ucf101", role, aliases=("validation", "val") if role == "test" else ())
        where = f"ucf101 {split} split"
        check_columns(raw, (image_column, label_column), where)
        native, identity = native_label_array(raw, label_column, lookup, info["num_classes"], where,
                                              class_names=info["class_names"], aliases=aliases)
        out[role] = with_native_labels(raw, label_column, native, identity, rows=_middle_frame_rows(raw, native))
    (train, train_label), (test, test_label) = out["training"], out["test"]
    train, test, label_column = shared_label_column(train, test, train_label, test_label)
    return LoadedBenchmark(
        train=train, test=test, class_names=list(info["class_names"]), class_order=list(info["class_order"]),
        template=RAPF_TEMPLATE, image_column=image_column, label_column=label_column, extra_orders=extra_orders(info),
        info={**provenance, "split": "one middle frame per clip; train/test = the dataset's train/test splits; "
              "100 classes (YoYo dropped, PROOF's ids)"},
    )


# ImageNet-R ------------------------------------------------------------------------------------------


def stratified_test_positions(counts, fraction=IMAGENET_R_TEST_FRACTION, seed=IMAGENET_R_STRATIFIED_SEED):
    """Per class (in the order of ``counts``), the positions among that class's rows that go to test.

    Test sizes: largest-remainder allocation of ``fraction * total`` (so 30,000 images give exactly
    6,000 test), at least one train and one test image for classes with two or more; positions drawn by
    ``np.random.default_rng([seed, class_index]).permutation``."""
    counts = np.asarray(counts, dtype=np.int64)
    quota = counts * fraction
    sizes = np.floor(quota).astype(np.int64)
    remaining = int(round(counts.sum() * fraction)) - int(sizes.sum())
    if remaining > 0:
        by_remainder = np.argsort(-(quota - sizes), kind="stable")[:remaining]
        sizes[by_remainder] += 1
    sizes = np.where(counts >= 2, np.clip(sizes, 1, counts - 1), 0)
    return [
        sorted(np.random.default_rng([seed, index]).permutation(int(n))[: int(k)].tolist())
        for index, (n, k) in enumerate(zip(counts, sizes))
    ]


def _image_paths(dataset, image_column) -> list[str | None]:
    """The stored file path of each image, read from the Arrow storage (no image bytes decoded)."""
    if dataset._indices is not None:
        dataset = dataset.flatten_indices()
    column = dataset.data.column(image_column)
    paths = []
    for chunk in column.chunks:
        if hasattr(chunk, "field"):
            paths.extend(chunk.field("path").to_pylist())
        else:
            paths.extend([None] * len(chunk))
    return paths


def imagenet_r_rapf_keys(dataset, image_column, wnids_per_row) -> list[str] | None:
    """``'<wnid>/<file>'`` per row from the image paths, or None when a path is missing."""
    keys = []
    for wnid, path in zip(wnids_per_row, _image_paths(dataset, image_column)):
        if not path:
            return None
        keys.append(f"{wnid}/{os.path.basename(path)}")
    return keys


def _imagenet_r_split(dataset, image_column, native, mode: str):
    """(train rows, test rows, description) for the single-split ImageNet-R."""
    info = protocol("imagenet_r")
    wnids = np.asarray(info["wnids"])
    if mode not in IMAGENET_R_SPLIT_MODES:
        raise DataError(f"imagenet_r_split={mode!r} is not valid; choose one of: {', '.join(IMAGENET_R_SPLIT_MODES)}")
    reason = "mode 'stratified' chosen"
    if mode in ("auto", "rapf"):
        keys = imagenet_r_rapf_keys(dataset, image_column, wnids[np.maximum(native, 0)])
        rapf = rapf_imagenet_r_split()
        if keys is None:
            reason = "the image feature stores no file paths"
        elif len(set(keys)) != len(keys):
            reason = "file names are not unique within a class"
        elif not all(k in rapf for k in keys):
            unknown = [k for k in keys if k not in rapf]
            reason = f"{len(unknown)} file(s) are not in RAPF's list (e.g. {unknown[:3]})"
        else:
            side = np.array([rapf[k] for k in keys])
            train, test = np.flatnonzero(side == "train"), np.flatnonzero(side == "test")
            covered = len(keys)
            note = "" if covered == len(rapf) else f" ({covered} of its {len(rapf)} images present)"
            return train, test, f"RAPF's split file (imgr_train_test_split.txt){note}"
        if mode == "rapf":
            raise DataError(
                f"imagenet_r_split='rapf' needs the original file names to match RAPF's list, but {reason}. "
                "Use the original layout: download imagenet-r.tar (in the axiong/imagenet-r repo only at the pinned "
                f"commit {SOURCES['imagenet_r'].revision}, not on main; or from the ImageNet-R authors), extract "
                "it and pass --data_dir .../imagenet-r; or use "
                "--imagenet_r_split stratified."
            )
    rows_of_class = [np.flatnonzero(native == c) for c in range(len(wnids))]
    counts = [len(r) for r in rows_of_class]
    manifest = imagenet_r_manifest()
    if [manifest["classes"][w]["n"] for w in wnids] == counts:
        positions = [manifest["classes"][w]["test"] for w in wnids]
        how = f"seeded stratified 80/20 split from the manifest ({manifest['file']})"
    else:
        positions = stratified_test_positions(counts)
        how = ("seeded stratified 80/20 split computed for this copy (its per-class counts differ from the "
               "30,000-image manifest)")
        logger.warning("imagenet_r: %s", how)
    test = np.sort(np.concatenate([rows[np.asarray(p, dtype=np.int64)] for rows, p in zip(rows_of_class, positions)]))
    train = np.setdiff1d(np.flatnonzero(native >= 0), test)
    return train, test, f"{how}; RAPF's list not used: {reason}"


def load_imagenet_r(data_args) -> LoadedBenchmark:
    info = protocol("imagenet_r")
    source = SOURCES["imagenet_r"]
    splits, kind, provenance = fetch_splits(source, data_args, splits=[source.test_split])
    image_column, label_column = split_columns(source, kind, data_args)
    lookup = name_lookup([[wnid, name] for wnid, name in zip(info["wnids"], info["class_names"])])
    n = info["num_classes"]
    common = dict(class_names=list(info["class_names"]), class_order=list(info["class_order"]),
                  template=RAPF_TEMPLATE, image_column=image_column, extra_orders=extra_orders(info))
    if "train" in splits and "test" in splits and kind == "folder":  # RAPF's own train/ test/ folders
        train, train_label = native_split(splits["train"], image_column, label_column, lookup, n, "imagenet_r train folder")
        test, test_label = native_split(splits["test"], image_column, label_column, lookup, n, "imagenet_r test folder")
        train, test, label_column = shared_label_column(train, test, train_label, test_label)
        return LoadedBenchmark(train=train, test=test, label_column=label_column,
                               info={**provenance, "split": "the copy's train/ and test/ folders"}, **common)
    if len(splits) != 1:
        raise DataError(f"imagenet_r: expected one split of 30,000 images (or train/ and test/ folders), got {sorted(splits)}")
    (only,) = splits.values()
    check_columns(only, (image_column, label_column), "imagenet_r")
    native, identity = native_label_array(only, label_column, lookup, n, "imagenet_r")
    mode = getattr(data_args, "imagenet_r_split", None) or "auto"
    train_rows, test_rows, how = _imagenet_r_split(only, image_column, native, mode)
    if not identity:
        only = only.add_column(NATIVE_LABEL, native.tolist())
        label_column = NATIVE_LABEL
    return LoadedBenchmark(train=only.select(train_rows), test=only.select(test_rows), label_column=label_column,
                           info={**provenance, "split": how}, **common)


# ----------------------------------------------------------------------------------------------------
# registration


for _name, _loader, _what, _classes in (
    ("cifar100", load_cifar100, "CIFAR-100, 100 classes", 100),
    ("imagenet_r", load_imagenet_r, "ImageNet-R, 200 classes", 200),
    ("imagenet_sub", load_imagenet_sub, "ImageNet-Sub (ImageNet-1k classes 0-99), 100 classes", 100),
    ("cub200", load_cub200, "CUB-200-2011, 200 classes", 200),
    ("ucf101", load_ucf101, "UCF101 middle frames, 100 classes (PROOF protocol)", 100),
):
    register_benchmark(BenchmarkSpec(_name, _what, _loader, num_classes=_classes))


__all__ = [
    "BENCHMARKS", "CARDS", "SOURCES", "ZERO_SHOT_SETS", "HubSource", "ZeroShotSet", "fetch_splits", "load_zero_shot_set",
    "normalise_name", "protocol", "clip_imagenet_names", "rapf_imagenet_r_split", "stratified_test_positions",
]
