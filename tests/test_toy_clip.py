"""The toy CLIP shipped in the package: loads like a Hub checkpoint offline, pools text at <eos>, has
real but imperfect zero-shot accuracy on the shifted shapes, and its pretraining is deterministic."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoProcessor, AutoTokenizer, CLIPImageProcessor, CLIPModel, CLIPProcessor

from segp_hf.data.shapes import ALL_CLASSES, TASK_CLASSES, make_shapes_dataset, render_arrays
from segp_hf.modeling.toy_clip import (
    MODEL_MAX_LENGTH,
    _normalise,
    pretrain_toy_clip,
    toy_clip_path,
    vocabulary,
    zero_shot_accuracy,
)

TEMPLATE = "a good photo of a {}."


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="module")
def shipped():
    path = toy_clip_path()
    return path, CLIPModel.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


def test_shipped_files_are_small_and_in_the_package():
    path = Path(toy_clip_path())
    assert path.parts[-3:] == ("segp_hf", "assets", "toy-clip")
    names = {p.name for p in path.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
            "preprocessor_config.json"} <= names
    assert not any(name.endswith((".bin", ".pt")) for name in names)
    assert sum(p.stat().st_size for p in path.iterdir()) < 10 * 1024 * 1024


def test_loads_like_a_hub_checkpoint(shipped):
    path, model, tokenizer = shipped
    config = model.config
    assert config.vision_config.image_size == 32
    assert config.text_config.vocab_size == len(vocabulary()) == len(tokenizer)
    processor = CLIPImageProcessor.from_pretrained(path)
    assert processor.crop_size == {"height": 32, "width": 32}
    auto = AutoProcessor.from_pretrained(path)
    assert isinstance(auto, CLIPProcessor)
    assert tokenizer.model_max_length == MODEL_MAX_LENGTH
    assert tokenizer.padding_side == "right"


def test_tokenizer_words_and_eos(shipped):
    _, model, tokenizer = shipped
    encoded = tokenizer("A good photo of a Red Triangle.")
    tokens = tokenizer.convert_ids_to_tokens(encoded["input_ids"])
    assert tokens == ["<bos>", "a", "good", "photo", "of", "a", "red", "triangle", ".", "<eos>"]
    for name in ALL_CLASSES + ["a photo of a {}.".format(ALL_CLASSES[0])]:
        assert tokenizer.unk_token_id not in tokenizer(name)["input_ids"]
    text_config = model.config.text_config
    # CLIPTextTransformer uses argmax(input_ids) when eos_token_id == 2, else the first eos position
    assert text_config.eos_token_id == tokenizer.eos_token_id != 2
    assert text_config.pad_token_id == tokenizer.pad_token_id
    assert text_config.bos_token_id == tokenizer.bos_token_id


def test_text_pooling_reads_eos_and_ignores_padding(shipped):
    _, model, tokenizer = shipped
    prompts = ["a red bar.", TEMPLATE.format("white triangle"), "a photo of a blue star"]
    batch = tokenizer(prompts, padding=True, return_tensors="pt")
    ids = batch["input_ids"]
    eos_position = (ids == tokenizer.eos_token_id).int().argmax(dim=-1)
    lengths = batch["attention_mask"].sum(dim=-1)
    assert torch.equal(eos_position, lengths - 1)  # eos is the last real token, padding on the right
    assert (ids[0, lengths[0]:] == tokenizer.pad_token_id).all() and lengths[0] < ids.shape[1]
    with torch.no_grad():
        out = model.text_model(**batch)
        expected = out.last_hidden_state[torch.arange(len(prompts)), eos_position]
        torch.testing.assert_close(out.pooler_output, expected)
        alone = model.text_model(**tokenizer(prompts[:1], return_tensors="pt")).pooler_output
    torch.testing.assert_close(out.pooler_output[:1], alone, atol=1e-5, rtol=1e-5)


def test_processor_matches_the_pretraining_normalisation(shipped):
    path = shipped[0]
    images, _ = render_arrays("shifted", "test", TASK_CLASSES[:2], 2)
    processor = CLIPImageProcessor.from_pretrained(path)
    from PIL import Image

    pixel_values = processor(images=[Image.fromarray(a) for a in images], return_tensors="pt")["pixel_values"]
    assert pixel_values.shape == (4, 3, 32, 32)
    torch.testing.assert_close(pixel_values, _normalise(images), atol=1e-4, rtol=1e-4)


def test_forward_pass(shipped):
    path, model, tokenizer = shipped
    processor = AutoProcessor.from_pretrained(path)
    dataset = make_shapes_dataset("shifted", "test", classes=TASK_CLASSES[:3], images_per_class=2)
    inputs = processor(text=[TEMPLATE.format(n) for n in TASK_CLASSES[:3]], images=list(dataset["image"]),
                       return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model(**inputs)
    assert out.logits_per_image.shape == (6, 3)
    assert torch.isfinite(out.logits_per_image).all()


def test_zero_shot_is_real_but_imperfect():
    sample = make_shapes_dataset("shifted", "test", images_per_class=4, seed=7)
    accuracy = zero_shot_accuracy(toy_clip_path(), sample, template=TEMPLATE)
    assert 0.10 < accuracy < 0.80  # chance is 2%
    clean = make_shapes_dataset("clean", "test", classes=TASK_CLASSES, images_per_class=2, seed=7)
    assert zero_shot_accuracy(toy_clip_path(), clean, template=TEMPLATE) > accuracy


def test_pretraining_is_deterministic_and_round_trips(tmp_path):
    kwargs = dict(steps=3, seed=0, batch_size=16, images_per_class=2, log_every=0)
    first = pretrain_toy_clip(str(tmp_path / "a"), **kwargs)
    second = pretrain_toy_clip(str(tmp_path / "b"), **kwargs)
    weights_a = load_file(os.path.join(first, "model.safetensors"))
    weights_b = load_file(os.path.join(second, "model.safetensors"))
    assert weights_a.keys() == weights_b.keys()
    for name in weights_a:
        assert torch.equal(weights_a[name], weights_b[name]), name
    initial = CLIPModel(CLIPModel.from_pretrained(first).config).state_dict()
    assert any(not torch.equal(initial[k], weights_a[k]) for k in weights_a if k in initial)

    model = CLIPModel.from_pretrained(first)
    for name, value in model.state_dict().items():
        if name in weights_a:
            assert torch.equal(value, weights_a[name]), name
    tokenizer = AutoTokenizer.from_pretrained(first)
    assert tokenizer.eos_token_id == model.config.text_config.eos_token_id
    assert isinstance(AutoProcessor.from_pretrained(first), CLIPProcessor)
    sample = make_shapes_dataset("shifted", "test", classes=TASK_CLASSES[:5], images_per_class=1)
    assert 0.0 <= zero_shot_accuracy(first, sample) <= 1.0
    assert np.isfinite(model.logit_scale.item())
