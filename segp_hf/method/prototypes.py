"""Visual prototypes: per-class means, drift transfer, dual-path logits, and the one scorer of a run.

The math is pure tensor code (``class_sums``, ``transfer_prototypes``, ``dual_path_logits``); ``update_prototypes``
applies it to the bank after each task, on the model and the task's images; ``task_scores`` is how a run's
evaluation and a loaded task score images (the dual path, or a competitor's own rule)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..modeling.student import clip_of, device_of, encode_dataset, encode_images, eval_mode, family_of, float32_heads
from ..run.distributed import distributed_world
from .losses import clip_logits

TRANSFER_MODES = ("weighted", "mean")


def class_sums(feats: torch.Tensor, labels: torch.Tensor, num_classes: int):
    """Per-class feature sums and counts; sums and counts (not means) so ranks can all-reduce them."""
    sums = torch.zeros(num_classes, feats.shape[-1], dtype=torch.float32, device=feats.device)
    sums.index_add_(0, labels, feats.float())
    counts = torch.bincount(labels, minlength=num_classes).to(feats.device)
    return sums, counts


def transfer_prototypes(
    prototypes: torch.Tensor,
    teacher_feats: torch.Tensor,
    student_feats: torch.Tensor,
    anchor_targets: torch.Tensor,
    temperature: float = 0.1,
    mode: str = "weighted",
) -> torch.Tensor:
    """Move old-class prototypes by the drift the anchors underwent during the task.

    ``weighted`` (SPEC default): Delta_c = sum_a softmax_a(cos(h^T(a), p_c) / temperature) * d(a) and
    p_c += rho_c * Delta_c, where rho_c = clip(mean cos(h^T(a), p_c) over c's own anchors, 0, 1)
    (0 for a class with no anchor of its own: no evidence, no move).
    ``mean`` (ADC style): p_c += mean drift of c's own anchors.
    """
    if mode not in TRANSFER_MODES:
        raise ValueError(f"prototype transfer mode must be one of {TRANSFER_MODES}, got {mode!r}")
    num_classes = prototypes.shape[0]
    prototypes_f = prototypes.float()
    drift = student_feats.float() - teacher_feats.float()
    own_sums, own_counts = class_sums(drift, anchor_targets, num_classes)
    if mode == "mean":
        delta = own_sums / own_counts.clamp(min=1).unsqueeze(1)
        return (prototypes_f + delta).to(prototypes.dtype)
    similarity = F.normalize(teacher_feats.float(), dim=-1) @ F.normalize(prototypes_f, dim=-1).T  # (A, C)
    weights = torch.softmax(similarity / temperature, dim=0)
    delta = weights.T @ drift
    own_similarity = similarity.gather(1, anchor_targets.unsqueeze(1)).squeeze(1)
    rho_sums = torch.zeros(num_classes, device=prototypes.device).index_add_(0, anchor_targets, own_similarity)
    rho = (rho_sums / own_counts.clamp(min=1)).clamp(0.0, 1.0)
    return (prototypes_f + rho.unsqueeze(1) * delta).to(prototypes.dtype)


def dual_path_logits(
    image_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    raw_feats: torch.Tensor,
    prototypes: torch.Tensor,
    logit_scale: float = 100.0,
    beta: float = 0.5,
) -> torch.Tensor:
    """``s * cos(image, text) + beta * s * cos(raw, prototype)`` over the classes (columns)."""
    logits = clip_logits(image_embeds.float(), text_embeds.float(), logit_scale)
    if beta:
        visual_path = F.normalize(raw_feats.float(), dim=-1) @ F.normalize(prototypes.float(), dim=-1).T
        logits = logits + beta * logit_scale * visual_path
    return logits


# ------------------------------------------------------------------ the bank after each task
def update_prototypes(model, task_state, args):
    """Transfer old prototypes along the anchors' drift, then append the new classes' mean raw features
    (``task_state``: the run's TaskState, whose ``prototypes`` is the bank)."""
    if not task_state.switches.prototypes:
        return
    with eval_mode(model):
        start, end = task_state.bounds
        if start > 0 and task_state.anchors is not None and task_state.prototypes is not None:
            task_state.prototypes = _transferred_bank(model, task_state, args)
        new_prototypes = _new_class_means(model, task_state, args)
        old = task_state.prototypes[:start].to(new_prototypes) if task_state.prototypes is not None else new_prototypes[:0]
        task_state.prototypes = torch.cat([old, new_prototypes])


def _transferred_bank(model, task_state, args) -> torch.Tensor:
    anchors = task_state.anchors
    with torch.no_grad():
        student_raw = torch.cat([
            encode_images(model, pixels, args.raw_feature)[1]
            for pixels in torch.split(anchors.pixel_values, args.per_device_eval_batch_size)
        ])
    return transfer_prototypes(
        task_state.prototypes.to(student_raw.device), anchors.teacher_raw, student_raw, anchors.targets,
        temperature=args.prototype_temperature, mode=args.prototype_transfer,
    )


def _new_class_means(model, task_state, args) -> torch.Tensor:
    """Class means from sums and counts: under several processes each rank encodes its shard of the task's
    images and the sums and counts are all-reduced (then every rank holds the same prototypes)."""
    start, end = task_state.bounds
    rank, world = distributed_world()
    dataset = task_state.train_dataset
    if world > 1:
        dataset = dataset.select(range(rank, len(dataset), world))
    if len(dataset):
        _, raws, labels = encode_dataset(
            model, dataset, task_state.data_collator, args.per_device_eval_batch_size, args.raw_feature,
            task_state.pixel_normalizer,
        )
        sums, counts = class_sums(raws, labels - start, end - start)
    else:
        width = task_state.prototypes.shape[1] if task_state.prototypes is not None else None
        sums, counts = _empty_sums(model, end - start, args.raw_feature, width)
    if world > 1:
        torch.distributed.all_reduce(sums)
        torch.distributed.all_reduce(counts)
    return sums / counts.clamp(min=1).unsqueeze(1)


def _empty_sums(model, num_classes, raw_feature, width=None):
    """Zero sums/counts for a rank whose shard is empty (more ranks than images)."""
    width = width or family_of(model).raw_width(clip_of(model).config, raw_feature)
    device = device_of(model)
    return torch.zeros(num_classes, width, device=device), torch.zeros(num_classes, dtype=torch.long, device=device)


# ------------------------------------------------------------------ dual-path scoring
def effective_beta(switches, beta: float) -> float:
    """The visual path's weight at inference: ``beta`` where the variant uses it, else 0 (CLIP path only)."""
    return float(beta) if switches.beta_enabled else 0.0


def class_prototypes(bank: torch.Tensor | None, classes: torch.Tensor) -> torch.Tensor | None:
    """The bank's rows for ``classes``; None where any of them lacks a prototype (then only the CLIP path scores)."""
    if bank is None or int(classes.max()) >= bank.shape[0]:
        return None
    return bank[classes.to(bank.device)]


def dual_path_scores(image_embeds, raw_feats, text_embeds, prototypes, logit_scale: float, beta: float) -> torch.Tensor:
    """SPEC's inference logits over the scored classes (columns): ``s cos(image, text) + beta s cos(raw, prototype)``,
    the CLIP path alone where ``beta`` is 0 or ``prototypes`` is None. In float32 even under a caller's autocast;
    the prototypes keep their float32 values (moved to the features' device, never cast to a lower precision)."""
    with float32_heads(raw_feats.device):
        if not beta or prototypes is None:
            return dual_path_logits(image_embeds, text_embeds, raw_feats, None, logit_scale, beta=0.0)
        return dual_path_logits(image_embeds, text_embeds, raw_feats, prototypes.to(raw_feats.device), logit_scale, beta)


def task_scores(model, pixel_values, text_embeds, classes, task_state, settings, variant_state=None) -> torch.Tensor:
    """The one scorer of a run's evaluation (``SeGPTrainer.predict_logits``) and of a loaded task
    (``LoadedTask.logits``): logits over ``classes`` (class positions; ``text_embeds`` their text embeddings).
    A competitor's state scores by its own rule (``variant_state.score``: RAPF's R1, MG-CLIP's M7); SeGP-CL's
    variants by the dual path with the task's prototypes (the CLIP path alone where the variant or a class has
    none). ``settings``: the run's SeGPConfig or the attributes of a saved one."""
    if variant_state is not None:
        return variant_state.score(model, pixel_values, text_embeds, classes, task_state.logit_scale, settings)
    image_embeds, raw = encode_images(model, pixel_values, settings.raw_feature)
    return dual_path_scores(image_embeds, raw, text_embeds, class_prototypes(task_state.prototypes, classes),
                            task_state.logit_scale, effective_beta(task_state.switches, settings.beta))
