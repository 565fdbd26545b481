"""Zero-shot retention: CLIP-path accuracy on held-out data sets that no task trains on, before the first
task (the pretrained CLIP: adapter off) and after the last (the paper reports Food-101, Oxford-IIIT Pets and
ImageNet-1k: 84.5 / 87.7 / 67.6 after CIFAR-100). The shapes world's held-out set is its 30 colour-shape
classes that no task uses, so the default run shows retention offline."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..data.pixel_cache import GIB, pixel_shape, plan_cache, store_bytes
from ..data.ready_batches import loader_workers
from ..data.scenario import cached_images, prompts_for, tokenize_prompts
from ..data.spec import DataError
from ..data.zero_shot_sets import ZERO_SHOT_SETS, ZeroShotSet, load_zero_shot_set, parse_set_revisions
from ..method.prototypes import dual_path_scores
from ..modeling.student import encode_images, encode_texts, eval_mode
from ..run.distributed import shard_bounds, sum_across_ranks

# CLIP zero-shot scoring over a labelled image set: top-1 accuracy of the CLIP path, one prompt per class (the
# retention measurement before and after the task sequence uses it; the sets are in data/zero_shot_sets.py).

def zero_shot_text(model, tokenizer, zero_shot: ZeroShotSet, batch_size: int, device) -> torch.Tensor:
    """The normalised text embeddings of the set's prompts (one per class)."""
    tokens = tokenize_prompts(tokenizer, prompts_for(zero_shot.class_names, zero_shot.template))
    return torch.cat([
        encode_texts(model, tokens["input_ids"][i:i + batch_size].to(device),
                     tokens["attention_mask"][i:i + batch_size].to(device))
        for i in range(0, len(zero_shot.class_names), batch_size)
    ])


def _image_batches(zero_shot: ZeroShotSet, image_processor, batch_size: int, device, cached=None, normalizer=None,
                   workers: int = 0):
    """(model input, labels) of the set in order: from ``cached`` (a CachedSplit of the set: decoded once, by
    ``workers`` DataLoader workers, then read from its store) or decoded now."""
    if cached is not None:
        loader_workers(cached, workers)  # decodes what the store lacks
        for start in range(0, len(cached), batch_size):
            batch = cached.__getitems__(range(start, min(start + batch_size, len(cached)))).batch
            yield normalizer(batch["pixel_values"], device), batch["labels"]
        return
    for start in range(0, len(zero_shot.dataset), batch_size):
        batch = zero_shot.dataset[start:start + batch_size]
        images = [image.convert("RGB") for image in batch[zero_shot.image_column]]
        pixels = image_processor(images=images, return_tensors="pt")["pixel_values"].to(device)
        yield pixels, torch.as_tensor(batch[zero_shot.label_column])


def zero_shot_counts(model, image_processor, tokenizer, zero_shot: ZeroShotSet, batch_size: int = 256, device=None,
                     scorer=None, cached=None, normalizer=None, workers: int = 0) -> tuple[int, int]:
    """(correct, scored) top-1 predictions of ``model`` as it is (a CLIPModel or our PEFT CLIP: call it inside
    ``adapter_disabled`` for pretrained CLIP) on a zero-shot set, one prompt per class. ``scorer``:
    ``(model, pixels, text embeddings) -> logits`` where a variant scores otherwise than by the CLIP path
    (variants/registry.held_out_scorer); ``cached``/``normalizer``/``workers``: as in ``_image_batches``."""
    device = device or next(model.parameters()).device
    correct = total = 0
    with eval_mode(model), torch.no_grad():
        text = zero_shot_text(model, tokenizer, zero_shot, batch_size, device)
        for pixels, labels in _image_batches(zero_shot, image_processor, batch_size, device, cached, normalizer,
                                             workers):
            predictions = _scores(model, pixels, text, scorer).argmax(dim=-1).cpu()
            correct += int((predictions == labels).sum())
            total += len(labels)
    return correct, total


def evaluate_zero_shot(model, image_processor, tokenizer, zero_shot: ZeroShotSet, batch_size: int = 256,
                       device=None, scorer=None) -> float:
    """Top-1 accuracy of ``model`` on a whole zero-shot set in this process (``zero_shot_counts``)."""
    correct, total = zero_shot_counts(model, image_processor, tokenizer, zero_shot, batch_size, device, scorer)
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


