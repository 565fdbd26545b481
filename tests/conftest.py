"""Shared fixtures: a tiny CLIP (from CLIPConfig) saved like a Hub checkpoint, and a tiny labelled image
dataset whose classes a tiny CLIP can learn. Everything is made here; nothing touches the network."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import datasets
import numpy as np
import pytest
import torch
from PIL import Image

TINY_COLOURS = ["red", "green", "blue", "yellow", "purple", "cyan"]
TINY_RGB = [(220, 30, 30), (30, 200, 30), (30, 30, 220), (220, 220, 30), (160, 30, 160), (30, 200, 200)]
TEMPLATE = "a good photo of a {}."


def build_word_tokenizer(words, max_length=12):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", "<bos>", "<eos>"]
    vocab = {token: i for i, token in enumerate(specials + sorted(set(words)))}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace(), pre_tokenizers.Punctuation()])
    backend.post_processor = processors.TemplateProcessing(
        single="<bos> $A <eos>", special_tokens=[("<bos>", vocab["<bos>"]), ("<eos>", vocab["<eos>"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>",
        model_max_length=max_length,
    ), vocab


def save_tiny_clip(path, seed=0, hidden=32, image_size=16):
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    words = TINY_COLOURS + ["square", "a", "good", "photo", "of", "."]
    tokenizer, vocab = build_word_tokenizer(words)
    torch.manual_seed(seed)
    config = CLIPConfig(
        text_config=dict(
            vocab_size=len(vocab), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
            num_attention_heads=2, max_position_embeddings=12, pad_token_id=vocab["<pad>"],
            bos_token_id=vocab["<bos>"], eos_token_id=vocab["<eos>"],
        ),
        vision_config=dict(
            hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2, num_attention_heads=2,
            image_size=image_size, patch_size=8,
        ),
        projection_dim=16,
    )
    CLIPModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    CLIPImageProcessor(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size},
        image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5],
    ).save_pretrained(path)
    return str(path)


def save_tiny_siglip(path, seed=0, hidden=32, image_size=16, text_length=12):
    """A tiny random SiglipModel saved like a Hub checkpoint: its own word-level tokenizer (pad token, texts of
    ``text_length`` tokens at most: its ``max_position_embeddings``), a SiglipImageProcessor at ``image_size``, and
    a logit scale and bias as a trained SigLIP has them (exp(t) = 10, b = -5; random init gives t = b = 0)."""
    from transformers import SiglipConfig, SiglipImageProcessorPil, SiglipModel

    from segp_hf.data.shapes import COLOURS, SHAPES

    words = TINY_COLOURS + COLOURS + SHAPES + ["square", "a", "good", "photo", "of", "."]
    tokenizer, vocab = build_word_tokenizer(words, max_length=text_length)
    torch.manual_seed(seed)
    ids = {"pad_token_id": vocab["<pad>"], "bos_token_id": vocab["<bos>"], "eos_token_id": vocab["<eos>"]}
    config = SiglipConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=text_length, **ids),
        vision_config=dict(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
                           num_attention_heads=2, image_size=image_size, patch_size=8),
    )
    model = SiglipModel(config)
    with torch.no_grad():
        model.logit_scale.fill_(float(np.log(10.0)))
        model.logit_bias.fill_(-5.0)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    SiglipImageProcessorPil(size={"height": image_size, "width": image_size}, image_mean=[0.5, 0.5, 0.5],
                            image_std=[0.5, 0.5, 0.5]).save_pretrained(path)
    return str(path)


def make_colour_dataset(per_class=6, seed=0, size=16):
    """Solid-colour squares with noise; native labels follow TINY_COLOURS."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for label, rgb in enumerate(TINY_RGB):
        for _ in range(per_class):
            pixels = np.clip(np.array(rgb)[None, None, :] + rng.normal(0, 25, (size, size, 3)), 0, 255)
            images.append(Image.fromarray(pixels.astype(np.uint8)))
            labels.append(label)
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=[f"{c} square" for c in TINY_COLOURS])}
    )
    return datasets.Dataset.from_dict({"image": images, "label": labels}, features=features)


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory):
    return save_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture(scope="session")
def tiny_siglip_dir(tmp_path_factory):
    return save_tiny_siglip(tmp_path_factory.mktemp("tiny-siglip"))


@pytest.fixture(scope="session")
def tiny_benchmark():
    from segp_hf.data.spec import LoadedBenchmark

    return LoadedBenchmark(
        train=make_colour_dataset(per_class=6, seed=0),
        test=make_colour_dataset(per_class=4, seed=1),
        class_names=[f"{c} square" for c in TINY_COLOURS],
        class_order=[3, 0, 5, 1, 4, 2],
        template=TEMPLATE,
    )


def tiny_settings(tiny_clip_dir, output_dir, **overrides):
    """Recipe dict for a fast 3-task run on the tiny model."""
    recipe = dict(
        model_name_or_path=tiny_clip_dir, lora_r=4, num_tasks=3, output_dir=str(output_dir),
        per_device_train_batch_size=4, per_device_eval_batch_size=16, num_train_epochs=1,
        learning_rate=0.05, anchors_per_class=2, anchor_batch_size=4, dpgd_steps=2, tsgr_k=3,
        logging_steps=1, seed=0, disable_tqdm=True, use_cpu=True,
    )
    recipe.update(overrides)
    return recipe


@pytest.fixture(scope="session")
def hub_server(tmp_path_factory):
    """A real Hub read server (tests/hub_server.py): olah on a free loopback port, offline, behind the correcting
    layer, one for the whole session (every module's repos side by side); stopped at the end of the session."""
    from hub_server import HubServer, olah_command

    command = olah_command()
    if command is None:
        pytest.skip("olah is not installed (it is in the test extra)")
    server = HubServer(tmp_path_factory.mktemp("hub-server"), command)
    yield server
    server.stop()
