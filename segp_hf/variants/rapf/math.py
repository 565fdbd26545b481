"""RAPF (Huang et al., ECCV 2024) as pure tensor math: docs/variants.md, equations R1-R9.

A linear adapter ``W`` (d x d, no bias) on the frozen CLIP image embedding ``f(x)`` (projected, not
normalised); the text embeddings ``u_c`` of the frozen text tower are the classifier. Old classes are
replayed as samples of per-class Gaussians of ``f``; old/new class pairs whose text embeddings are close
get a hinge; after each task the adapter is fused with its previous value in the old weight's SVD basis.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ...method.losses import clip_logits

COVARIANCE_RIDGE = 1e-4  # added to every class covariance so its Cholesky factor exists


def init_adapter(dim: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """R1: the adapter's starting weight, ``nn.Linear``'s default: Kaiming-uniform with ``a = sqrt(5)``,
    i.e. U(-1/sqrt(d), 1/sqrt(d)) -- a random map, not the identity."""
    bound = 1.0 / math.sqrt(dim)
    return (torch.rand(dim, dim, generator=generator) * 2.0 - 1.0) * bound


def adapter_logits(feats: torch.Tensor, adapter_weight: torch.Tensor, text_embeds: torch.Tensor,
                   logit_scale: float = 100.0) -> torch.Tensor:
    """R1: ``s * cos(W f(x), u_c)`` for every row of ``feats`` and every class row of ``text_embeds``."""
    return clip_logits(feats.float() @ adapter_weight.float().T, text_embeds.float(), logit_scale)


def class_statistics(feats: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """R2: per class (sorted label order) the mean and the unbiased covariance ``+ 1e-4 I`` of ``feats``.

    Returns ``(classes, means (C, d), covariances (C, d, d))``, all float32."""
    feats = feats.float()
    classes = torch.unique(labels, sorted=True)
    ridge = COVARIANCE_RIDGE * torch.eye(feats.shape[-1], device=feats.device)
    means, covs = [], []
    for label in classes:
        rows = feats[labels == label]
        means.append(rows.mean(dim=0))
        covs.append(torch.cov(rows.T) + ridge)
    return classes, torch.stack(means), torch.stack(covs)


def shrink_covariance(cov: torch.Tensor) -> torch.Tensor:
    """R3: ``cov + mean(diag) I + mean(nonzero off-diagonal) (1 - I)`` (the ImageNet-R / CUB setting)."""
    eye = torch.eye(cov.shape[-1], device=cov.device, dtype=cov.dtype)
    off = cov * (1 - eye)
    nonzero = off != 0
    off_mean = off.sum() / nonzero.sum().clamp(min=1)
    return cov + cov.diagonal().mean() * eye + off_mean * (1 - eye)


def gaussian_samples(mean: torch.Tensor, cov: torch.Tensor, noise: torch.Tensor, shrink: bool = False) -> torch.Tensor:
    """R4: ``mean + L z`` for every row ``z`` of ``noise`` (standard normal), ``L = cholesky(cov)``."""
    if shrink:
        cov = shrink_covariance(cov)
    factor = torch.linalg.cholesky(cov.float())
    return noise.float() @ factor.T + mean.float()


def replay_classes(permutation: list[int], batch_index: int, per_batch: int) -> list[int]:
    """R5: the old classes batch ``b`` replays: ``perm[(b * k + j) mod n]`` for ``j < k``.

    ``permutation`` is the old classes shuffled once per epoch, so an epoch walks through all of them."""
    n = len(permutation)
    return [permutation[(batch_index * per_batch + j) % n] for j in range(per_batch)]


def hard_pairs(text_embeds: torch.Tensor, num_old: int, threshold: float) -> torch.Tensor:
    """R6: ``(old, new)`` index pairs with ``|| u_new / |u_new| - u_old / |u_old| ||_2 < threshold``.

    ``text_embeds`` holds the old classes first (rows ``< num_old``), then the new ones; indices are rows of
    it. Returns a LongTensor (P, 2), sorted by old then new (the authors' ``nonzero`` order)."""
    text = F.normalize(text_embeds.float(), dim=-1)
    distance = torch.cdist(text[:num_old], text[num_old:])  # (old, new)
    pairs = torch.nonzero(distance < threshold)
    pairs[:, 1] += num_old
    return pairs


def hinge_loss(adapted: torch.Tensor, text_embeds: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor,
               margin: float = 0.1) -> torch.Tensor:
    """R7: ``mean relu(cos(g, u_neg) - cos(g, u_pos) + margin)`` over the rows ``g`` of ``adapted``.

    ``adapted``: the adapter's outputs ``W x~`` for samples drawn from the old class ``positive``;
    ``negative``: the close new class of the same pair. The text side is a fixed target."""
    g = F.normalize(adapted.float(), dim=-1)
    text = F.normalize(text_embeds.detach().float(), dim=-1)
    gap = (g * text[negative]).sum(-1) - (g * text[positive]).sum(-1)
    return torch.relu(gap + margin).mean()


def rapf_loss(logits: torch.Tensor, targets: torch.Tensor, hinge: torch.Tensor | None = None) -> torch.Tensor:
    """R8: cross-entropy (mean over real and replayed rows, all seen classes) ``+ L_hinge`` when pairs exist."""
    loss = F.cross_entropy(logits.float(), targets)
    return loss if hinge is None else loss + hinge


def fuse_adapter(new_weight: torch.Tensor, old_weight: torch.Tensor, mix_bias: float) -> torch.Tensor:
    """R9: decomposed parameter fusion after task t >= 2.

    ``W_old = U S V^T``; in ``U``'s basis ``P = U^T W_new`` and ``Q = S V^T = U^T W_old``;
    ``M = min(1, |P - Q| / max|P - Q| + b)``; ``W = U (M * P + (1 - M) * Q)`` (element-wise).
    Entries that moved most keep their new value; the others are pulled back toward the old one."""
    new, old = new_weight.float(), old_weight.float()
    u, s, vh = torch.linalg.svd(old)
    projected_new = u.T @ new
    projected_old = torch.diag(s) @ vh
    change = (projected_new - projected_old).abs()
    if change.max() == 0:  # nothing learnt: the authors' formula would divide 0 by 0
        return new_weight.clone()
    mask = (change / change.max() + mix_bias).clamp(max=1.0)
    fused = u @ (mask * projected_new + (1 - mask) * projected_old)
    return fused.to(new_weight.dtype)
