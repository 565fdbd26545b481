"""Pure tensor measures of semantic-geometry drift (no model, no Trainer, no files), for ``segp-hf diagnose``.

Every measure is per old class ``c`` and compares a *reference* model (the pretrained CLIP, or the model before
task t) with the *current* one (after task t). Signs: the distances (KL, shifts, errors) are >= 0 and grow with
drift; the changes (margin, cosine) are current minus reference, so a negative change is a loss.

The text-neighbourhood KL is TSGR's own quantity (``losses.tsgr_reference_targets``: the softmax of the
reference cosines over the k reference-nearest classes, q, against the same softmax of the current cosines, p),
evaluated per root instead of averaged, so ``neighbourhood_kl(...).mean()`` equals ``losses.tsgr_loss``.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F

from ..method.losses import clip_logits, tsgr_neighbours, tsgr_reference_targets
from ..run import checkpoints as ckpt


# ---------------------------------------------------------------------------------------------- text
def neighbourhood_log_distributions(reference_text: torch.Tensor, current_text: torch.Tensor, roots, k: int = 10,
                                    temperature: float = 0.05):
    """``(neighbours, log q, log p)`` per root: its k nearest classes in the reference geometry (root excluded,
    over every row given), TSGR's reference log-softmax q over them, and the same of the current cosines, p."""
    roots = torch.as_tensor(roots, dtype=torch.long, device=reference_text.device)
    neighbours = tsgr_neighbours(reference_text, roots, k)
    log_q, _ = tsgr_reference_targets(reference_text, roots, neighbours, temperature)
    current = F.normalize(current_text.float(), dim=-1)
    current_cos = (current[roots].unsqueeze(1) * current[neighbours]).sum(-1)
    return neighbours, log_q, F.log_softmax(current_cos / temperature, dim=-1)


def neighbourhood_kl(reference_text: torch.Tensor, current_text: torch.Tensor, roots, k: int = 10,
                     temperature: float = 0.05) -> torch.Tensor:
    """KL(q || p) per root (TSGR's q and p, see ``neighbourhood_log_distributions``)."""
    roots = torch.as_tensor(roots, dtype=torch.long)
    if roots.numel() == 0 or reference_text.shape[0] < 2:
        return torch.zeros(roots.numel())
    _, log_q, log_p = neighbourhood_log_distributions(reference_text, current_text, roots, k, temperature)
    return (log_q.exp() * (log_q - log_p)).sum(-1)


