"""The protocol facts shipped in the package (``segp_hf/assets/protocol/``): class names, class orders, prompt
templates and the ImageNet-R split lists.

Facts (class orders, names, templates, the ImageNet-R split list) come from the public code of RAPF,
MG-CLIP and PROOF (see each ``*.json``'s ``source`` fields). RAPF's order is the default (the paper follows
RAPF); the seed-1993 permutation (PROOF/C3Box) is the extra order ``seed1993``.
"""

from __future__ import annotations

import functools
import gzip
import json
from importlib import resources

RAPF_TEMPLATE = "a good photo of a {}."
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")


def _asset(name: str):
    return resources.files("segp_hf") / "assets" / "protocol" / name


@functools.lru_cache(maxsize=None)
def protocol(name: str) -> dict:
    """One protocol JSON (``cifar100``, ``imagenet_r``, ``imagenet100``, ``cub200``, ``ucf101``, ``templates``)."""
    return json.loads(_asset(f"{name}.json").read_text())


@functools.lru_cache(maxsize=None)
def rapf_imagenet_r_split() -> dict[str, str]:
    """RAPF's ImageNet-R list: ``'<wnid>/<file>' -> 'train' | 'test'`` (24,000 / 6,000; the stray
    non-image line ``n02437616/test_img_R.py`` is dropped)."""
    text = gzip.decompress(_asset("imagenet_r_split.txt.gz").read_bytes()).decode("ascii")
    split, assignment = None, {}
    for line in text.splitlines():
        line = line.strip()
        if line in ("train", "test"):
            split = line
        elif line and line.lower().endswith(_IMAGE_SUFFIXES):
            assignment[line] = split
    return assignment


@functools.lru_cache(maxsize=None)
def imagenet_r_manifest() -> dict:
    """The seeded stratified 80/20 split of the 30,000 ImageNet-R images, written once (see
    ``stratified_test_positions``): per WNID the image count and the test positions among that class's
    rows in the dataset's row order."""
    return json.loads(_asset("imagenet_r_stratified_split.json").read_text())


def extra_orders(info: dict) -> dict[str, list[int]]:
    """A benchmark's named class orders besides the default (RAPF's): ``seed1993`` always, ``mgclip`` where
    MG-CLIP's differs."""
    extra = {}
    if "class_order_seed1993" in info:
        extra["seed1993"] = list(info["class_order_seed1993"])
    else:  # ImageNet-100, UCF101: the reference order is itself the seed-1993 permutation
        extra["seed1993"] = list(info["class_order"])
    if "class_order_mgclip" in info:
        extra["mgclip"] = list(info["class_order_mgclip"])
    return extra
