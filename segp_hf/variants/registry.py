"""The competitors by variant name: their Trainer, their end-of-task callback and the state they carry across
tasks (whose ``score`` replaces SeGP-CL's dual path, through ``method.prototypes.task_scores``, in the run's
evaluation and in a loaded task alike). A variant not listed here is one of SeGP-CL's ladder: ``SeGPTrainer``
with the dual-path scorer."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..callbacks import PrototypeCallback, TeacherTargetsCallback
from .base import STATE_FILES, EndOfTaskCallback
from .mg_clip.state import MGCLIPState
from .mg_clip.trainer import MGCLIPTrainer
from .rapf.state import RAPFState
from .rapf.trainer import RAPFCallback, RAPFTrainer


@dataclass(frozen=True)
class VariantMethod:
    trainer: type  # a SeGPTrainer subclass, built with ``variant_state=``
    callback: type  # EndOfTaskCallback(task_state, variant_state) or a subclass: the task's end
    state: type  # the protocol variants/base.py describes
    files: tuple = STATE_FILES  # what every task folder of the variant holds besides SeGP-CL's files


METHODS = {
    "rapf": VariantMethod(RAPFTrainer, RAPFCallback, RAPFState),
    "mg-clip": VariantMethod(MGCLIPTrainer, EndOfTaskCallback, MGCLIPState),
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


def held_out_scorer(variant_state, settings):
    """How a competitor's model scores a held-out zero-shot set (``zero_shot.evaluate_zero_shot``'s ``scorer``):
    its own rule where that rule covers any class (``scores_held_out``: RAPF's R1, docs/variants.md, choice 11),
    else None (the CLIP path: MG-CLIP's agent has no rows for held-out classes, SeGP-CL's prototypes neither)."""
    if variant_state is None or not variant_state.scores_held_out:
        return None
    return lambda model, pixels, text: variant_state.score(model, pixels, text, torch.arange(text.shape[0]), 1.0,
                                                           settings)


def competitor(variant: str, model, seed: int, device) -> Competitor | None:
    """``variant``'s competitor with its state before the first task (None for SeGP-CL's variants)."""
    method = variant_method(variant)
    return Competitor(method, method.state.fresh(model, seed, device)) if method else None
