"""MG-CLIP's state and its task steps (docs/variants.md, M1-M7) on a live CLIP: the visual agent's rows (one
per seen class) and the epoch count of rule M3, the agent's update after a task (M4, M6), and the scorer (M7)
a run's evaluation and a loaded task share. The tensor math itself is ``variants/mg_clip/math.py``'s."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...modeling.student import encode_dataset, encode_images, float32_heads
from ..base import load_state, save_state
from ..schedules import cosine_factor
from . import math as mg_clip


@dataclass
class MGCLIPState:
    rows: torch.Tensor | None = None  # (seen classes, d) agent weights w_c, class positions 0..C-1
    epochs: int | None = None  # the epoch count rule M3 found on the first task (mgclip_epochs: auto)

    scores_held_out = False  # the agent has no rows for held-out classes: zero-shot sets go through the CLIP path

    @classmethod
    def fresh(cls, model, seed: int, device=None) -> "MGCLIPState":
        """Before the first task: no agent rows, no epoch count yet."""
        return cls()

    @property
    def classes(self) -> int:
        return 0 if self.rows is None else self.rows.shape[0]

    def save(self, folder, within_task: bool = False) -> None:
        save_state(folder, {"rows": self.rows}, {"variant": "mg-clip", "classes": self.classes, "epochs": self.epochs})

    def restore(self, folder) -> None:
        tensors, meta = load_state(folder)
        self.rows, self.epochs = tensors.get("rows"), meta.get("epochs")

    @classmethod
    def load(cls, folder, device=None) -> "MGCLIPState":
        state = cls()
        state.restore(folder)
        state.rows = None if state.rows is None else state.rows.to(device)
        return state

    @torch.no_grad()
    def _features(self, model, dataset, collator, batch_size, normalizer):
        embeds, _, labels = encode_dataset(model, dataset, collator, batch_size, "projected", normalizer)
        return embeds, labels

    def end_task(self, model, task, args) -> None:
        """M4 rows at the class means of F^S for the task's classes, then M6: those rows trained with intra-task
        CE on the task's cached features (backbone frozen), Adam, per-step cosine (S2); old rows never move.
        ``task``: the run's TaskState, ``args``: its settings."""
        start = task.start
        feats, labels = self._features(model, task.train_dataset, task.data_collator, args.per_device_eval_batch_size,
                                       task.pixel_normalizer)
        new = torch.nn.Parameter(mg_clip.class_mean_weights(feats, labels))
        old = (self.rows[:start].to(new) if self.rows is not None else new[:0]).detach()
        batch, epochs = args.mgclip_agent_batch_size, args.mgclip_agent_epochs
        steps = epochs * -(-len(feats) // batch)
        optimizer = torch.optim.Adam([new], lr=args.mgclip_agent_lr)
        generator = torch.Generator().manual_seed((args.seed * 1_000_003 + start) % (2**63))
        step = 0
        with torch.enable_grad(), float32_heads(feats.device):
            for _ in range(epochs):
                for index in torch.randperm(len(feats), generator=generator).split(batch):
                    for group in optimizer.param_groups:
                        group["lr"] = args.mgclip_agent_lr * cosine_factor(step, steps, args.lr_min_ratio)
                    index = index.to(feats.device)
                    loss = mg_clip.visual_agent_loss(feats[index], torch.cat([old, new]), labels[index], start)
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    step += 1
        self.rows = torch.cat([old, new.detach()])

    def score(self, model, pixel_values, text_embeds, classes, logit_scale: float, settings) -> torch.Tensor:
        """Inference M7: log((a P_clip + b softmax(cos(F, w))) / (a + b)) over the scored classes, P_clip the softmax
        of CLIP's softmax (``mgclip_clip_softmax: twice``, the authors' code) or of z_clip (``once``); the CLIP path
        z_clip alone where a scored class has no agent row (a future task, a zero-shot set)
        (``method.prototypes.task_scores`` calls it in place of the dual path)."""
        embeds = encode_images(model, pixel_values, "projected")[0]
        with float32_heads(embeds.device):
            clip_logits = logit_scale * embeds @ text_embeds.T
            if self.rows is None or int(classes.max()) >= self.rows.shape[0]:
                return clip_logits
            agent = mg_clip.visual_logits(embeds, self.rows[classes.to(self.rows.device)].to(embeds.device))
            return mg_clip.combined_log_probs(clip_logits, agent, settings.mgclip_clip_weight,
                                              settings.mgclip_agent_weight, settings.mgclip_clip_softmax)
