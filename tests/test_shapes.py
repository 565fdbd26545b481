"""The offline shapes world: a deterministic generator of 32x32 coloured-shape images."""

from __future__ import annotations

import io

import datasets
import numpy as np
import pytest

from segp_hf.data import shapes
from segp_hf.data.shapes import ALL_CLASSES, COLOURS, SHAPES, TASK_CLASSES, make_shapes_dataset, render_arrays

FEW = ["red circle", "blue triangle", "green star", "white bar"]


def _png_bytes(dataset):
    raw = dataset.cast_column("image", datasets.Image(decode=False))
    return [row["image"]["bytes"] for row in raw]


def test_vocabulary_and_task_classes():
    assert len(COLOURS) == len(set(COLOURS)) >= 8
    assert len(SHAPES) == len(set(SHAPES)) >= 8
    assert ALL_CLASSES == [f"{c} {s}" for c in COLOURS for s in SHAPES]
    assert len(TASK_CLASSES) == 50 == len(set(TASK_CLASSES))
    assert set(TASK_CLASSES) <= set(ALL_CLASSES)
    assert sorted(TASK_CLASSES) == sorted(shapes._task_classes_rule())
    # spread over colours and shapes
    assert {name.split()[0] for name in TASK_CLASSES} == set(COLOURS)
    assert {name.split()[1] for name in TASK_CLASSES} == set(SHAPES)
    per_colour = [sum(n.split()[0] == c for n in TASK_CLASSES) for c in COLOURS]
    assert max(per_colour) - min(per_colour) <= 1


def test_same_arguments_give_identical_bytes():
    a = make_shapes_dataset("shifted", "train", classes=FEW, images_per_class=5, seed=0)
    b = make_shapes_dataset("shifted", "train", classes=FEW, images_per_class=5, seed=0)
    assert _png_bytes(a) == _png_bytes(b)
    assert a["caption"] == b["caption"] and a["label"] == b["label"]


def test_splits_seeds_and_domains_differ():
    train, _ = render_arrays("shifted", "train", FEW, 5, seed=0)
    test, _ = render_arrays("shifted", "test", FEW, 5, seed=0)
    other_seed, _ = render_arrays("shifted", "train", FEW, 5, seed=1)
    clean, _ = render_arrays("clean", "train", FEW, 5, seed=0)
    assert not np.array_equal(train, test)
    assert not np.array_equal(train, other_seed)
    assert not np.array_equal(train, clean)
    # no test image repeats a training image
    assert not any(np.array_equal(t, x) for t in test for x in train)


def test_class_images_do_not_depend_on_the_other_classes():
    alone, _ = render_arrays("shifted", "train", ["green star"], 4, seed=0)
    together, labels = render_arrays("shifted", "train", FEW, 4, seed=0)
    np.testing.assert_array_equal(alone, together[labels == FEW.index("green star")])


def test_features_labels_and_captions():
    dataset = make_shapes_dataset("shifted", "test", classes=FEW, images_per_class=3)
    assert isinstance(dataset, datasets.Dataset)
    assert isinstance(dataset.features["image"], datasets.Image)
    assert isinstance(dataset.features["label"], datasets.ClassLabel)
    assert dataset.features["label"].names == FEW
    assert dataset.features["caption"] == datasets.Value("string")
    assert len(dataset) == 12
    assert sorted(set(dataset["label"])) == [0, 1, 2, 3]
    for row in dataset:
        assert row["caption"] == f"a photo of a {FEW[row['label']]}"
        assert row["image"].mode == "RGB" and row["image"].size == (32, 32)


def test_default_classes_per_domain():
    shifted = make_shapes_dataset("shifted", "train", images_per_class=1)
    clean = make_shapes_dataset("clean", "train", images_per_class=1)
    assert shifted.features["label"].names == TASK_CLASSES and len(shifted) == 50
    assert clean.features["label"].names == ALL_CLASSES and len(clean) == len(ALL_CLASSES)


