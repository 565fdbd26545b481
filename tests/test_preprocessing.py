"""One preprocessing on every machine: the backend is chosen, not found; ``openai`` is OpenAI CLIP's
transform exactly. The reference here is written with PIL (torchvision is not installable beside this
project's torch CPU build): Resize(short side, bicubic), CenterCrop with torchvision's rounded offsets,
RGB, ToTensor, Normalize."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segp_hf.modeling.preprocessing import OpenAICLIPTransform, build_image_processor
from segp_hf.recipe import config_to_dict, parse_config

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from preprocessing_diff import MEAN, STD, photo_like, reference  # noqa: E402

TOY = str(Path(__file__).resolve().parents[1] / "segp_hf" / "assets" / "toy-clip")


def openai_224():
    return OpenAICLIPTransform(224, 224, MEAN.ravel(), STD.ravel())


@pytest.mark.parametrize("size", [(500, 375), (32, 32), (333, 517), (1024, 683)])
def test_openai_mode_equals_the_reference_transform(size):
    image = photo_like(*size)
    assert np.array_equal(openai_224()(images=[image])["pixel_values"][0], reference(image))


def test_hand_computed_crop_offset_is_rounded_like_torchvision():
    # a 9x2 image whose columns are 0, 20, ..., 160; short side already 2 (no resize); crop 2x2 starts at
    # column round((9 - 2) / 2) = round(3.5) = 4 (torchvision), so the pixels are 80, 100 (floor: 60, 80)
    t = OpenAICLIPTransform(2, 2, [0, 0, 0], [1, 1, 1])
    row = np.arange(9, dtype=np.uint8)[None, :, None].repeat(2, 0).repeat(3, 2) * 20
    image = Image.fromarray(row)
    pixels = t(images=[image])["pixel_values"][0]
    assert np.allclose(pixels[0, 0] * 255, [80, 100])


def test_hf_mode_is_the_pil_processor_whatever_is_installed_and_differs_only_by_a_crop_pixel():
    from transformers import CLIPImageProcessorPil

    processor = build_image_processor(TOY, mode="hf")
    assert type(processor) is CLIPImageProcessorPil  # never the torchvision backend, installed or not
    hf = CLIPImageProcessorPil(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224})
    even = photo_like(500, 375)  # (298 - 224) / 2 = 37: same crop, same pixels
    assert np.array_equal(hf(images=[even], return_tensors="np")["pixel_values"][0], reference(even))
    odd = photo_like(333, 517)  # (347 - 224) / 2 = 61.5: HF floors to 61, torchvision rounds to 62
    diff = np.abs(hf(images=[odd], return_tensors="np")["pixel_values"][0] - reference(odd))
    assert diff.max() > 0.1  # more than float rounding: the reason for image_preprocessing: openai


def test_openai_mode_is_built_from_the_checkpoint_config_and_recorded_in_settings():
    transform = build_image_processor(TOY, mode="openai")
    assert isinstance(transform, OpenAICLIPTransform) and (transform.size, transform.crop) == (32, 32)
    out = transform(images=[photo_like(48, 40)], return_tensors="pt")["pixel_values"]
    assert tuple(out.shape) == (1, 3, 32, 32)
    model_args, data_args, config = parse_config({"use_cpu": True}, ["--image_preprocessing", "openai"])
    assert config_to_dict(model_args, data_args, config)["image_preprocessing"] == "openai"
    assert parse_config({"use_cpu": True})[1].image_preprocessing == "hf"


def test_unknown_preprocessing_is_a_recipe_error():
    from segp_hf.errors import RecipeError

    with pytest.raises(RecipeError, match="image_preprocessing='torchvision' is not valid"):
        build_image_processor(TOY, mode="torchvision")
