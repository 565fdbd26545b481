"""``segp-hf diagnose RUN_DIR``: where a run's semantic geometry drifted, task by task (I/O around ``evaluation/drift.py``).

For every analysed task t it loads the model after t ("now"), the model before t (task t-1's checkpoint; the
pretrained CLIP for t = 0) and the pretrained CLIP (the adapter switched off), encodes the class prompts and the
test images of the classes seen so far under each (test images of old classes are used: this is evaluation),
and measures, per old class (seen before t), the drift of ``evaluation/drift.py`` against both references. Old classes are
split into the interface (among the k pretrained-text nearest classes of a new class, k = the run's ``tsgr_k``;
or, with ``split="confusion"``, those of whose test images the model before t already gave at least
``confusion_threshold`` to a new class) and the core (the rest).

Cross-modal measures score every model over the same label space (the classes seen after t), so a change is
the model's, not label-space growth.
"""

from __future__ import annotations

import logging
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import default_data_collator

from ..errors import RecipeError
from ..evaluation import drift
from ..evaluation.drift import DIAGNOSTICS_FILE, group_means
from ..method.losses import clip_logits
from ..recipe import parse_config
from ..run import checkpoints as ckpt

# Plots of ``segp-hf diagnose`` (matplotlib, Agg backend): interface vs core drift per task, and the text
# neighbourhood of the most drifted class before and after.

