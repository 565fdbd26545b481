"""MG-CLIP in the harness (docs/variants.md, "How they map onto segp_hf"): the loss is the ``lora`` path's
CE over the current task's classes (M1; SeGPTrainer's ``L_cls`` with ``cls_classes: current``) on LoRA A and B
of k/v in both towers (r 8, alpha 1, A Xavier: set at model build, ``modeling.configure_lora``), the lr is
cosine per epoch (S2), the epoch count is fixed or found by rule M3 on the first task, and predictions are the
mixture M7. The task ends with the visual agent's rows (M4, M6): ``variants.base.EndOfTaskCallback`` calling
``MGCLIPState.end_task``."""

from __future__ import annotations

from ...run.timing import timed
from ...trainer import SeGPTrainer
from .probe import probe_epochs
from .state import MGCLIPState


class MGCLIPTrainer(SeGPTrainer):
    def __init__(self, *args, variant_state: MGCLIPState, **kwargs):
        super().__init__(*args, variant_state=variant_state, **kwargs)
        if self.args.mgclip_epochs == "auto":
            if variant_state.epochs is None:  # the first task (and its resume: the probe is deterministic)
                with timed(self.task_state.timing, "anchors_s"):
                    variant_state.epochs = probe_epochs(self.model, self.task_state, self.args)
            self.args.num_train_epochs = variant_state.epochs  # this task's copy of the settings
