"""CLIP zero-shot scoring over a labelled image set: top-1 accuracy of the CLIP path, one prompt per class (the
retention measurement before and after the task sequence uses it; the sets are in data/zero_shot_sets.py)."""

from __future__ import annotations

import torch

from .data.scenario import prompts_for, tokenize_prompts
from .data.zero_shot_sets import ZERO_SHOT_SETS, ZeroShotSet, load_zero_shot_set
from .evaluation import dual_path_scores
from .modeling import encode_images, encode_texts


def evaluate_zero_shot(model, image_processor, tokenizer, zero_shot: ZeroShotSet, batch_size: int = 256,
                       device=None, scorer=None) -> float:
    """Top-1 accuracy of ``model`` (a CLIPModel or our PEFT CLIP, as it is: call it inside
    ``adapter_disabled`` for pretrained CLIP) on a zero-shot set, one prompt per class. ``scorer``:
    ``(model, pixels, text embeddings) -> logits`` where a variant scores otherwise than by the CLIP path
    (variants/registry.held_out_scorer)."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    correct = total = 0
    with torch.no_grad():
        tokens = tokenize_prompts(tokenizer, prompts_for(zero_shot.class_names, zero_shot.template))
        text = torch.cat([
            encode_texts(model, tokens["input_ids"][i:i + batch_size].to(device),
                         tokens["attention_mask"][i:i + batch_size].to(device))
            for i in range(0, len(zero_shot.class_names), batch_size)
        ])
        for start in range(0, len(zero_shot.dataset), batch_size):
            batch = zero_shot.dataset[start:start + batch_size]
            images = [image.convert("RGB") for image in batch[zero_shot.image_column]]
            pixels = image_processor(images=images, return_tensors="pt")["pixel_values"].to(device)
            predictions = _scores(model, pixels, text, scorer).argmax(dim=-1).cpu()
            correct += int((predictions == torch.as_tensor(batch[zero_shot.label_column])).sum())
            total += len(images)
    model.train(was_training)
    return correct / max(total, 1)


def _scores(model, pixels, text, scorer=None):
    if scorer is not None:
        return scorer(model, pixels, text)
    embeds, raw = encode_images(model, pixels)
    # the CLIP path of the run's one scorer (no prototypes); the scale does not change the argmax
    return dual_path_scores(embeds, raw, text, None, logit_scale=1.0, beta=0.0)


def evaluate_zero_shot_sets(model, image_processor, tokenizer, names=tuple(ZERO_SHOT_SETS), **load_kwargs) -> dict:
    """``{name: accuracy}`` over several zero-shot sets (e.g. before and after the task sequence)."""
    batch_size = load_kwargs.pop("batch_size", 256)
    return {
        name: evaluate_zero_shot(model, image_processor, tokenizer, load_zero_shot_set(name, **load_kwargs), batch_size)
        for name in names
    }
