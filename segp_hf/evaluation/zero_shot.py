"""Zero-shot retention: CLIP-path accuracy on held-out data sets that no task trains on, before the first
task (the pretrained CLIP: adapter off) and after the last (the paper reports Food-101, Oxford-IIIT Pets and
ImageNet-1k: 84.5 / 87.7 / 67.6 after CIFAR-100). The shapes world's held-out set is its 30 colour-shape
classes that no task uses, so the default run shows retention offline."""

from __future__ import annotations

from pathlib import Path

import torch

from ..data.scenario import prompts_for, tokenize_prompts
from ..data.spec import DataError
from ..data.zero_shot_sets import ZERO_SHOT_SETS, ZeroShotSet, load_zero_shot_set
from ..method.prototypes import dual_path_scores
from ..modeling.student import encode_images, encode_texts, eval_mode

# CLIP zero-shot scoring over a labelled image set: top-1 accuracy of the CLIP path, one prompt per class (the
# retention measurement before and after the task sequence uses it; the sets are in data/zero_shot_sets.py).

def evaluate_zero_shot(model, image_processor, tokenizer, zero_shot: ZeroShotSet, batch_size: int = 256,
                       device=None, scorer=None) -> float:
    """Top-1 accuracy of ``model`` (a CLIPModel or our PEFT CLIP, as it is: call it inside
    ``adapter_disabled`` for pretrained CLIP) on a zero-shot set, one prompt per class. ``scorer``:
    ``(model, pixels, text embeddings) -> logits`` where a variant scores otherwise than by the CLIP path
    (variants/registry.held_out_scorer)."""
    device = device or next(model.parameters()).device
    with eval_mode(model):
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


SHAPES_HELDOUT = "shapes_heldout"
ZERO_SHOT_BEFORE_FILE = "zero_shot_before.json"  # the pretrained CLIP's zero-shot accuracies, once per run
SHAPES_TEMPLATE = "a good photo of a {}."


def _shapes_heldout(max_images: int | None):
    from ..data.shapes import HELDOUT_CLASSES, make_shapes_dataset
    from ..data.zero_shot_sets import ZeroShotSet

    dataset = make_shapes_dataset("shifted", "test", classes=HELDOUT_CLASSES, seed=0)
    if max_images is not None:
        dataset = dataset.shuffle(seed=0).select(range(min(max_images, len(dataset))))
    return ZeroShotSet(SHAPES_HELDOUT, dataset, list(HELDOUT_CLASSES), SHAPES_TEMPLATE)


def retention_set_names() -> list[str]:
    from ..data.zero_shot_sets import ZERO_SHOT_SETS

    return sorted([*ZERO_SHOT_SETS, SHAPES_HELDOUT])


def load_retention_set(name: str, data_dir: str | None = None, max_images: int | None = None,
                       revision: str | None = None):
    """A held-out set by name; ``data_dir`` holds a local copy of each set in a folder of its name; ``revision``:
    the set's Hub revision (default: its pin)."""
    if name == SHAPES_HELDOUT:
        return _shapes_heldout(max_images)
    from ..data.zero_shot_sets import ZERO_SHOT_SETS, load_zero_shot_set

    if name not in ZERO_SHOT_SETS:
        raise DataError(f"unknown zero_shot_sets entry '{name}'; known: {', '.join(retention_set_names())}")
    local = str(Path(data_dir) / name) if data_dir else None
    return load_zero_shot_set(name, data_dir=local, revision=revision, max_images=max_images)


def measure_retention(model, image_processor, tokenizer, data_args, batch_size: int, device,
                      scorer=None) -> dict[str, float]:
    """``{set: top-1 accuracy (%)}`` of ``model`` as it is (wrap in ``adapter_disabled`` for pretrained CLIP);
    ``scorer``: a variant's own held-out scoring (zero_shot.evaluate_zero_shot)."""

    from ..data.zero_shot_sets import parse_set_revisions

    revisions = parse_set_revisions(getattr(data_args, "zero_shot_revisions", None))
    scores = {}
    for name in data_args.zero_shot_sets:
        held_out = load_retention_set(name, data_args.zero_shot_data_dir, data_args.zero_shot_max_images,
                                      revisions.get(name))
        scores[name] = 100.0 * evaluate_zero_shot(model, image_processor, tokenizer, held_out, batch_size, device,
                                                  scorer)
    return scores


def measure_model_retention(model, pretrained: bool, image_processor, tokenizer, data_args, batch_size: int,
                            device, scorer=None) -> dict[str, float]:
    """``measure_retention`` of the pretrained CLIP (``pretrained``: the adapter off, ``scorer`` unused) or of
    ``model`` as it is (scored by ``scorer`` where the variant has its own held-out rule)."""
    from ..modeling.student import adapter_disabled

    model.to(device)
    args = (image_processor, tokenizer, data_args, batch_size, device)
    if not pretrained:
        return measure_retention(model, *args, scorer=scorer)
    with adapter_disabled(model):
        return measure_retention(model, *args)


def saved_baseline(output_dir, names) -> dict | None:
    """The pretrained CLIP's accuracies a run saved in ``output_dir`` (None unless saved for exactly ``names``)."""
    from ..run import checkpoints as ckpt

    path = Path(output_dir) / ZERO_SHOT_BEFORE_FILE
    if path.exists():
        saved = ckpt.read_json(path)
        if set(saved) == set(names):
            return saved
    return None


def retention_table(before: dict, after: dict | None) -> dict[str, dict]:
    """``{set: {"before": .., "after": ..}}`` (after is None until measured)."""
    return {name: {"before": before[name], "after": (after or {}).get(name)} for name in before}


def format_retention(table: dict) -> str:
    def number(value):
        return "n/a" if value is None else f"{value:.2f}"

    cells = [f"{name} {number(row['before'])} -> {number(row['after'])}" for name, row in table.items()]
    return "Zero-shot retention (before -> after): " + ", ".join(cells)
