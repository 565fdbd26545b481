"""MG-CLIP (Huang et al., ICCV 2025) as pure tensor math: docs/variants.md, equations M1-M7.

Gap preservation: LoRA on CLIP trained with cross-entropy over the current task's classes only, for a
number of epochs chosen where the mean negative image-text logit (the modality gap's proxy) is still
within 10% of the pretrained value. Gap compensation: an intra-modal (image-image) cosine classifier,
initialised at class means and trained after each task, whose probabilities are mixed with CLIP's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def intra_task_ce(logits: torch.Tensor, targets: torch.Tensor, first_new: int) -> torch.Tensor:
    """M1: cross-entropy over the current task's columns only: ``CE(z[:, first_new:], y - first_new)``.

    ``first_new``: the index of the task's first class among the seen classes (0 for the first task)."""
    return F.cross_entropy(logits[:, first_new:].float(), targets - first_new)


def negative_logit_mean(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """M2: the batch mean over images of the mean logit of the non-target classes.

    The authors average these batch means (unweighted) over the task's training set: the statistic
    ``n`` that the epoch rule (M3) watches."""
    off_target = 1.0 - F.one_hot(targets, logits.shape[1]).float()
    return ((logits.float() * off_target).sum(1) / off_target.sum(1)).mean()


def gap_epoch_count(reference: float, per_epoch: list[float], tolerance: float = 0.1) -> int | None:
    """M3: epochs to train, from the first task's probe run (the authors' ``epoch.py``).

    ``per_epoch[i]``: ``n`` after epoch ``i + 1`` of the probe; ``reference``: ``n`` of the pretrained model.
    The first ``i`` (0-based) with ``|n_i - reference| / |reference| > tolerance`` gives ``max(1, i)``
    epochs (the last epoch that kept the gap); ``None`` if no epoch of the probe crossed the tolerance."""
    for i, value in enumerate(per_epoch):
        if abs(value - reference) / abs(reference) > tolerance:
            return max(1, i)
    return None


def class_mean_weights(feats: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """M4: the visual agent's new rows: per class (sorted label order) the mean of the L2-normalised
    image embeddings ``F(x)`` of its training images (the mean itself is not renormalised)."""
    feats = F.normalize(feats.float(), dim=-1)
    return torch.stack([feats[labels == label].mean(dim=0) for label in torch.unique(labels, sorted=True)])


def visual_logits(feats: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """M5: ``cos(F(x), w_c)``, with no scale or temperature (the authors' classifier has none)."""
    return F.normalize(feats.float(), dim=-1) @ F.normalize(weights.float(), dim=-1).T


def visual_agent_loss(feats: torch.Tensor, weights: torch.Tensor, targets: torch.Tensor, first_new: int) -> torch.Tensor:
    """M6: M1 applied to M5: the agent learns the current task's rows only; old rows get no gradient."""
    return intra_task_ce(visual_logits(feats, weights), targets, first_new)


CLIP_SOFTMAX = ("twice", "once")


def combined_log_probs(clip_logits: torch.Tensor, agent_logits: torch.Tensor, clip_weight: float = 1.0,
                       agent_weight: float = 4.0, clip_softmax: str = "twice") -> torch.Tensor:
    """M7: ``log((a P_clip + b softmax(z_agent)) / (a + b))`` over the seen classes.

    ``clip_softmax``: ``"twice"`` (the authors' code): ``P_clip = softmax(softmax(z_clip))``, since their model's
    test-mode forward already returns ``softmax(z_clip)`` and the evaluation applies a softmax to it again, so
    CLIP's term is nearly flat (within a factor e) and the agent overrules CLIP wherever its own preference is clear
    (docs/variants.md, M7); ``"once"`` (the paper's formula as written): ``P_clip = softmax(z_clip)``, sharp at
    CLIP's scale 100, so the agent only breaks CLIP's near-ties. The authors take the argmax of the mixture; its
    log is returned so that it is a logit vector whose softmax is the mixture itself (argmax unchanged)."""
    if clip_softmax not in CLIP_SOFTMAX:
        raise ValueError(f"clip_softmax must be one of {CLIP_SOFTMAX}, not {clip_softmax!r}")
    clip = torch.softmax(clip_logits.float(), dim=-1)
    if clip_softmax == "twice":
        clip = torch.softmax(clip, dim=-1)
    agent = torch.softmax(agent_logits.float(), dim=-1)
    mixture = (clip_weight * clip + agent_weight * agent) / (clip_weight + agent_weight)
    return mixture.log()
