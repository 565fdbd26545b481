"""Where each dataset lives on the Hub, at which commit, how its labels are spelt there, how big its
splits are, and how one split is fetched so that only what is used is downloaded and stored (at the commit its
revision resolves to, keyed by that commit). Why a load failed, and what to say: ``hub_errors.py``.

Facts and where they come from (docs/benchmarks.md says the same, per benchmark):
- revisions: ``uoft-cs/cifar100`` aadb3af ("Convert dataset to Parquet (#4)", seen on the Hub's README
  history page); ``axiong/imagenet-r`` and ``bentrevett/caltech-ucsd-birds-200-2011``: pinned before this
  module; ``ILSVRC/imagenet-1k`` 49e2ee2 and ``ethz/food101`` e06acf2: as found on public pages by the
  issue that asked for the pins, not re-read here. ``flwrlabs/ucf101`` and ``timm/oxford-iiit-pet``: no
  commit could be read from a public copy, so they are not pinned (pass ``--dataset_revision``, or
  ``--zero_shot_revisions oxford_pets=...`` for the zero-shot set).
- label spellings: ``uoft-cs/cifar100``'s ``fine_label`` spells class 26 ``cra`` (its README
  ``dataset_info``); hence the alias table below.
- sizes: ``SplitSize.source`` says where each number comes from; ``approximate`` ones are not from a
  file listing and are printed with a ``~`` by the plan check.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
from huggingface_hub import HfApi

from .hub_errors import error_chain, load_error_message, read_error_message
from .spec import DataError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SplitSize:
    """Bytes of one split's files on the Hub and its row count."""

    bytes: int
    rows: int
    approximate: bool = True
    source: str = "estimate (no file listing read)"


@dataclass(frozen=True)
class HubSource:
    dataset_id: str
    image_column: str
    label_column: str
    test_split: str
    train_split: str | None = None  # None: one split that we divide ourselves (ImageNet-R)
    revision: str | None = None  # pinned commit; None = not pinned (newest)
    config_name: str | None = None
    note: str = ""
    sizes: dict = field(default_factory=dict)  # split -> SplitSize
    gated: bool = False
    revision_setting: str = "--dataset_revision"  # the setting that overrides ``revision`` (named by errors)


# Hub label spelling -> the field's class name, per benchmark (applied before matching by name).
LABEL_ALIASES: dict[str, dict[str, str]] = {
    "cifar100": {"cra": "crab"},  # uoft-cs/cifar100 fine_label 26 (typo on the Hub)
}

_GB = 1_000_000_000

