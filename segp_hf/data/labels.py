"""Hub labels -> the field's native class ids, matched by name.

Native label ids are the field's: CIFAR-100 fine-label ids, sorted-WNID index for ImageNet-R, ImageNet-1k
index for ImageNet-Sub, CUB ``class_id - 1``, PROOF's UCF101 index. Hub labels are mapped onto them by
*name* (normalised: case, punctuation and ``NNN.`` prefixes ignored), so a Hub copy whose label order
differs still gets the right ids; a ``label`` column is only rewritten when the mapping is not the
identity.
"""

from __future__ import annotations

import re

import datasets
import numpy as np

from .fetching import check_columns
from .spec import DataError

NATIVE_LABEL = "native_label"  # column added when Hub label ids are not the native ids


def normalise_name(name: str) -> str:
    """Key for matching label names across copies: drop a ``001.`` prefix, case and punctuation."""
    name = re.sub(r"^\d+[._ -]", "", str(name).strip())
    return re.sub(r"[^0-9a-z]", "", name.lower())


def name_lookup(keys_per_class, aliases: dict[str, str] | None = None) -> dict[str, int]:
    """``normalised key -> native id`` from per-class key lists (names, WNIDs, ...), plus the
    benchmark's alias table (Hub spelling -> field name, e.g. CIFAR-100's ``cra`` -> ``crab``)."""
    table = {}
    for native, keys in enumerate(keys_per_class):
        for key in keys:
            table.setdefault(normalise_name(key), native)
    for hub_name, field_name in (aliases or {}).items():
        if normalise_name(field_name) not in table:
            raise ValueError(f"alias {hub_name!r} -> {field_name!r}: {field_name!r} is not a class of the benchmark")
        table.setdefault(normalise_name(hub_name), table[normalise_name(field_name)])
    return table


def arrow_column(dataset: datasets.Dataset, column: str) -> np.ndarray:
    """One column as numpy through Arrow (no per-row Python objects, no image decoding)."""
    return dataset.with_format("arrow")[column].to_numpy()


def native_label_array(dataset, label_column: str, lookup: dict[str, int], num_classes: int, where: str,
                       index_fallback: int | None = None, class_names=None, aliases=None):
    """Per-row native id (-1 = a class outside the benchmark) and whether it equals the stored label."""
    feature = dataset.features[label_column]
    raw = arrow_column(dataset, label_column)
    if isinstance(feature, datasets.ClassLabel):
        if index_fallback is not None and feature.num_classes == index_fallback:
            # the full label space the benchmark is a prefix of (ImageNet-1k, names like 'tench, Tinca
            # tinca' that do not match the CLIP-style names): the index is the native id
            mapping = np.where(np.arange(feature.num_classes) < num_classes, np.arange(feature.num_classes), -1)
        else:
            mapping = np.array([lookup.get(normalise_name(n), -1) for n in feature.names], dtype=np.int64)
        covered = set(mapping[mapping >= 0].tolist())
        native = mapping[raw] if len(raw) else raw.astype(np.int64)
    elif raw.dtype.kind in "OUS":
        uniques, inverse = np.unique(raw.astype(str), return_inverse=True)
        mapping = np.array([lookup.get(normalise_name(u), -1) for u in uniques], dtype=np.int64)
        covered = set(mapping[mapping >= 0].tolist())
        native = mapping[inverse]
    else:  # plain integers: taken as native ids
        native = np.where((raw >= 0) & (raw < num_classes), raw, -1).astype(np.int64)
        covered = set(native[native >= 0].tolist())
    missing = sorted(set(range(num_classes)) - covered)
    if missing:
        named = [class_names[i] for i in missing[:10]] if class_names else missing[:10]
        tried = ", ".join(f"{k!r} -> {v!r}" for k, v in (aliases or {}).items()) or "none"
        raise DataError(
            f"{where}: the labels in column '{label_column}' do not cover {len(missing)} of the benchmark's "
            f"{num_classes} classes (missing: {named}{' ...' if len(missing) > 10 else ''}; native ids "
            f"{missing[:10]}); labels are matched by name ignoring case, punctuation and 'NNN.' prefixes, "
            f"aliases tried: {tried}. Is this the right dataset and label column?"
        )
    identity = raw.dtype.kind in "iu" and bool(np.array_equal(native[native >= 0], raw[native >= 0]))
    return native, identity


def with_native_labels(dataset, label_column, native, identity, rows=None):
    """Keep ``rows`` (default: every row of a benchmark class) and make the label column native.
    Columns are added before any ``select`` so no image data is copied."""
    if rows is None:
        rows = np.flatnonzero(native >= 0)
    if not identity:
        if NATIVE_LABEL in dataset.column_names:
            dataset = dataset.remove_columns(NATIVE_LABEL)
        dataset = dataset.add_column(NATIVE_LABEL, native.tolist())
        label_column = NATIVE_LABEL
    if len(rows) != len(dataset) or not np.array_equal(rows, np.arange(len(dataset))):
        dataset = dataset.select(rows)
    return dataset, label_column


def native_split(dataset, image_column, label_column, lookup, num_classes, where, index_fallback=None, **names):
    check_columns(dataset, (image_column, label_column), where)
    native, identity = native_label_array(dataset, label_column, lookup, num_classes, where, index_fallback, **names)
    return with_native_labels(dataset, label_column, native, identity)


def shared_label_column(train, test, train_label, test_label):
    """Train and test must share the label column name for the scenario (both hold native ids)."""
    if train_label != test_label:
        if train_label != NATIVE_LABEL:
            train = train.rename_column(train_label, NATIVE_LABEL)
        if test_label != NATIVE_LABEL:
            test = test.rename_column(test_label, NATIVE_LABEL)
    return train, test, NATIVE_LABEL if train_label != test_label else train_label
