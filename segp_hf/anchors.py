"""DPGD: dual-targeted PGD anchors built on the teacher before each task (pure tensor code)."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from .losses import clip_logits

Encoder = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def select_seeds(image_embeds: torch.Tensor, old_text_embeds: torch.Tensor, k: int = 5):
    """For every old class, the ``k`` images closest (cosine) to its text embedding.

    Returns ``(indices, targets)``, class-major: class 0's seeds first, best first. An image may
    seed several classes; ``k`` is capped at the number of images.
    """
    scores = F.normalize(old_text_embeds.float(), dim=-1) @ F.normalize(image_embeds.float(), dim=-1).T
    k = min(k, image_embeds.shape[0])
    indices = scores.topk(k, dim=-1).indices.reshape(-1)
    targets = torch.arange(old_text_embeds.shape[0], device=indices.device).repeat_interleave(k)
    return indices, targets


def dpgd_objective(embeds, raw_feats, targets, text_embeds, prototypes, logit_scale, lambda_visual):
    """Per-anchor L_adv: CE toward the target's text + lambda * (1 - cos(raw, target prototype))."""
    logits = clip_logits(embeds, text_embeds, logit_scale)
    text_term = F.cross_entropy(logits.float(), targets, reduction="none")
    visual_term = 1.0 - F.cosine_similarity(raw_feats.float(), prototypes[targets].float(), dim=-1)
    return text_term + lambda_visual * visual_term


def dpgd_attack(
    encoder: Encoder,
    pixel_values: torch.Tensor,
    targets: torch.Tensor,
    text_embeds: torch.Tensor,
    prototypes: torch.Tensor,
    logit_scale: float = 100.0,
    steps: int = 10,
    step_size: float = 1.5e-3,
    epsilon: float = 4 / 255,
    lambda_visual: float = 1.0,
) -> torch.Tensor:
    """Signed-gradient descent of the DPGD objective inside an L_inf ball around ``pixel_values``.

    Gradients are taken with ``torch.autograd.grad`` w.r.t. the perturbation only, so no parameter
    of ``encoder`` accumulates a gradient.
    """
    text_embeds = text_embeds.detach()
    prototypes = prototypes.detach()
    delta = torch.zeros_like(pixel_values)
    for _ in range(steps):
        delta.requires_grad_(True)
        with torch.enable_grad():
            embeds, raw_feats = encoder(pixel_values + delta)
            # Summed, not averaged: each anchor's gradient is independent and only its sign is used.
            loss = dpgd_objective(embeds, raw_feats, targets, text_embeds, prototypes, logit_scale, lambda_visual).sum()
            (grad,) = torch.autograd.grad(loss, [delta])
        delta = (delta.detach() - step_size * grad.sign()).clamp_(-epsilon, epsilon)
    return (pixel_values + delta).detach()
