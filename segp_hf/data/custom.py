"""``benchmark: custom``: your own image-classification dataset as a continual benchmark.

The dataset comes from ``data_dir`` (a ``save_to_disk`` folder, an image folder ``<split>/<class>/<image>`` or a
folder of parquet files) or from ``dataset_name`` (a Hub id, at ``dataset_config`` / ``dataset_revision``).
What a registered benchmark fixes is found from the data, and can always be named:
- columns: the one ``Image`` column; the one ``ClassLabel`` column, else ``label_column`` (strings or ints);
- splits: ``train_split`` (default ``train``); ``test_split``, else ``test``, else ``validation``, else a seeded
  stratified hold-out of the train split (``holdout_fraction`` of each class);
- class names: ``class_names_file`` (one a line, by label id), else the ClassLabel names, else the sorted label
  strings, kept exactly as spelt (saved classes, model card, ``load_task``); only the prompts read underscores as
  spaces (``scenario.prompts_for``); label ids follow that order;
- tasks: the classes must divide into ``num_tasks`` equal tasks (else an error saying which counts would).
"""

from __future__ import annotations

from pathlib import Path

import datasets
import numpy as np

from .fetching import check_columns, load_local_copy
from .hub_sources import HubSource, resolve_commit
from .labels import NATIVE_LABEL, arrow_column, shared_label_column, with_native_labels
from .spec import DataError, LoadedBenchmark

TEMPLATE = "a good photo of a {}."
TEST_SPLITS = ("test", "validation")  # looked for in this order when test_split is unset
HOLDOUT_SEED = 0  # the stratified hold-out of the train split is the same on every machine
SEED_1993 = 1993  # PROOF's / C3Box's class-order permutation seed


def _raw_splits(data_args) -> tuple[dict[str, datasets.Dataset], str]:
    if data_args.data_dir:
        splits, kind = load_local_copy(data_args.data_dir)
        return splits, f"local {kind} copy at {data_args.data_dir}"
    if not data_args.dataset_name:
        raise DataError("benchmark 'custom' needs --data_dir (a local dataset) or --dataset_name (a Hub id)")
    try:
        loaded = datasets.load_dataset(data_args.dataset_name, data_args.dataset_config,
                                       revision=data_args.dataset_revision)
    except Exception as error:  # noqa: BLE001 - reported as a user error with the cause
        raise DataError(f"could not load the dataset {data_args.dataset_name!r} "
                        f"({type(error).__name__}: {' '.join(str(error).split())})") from None
    revision = data_args.dataset_revision or "newest (not pinned: set --dataset_revision)"
    return dict(loaded), f"hub {data_args.dataset_name}@{revision}"


def _hub_commit(data_args) -> dict:
    """The commit the Hub dataset was read at (recorded with the run's settings as ``dataset_commit``)."""
    if data_args.data_dir:
        return {}
    commit = resolve_commit(HubSource(data_args.dataset_name, "", "", ""), data_args.dataset_revision)
    return {"commit": commit} if commit else {}


def find_splits(splits: dict, data_args) -> tuple[datasets.Dataset, datasets.Dataset | None, str]:
    """(train, test or None for a hold-out, how they were found)."""
    train_name = data_args.train_split or "train"
    if train_name not in splits:
        raise DataError(f"custom: no split {train_name!r} for training; available splits: {sorted(splits)} "
                        "(set --train_split)")
    if data_args.test_split:
        if data_args.test_split not in splits:
            raise DataError(f"custom: no split {data_args.test_split!r} for testing; available splits: "
                            f"{sorted(splits)}")
        return splits[train_name], splits[data_args.test_split], f"train = {train_name!r}, test = {data_args.test_split!r}"
    for name in TEST_SPLITS:
        if name in splits and name != train_name:
            return splits[train_name], splits[name], f"train = {train_name!r}, test = {name!r}"
    return splits[train_name], None, (f"train = {train_name!r}, test = a stratified hold-out of "
                                      f"{data_args.holdout_fraction:g} of each class (seed {HOLDOUT_SEED})")


def _only(names: list[str], what: str, setting: str, columns) -> str:
    if len(names) != 1:
        found = f"{len(names)} ({names})" if names else "none"
        raise DataError(f"custom: cannot tell the {what} column: {found} among {list(columns)}; set --{setting}")
    return names[0]


def find_columns(dataset: datasets.Dataset, data_args) -> tuple[str, str]:
    """(image column, label column): the named ones, else the one Image / the one ClassLabel feature."""
    features = dataset.features
    image = data_args.image_column or _only(
        [n for n, f in features.items() if isinstance(f, datasets.Image)], "image", "image_column", features)
    label = data_args.label_column or _only(
        [n for n, f in features.items() if isinstance(f, datasets.ClassLabel)], "label", "label_column", features)
    check_columns(dataset, (image, label), "custom: the train split")
    if not isinstance(features[image], datasets.Image):
        raise DataError(f"custom: column {image!r} holds {features[image]}, not images; set --image_column")
    return image, label