@dataclass
class HeldOutShard:
    """This rank's share of a zero-shot set (``zero_shot.dataset`` is the shard), with its pixel store when the
    cache is on (``cached``: decoded on first use, kept for the run)."""

    zero_shot: ZeroShotSet
    cached: object = None  # a ready_batches.CachedSplit


class HeldOutSets:
    """A run's zero-shot sets as this rank scores them: each set loaded once, sharded across the ranks (each
    scores ``shard_bounds`` of it) and, with the pixel cache, decoded once per run: "before" and "after" (and
    every task's, with zero_shot_every_task) read the same store. ``budget_bytes``: what the pixel cache may
    still take on this machine once the benchmark's stores are counted; ``cache_dir``: where disk stores go
    (this rank's own files, named by rank); ``ranks_here``: the ranks of this machine, whose shards add up."""

    def __init__(self, data_args, image_processor, normalizer=None, cache_dir=None, workers: int = 0,
                 rank: int = 0, world: int = 1, ranks_here: int = 1, budget_bytes: int = 0):
        self.data_args, self.image_processor, self.normalizer = data_args, image_processor, normalizer
        self.cache_dir, self.workers, self.rank, self.world = cache_dir, workers, rank, world
        self.ranks_here, self.budget_bytes = ranks_here, budget_bytes
        self.revisions = parse_set_revisions(getattr(data_args, "zero_shot_revisions", None))
        self._shards: dict[str, HeldOutShard] = {}

    def shard(self, name: str) -> HeldOutShard:
        if name not in self._shards:
            held_out = load_retention_set(name, self.data_args.zero_shot_data_dir, self.data_args.zero_shot_max_images,
                                          self.revisions.get(name))
            lo, hi = shard_bounds(len(held_out.dataset), self.rank, self.world)
            part = replace(held_out, dataset=held_out.dataset.select(range(lo, hi)))
            self._shards[name] = HeldOutShard(part, self._cached(part))
        return self._shards[name]

    def _cached(self, part: ZeroShotSet):
        mode = getattr(self.data_args, "pixel_cache", "off")
        if mode == "off" or self.normalizer is None or not len(part.dataset):
            return None
        shape = pixel_shape(self.image_processor)
        need = store_bytes(len(part.dataset), shape or (0,)) * self.ranks_here
        plan = plan_cache(mode, self.image_processor, need, max(self.budget_bytes, 0) / GIB,
                          Path(self.cache_dir) if self.cache_dir is not None else None, workers=self.workers,
                          budget_name=f"what --pixel_cache_budget_gb leaves for zero-shot set {part.name}")
        if plan.mode == "off":
            return None
        if plan.mode == "memory":
            self.budget_bytes -= need
        return cached_images(part.dataset, part.image_column, part.label_column, self.image_processor, plan,
                             f"zero-shot-{part.name}-rank{self.rank}")

    def measure(self, model, tokenizer, batch_size: int, device, scorer=None) -> dict[str, float]:
        """``{set: top-1 accuracy (%)}`` of ``model`` as it is (wrap in ``adapter_disabled`` for pretrained
        CLIP), every rank scoring its shard; one all-reduce of the counts (a collective: every rank calls it)."""
        names = list(self.data_args.zero_shot_sets)
        counts = []
        for name in names:
            shard = self.shard(name)
            counts += zero_shot_counts(model, self.image_processor, tokenizer, shard.zero_shot, batch_size, device,
                                       scorer, shard.cached, self.normalizer, self.workers)
        counts = sum_across_ranks(counts, device)
        return {name: 100.0 * counts[2 * i] / max(counts[2 * i + 1], 1) for i, name in enumerate(names)}

    def close(self):
        for shard in self._shards.values():
            if shard.cached is not None:
                shard.cached.transform.store.close()
        self._shards.clear()


def measure_model_retention(model, pretrained: bool, held_out: HeldOutSets, tokenizer, batch_size: int, device,
                            scorer=None) -> dict[str, float]:
    """``held_out.measure`` of the pretrained CLIP (``pretrained``: the adapter off, ``scorer`` unused) or of
    ``model`` as it is (scored by ``scorer`` where the variant has its own held-out rule)."""
    from ..modeling.student import adapter_disabled

    model.to(device)
    if not pretrained:
        return held_out.measure(model, tokenizer, batch_size, device, scorer)
    with adapter_disabled(model):
        return held_out.measure(model, tokenizer, batch_size, device)


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