SOURCES = {
    "cifar100": HubSource(
        "uoft-cs/cifar100", image_column="img", label_column="fine_label", train_split="train",
        test_split="test", revision="aadb3af77e9048adbea6b47c21a81e47dd092ae5",
        note="schema: img (Image), fine_label (ClassLabel 100, class 26 spelt 'cra'), coarse_label (ClassLabel 20); "
        "50,000/10,000",
        sizes={"train": SplitSize(112_500_000, 50_000), "test": SplitSize(22_605_519, 10_000, False,
                                                                              "README dataset_info num_bytes")},
    ),
    "imagenet_r": HubSource(
        "axiong/imagenet-r", image_column="image", label_column="wnid", test_split="test",
        revision="f4be3aeec67c5214a04365c388ea9d1fc4b74f36",
        note="schema: image (Image), wnid (string), class_name (string); one split 'test' of 30,000 rows",
        sizes={"test": SplitSize(int(2.2 * _GB), 30_000)},
    ),
    "imagenet_sub": HubSource(
        "ILSVRC/imagenet-1k", image_column="image", label_column="label", train_split="train",
        test_split="validation", revision="49e2ee26f3810fb5a7536bbf732a7b07389a47b5", gated=True,
        note="schema: image (Image), label (ClassLabel 1000, 'tench, Tinca tinca'...); gated",
        sizes={"train": SplitSize(int(146.5 * _GB), 1_281_167), "validation": SplitSize(int(6.7 * _GB), 50_000)},
    ),
    "cub200": HubSource(
        "bentrevett/caltech-ucsd-birds-200-2011", image_column="image", label_column="label",
        train_split="train", test_split="test", revision="1ef09e021b0b65b40337f6f285909656f407f6e0",
        note="schema: image (Image), label (ClassLabel '001.Black_footed_Albatross'...), bbox; official 5,994/5,794",
        sizes={"train": SplitSize(int(0.57 * _GB), 5_994), "test": SplitSize(int(0.55 * _GB), 5_794)},
    ),
    "ucf101": HubSource(
        "flwrlabs/ucf101", image_column="image", label_column="label", train_split="train", test_split="test",
        note="schema: image (Image), video_id (string), clip_id (string), frame (int64), label (ClassLabel 101, "
        "CamelCase names); every frame of split 1: we keep the middle frame of each clip",
        sizes={"train": SplitSize(int(27 * _GB), 1_788_425), "test": SplitSize(int(10.5 * _GB), 697_000)},
    ),
    # zero-shot retention sets: only the evaluation split is fetched
    "food101": HubSource(
        "ethz/food101", image_column="image", label_column="label", train_split="train", test_split="validation",
        revision="e06acf2a88084f04bce4d4a525165d68e0a36c38",
        note="schema: image (Image), label (ClassLabel 101, 'apple_pie'...); 75,750/25,250",
        sizes={"validation": SplitSize(1_276_249_954, 25_250, False, "README dataset_info num_bytes")},
    ),
    "oxford_pets": HubSource(
        "timm/oxford-iiit-pet", image_column="image", label_column="label", train_split="train", test_split="test",
        note="schema: image (Image), label (ClassLabel 37), image_id, label_cat_dog; 3,680/3,669",
        sizes={"test": SplitSize(int(0.39 * _GB), 3_669)},
    ),
    "imagenet1k": HubSource(
        "ILSVRC/imagenet-1k", image_column="image", label_column="label", train_split="train",
        test_split="validation", revision="49e2ee26f3810fb5a7536bbf732a7b07389a47b5", gated=True,
        note="schema: image (Image), label (ClassLabel 1000, 'tench, Tinca tinca'...); val 50,000",
        sizes={"validation": SplitSize(int(6.7 * _GB), 50_000)},
    ),
}

# Why a dataset is not pinned (shown by the plan check and docs/benchmarks.md).
UNPINNED_REASON = "no commit of this repository could be read from a public copy; pass --dataset_revision to pin one"


# ----------------------------------------------------------------------------------------------------
# fetching one split, storing only the kept rows


def cache_root() -> Path:
    """Where kept rows are stored: ``$SEGP_HF_DATA_CACHE`` or ``<HF datasets cache>/segp_hf``."""
    return Path(os.environ.get("SEGP_HF_DATA_CACHE") or Path(datasets.config.HF_DATASETS_CACHE) / "segp_hf")


def _stream(source: HubSource, split: str, revision: str | None, columns=None):
    kwargs = {"columns": list(columns)} if columns else {}
    try:
        return datasets.load_dataset(source.dataset_id, source.config_name, revision=revision, split=split,
                                     streaming=True, **kwargs)
    except DataError:
        raise
    except Exception as error:  # noqa: BLE001 - gated, missing revision, offline: reported by kind
        pinned = revision is not None and revision == source.revision
        raise DataError(load_error_message(source.dataset_id, revision, error, source.gated, pinned,
                                           source.revision_setting)) from error


_COMMIT = re.compile(r"[0-9a-f]{40}")


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(datasets.config.HF_HUB_OFFLINE or constants.HF_HUB_OFFLINE)


def _ref_file(dataset_id: str, revision: str | None) -> Path:
    return cache_root() / dataset_id.replace("/", "--") / "refs" / (revision or "newest").replace("/", "--")


