"""RAPF in the harness (docs/variants.md, "How they map onto segp_hf"): a SeGPTrainer whose only trainable
tensor is the adapter W (the PEFT CLIP stays frozen, LoRA at B = 0), whose loss is R8 (+ R7), whose lr is
stepped per epoch (S1), and whose predictions are R1. ``RAPFCallback`` ends the task (R2, R9).

One trainer is built per task: building it is the task's begin_task (W_old, hard pairs)."""

from __future__ import annotations

import os

import torch
from transformers import Trainer
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from ...modeling.student import encode_images, encode_texts, float32_heads
from ...trainer import SeGPTrainer
from ..base import EndOfTaskCallback
from . import math as rapf
from .state import RAPFState


class RAPFTrainer(SeGPTrainer):
    loss_terms = ("loss_cls", "loss_hinge")  # R8's CE and R7's hinge

    def __init__(self, *args, variant_state: RAPFState, **kwargs):
        super().__init__(*args, variant_state=variant_state, **kwargs)
        for parameter in self.model.parameters():  # CLIP and its LoRA frozen: W is the whole trainable set
            parameter.requires_grad_(False)
        self.variant_state.adapter.requires_grad_(True)
        self._text = None
        self._perm = (None, None)  # (epoch, its shuffle of the old classes)
        self._micro = (-1, 0)  # (optimizer step, micro-batch within it)
        state = self.task_state
        self.variant_state.begin_task(state.start, self.seen_text(), self.args.rapf_threshold)

    # ------------------------------------------------------------------ optimiser
    def create_optimizer(self, model=None):
        """Adam (the run's ``optim``, weight decay 0 by default) on W only."""
        if self.optimizer is None:
            optimizer_cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(self.args, self.model)
            params = [{"params": [self.variant_state.adapter], "weight_decay": self.args.weight_decay}]
            self.optimizer = optimizer_cls(params, **kwargs)
        return self.optimizer

    # ------------------------------------------------------------------ loss
    @torch.no_grad()
    def seen_text(self) -> torch.Tensor:
        """u_c of the seen classes from the frozen text tower (constant within a task)."""
        if self._text is None:
            device = self.variant_state.adapter.device
            self._text = encode_texts(self.model, **self.task_state.seen_text_inputs(device))
        return self._text

    def _generator(self, *parts) -> torch.Generator:
        key = self.args.seed
        for part in (self.task_state.task, *parts):
            key = (key * 1_000_003 + part) % (2**63)
        return torch.Generator().manual_seed(key)

    def _batch_draw(self):
        """(old classes this micro-batch replays (R5), its noise generator): functions of (seed, task, step,
        micro-batch) only, so a task resumed from a Trainer checkpoint replays what an uninterrupted run does."""
        step = self.state.global_step
        micro = self._micro[1] + 1 if self._micro[0] == step else 0
        self._micro = (step, micro)
        per_epoch = self.steps_per_epoch()
        epoch = step // per_epoch
        if self._perm[0] != epoch:
            order = torch.randperm(self.task_state.start, generator=self._generator(epoch, 0)).tolist()
            self._perm = (epoch, order)
        batch = (step % per_epoch) * self.args.gradient_accumulation_steps + micro
        classes = rapf.replay_classes(self._perm[1], batch, self.args.rapf_replay_classes)
        return classes, self._generator(epoch, step + 1, micro)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        args, state, vs = self.args, self.task_state, self.variant_state
        with torch.no_grad():
            feats = encode_images(model, inputs["pixel_values"], "projected")[1]  # f(x): frozen, unnormalised
        labels, text, terms = inputs["labels"], self.seen_text(), {}
        with float32_heads(feats.device):
            hinge = None
            if state.start > 0:  # replay (R4, R5) joins the CE; the hinge R7 when hard pairs exist
                classes, generator = self._batch_draw()
                replay, replay_labels = vs.replayed(classes, int(10 * args.rapf_beta), generator, args.rapf_shrinkage)
                feats, labels = torch.cat([feats, replay.to(feats)]), torch.cat([labels, replay_labels.to(labels)])
                hinge = vs.hinge(text, int(20 * args.rapf_beta), generator, args.rapf_shrinkage, args.rapf_margin)
            logits = rapf.adapter_logits(feats, vs.adapter, text, state.logit_scale)
            loss = rapf.rapf_loss(logits, labels, hinge)
        terms["loss_cls"] = loss if hinge is None else loss - hinge
        if hinge is not None:
            terms["loss_hinge"] = hinge
        if model.training:
            self._record_terms(terms)
        return (loss, {"logits": logits}) if return_outputs else loss

    # ------------------------------------------------------------------ checkpoints inside a task
    def _save_checkpoint(self, model, trial):
        # W is no model weight: it goes into the checkpoint folder first (trainer_state.json, written last by
        # the Trainer, still marks the checkpoint complete).
        folder = os.path.join(self._get_output_dir(trial=trial), f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
        if self.args.should_save:
            self.variant_state.save(folder, within_task=True)
        super()._save_checkpoint(model, trial)

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        self.variant_state.restore(resume_from_checkpoint)


class RAPFCallback(EndOfTaskCallback):
    """After each optimizer step: W's gradient cleared (Trainer zeroes only the model's, and W is no model weight).
    The task's end (the base's): the Gaussians of the task's classes (R2), then the fusion of W with W_old (R9)."""

    def on_optimizer_step(self, args, state, control, **kwargs):
        self.variant_state.adapter.grad = None
