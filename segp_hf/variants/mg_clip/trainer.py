"""MG-CLIP in the harness (docs/variants.md, "How they map onto segp_hf"): the loss is the ``lora`` path's
CE over the current task's classes (M1; SeGPTrainer's ``L_cls`` with ``cls_classes: current``) on LoRA A and B
of k/v in both towers (r 8, alpha 1, A Xavier: set at model build, ``modeling.configure_lora``), the lr is
cosine per epoch (S2), the epoch count is fixed or found by rule M3 on the first task, and predictions are the
mixture M7. ``MGCLIPCallback`` ends the task: the visual agent's rows (M4, M6)."""

from __future__ import annotations

from transformers import TrainerCallback

from ...run.timing import timed
from ...trainer import SeGPTrainer
from .probe import probe_epochs
from .state import MGCLIPState, mgclip_scores


class MGCLIPTrainer(SeGPTrainer):
    def __init__(self, *args, variant_state: MGCLIPState, **kwargs):
        super().__init__(*args, **kwargs)
        self.variant_state = variant_state
        if self.args.mgclip_epochs == "auto":
            if variant_state.epochs is None:  # the first task (and its resume: the probe is deterministic)
                with timed(self.task_state.timing, "anchors_s"):
                    variant_state.epochs = probe_epochs(self.model, self.task_state, self.args)
            self.args.num_train_epochs = variant_state.epochs  # this task's copy of the settings

    def score(self, model, pixel_values, text_embeds, classes):
        return mgclip_scores(model, pixel_values, text_embeds, classes, self.task_state.logit_scale,
                             self.variant_state, self.args)


class MGCLIPCallback(TrainerCallback):
    def __init__(self, task_state, variant_state: MGCLIPState):
        self.state, self.variant_state = task_state, variant_state

    def on_train_end(self, args, state, control, model=None, **kwargs):
        was_training = model.training
        model.eval()
        task = self.state
        with timed(task.timing, "prototypes_s"):
            self.variant_state.end_task(model, task.train_dataset, task.data_collator, task.pixel_normalizer,
                                        task.start, args)
        model.train(was_training)