def resolve_commit(source: HubSource, revision: str | None) -> str | None:
    """The commit ``revision`` (None: the default branch) names now, asked of the Hub (``dataset_info``); offline or
    unanswered, the commit it named when last asked (kept beside the stored rows); None when neither is known."""
    if revision and _COMMIT.fullmatch(revision):
        return revision
    ref = _ref_file(source.dataset_id, revision)
    if not _offline():
        try:
            sha = HfApi().dataset_info(source.dataset_id, revision=revision).sha
        except Exception:  # noqa: BLE001 - unreachable, missing, gated: the load itself says which
            sha = None
        if sha:
            ref.parent.mkdir(parents=True, exist_ok=True)
            ref.write_text(sha)
            return sha
    return ref.read_text().strip() if ref.is_file() else None


def read_columns(source: HubSource, split: str, revision: str | None, columns) -> dict[str, np.ndarray]:
    """Metadata columns of a Hub split, streamed through Arrow with no image bytes (column projection), at the
    commit ``revision`` names."""
    import pyarrow as pa

    revision = resolve_commit(source, revision) or revision
    stream = _stream(source, split, revision, columns=columns).select_columns(list(columns))
    try:
        tables = list(stream.with_format("arrow").iter(batch_size=65_536))
    except Exception as error:  # noqa: BLE001 - a read error while streaming: one line
        raise DataError(read_error_message(source.dataset_id, split, revision, error)) from error
    table = pa.concat_tables(tables) if tables else None
    return {c: (table.column(c).to_numpy() if table is not None else np.array([])) for c in columns}


def _generate(dataset_id, revision, split, image_column, label_column, keep_labels, keep_keys, key_columns,
              max_rows=None):
    """Rows of one streamed split, images as stored bytes (never decoded), filtered on the way."""
    source = _SOURCE_BY_ID[dataset_id]
    stream = _stream(source, split, revision)
    stream = stream.cast_column(image_column, datasets.Image(decode=False))
    labels = None if keep_labels is None else set(keep_labels)
    keys = None if keep_keys is None else {tuple(k) for k in keep_keys}
    kept = 0
    for row in stream:
        if max_rows is not None and kept >= max_rows:
            return
        if labels is not None and row[label_column] not in labels:
            continue
        if keys is not None and tuple(str(row[c]) for c in key_columns) not in keys:
            continue
        kept += 1
        yield row


_SOURCE_BY_ID: dict[str, HubSource] = {}


def load_hub_split(source: HubSource, split: str, revision: str | None, keep_labels=None, keep_keys=None,
                   key_columns=(), max_rows: int | None = None, commit: str | None = None) -> datasets.Dataset:
    """One split of a Hub dataset as a ``datasets.Dataset`` holding only the kept rows.

    The split is streamed at the commit ``revision`` names (``commit``: already resolved; see
    :func:`resolve_commit`), no other split is touched and nothing but the kept rows is written; they are written
    once under :func:`cache_root`, keyed by dataset, commit (the revision's name only when no commit is known),
    split and filter, so a second run reads them back without downloading and a moved branch is fetched again.
    ``keep_labels``: label ids to keep; ``keep_keys``: tuples of ``key_columns`` values (as strings) to keep;
    ``max_rows``: a prefix (quick runs)."""
    _SOURCE_BY_ID[source.dataset_id] = source
    revision = commit or resolve_commit(source, revision) or revision
    spec = {"labels": None if keep_labels is None else sorted(int(x) for x in keep_labels),
            "keys": None if keep_keys is None else sorted(map(list, keep_keys)), "key_columns": list(key_columns),
            "max_rows": max_rows}
    # gen_kwargs lists would be read as shards by datasets: pass tuples
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
    folder = cache_root() / source.dataset_id.replace("/", "--") / (revision or "newest") / f"{split}-{digest}"
    if (folder / "dataset_info.json").exists():
        if not (revision and _COMMIT.fullmatch(revision)):
            logger.info("%s: reusing the rows stored for revision %s at %s, its commit unknown (offline?); delete "
                        "it to fetch again", source.dataset_id, revision or "newest", folder)
        return datasets.load_from_disk(str(folder))
    probe = _stream(source, split, revision)
    features = probe.features
    if features is None:
        raise DataError(f"{source.dataset_id} split '{split}' declares no features; cannot store its rows")
    features = datasets.Features({**features, source.image_column: datasets.Image(decode=False)})
    kwargs = dict(dataset_id=source.dataset_id, revision=revision, split=split, image_column=source.image_column,
                  label_column=source.label_column,
                  keep_labels=None if spec["labels"] is None else tuple(spec["labels"]),
                  keep_keys=None if spec["keys"] is None else tuple(map(tuple, spec["keys"])),
                  key_columns=tuple(key_columns), max_rows=max_rows)
    _store_rows(source, split, kwargs, features, folder)
    return datasets.load_from_disk(str(folder))