def test_shifted_domain_is_harder_than_clean():
    clean, _ = render_arrays("clean", "test", FEW, 8)
    shifted, _ = render_arrays("shifted", "test", FEW, 8)
    # clean: uniform dark corners; shifted: textured, noisy backgrounds
    corner = (slice(None), slice(0, 4), slice(0, 4))
    assert clean[corner].astype(float).std(axis=(1, 2)).mean() < 1.0
    assert clean[corner].mean() < 40
    assert shifted[corner].astype(float).std(axis=(1, 2)).mean() > 5.0
    # the shape is the brightest thing in a clean image, at full colour
    red = clean[:8].reshape(8, -1, 3).max(axis=1)
    assert (red[:, 0] > 200).all()


def test_pixels_encode_losslessly():
    dataset = make_shapes_dataset("clean", "train", classes=FEW[:1], images_per_class=2)
    arrays, _ = render_arrays("clean", "train", FEW[:1], 2)
    for row, pixels in zip(dataset, arrays):
        np.testing.assert_array_equal(np.asarray(row["image"]), pixels)
        buffer = io.BytesIO()
        row["image"].save(buffer, format="PNG")


@pytest.mark.parametrize(
    "kwargs",
    [dict(domain="rainy"), dict(split="valid"), dict(classes=["red hexagon"]), dict(classes=["red bar", "red bar"]),
     dict(images_per_class=0)],
)
def test_bad_arguments_are_refused(kwargs):
    arguments = dict(domain="shifted", split="train", classes=FEW, images_per_class=1)
    arguments.update(kwargs)
    with pytest.raises(ValueError):
        make_shapes_dataset(**arguments)


# ---- sources: a colour cast per task of the shifted domain ------------------------------------------
def test_hue_rotation_keeps_greys_and_turns_primaries():
    np.testing.assert_allclose(shapes.hue_rotation(37.0) @ np.full(3, 0.5), np.full(3, 0.5), atol=1e-6)
    np.testing.assert_allclose(shapes.hue_rotation(120.0) @ np.array([1.0, 0, 0]), [0, 1.0, 0], atol=1e-6)
    np.testing.assert_allclose(shapes.hue_rotation(-120.0) @ np.array([1.0, 0, 0]), [0, 0, 1.0], atol=1e-6)
    np.testing.assert_allclose(shapes.hue_rotation(0.0), np.eye(3), atol=1e-7)


def test_each_task_of_classes_is_one_source():
    assert [shapes.source_of(name) for name in TASK_CLASSES] == [i // 5 for i in range(50)]
    assert shapes.source_of("red bar") is None  # not a task class
    assert len(shapes.SOURCE_HUE_FACTORS) == len(TASK_CLASSES) // shapes.CLASSES_PER_SOURCE


def test_casts_change_only_the_shifted_task_classes(monkeypatch):
    first_source, other_source = TASK_CLASSES[0], TASK_CLASSES[5]
    outside = next(name for name in ALL_CLASSES if name not in TASK_CLASSES)
    classes = [first_source, other_source, outside]
    monkeypatch.setattr(shapes, "SOURCE_HUE_DEGREES", 0.0)
    plain, labels = render_arrays("shifted", "train", classes, 4)
    plain_clean, _ = render_arrays("clean", "train", classes, 4)
    monkeypatch.setattr(shapes, "SOURCE_HUE_DEGREES", 40.0)
    cast, _ = render_arrays("shifted", "train", classes, 4)
    cast_clean, _ = render_arrays("clean", "train", classes, 4)
    np.testing.assert_array_equal(plain_clean, cast_clean)  # pretraining data never has a cast
    np.testing.assert_array_equal(plain[labels == 2], cast[labels == 2])
    for label in (0, 1):
        assert np.abs(plain[labels == label].astype(int) - cast[labels == label]).mean() > 3
    # opposite casts: the mean colour of the two sources moves in opposite hue directions
    def mean_shift(label):
        return (cast[labels == label].astype(float) - plain[labels == label]).reshape(-1, 3).mean(axis=0)
    assert np.dot(mean_shift(0), mean_shift(1)) < 0
