"""Visual prototypes: per-class means, drift transfer and dual-path logits (pure tensor code)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

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