def _store_rows(source: HubSource, split: str, kwargs: dict, features, folder: Path) -> None:
    """Stream the kept rows into ``folder``, all or nothing: built under ``.build-*``, saved under ``.save-*``
    and renamed; a read error while the rows stream is a DataError and leaves neither behind."""
    build, staging = folder.parent / f".build-{folder.name}", folder.parent / f".save-{folder.name}"
    try:
        dataset = datasets.Dataset.from_generator(_generate, features=features, gen_kwargs=kwargs,
                                                  cache_dir=str(build))
        dataset.cast_column(source.image_column, datasets.Image()).save_to_disk(str(staging))
        del dataset
        shutil.rmtree(folder, ignore_errors=True)  # a folder without dataset_info.json is a leftover
        staging.rename(folder)
    except Exception as error:  # noqa: BLE001 - reported in one line; a DataError of the stream as it is
        shutil.rmtree(staging, ignore_errors=True)
        known = next((e for e in error_chain(error) if isinstance(e, DataError)), None)
        raise DataError(str(known) if known else read_error_message(source.dataset_id, split, kwargs["revision"],
                                                                    error)) from error
    finally:
        shutil.rmtree(build, ignore_errors=True)  # the rows are kept once, in ``folder``


# ----------------------------------------------------------------------------------------------------
# what a recipe downloads and stores (the plan check prints this before anything is fetched)


@dataclass
class TransferEstimate:
    dataset_id: str
    revision: str | None
    lines: list[tuple[str, int, int, bool]]  # (split, bytes downloaded, bytes stored, approximate)

    @property
    def downloaded(self) -> int:
        return sum(line[1] for line in self.lines)

    @property
    def stored(self) -> int:
        return sum(line[2] for line in self.lines)

    @property
    def approximate(self) -> bool:
        return any(line[3] for line in self.lines)


# kept rows per split for a full run (the benchmark's rows, not the Hub split's)
KEPT_ROWS = {
    "cifar100": {"train": 50_000, "test": 10_000},
    "imagenet_r": {"test": 30_000},
    "imagenet_sub": {"train": 130_000, "validation": 5_000},  # ImageNet-1k classes 0-99: at most 1,300 train each
    "cub200": {"train": 5_994, "test": 5_794},
    "ucf101": {"train": 9_537, "test": 3_783},  # one middle frame per clip of split 1 (YoYo's clips included)
    "food101": {"validation": 25_250},
    "oxford_pets": {"test": 3_669},
    "imagenet1k": {"validation": 50_000},
}


def estimate_transfer(name: str) -> TransferEstimate | None:
    """Bytes a full run of benchmark/zero-shot set ``name`` downloads and stores, from the split sizes:
    every split it streams is downloaded whole; what is stored is the kept rows at the split's mean row size."""
    source = SOURCES.get(name)
    if source is None:
        return None
    lines = []
    for split, kept in KEPT_ROWS.get(name, {}).items():
        size = source.sizes.get(split)
        if size is None:
            continue
        stored = int(size.bytes * min(kept, size.rows) / max(size.rows, 1))
        lines.append((split, size.bytes, stored, size.approximate))
    return TransferEstimate(source.dataset_id, source.revision, lines)


def format_bytes(count: int, approximate: bool = False) -> str:
    prefix = "~" if approximate else ""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            return f"{prefix}{count / scale:.1f} {unit}"
    return f"{prefix}{count} B"
