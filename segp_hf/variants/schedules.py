"""Learning-rate multipliers the competitors' public code uses and Trainer does not ship (docs/variants.md, S1-S2).

Both are stepped per epoch in the authors' code; the caller passes the epoch index (or, for MG-CLIP's
visual agent, the optimizer step) and multiplies the base learning rate by the returned factor.
"""

from __future__ import annotations

import math


def multistep_factor(epoch: int, milestones=(4, 10), gamma: float = 0.1) -> float:
    """S1 (RAPF): ``gamma ** (number of milestones <= epoch)``; epochs count from 0."""
    return gamma ** sum(1 for milestone in milestones if epoch >= milestone)


def cosine_factor(step: int, total: int, min_ratio: float = 0.01) -> float:
    """S2 (MG-CLIP): ``min_ratio + (1 - min_ratio) * (1 + cos(pi * step / total)) / 2``.

    The closed form of a cosine annealing to ``min_ratio * lr`` over ``total`` steps (or epochs), evaluated
    at ``step``; ``step = 0`` gives 1."""
    if total <= 0:
        raise ValueError(f"cosine schedule needs total > 0, got {total}")
    return min_ratio + (1.0 - min_ratio) * (1.0 + math.cos(math.pi * step / total)) / 2.0
