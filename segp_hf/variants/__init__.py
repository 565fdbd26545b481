"""The paper's competitors as pure tensor math: RAPF (ECCV 2024) and MG-CLIP (ICCV 2025).

Each module holds its method's losses, statistics, fusion and inference rules as functions on tensors,
with no Trainer, model or file dependency; docs/variants.md gives every equation and its source.
"""

from . import mg_clip, rapf, schedules

__all__ = ["mg_clip", "rapf", "schedules"]
