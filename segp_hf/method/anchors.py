"""DPGD anchors: dual-targeted PGD images built on the teacher before each task.

The attack itself is pure tensor code (``select_seeds``, ``dpgd_objective``, ``dpgd_attack``); ``build_anchors``
runs it on the model and the task's images and caches the teacher's outputs in an ``AnchorSet``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from ..data.pixel_cache import model_pixels
from ..modeling.student import clip_of, device_of, encode_images, family_of, image_encoder
from ..run.console import progress
from ..run.distributed import distributed_world, gather_shards, shard_bounds
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


# ------------------------------------------------------------------ the anchor set of a task
@dataclass
class AnchorSet:
    """DPGD anchors with the teacher's outputs cached once, so no teacher runs during training."""

    pixel_values: torch.Tensor  # (A, 3, H, W)
    targets: torch.Tensor  # (A,) old-class positions
    teacher_logits: torch.Tensor  # (A, old classes)
    teacher_raw: torch.Tensor  # (A, D) raw features h^T

    def __len__(self):
        return self.targets.shape[0]


def build_anchors(model, state, args, old_text: torch.Tensor, image_embeds: torch.Tensor) -> AnchorSet:
    """Seed scoring on the teacher, then DPGD toward each old class's text and visual prototype
    (``state``: the run's TaskState; ``image_embeds``: the task's images as the teacher embeds them)."""
    indices, targets = select_seeds(image_embeds, old_text, args.anchors_per_class)
    device = device_of(model)
    # Several processes: each attacks its contiguous share of the anchors, then all shares are gathered.
    rank, world = distributed_world()
    lo, hi = shard_bounds(len(indices), rank, world)
    use_visual = state.switches.dpgd_visual and state.prototypes is not None
    prototypes = state.prototypes.to(device) if use_visual else torch.zeros(old_text.shape[0], 1, device=device)
    encoder = image_encoder(model, args.raw_feature)
    pixels, logits, raws = [], [], []
    chunks = torch.split(torch.arange(lo, hi), args.dpgd_batch_size)
    for chunk in progress(chunks, args, "building anchors"):
        seeds = model_pixels(state.train_dataset[indices[chunk].tolist()]["pixel_values"], device, state.pixel_normalizer)
        chunk_targets = targets[chunk].to(device)
        anchors = dpgd_attack(
            encoder, seeds, chunk_targets, old_text, prototypes, logit_scale=state.logit_scale,
            steps=args.dpgd_steps, step_size=args.dpgd_step_size, epsilon=args.dpgd_epsilon,
            lambda_visual=args.dpgd_lambda_visual if use_visual else 0.0,
        )
        with torch.no_grad():
            embeds, raw = encode_images(model, anchors, args.raw_feature)
        pixels.append(anchors)
        logits.append(state.logit_scale * embeds @ old_text.T)
        raws.append(raw)
    if not pixels:  # an empty share (more ranks than anchors): empty tensors of the right widths join the gather
        pixels, logits, raws = _empty_anchor_share(model, args, old_text, device)
    local = (torch.cat(pixels), torch.cat(logits), torch.cat(raws))
    return AnchorSet(gather_shards(local[0], len(indices)), targets.to(device),
                     gather_shards(local[1], len(indices)), gather_shards(local[2], len(indices)))


def _empty_anchor_share(model, args, old_text, device):
    config = clip_of(model).config
    size = config.vision_config.image_size
    raw_width = family_of(model).raw_width(config, args.raw_feature)
    return ([torch.zeros(0, 3, size, size, device=device)], [torch.zeros(0, old_text.shape[0], device=device)],
            [torch.zeros(0, raw_width, device=device)])
