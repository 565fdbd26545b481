"""ImageNet-R: one Hub split of 30,000 images divided into train and test here, by RAPF's list when the file
names match, else by a seeded stratified 80/20 split (a manifest shipped in the package)."""

from __future__ import annotations

import logging
import os

import numpy as np

from .fetching import check_columns, fetch_splits, split_columns
from .hub_sources import SOURCES
from .labels import NATIVE_LABEL, name_lookup, native_label_array, native_split, shared_label_column
from .protocol_assets import RAPF_TEMPLATE, extra_orders, imagenet_r_manifest, protocol, rapf_imagenet_r_split
from .spec import BenchmarkSpec, DataError, LoadedBenchmark

logger = logging.getLogger(__name__)

IMAGENET_R_SPLIT_MODES = ("auto", "rapf", "stratified")
IMAGENET_R_STRATIFIED_SEED = 0
IMAGENET_R_TEST_FRACTION = 0.2


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
        train, train_label = native_split(splits["train"], image_column, label_column, lookup, n,
                                          "imagenet_r train folder")
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


IMAGENET_R = BenchmarkSpec("imagenet_r", "ImageNet-R, 200 classes", load_imagenet_r, num_classes=200)
