"""Fetching a benchmark's raw splits: from a local copy (``data_dir``) or the Hub, only the splits (and rows)
that are used; which columns hold the image and the label.

Data sources, in order of precedence:
- ``data_dir``: a local copy, either ``DatasetDict.save_to_disk`` output of the Hub dataset (same schema),
  a folder of parquet files (split names from the file or folder names, as on the Hub), or an image folder
  (``<split>/<class folder>/<image>``; class folders named by class name or WNID).
- the Hub: ``datasets.load_dataset(dataset_id, revision=...)``. ``dataset_revision`` (DataArguments)
  overrides the pinned revision (data/hub_sources.py); None = the pinned one, or the newest where none is pinned.
"""

from __future__ import annotations

from pathlib import Path

import datasets

from .hub_sources import HubSource, load_hub_split, resolve_commit
from .spec import DataError


def load_local_copy(path: str) -> tuple[dict[str, datasets.Dataset], str]:
    root = Path(path).expanduser()
    if not root.exists():
        raise DataError(f"data_dir {root} does not exist; point --data_dir at a save_to_disk copy or an image folder")
    if (root / "dataset_dict.json").exists():
        return dict(datasets.load_from_disk(str(root))), "disk"
    if (root / "state.json").exists():
        single = datasets.load_from_disk(str(root))
        return {str(single.split or "data"): single}, "disk"
    if next(root.rglob("*.parquet"), None) is not None:
        return dict(datasets.load_dataset("parquet", data_dir=str(root))), "parquet"
    try:
        loaded = datasets.load_dataset("imagefolder", data_dir=str(root))
    except Exception as error:  # noqa: BLE001 - reported as a user error with the cause
        raise DataError(
            f"data_dir {root} is neither a save_to_disk copy (dataset_dict.json) nor an image folder "
            f"(<split>/<class>/<image>): {type(error).__name__}: {error}"
        ) from error
    return dict(loaded), "folder"


def hub_target(source: HubSource, data_args) -> tuple[HubSource, str | None]:
    """The source to fetch (``dataset_name`` swaps the Hub id, same schema) and the revision to fetch it at."""
    import dataclasses

    dataset_id = getattr(data_args, "dataset_name", None) or source.dataset_id
    pinned = source.revision if dataset_id == source.dataset_id else None
    revision = getattr(data_args, "dataset_revision", None) or pinned
    if dataset_id != source.dataset_id:
        source = dataclasses.replace(source, dataset_id=dataset_id, revision=None)
    return source, revision


def fetch_splits(source: HubSource, data_args, splits=None, filters=None,
                 max_rows: int | None = None) -> tuple[dict[str, datasets.Dataset], str, dict]:
    """The raw splits of a source (Hub or ``data_dir``), their kind ('hub', 'disk', 'folder') and
    provenance for the plan. From the Hub only ``splits`` are fetched (default: the source's train and
    test splits), each streamed and stored with only the rows ``filters[split]`` keeps (keyword arguments
    of :func:`load_hub_split`)."""
    data_dir = getattr(data_args, "data_dir", None)
    if data_dir:
        local, kind = load_local_copy(data_dir)
        return local, kind, {"source": f"local {kind} copy at {data_dir}"}
    source, revision = hub_target(source, data_args)
    wanted = splits or [s for s in (source.train_split, source.test_split) if s]
    filters = filters or {}
    commit = resolve_commit(source, revision)  # every split at the one commit; recorded with the run's settings
    loaded = {split: load_hub_split(source, split, revision, max_rows=max_rows, commit=commit, **filters.get(split, {}))
              for split in wanted}
    provenance = {"source": f"hub {source.dataset_id}@{revision or 'newest (not pinned)'}, "
                            f"splits {', '.join(wanted)} only"}
    return loaded, "hub", {**provenance, **({"commit": commit} if commit else {})}


def pick_split(splits: dict, name: str, dataset: str, role: str, aliases=()) -> datasets.Dataset:
    for candidate in (name, *aliases):
        if candidate in splits:
            return splits[candidate]
    raise DataError(
        f"{dataset}: no '{name}' split for {role} images; available splits: {sorted(splits)}. "
        "A local copy needs the same split names (or folders train/ and test/)."
    )


def split_columns(source: HubSource, kind: str, data_args) -> tuple[str, str]:
    image, label = (("image", "label") if kind == "folder" else (source.image_column, source.label_column))
    return (getattr(data_args, "image_column", None) or image, getattr(data_args, "label_column", None) or label)


def check_columns(dataset: datasets.Dataset, columns, where: str) -> None:
    missing = [c for c in columns if c not in dataset.column_names]
    if missing:
        raise DataError(
            f"{where} has no column(s) {missing}; available columns: {dataset.column_names}. "
            "Set --image_column / --label_column to the right ones."
        )
