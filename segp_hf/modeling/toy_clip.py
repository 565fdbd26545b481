"""The toy CLIP of the offline shapes world: a word-level tokenizer, a 32x32 image processor and a small
``CLIPModel`` pretrained contrastively on clean renders of every colour-shape combination.

The pretrained model ships inside the package (:func:`toy_clip_path`) and loads like any Hub checkpoint::

    CLIPModel.from_pretrained(toy_clip_path())
    AutoTokenizer.from_pretrained(toy_clip_path())
    CLIPImageProcessor.from_pretrained(toy_clip_path())   # or AutoProcessor -> CLIPProcessor

Regenerate it with ``python -m segp_hf.toy_clip --output_dir DIR [--steps N]``; the result is
deterministic for a given seed, step count and torch build.

Text pooling: ``CLIPTextTransformer`` pools at the first position holding ``text_config.eos_token_id``
(or at the argmax of the ids when that id is 2, a legacy rule). The tokenizer's ``<eos>`` has id 3, the
config says so, and padding goes to the right, so pooling always reads the ``<eos>`` token.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..data.shapes import ALL_CLASSES, COLOURS, IMAGE_SIZE, SHAPES, render_arrays

TOY_CLIP = "toy-clip"  # the model name (model_name_or_path) that resolves to this toy CLIP (toy_clip_path)
ASSET_DIR = "toy-clip"
SPECIAL_TOKENS = ["<pad>", "<unk>", "<bos>", "<eos>"]  # ids 0, 1, 2, 3 (eos must not be 2: see above)
MODEL_MAX_LENGTH = 16
PATCH_SIZE = 8  # 4x4 patches of a 32x32 image: a 17-token vision sequence keeps CPU pretraining short
IMAGE_MEAN = [0.48145466, 0.4578275, 0.40821073]  # the OpenAI CLIP statistics
IMAGE_STD = [0.26862954, 0.26130258, 0.27577711]

# Caption templates used in pretraining (the evaluation prompt "a good photo of a {}." is among them).
PRETRAIN_TEMPLATES = [
    "a photo of a {}.",
    "a good photo of a {}.",
    "a photo of a {}",
    "a picture of a {}.",
    "an image of a {}.",
    "a drawing of a {}.",
    "a photo of the {}.",
    "a {}.",
]
EXTRA_WORDS = ["a", "an", "the", "good", "photo", "picture", "image", "drawing", "of", "this", "is",
               "small", "big", "bright", "dark", "shape", ".", ","]

DEFAULT_STEPS = 400
DEFAULT_BATCH_SIZE = 64
PRETRAIN_IMAGES_PER_CLASS = 64


def toy_clip_path() -> str:
    """Directory of the pretrained toy CLIP shipped in the package (``segp_hf/assets/toy-clip``)."""
    return str(resources.files("segp_hf") / "assets" / ASSET_DIR)


# ------------------------------------------------------------------------------------------ components
def vocabulary() -> dict[str, int]:
    words = sorted(set(COLOURS) | set(SHAPES) | set(EXTRA_WORDS))
    return {token: index for index, token in enumerate(SPECIAL_TOKENS + words)}


def build_tokenizer():
    """A word-level ``PreTrainedTokenizerFast``: lowercase, split on whitespace and punctuation,
    ``<bos> ... <eos>`` around every text, right padding with ``<pad>``."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = vocabulary()
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    backend.post_processor = processors.TemplateProcessing(
        single="<bos> $A <eos>",
        pair="<bos> $A <eos> $B <eos>",
        special_tokens=[("<bos>", vocab["<bos>"]), ("<eos>", vocab["<eos>"])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        model_max_length=MODEL_MAX_LENGTH,
        padding_side="right",
        truncation_side="right",
    )


def build_image_processor():
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(
        do_resize=True,
        size={"shortest_edge": IMAGE_SIZE},
        do_center_crop=True,
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        do_rescale=True,
        do_normalize=True,
        image_mean=IMAGE_MEAN,
        image_std=IMAGE_STD,
        do_convert_rgb=True,
    )


def build_config(vocab_size: int | None = None):
    from transformers import CLIPConfig

    vocab = vocabulary()
    return CLIPConfig(
        text_config=dict(
            vocab_size=vocab_size or len(vocab),
            hidden_size=128,
            intermediate_size=512,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=MODEL_MAX_LENGTH,
            pad_token_id=vocab["<pad>"],
            bos_token_id=vocab["<bos>"],
            eos_token_id=vocab["<eos>"],
            projection_dim=128,
        ),
        vision_config=dict(
            hidden_size=128,
            intermediate_size=512,
            num_hidden_layers=4,
            num_attention_heads=4,
            image_size=IMAGE_SIZE,
            patch_size=PATCH_SIZE,
            projection_dim=128,
        ),
        projection_dim=128,
    )


def _normalise(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> pixel_values (N, 3, H, W), as the image processor makes them."""
    pixels = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(IMAGE_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGE_STD).view(1, 3, 1, 1)
    return (pixels - mean) / std


# ---------------------------------------------------------------------------------------- pretraining
def pretrain_toy_clip(
    output_dir: str,
    steps: int = DEFAULT_STEPS,
    seed: int = 0,
    batch_size: int = DEFAULT_BATCH_SIZE,
    learning_rate: float = 1e-3,
    images_per_class: int = PRETRAIN_IMAGES_PER_CLASS,
    log_every: int = 100,
) -> str:
    """Pretrain the toy CLIP on clean renders of :data:`ALL_CLASSES` with the symmetric CLIP InfoNCE
    loss (captions from :data:`PRETRAIN_TEMPLATES`; a batch may hold a class more than once, so every
    same-class pair counts as a positive), AdamW with linear warm-up and cosine decay. Deterministic for
    given arguments. Saves model (safetensors), tokenizer and image processor (plus a ``CLIPProcessor``
    config) into ``output_dir`` and returns it."""
    from transformers import CLIPModel

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    tokenizer = build_tokenizer()
    processor = build_image_processor()
    model = CLIPModel(build_config())  # initialised from the global seed set just above
    model.train()
    pixel_values, labels = _pretraining_images(images_per_class, seed)
    caption_ids, caption_mask = _caption_tokens(tokenizer)
    optimizer, scheduler = _optimizer_and_schedule(model, learning_rate, steps)
    start = time.time()
    for step in range(steps):
        index = torch.randint(len(labels), (batch_size,), generator=generator)
        template = torch.randint(len(PRETRAIN_TEMPLATES), (batch_size,), generator=generator)
        batch_labels = labels[index]
        loss = _contrastive_loss(model, caption_ids[batch_labels, template], caption_mask[batch_labels, template],
                                 pixel_values[index], batch_labels)
        _optimizer_step(model, loss, optimizer, scheduler)
        if log_every and (step + 1) % log_every == 0:
            print(f"step {step + 1}/{steps} loss {loss.item():.4f} "
                  f"scale {model.logit_scale.exp().item():.1f} {time.time() - start:.0f}s", flush=True)
    model.eval()
    return _save(model, tokenizer, processor, output_dir)


def _pretraining_images(images_per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Clean renders of every class: normalised pixel values and class indices into :data:`ALL_CLASSES`."""
    images, labels = render_arrays("clean", "train", ALL_CLASSES, images_per_class, seed)
    return _normalise(images), torch.from_numpy(labels)


def _caption_tokens(tokenizer) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and attention mask of every (class, template) caption, shaped (classes, templates, length)."""
    captions = [template.format(name) for name in ALL_CLASSES for template in PRETRAIN_TEMPLATES]
    encoded = tokenizer(captions, padding=True, return_tensors="pt")  # right-padded to the longest caption
    caption_ids = encoded["input_ids"].view(len(ALL_CLASSES), len(PRETRAIN_TEMPLATES), -1)
    caption_mask = encoded["attention_mask"].view(len(ALL_CLASSES), len(PRETRAIN_TEMPLATES), -1)
    return caption_ids, caption_mask


def _optimizer_and_schedule(model, learning_rate: float, steps: int):
    """AdamW (weight decay 0.1 on matrices other than embeddings), linear warm-up then cosine decay."""
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
        lr=learning_rate, betas=(0.9, 0.98), eps=1e-6,
    )
    warmup = max(1, min(100, steps // 10))

    def lr_at(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return 0.5 * (1 + math.cos(math.pi * progress))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)


def _contrastive_loss(model, input_ids, attention_mask, pixel_values, batch_labels) -> torch.Tensor:
    """Symmetric CLIP InfoNCE where every same-class pair of the batch counts as a positive."""
    outputs = model(input_ids=input_ids, attention_mask=attention_mask, pixel_values=pixel_values)
    logits = outputs.logits_per_image  # (images, texts), already scaled
    same = (batch_labels[:, None] == batch_labels[None, :]).float()
    targets = same / same.sum(dim=1, keepdim=True)
    return 0.5 * (
        F.cross_entropy(logits, targets) + F.cross_entropy(logits.t(), targets)
    )


def _optimizer_step(model, loss, optimizer, scheduler) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    scheduler.step()
    with torch.no_grad():
        model.logit_scale.clamp_(0, math.log(100))


def _save(model, tokenizer, processor, output_dir: str) -> str:
    """Model (safetensors), tokenizer, image processor and a ``CLIPProcessor`` config, loadable like a Hub id."""
    from transformers import CLIPProcessor

    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output, safe_serialization=True)
    CLIPProcessor(image_processor=processor, tokenizer=tokenizer).save_pretrained(output)
    tokenizer.save_pretrained(output)
    processor.save_pretrained(output)
    return str(output)


# ----------------------------------------------------------------------------------------- evaluation
@torch.no_grad()
def zero_shot_accuracy(model_path: str, dataset, template: str = "a good photo of a {}.", batch_size: int = 256,
                       image_column: str = "image", label_column: str = "label") -> float:
    """Zero-shot top-1 accuracy of the checkpoint at ``model_path`` (the toy CLIP, or any CLIP / SigLIP, through its
    model family: modeling/families.py) on ``dataset``: each image is assigned the class whose prompt
    ``template.format(name)`` matches best, over the names of the dataset's ``ClassLabel`` (so logits span
    exactly those classes)."""
    from .families import family_of_checkpoint
    from .preprocessing import build_image_processor as checkpoint_processor

    family = family_of_checkpoint(model_path)
    model = family.load(model_path).eval()
    tokenizer = family.tokenizer(model_path, model.config)
    processor = checkpoint_processor(model_path)
    names = dataset.features[label_column].names
    prompts = [template.format(name.replace("_", " ")) for name in names]
    text = tokenizer(prompts, padding=True, truncation=True, return_tensors="pt")
    text_features = F.normalize(family.text_features(model, text["input_ids"], text.get("attention_mask")), dim=-1)
    correct = 0
    for start in range(0, len(dataset), batch_size):
        rows = dataset[start:start + batch_size]
        pixels = processor(images=list(rows[image_column]), return_tensors="pt")["pixel_values"]
        image_features = family.image_features(model, pixels, "projected")[0]
        prediction = (F.normalize(image_features, dim=-1) @ text_features.t()).argmax(dim=-1)
        correct += (prediction == torch.as_tensor(rows[label_column])).sum().item()
    return correct / len(dataset)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Pretrain the toy CLIP of the offline shapes world.")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch_size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument("--evaluate", action="store_true",
                        help="also report zero-shot accuracy on the shifted test split of the task classes")
    args = parser.parse_args(argv)
    start = time.time()
    path = pretrain_toy_clip(args.output_dir, steps=args.steps, seed=args.seed, batch_size=args.batch_size)
    print(f"saved {path} after {time.time() - start:.0f}s")
    if args.evaluate:
        from ..data.shapes import make_shapes_dataset

        accuracy = zero_shot_accuracy(path, make_shapes_dataset("shifted", "test"))
        print(json.dumps({"zero_shot_accuracy_shifted_test": accuracy}))


if __name__ == "__main__":
    main()
