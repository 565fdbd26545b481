"""Pure tensor losses of SeGP-CL: classification logits, ACGD and TSGR.

Nothing here knows about Trainer, models or files, so every function can be checked by hand.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def clip_logits(image_embeds: torch.Tensor, text_embeds: torch.Tensor, logit_scale: float = 100.0) -> torch.Tensor:
    """``s * cos(image, text)`` for every image (rows) and class (columns)."""
    return logit_scale * F.normalize(image_embeds, dim=-1) @ F.normalize(text_embeds, dim=-1).T


def acgd_teacher_targets(teacher_logits: torch.Tensor, temperature: float = 20.0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(log softmax(teacher / T), softmax(teacher / T))`` row by row: what ACGD compares the student with.

    Fixed for a task (the teacher logits are cached once), so the trainer computes them once for all anchors
    and indexes them per step instead of recomputing them on every mini-batch (bit-identical: every row is
    computed on its own)."""
    log_probs = F.log_softmax(teacher_logits.detach().float() / temperature, dim=-1)
    return log_probs, log_probs.exp()


def acgd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor | None, temperature: float = 20.0,
              teacher_targets: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Anchor-guided cross-modal geometry distillation.

    ``T^2 * mean_rows KL(softmax(teacher / T) || softmax(student / T))``; the teacher is a fixed target.
    ``teacher_targets``: ``acgd_teacher_targets(teacher_logits, T)`` of these rows, precomputed (then
    ``teacher_logits`` is not used).
    """
    if teacher_targets is None:
        teacher_targets = acgd_teacher_targets(teacher_logits, temperature)
    teacher_log_probs, teacher_probs = teacher_targets
    student_log_probs = F.log_softmax(student_logits.float() / temperature, dim=-1)
    kl_per_row = (teacher_probs * (teacher_log_probs - student_log_probs)).sum(dim=-1)
    return temperature**2 * kl_per_row.mean()


def tsgr_neighbours(reference_text: torch.Tensor, new_classes, k: int = 10) -> torch.Tensor:
    """Indices of the ``k`` classes nearest (cosine, reference geometry) to each root, the root excluded.

    ``k`` is capped at ``rows - 1``. Returns a LongTensor of shape (roots, k).
    """
    roots = torch.as_tensor(new_classes, dtype=torch.long, device=reference_text.device)
    k = min(k, reference_text.shape[0] - 1)
    reference = F.normalize(reference_text.detach().float(), dim=-1)
    similarity = reference[roots] @ reference.T
    similarity[torch.arange(len(roots), device=roots.device), roots] = float("-inf")
    return similarity.topk(k, dim=-1).indices


def tsgr_reference_targets(reference_text: torch.Tensor, roots: torch.Tensor, neighbours: torch.Tensor,
                           temperature: float = 0.05) -> tuple[torch.Tensor, torch.Tensor]:
    """``(log q, q)``: per root, the softmax over its neighbours of the reference cosines / temperature.

    It depends on the fixed reference geometry only, so the trainer computes it once per task."""
    reference = F.normalize(reference_text.detach().float(), dim=-1)
    reference_cos = (reference[roots].unsqueeze(1) * reference[neighbours]).sum(-1)
    log_q = F.log_softmax(reference_cos / temperature, dim=-1)
    return log_q, log_q.exp()


def tsgr_loss(
    student_text: torch.Tensor,
    reference_text: torch.Tensor,
    new_classes,
    k: int = 10,
    temperature: float = 0.05,
    neighbours: torch.Tensor | None = None,
    reference_targets: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Text semantic-geometry regularisation.

    For every root (a new class) compare the softmax over its k reference-nearest neighbours of the
    reference cosines (q) and of the student cosines (p): mean over roots of KL(q || p).
    ``neighbours`` may be passed precomputed (it depends on the reference only), and so may
    ``reference_targets`` (``tsgr_reference_targets`` of the same reference, roots and neighbours).
    """
    roots = torch.as_tensor(new_classes, dtype=torch.long, device=student_text.device)
    if roots.numel() == 0 or student_text.shape[0] < 2:
        return student_text.sum() * 0.0
    if neighbours is None:
        neighbours = tsgr_neighbours(reference_text, roots, k)
    if reference_targets is None:
        reference_targets = tsgr_reference_targets(reference_text, roots, neighbours, temperature)
    log_q, q = reference_targets
    student = F.normalize(student_text.float(), dim=-1)
    student_cos = (student[roots].unsqueeze(1) * student[neighbours]).sum(-1)
    log_p = F.log_softmax(student_cos / temperature, dim=-1)
    return (q * (log_q - log_p)).sum(-1).mean()