def cosine_distance(reference: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
    """``1 - cos(reference_i, current_i)`` row by row (0: same direction; 2: opposite)."""
    return 1.0 - F.cosine_similarity(reference.float(), current.float(), dim=-1)


# ------------------------------------------------------------------------------------- cross-modal
def correct_class_margin(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per image: the correct class's logit minus the largest other logit (> 0: correctly classified)."""
    correct = logits.gather(1, labels.unsqueeze(1)).squeeze(1)
    others = logits.scatter(1, labels.unsqueeze(1), float("-inf"))
    return correct - others.max(dim=1).values


def correct_class_cosine(image_embeds: torch.Tensor, text_embeds: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per image: cos(F(x), G(label))."""
    return F.cosine_similarity(image_embeds.float(), text_embeds.float()[labels], dim=-1)


def per_class_mean(values: torch.Tensor, labels: torch.Tensor, classes) -> torch.Tensor:
    """Mean of a per-image value over each class's images (NaN for a class with no image)."""
    out = []
    for c in torch.as_tensor(classes).tolist():
        chosen = values[labels == c]
        out.append(chosen.float().mean() if chosen.numel() else torch.tensor(math.nan))
    return torch.stack(out) if out else torch.zeros(0)


def cross_modal_change(reference: tuple, current: tuple, labels: torch.Tensor, classes,
                       logit_scale: float = 100.0) -> dict[str, torch.Tensor]:
    """Per class: mean change (current - reference) of the correct-class margin and of the image-text cosine.

    ``reference`` / ``current``: ``(image_embeds, text_embeds)`` of the same images and the same classes (the
    label space is held fixed, so the change is the model's alone, not label-space growth)."""
    (ref_images, ref_text), (cur_images, cur_text) = reference, current
    margin = (correct_class_margin(clip_logits(cur_images, cur_text, logit_scale), labels)
              - correct_class_margin(clip_logits(ref_images, ref_text, logit_scale), labels))
    cosine = correct_class_cosine(cur_images, cur_text, labels) - correct_class_cosine(ref_images, ref_text, labels)
    return {"margin_change": per_class_mean(margin, labels, classes),
            "cosine_change": per_class_mean(cosine, labels, classes)}


def new_class_confusion(logits: torch.Tensor, labels: torch.Tensor, classes, new_classes) -> torch.Tensor:
    """Per class: the share of its images whose top class is one of ``new_classes``."""
    new = torch.zeros(logits.shape[1], dtype=torch.bool, device=logits.device)
    new[torch.as_tensor(new_classes, dtype=torch.long, device=logits.device)] = True
    return per_class_mean(new[logits.argmax(dim=1)].float(), labels, classes)


# ------------------------------------------------------------------------------------------- visual
def class_means(feats: torch.Tensor, labels: torch.Tensor, classes) -> torch.Tensor:
    """Mean raw feature of each class's images, rows in ``classes`` order (NaN rows for an absent class)."""
    rows = []
    for c in torch.as_tensor(classes).tolist():
        chosen = feats[labels == c]
        rows.append(chosen.float().mean(dim=0) if chosen.numel() else torch.full((feats.shape[1],), math.nan))
    return torch.stack(rows) if rows else torch.zeros(0, feats.shape[1])


def prototype_error(prototypes: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    """``1 - cos(prototype_c, class mean_c)``: how far a kept prototype is from where the class now lies
    (prototypes are scored by cosine, so direction is what matters)."""
    return cosine_distance(prototypes, means)


# ------------------------------------------------------------------------------------------- groups
def interface_by_text(reference_text: torch.Tensor, new_classes, old_classes, k: int = 10) -> list[int]:
    """Old classes among the k reference-nearest classes (over all rows given) of any new class: the classes
    TSGR's neighbourhoods reach, the old-new semantic interface."""
    new_classes = torch.as_tensor(new_classes, dtype=torch.long)
    if new_classes.numel() == 0 or reference_text.shape[0] < 2:
        return []
    reached = set(tsgr_neighbours(reference_text, new_classes.to(reference_text.device), k).flatten().tolist())
    return [c for c in torch.as_tensor(old_classes).tolist() if c in reached]


def interface_by_confusion(confusion: torch.Tensor, old_classes, threshold: float = 0.1) -> list[int]:
    """Old classes whose share of images taken by a new class is at least ``threshold``."""
    return [c for c, share in zip(torch.as_tensor(old_classes).tolist(), confusion.tolist()) if share >= threshold]


def group_summary(per_class: dict[str, list[float]], classes: list[int], interface: list[int]) -> dict:
    """Mean of every measure over the interface and the core (the other old classes), and their ratio.

    NaN values (a measure undefined for a class) are left out; an empty group gives None."""
    inside = set(interface)
    groups = {"interface": [i for i, c in enumerate(classes) if c in inside],
              "core": [i for i, c in enumerate(classes) if c not in inside]}
    summary = {name: {"classes": [classes[i] for i in rows]} for name, rows in groups.items()}
    for measure, values in per_class.items():
        for name, rows in groups.items():
            chosen = [values[i] for i in rows if values[i] is not None and not math.isnan(values[i])]
            summary[name][measure] = sum(chosen) / len(chosen) if chosen else None
    summary["ratio"] = {
        measure: _ratio(summary["interface"][measure], summary["core"][measure]) for measure in per_class
    }
    return summary


def _ratio(inside, outside):
    if inside is None or outside is None or outside == 0:
        return None
    return inside / outside


# Summaries of a ``segp-hf diagnose`` result (diagnostics.json): the interface vs core means, their markdown
# table, and the model card's drift section (read from the file only: no model, no data).

DIAGNOSTICS_FILE = "diagnostics.json"

SUMMARY_MEASURES = ("text_kl_before", "margin_change_before", "cosine_change_before", "visual_shift_before",
                    "text_kl_pretrained", "margin_change_pretrained")


def group_means(result: dict, measure: str, up_to: int | None = None, split: str | None = None) -> dict:
    """A measure's mean over every (task, interface class) pair and every (task, core class) pair, pooled over
    the analysed tasks (up to ``up_to``) where both groups are non-empty, so that the two means cover the same
    tasks; ``split``: the run's by default."""
    split = split or result["split"]
    pooled, tasks = {"interface": [], "core": []}, []
    for record in result["tasks"]:
        part, values = record["splits"][split], record["per_class"].get(measure)
        if not part["interface"] or not part["core"] or values is None or (up_to is not None and record["task"] > up_to):
            continue
        tasks.append(record["task"])
        inside = set(part["interface"])
        for c, value in zip(record["old_classes"], values):
            if value is not None:
                pooled["interface" if c in inside else "core"].append(value)
    out = {group: sum(v) / len(v) if v else None for group, v in pooled.items()}
    return {**out, "pairs": {group: len(v) for group, v in pooled.items()}, "tasks": tasks}


def summary_table(result: dict, measures=SUMMARY_MEASURES, up_to: int | None = None, split: str | None = None) -> str:
    """A markdown table: per measure, the pooled interface and core means (``group_means``) and their ratio."""
    lines = ["| measure | interface | core | interface / core |", "|---|---|---|---|"]
    for measure in measures:
        means = group_means(result, measure, up_to, split)
        ratio = (means["interface"] / means["core"]) if means["interface"] is not None and means["core"] else None
        lines.append(f"| {measure} | {_fmt(means['interface'])} | {_fmt(means['core'])} | {_fmt(ratio)} |")
    return "\n".join(lines)


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def card_section(output_dir, task: int) -> str:
    """The model card's drift section for ``task``, from ``output_dir/diagnostics.json`` if the run has one
    (``segp-hf diagnose RUN --model_card``); only tasks up to ``task`` count. Empty otherwise."""
    path = Path(output_dir) / DIAGNOSTICS_FILE
    if not path.is_file():
        return ""
    result = ckpt.read_json(path)
    if not group_means(result, SUMMARY_MEASURES[0], up_to=task)["tasks"]:
        return ""
    return (
        "\n## Semantic-geometry drift (segp-hf diagnose)\n\n"
        f"Old classes split into the interface ({result['split']} split, k = {result['k']}) and the core. Each "
        "value is a mean over (task, old class) pairs of the class's drift after that task, against the model "
        f"before it (`_before`) or the pretrained CLIP (`_pretrained`), over the tasks up to {task} where both groups "
        "are non-empty.\n\n" + summary_table(result, up_to=task) + "\n"
    )
