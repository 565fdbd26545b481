"""The zero-shot retention sets (evaluated before and after the task sequence): which ones there are, how each
names its classes, and loading only its evaluation split. Scoring a model on them: segp_hf/evaluation/zero_shot.py."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import datasets

from .fetching import check_columns, fetch_splits, pick_split
from .hub_sources import SOURCES
from .protocol_assets import RAPF_TEMPLATE, protocol
from .spec import DataError


@dataclass
class ZeroShotSet:
    name: str
    dataset: datasets.Dataset
    class_names: list[str]
    template: str
    image_column: str = "image"
    label_column: str = "label"


@dataclass(frozen=True)
class ZeroShotSpec:
    name: str
    description: str
    name_of_label: object  # callable: the ClassLabel's names -> class names for the prompts, by label id


def clip_imagenet_names() -> list[str]:
    """CLIP's curated ImageNet-1k class names (openai/CLIP's prompt-engineering notebook), by class id,
    with the two names its list repeats made distinct (see the asset's notes)."""
    return list(protocol("imagenet1k")["class_names"])


def _by_index(names_source):
    """Class names by label id from a shipped list (the Hub names are only checked for their count)."""
    def name_of(feature_names):
        names = names_source()
        if len(feature_names) != len(names):
            raise DataError(f"the label column has {len(feature_names)} classes, the shipped names {len(names)}")
        return names
    return name_of


def _hub_names(feature_names):
    return list(feature_names)


ZERO_SHOT_SETS = {
    "food101": ZeroShotSpec("food101", "Food-101 validation (25,250 images, 101 classes)", _hub_names),
    "oxford_pets": ZeroShotSpec("oxford_pets", "Oxford-IIIT Pets test (3,669 images, 37 classes)", _hub_names),
    "imagenet1k": ZeroShotSpec("imagenet1k", "ImageNet-1k validation (50,000 images, 1,000 classes, CLIP's names)",
                               _by_index(clip_imagenet_names)),
}


REVISIONS_SETTING = "--zero_shot_revisions"


def parse_set_revisions(text: str | None) -> dict[str, str]:
    """``'food101=COMMIT,imagenet1k=COMMIT'`` -> ``{set: revision}``; DataError (one line) for an entry that is not
    ``SET=REVISION`` with SET a Hub zero-shot set, or a set named twice."""
    revisions = {}
    for entry in filter(None, (part.strip() for part in (text or "").split(","))):
        name, sep, revision = (part.strip() for part in entry.partition("="))
        if not sep or not revision:
            raise DataError(f"zero_shot_revisions={text!r}: '{entry}' is not SET=REVISION")
        if name not in ZERO_SHOT_SETS:
            raise DataError(f"zero_shot_revisions={text!r}: '{name}' is not a Hub zero-shot set; known: "
                            f"{', '.join(sorted(ZERO_SHOT_SETS))}")
        if name in revisions:
            raise DataError(f"zero_shot_revisions={text!r}: '{name}' is named twice")
        revisions[name] = revision
    return revisions


def load_zero_shot_set(name: str, data_dir: str | None = None, revision: str | None = None,
                       template: str = RAPF_TEMPLATE, max_images: int | None = None) -> ZeroShotSet:
    """A zero-shot evaluation set: only its evaluation split is fetched (and only ``max_images`` rows of
    it when given); class names from its ClassLabel feature (CLIP's curated names for ImageNet-1k); the
    prompt template (RAPF's by default). ``revision``: the set's Hub revision (default: its pin)."""
    if name not in ZERO_SHOT_SETS:
        raise DataError(f"unknown zero-shot set '{name}'; known: {', '.join(sorted(ZERO_SHOT_SETS))}")
    spec = ZERO_SHOT_SETS[name]
    source = dataclasses.replace(SOURCES[name], revision_setting=f"{REVISIONS_SETTING} {name}=")

    class _Args:
        pass

    args = _Args()
    args.data_dir, args.dataset_revision = data_dir, revision
    splits, kind, _ = fetch_splits(source, args, splits=[source.test_split], max_rows=max_images)
    image_column, label_column = ("image", "label") if kind == "folder" else (source.image_column, source.label_column)
    dataset = pick_split(splits, source.test_split, name, "evaluation", aliases=("test", "validation", "val"))
    check_columns(dataset, (image_column, label_column), f"zero-shot set {name}")
    feature = dataset.features[label_column]
    if not isinstance(feature, datasets.ClassLabel):
        raise DataError(f"zero-shot set {name}: column '{label_column}' must be a ClassLabel with the class names")
    if max_images is not None and len(dataset) > max_images:
        dataset = dataset.select(range(max_images))
    names = [str(n) for n in spec.name_of_label(feature.names)]
    return ZeroShotSet(name, dataset, names, template, image_column, label_column)