def _names_file(path: str) -> list[str]:
    names = [line.strip() for line in Path(path).expanduser().read_text().splitlines() if line.strip()]
    if not names:
        raise DataError(f"class_names_file {path} holds no class names; write one class name a line")
    if len(set(names)) != len(names):
        raise DataError(f"class_names_file {path}: a class name appears twice")
    return names


def check_prompt_names(names: list[str]) -> list[str]:
    """``names`` unchanged, once no two of them give the same prompt (``a_b`` and ``a b`` would)."""
    spoken = [name.replace("_", " ") for name in names]
    same = sorted({n for n, s in zip(names, spoken) if spoken.count(s) > 1})
    if same:
        raise DataError(f"custom: class names {same[:6]} read the same in a prompt (underscores are spaces there); "
                        "rename them or give --class_names_file")
    return names


def label_names(train: datasets.Dataset, label: str, data_args) -> list[str]:
    """The class names by label id (exact spelling)."""
    feature = train.features[label]
    given = _names_file(data_args.class_names_file) if data_args.class_names_file else None
    if isinstance(feature, datasets.ClassLabel):
        if given is not None and len(given) != feature.num_classes:
            raise DataError(f"class_names_file has {len(given)} names; column {label!r} has {feature.num_classes}")
        return given or list(feature.names)
    raw = arrow_column(train, label)
    if raw.dtype.kind in "OUS":
        return given or sorted(set(raw.astype(str).tolist()))
    if raw.dtype.kind not in "iu":
        raise DataError(f"custom: label column {label!r} holds {feature}, not class labels; set --label_column")
    if given is None:
        raise DataError(f"custom: label column {label!r} holds integers with no names; give --class_names_file")
    return given


def label_ids(dataset: datasets.Dataset, label: str, names: list[str], where: str) -> np.ndarray:
    """Per-row class id (the position of its name in ``names``, or the stored id)."""
    feature = dataset.features[label]
    raw = arrow_column(dataset, label)
    if raw.dtype.kind in "OUS" and not isinstance(feature, datasets.ClassLabel):
        position = {name: i for i, name in enumerate(names)}
        unknown = sorted(set(raw.astype(str).tolist()) - set(position))
        if unknown:
            raise DataError(f"custom: {where} has labels not among the class names: {unknown[:10]}")
        return np.array([position[value] for value in raw.astype(str).tolist()], dtype=np.int64)
    ids = raw.astype(np.int64)
    if len(ids) and (ids.min() < 0 or ids.max() >= len(names)):
        raise DataError(f"custom: {where} has label ids outside 0..{len(names) - 1}")
    return ids


def stratified_holdout(ids: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, test rows): ``fraction`` of each class's rows (at least one, never all) held out, seeded."""
    rng = np.random.RandomState(HOLDOUT_SEED)
    train, test = [], []
    for cls in np.unique(ids):
        rows = rng.permutation(np.flatnonzero(ids == cls))
        held = min(max(1, round(fraction * len(rows))), len(rows) - 1)
        test.append(rows[:held])
        train.append(rows[held:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def check_divisible(num_classes: int, num_tasks: int) -> None:
    if num_tasks < 1 or num_classes % num_tasks:
        fits = [n for n in range(1, num_classes + 1) if num_classes % n == 0]
        raise DataError(f"custom: {num_classes} classes do not divide into num_tasks={num_tasks} equal tasks; "
                        f"choose num_tasks from {fits}")


def load_custom(data_args) -> LoadedBenchmark:
    splits, source = _raw_splits(data_args)
    train, test, split_text = find_splits(splits, data_args)
    image, label = find_columns(train, data_args)
    names = check_prompt_names(label_names(train, label, data_args))
    check_divisible(len(names), data_args.num_tasks)
    train_ids = label_ids(train, label, names, "the train split")
    if test is None:
        train_rows, test_rows = stratified_holdout(train_ids, data_args.holdout_fraction)
        test, test_ids = train, train_ids
    else:
        check_columns(test, (image, label), "custom: the test split")
        test_ids, train_rows, test_rows = label_ids(test, label, names, "the test split"), None, None
    train, train_label = with_native_labels(train, label, train_ids, _is_stored(train, label, train_ids), train_rows)
    test, test_label = with_native_labels(test, label, test_ids, _is_stored(test, label, test_ids), test_rows)
    train, test, label = shared_label_column(train, test, train_label, test_label)
    order = list(range(len(names)))
    return LoadedBenchmark(
        train=train, test=test, class_names=list(names), class_order=order,
        template=TEMPLATE, image_column=image, label_column=label,
        extra_orders={"seed1993": np.random.RandomState(SEED_1993).permutation(len(names)).tolist()},
        info={"source": source, "split": split_text, "columns": f"image = {image!r}, label = {label!r}",
              "class names": _names_source(data_args, train_label), **_hub_commit(data_args)},
    )


def _is_stored(dataset, label, ids) -> bool:
    """Whether the label column already holds ``ids`` (then no column is added)."""
    raw = arrow_column(dataset, label)
    return raw.dtype.kind in "iu" and bool(np.array_equal(raw, ids))


def _names_source(data_args, label) -> str:
    if data_args.class_names_file:
        return f"from {data_args.class_names_file}"
    return "from the label strings (sorted)" if label == NATIVE_LABEL else "from the ClassLabel names"