PLOTTED = (
    ("text_kl_before", "text-neighbourhood KL (vs before t)"),
    ("text_shift_before", "text embedding shift (vs before t)"),
    ("margin_change_before", "correct-class margin change (vs before t)"),
    ("cosine_change_before", "image-text cosine change (vs before t)"),
    ("visual_shift_before", "class-mean shift, raw features (vs before t)"),
    ("text_kl_pretrained", "text-neighbourhood KL (vs pretrained)"),
)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_groups(result: dict, path) -> None:
    """One panel per measure: its interface and core means after each task."""
    plt = _pyplot()
    records = [r for r in result["tasks"] if r["groups"]]
    fig, axes = plt.subplots(2, 3, figsize=(13, 7))
    for ax, (measure, title) in zip(axes.flat, PLOTTED):
        for group, style in (("interface", "o-"), ("core", "s--")):
            points = [(r["task"], r["groups"][group].get(measure)) for r in records]
            points = [(t, v) for t, v in points if v is not None]
            if points:
                ax.plot(*zip(*points), style, label=group)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("after task")
        ax.grid(alpha=0.3)
    axes.flat[0].legend()
    fig.suptitle(f"{result.get('variant')}: drift of old classes, interface vs core ({result['split']} split, "
                 f"k={result['k']})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_neighbourhood(picture: dict, path) -> None:
    """The most drifted class's neighbours: pretrained (q) and current (p) neighbourhood probabilities."""
    import numpy as np

    plt = _pyplot()
    names = picture["neighbour_names"]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(1.5 + 0.8 * len(names), 4))
    ax.bar(x - 0.2, picture["q_pretrained"], 0.4, label="pretrained (q)")
    ax.bar(x + 0.2, picture["p_current"], 0.4, label=f"after task {picture['task']} (p)")
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("neighbourhood probability")
    where = "interface" if picture["interface"] else "core"
    ax.set_title(f"text neighbourhood of '{picture['class_name']}' ({where}), KL(q||p) = {picture['kl']:.3f}",
                 fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


logger = logging.getLogger(__name__)

GROUP_PLOT = "interface_vs_core.png"
NEIGHBOURHOOD_PLOT = "neighbourhood_most_drifted.png"
SPLITS = ("text", "confusion")
PIXEL_CACHE_BYTES = 2 * 1024**3  # preprocessed test images kept across models up to this size
REFERENCES = ("before", "pretrained")
# measure -> what it is (saved with the results, so diagnostics.json explains itself)
MEASURES = {
    "text_kl": "KL(q || p) of the class's text neighbourhood (TSGR's q, p over its k reference-nearest seen classes)",
    "text_shift": "1 - cos(reference text embedding, current text embedding)",
    "margin_change": "mean over the class's test images of the change of (correct logit - best other logit), "
                     "CLIP path over the classes seen after t (negative: worse)",
    "cosine_change": "mean change of cos(image, correct class text) over the class's test images (negative: worse)",
    "visual_shift": "1 - cos(reference raw-feature class mean, current one) on the class's test images",
}
EXTRA_MEASURES = {
    "new_class_confusion": "share of the class's test images whose top class (current model, CLIP path) is new",
    "new_class_confusion_before": "the same under the model before t (the basis of the confusion split)",
    "prototype_error": "1 - cos(saved prototype after t, current raw-feature class mean): the transfer's error",
    "stale_prototype_error": "1 - cos(prototype saved after t-1, current class mean): the error with no transfer",
}


@dataclass
class Snapshot:
    """What one model gives: prompt embeddings of every class analysed and its test-image features."""

    text: torch.Tensor  # (classes, D), class-order positions
    embeds: torch.Tensor  # (images, D) normalised projected image embeddings
    raws: torch.Tensor  # (images, D') raw features
    labels: torch.Tensor  # (images,) class positions


class RunReader:
    """The checkpoints of one run (a local output dir or a Hub repo), one adapter loaded at a time into a
    single PeftModel, and their snapshots on the run's test images."""

    def __init__(self, source: str, last: int, recipe: dict | None = None, overrides=None, benchmark=None,
                 device=None):
        from ..hub.inference import load_task
        from ..hub.tasks import resolve_task_folder
        from ..run.continual import build_scenario
        from .eval_task import saved_settings

        self.source = source
        self.folder = lambda task: resolve_task_folder(source, task)[0]
        loaded = load_task(source, last, merge=False, device=device)
        self.model, self.loaded = loaded.model, loaded
        self.config, self.classes = loaded.config, loaded.classes
        self.bounds = [tuple(b) for b in self.classes["task_bounds"]]
        settings = {**saved_settings(source, last), **(recipe or {})}
        with tempfile.TemporaryDirectory(prefix="segp-diagnose-") as scratch:
            settings.update(output_dir=scratch, report_to="none", push_to_hub=False)
            model_args, data_args, self.args = parse_config(settings, overrides)
        self.scenario, _ = build_scenario(model_args, data_args, benchmark)
        if self.scenario.ordered_class_names[: len(loaded.class_names)] != loaded.class_names:
            raise RecipeError(
                f"the dataset's classes in class order ({self.scenario.ordered_class_names[:5]}...) differ from the "
                f"run's ({loaded.class_names[:5]}...); use the run's benchmark and class_order"
            )
        self._cache: dict[int, Snapshot] = {}
        self._pixels: dict[int, list] = {}
        self._pixel_bytes = 0

    def prototypes(self, task: int) -> torch.Tensor | None:
        if task < 0:
            return None
        return ckpt.load_prototypes(self.folder(task))

    @torch.no_grad()
    def snapshot(self, task: int) -> Snapshot:
        """The model after ``task`` (-1: the pretrained CLIP) on the test images of tasks 0..task (all analysed
        tasks for the pretrained one). Kept for the next step, where it is the model before."""
        if task not in self._cache:
            for stale in [t for t in self._cache if 0 <= t < task - 1]:
                del self._cache[stale]  # the steps are in order: t-1 is the oldest one still needed
            self._cache[task] = self._encode(task)
        return self._cache[task]

    def _test_batches(self, task: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Task ``task``'s test images as (pixel_values, labels) batches, preprocessed once while they fit in
        PIXEL_CACHE_BYTES (each model encodes the same images again)."""
        if task in self._pixels:
            return self._pixels[task]
        from torch.utils.data import DataLoader

        loader = DataLoader(self.scenario.test_dataset(task), batch_size=self.args.per_device_eval_batch_size,
                            shuffle=False, collate_fn=default_data_collator)
        batches = [(batch["pixel_values"], batch["labels"]) for batch in loader]
        size = sum(pixels.numel() * pixels.element_size() for pixels, _ in batches)
        if self._pixel_bytes + size <= PIXEL_CACHE_BYTES:
            self._pixels[task] = batches
            self._pixel_bytes += size
        return batches

    def _encode(self, task: int) -> Snapshot:
        from ..modeling.student import adapter_disabled, encode_images, encode_texts

        device = next(self.model.parameters()).device
        text_inputs = {k: v.to(device) for k, v in self.loaded.text_inputs.items()}
        last_set = len(self.bounds) - 1 if task < 0 else task

        def encode():
            text = encode_texts(self.model, **text_inputs)
            embeds, raws, labels = [], [], []
            for j in range(last_set + 1):
                for pixels, batch_labels in self._test_batches(j):
                    embed, raw = encode_images(self.model, pixels.to(device), self.loaded.raw_feature)
                    embeds.append(embed.float().cpu())
                    raws.append(raw.float().cpu())
                    labels.append(batch_labels)
            return Snapshot(text.float().cpu(), torch.cat(embeds), torch.cat(raws), torch.cat(labels))

        self.model.eval()
        if task < 0:
            with adapter_disabled(self.model):
                return encode()
        ckpt.load_adapter_weights(self.model, self.folder(task))
        logger.info("diagnose: encoding the test images of tasks 0..%d under the model after task %d", last_set, task)
        return encode()


def measure_task(task: int, bounds, now: Snapshot, before: Snapshot, pretrained: Snapshot, logit_scale: float,
                 k: int, temperature: float, prototypes=None, previous_prototypes=None, split: str = "text",
                 confusion_threshold: float = 0.1) -> dict:
    """Every measure of ``evaluation/drift.py`` for the old classes of ``task`` (pure: snapshots in, numbers out)."""
    start, end = bounds
    old, new = list(range(start)), list(range(start, end))
    record = {"task": task, "new_classes": new, "old_classes": old}
    if not old:
        empty = {"interface": [], "core": [], "groups": None}
        return {**record, **empty, "per_class": {}, "splits": {name: dict(empty) for name in SPLITS}}
    # Test sets are encoded task by task, so the old classes' images are the first rows of every snapshot.
    rows = slice(0, int((now.labels < start).sum()))
    labels = now.labels[rows]
    now_means = drift.class_means(now.raws[rows], labels, old)
    per_class = {}
    for name, ref in {"before": before, "pretrained": pretrained}.items():
        if not torch.equal(ref.labels[rows], labels):
            raise ValueError("the snapshots hold different test images; cannot compare them")
        per_class[f"text_kl_{name}"] = drift.neighbourhood_kl(ref.text[:end], now.text[:end], old, k, temperature)
        per_class[f"text_shift_{name}"] = drift.cosine_distance(ref.text[old], now.text[old])
        change = drift.cross_modal_change((ref.embeds[rows], ref.text[:end]), (now.embeds[rows], now.text[:end]),
                                          labels, old, logit_scale)
        per_class[f"margin_change_{name}"] = change["margin_change"]
        per_class[f"cosine_change_{name}"] = change["cosine_change"]
        ref_means = drift.class_means(ref.raws[rows], labels, old)
        per_class[f"visual_shift_{name}"] = drift.cosine_distance(ref_means, now_means)
    now_logits = clip_logits(now.embeds[rows], now.text[:end], logit_scale)
    per_class["new_class_confusion"] = drift.new_class_confusion(now_logits, labels, old, new)
    if prototypes is not None and prototypes.shape[0] >= start:
        per_class["prototype_error"] = drift.prototype_error(prototypes[:start], now_means)
    if previous_prototypes is not None and previous_prototypes.shape[0] >= start:
        per_class["stale_prototype_error"] = drift.prototype_error(previous_prototypes[:start], now_means)
    before_logits = clip_logits(before.embeds[rows], before.text[:end], logit_scale)
    per_class["new_class_confusion_before"] = drift.new_class_confusion(before_logits, labels, old, new)
    interfaces = {
        "text": drift.interface_by_text(pretrained.text[:end], new, old, k),
        "confusion": drift.interface_by_confusion(per_class["new_class_confusion_before"], old, confusion_threshold),
    }
    per_class = {key: [_number(v) for v in values.tolist()] for key, values in per_class.items()}
    splits = {name: {"interface": interface, "core": [c for c in old if c not in set(interface)],
                     "groups": drift.group_summary(per_class, old, interface)}
              for name, interface in interfaces.items()}
    return {**record, **splits[split], "per_class": per_class, "splits": splits}


def most_drifted(task_record: dict, pretrained: Snapshot, now: Snapshot, k: int, temperature: float,
                 class_names: list[str]) -> dict | None:
    """The old class with the largest text-neighbourhood KL against the pretrained geometry, with its
    neighbours and their pretrained (q) and current (p) probabilities: the before/after picture."""
    values = task_record["per_class"].get("text_kl_pretrained")
    if not values:
        return None
    position = max(range(len(values)), key=lambda i: values[i])
    root = task_record["old_classes"][position]
    end = task_record["new_classes"][-1] + 1 if task_record["new_classes"] else len(class_names)
    neighbours, log_q, log_p = drift.neighbourhood_log_distributions(pretrained.text[:end], now.text[:end], [root],
                                                                    k, temperature)
    return {"task": task_record["task"], "class": root, "class_name": class_names[root], "kl": values[position],
            "interface": root in task_record["interface"],
            "neighbours": neighbours[0].tolist(), "neighbour_names": [class_names[i] for i in neighbours[0].tolist()],
            "q_pretrained": log_q.exp()[0].tolist(), "p_current": log_p.exp()[0].tolist()}


def _number(value: float):
    return None if math.isnan(value) else float(value)


def resolve_tasks(available: list[int], requested: list[int] | None, source: str = "the run") -> list[int]:
    """The tasks to analyse: every one requested needs its own checkpoint and the one before it."""
    if not available:
        raise RecipeError(f"'{source}' holds no complete task checkpoint (task-k/metrics.json) to diagnose; "
                          "give a run's output directory or a Hub repo id")
    tasks = sorted(set(requested)) if requested else available
    missing = [t for t in tasks if t not in available or (t > 0 and t - 1 not in available)]
    if missing:
        raise RecipeError(
            f"cannot diagnose task(s) {missing}: each needs its checkpoint and the previous task's; "
            f"available: {', '.join(f'task-{t}' for t in available)}"
        )
    return tasks


def diagnose_run(source, output_dir, tasks: list[int] | None = None, split: str = "text", k: int | None = None,
                 confusion_threshold: float = 0.1, recipe: dict | None = None, overrides=None, benchmark=None,
                 device=None, plots: bool = True, model_card: bool = False) -> dict:
    """Measure the run's drift after each task, write ``output_dir/diagnostics.json`` and the plots.

    ``model_card``: also write ``diagnostics.json`` into the run directory (a local run only), where
    ``model_card.build_model_card`` finds it: the task cards written from then on (``segp-hf push``) carry a drift
    section."""
    from ..hub.tasks import available_tasks

    if split not in SPLITS:
        raise RecipeError(f"--split must be one of {', '.join(SPLITS)}, got {split!r}")
    if k is not None and k < 1:
        raise RecipeError(f"--k must be >= 1, got {k}")
    source = str(source)
    if model_card and not Path(source).is_dir():
        raise RecipeError("--model_card needs a local run directory (push it afterwards with segp-hf push)")
    tasks = resolve_tasks(available_tasks(source), tasks, source)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    reader = RunReader(source, tasks[-1], recipe, overrides, benchmark, device)
    k = int(k if k is not None else reader.config.get("tsgr_k", 10))
    temperature = float(reader.config.get("tsgr_temperature", 0.05))
    names = reader.loaded.class_names
    pretrained = reader.snapshot(-1)
    records, picture = [], None
    for task in tasks:
        before = pretrained if task == 0 else reader.snapshot(task - 1)
        now = reader.snapshot(task)
        record = measure_task(task, reader.bounds[task], now, before, pretrained, reader.loaded.logit_scale, k,
                              temperature, reader.prototypes(task), reader.prototypes(task - 1), split,
                              confusion_threshold)
        records.append(record)
        if task == tasks[-1]:
            picture = most_drifted(record, pretrained, now, k, temperature, names)
    result = {
        "source": source, "variant": reader.config.get("variant"), "split": split, "k": k,
        "temperature": temperature, "confusion_threshold": confusion_threshold,
        "class_names": names, "task_bounds": reader.bounds[: tasks[-1] + 1],
        "measures": {**{f"{m}_{r}": f"{d} (reference: {r})" for m, d in MEASURES.items() for r in REFERENCES},
                     **EXTRA_MEASURES},
        "tasks": records, "most_drifted": picture,
    }
    result["summary"] = {name: {m: group_means(result, m, split=name) for m in result["measures"]} for name in SPLITS}
    output_dir = Path(output_dir)
    ckpt.write_json_atomic(output_dir / DIAGNOSTICS_FILE, result)
    if model_card:
        ckpt.write_json_atomic(Path(source) / DIAGNOSTICS_FILE, result)
    if plots:

        plot_groups(result, output_dir / GROUP_PLOT)
        if picture is not None:
            plot_neighbourhood(picture, output_dir / NEIGHBOURHOOD_PLOT)
    return result


# ------------------------------------------------------------------------------------- summary / card
