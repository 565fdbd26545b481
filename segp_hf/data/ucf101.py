"""UCF101 as an image benchmark (PROOF's protocol): one middle frame per clip, 100 classes (YoYo dropped). From
the Hub only the middle frames' rows are stored: they are found from the metadata columns first."""

from __future__ import annotations

import numpy as np

from .fetching import check_columns, fetch_splits, hub_target, pick_split, split_columns
from .hub_sources import LABEL_ALIASES, SOURCES, read_columns
from .labels import arrow_column, name_lookup, native_label_array, shared_label_column, with_native_labels
from .protocol_assets import RAPF_TEMPLATE, extra_orders, protocol
from .spec import BenchmarkSpec, LoadedBenchmark

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


UCF101 = BenchmarkSpec("ucf101", "UCF101 middle frames, 100 classes (PROOF protocol)", load_ucf101, num_classes=100)
