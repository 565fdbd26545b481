"""The competitors by variant name: their Trainer, their end-of-task callback, the state they carry across
tasks, and the scorer that replaces SeGP-CL's dual path for them, in the run's evaluation (the trainer's
``predict_logits``) and in a loaded task (``inference.LoadedTask``) alike. A variant not listed here is one
of SeGP-CL's ladder: ``SeGPTrainer`` with the dual-path scorer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ..callbacks import PrototypeCallback, TeacherTargetsCallback
from ..modeling.student import clip_of
from .base import STATE_FILES
from .mg_clip.state import MGCLIPState, mgclip_scores
from .mg_clip.trainer import MGCLIPCallback, MGCLIPTrainer
from .rapf.state import RAPFState, rapf_scores
from .rapf.trainer import RAPFCallback, RAPFTrainer


@dataclass(frozen=True)
class VariantMethod:
    trainer: type  # a SeGPTrainer subclass, built with ``variant_state=``
    callback: type  # TrainerCallback(task_state, variant_state): the task's end
    state: type  # .fresh / .load / .save / .restore
    scorer: Callable  # (model, pixel_values, text, classes, logit_scale, state, settings) -> logits
    files: tuple = STATE_FILES  # what every task folder of the variant holds besides SeGP-CL's files
    scores_held_out: bool = False  # zero-shot sets scored by ``scorer`` (RAPF's W applies to any class), else CLIP


METHODS = {
    "rapf": VariantMethod(RAPFTrainer, RAPFCallback, RAPFState, rapf_scores, scores_held_out=True),
    "mg-clip": VariantMethod(MGCLIPTrainer, MGCLIPCallback, MGCLIPState, mgclip_scores),
}


def variant_method(variant: str) -> VariantMethod | None:
    """The competitor ``variant``'s parts, or None for SeGP-CL's variants."""
    return METHODS.get(variant)


class Competitor:
    """A run's competitor: its parts and its live state across tasks (the continual loop holds one)."""

    def __init__(self, method: VariantMethod, state):
        self.method, self.state, self.files = method, state, method.files

    def trainer(self, callbacks=(), **kwargs):
        """The task's Trainer; the competitor's end-of-task callback replaces SeGP-CL's teacher and prototype ones."""
        kwargs["callbacks"] = [self.method.callback(kwargs["task_state"], self.state),
                               *(c for c in callbacks if not isinstance(c, (TeacherTargetsCallback, PrototypeCallback)))]
        return self.method.trainer(variant_state=self.state, **kwargs)


def held_out_scorer(variant: str, state, settings):
    """How ``variant``'s model scores a held-out zero-shot set (``zero_shot.evaluate_zero_shot``'s ``scorer``):
    its own rule where that rule covers any class (RAPF's R1: docs/variants.md, choice 11), else None (the CLIP
    path: MG-CLIP's agent has no rows for held-out classes, SeGP-CL's prototypes neither)."""
    method = variant_method(variant)
    if method is None or not method.scores_held_out:
        return None
    return lambda model, pixels, text: method.scorer(model, pixels, text, torch.arange(text.shape[0]), 1.0, state,
                                                     settings)


def competitor(variant: str, model, seed: int, device) -> Competitor | None:
    """``variant``'s competitor with its state before the first task (None for SeGP-CL's variants)."""
    method = variant_method(variant)
    if method is None:
        return None
    if method.state is RAPFState:
        return Competitor(method, RAPFState.fresh(clip_of(model).config.projection_dim, seed, device))
    return Competitor(method, method.state())
