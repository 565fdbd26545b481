"""RAPF's state and its task steps (docs/variants.md, R1-R9) on a live CLIP: the adapter ``W`` and the class
Gaussians it keeps across tasks, what a task starts with (``W_old``, the hard pairs), the replayed samples of a
batch, the statistics and fusion after a task, and the scorer (R1) a run's evaluation and a loaded task share.
The tensor math itself is ``variants/rapf/math.py``'s."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...modeling.student import clip_of, encode_dataset, encode_images, family_of, float32_heads
from ..base import load_state, save_state
from . import math as rapf


@dataclass
class RAPFState:
    adapter: torch.nn.Parameter  # W (d x d), created once, carried across tasks; the only trainable tensor
    means: torch.Tensor | None = None  # (seen classes, d) mu_c of f(x), class positions 0..C-1
    covs: torch.Tensor | None = None  # (seen classes, d, d) Sigma_c + 1e-4 I
    adapter_old: torch.Tensor | None = None  # W as the task started (fusion R9); within a task only
    pairs: torch.Tensor | None = None  # (P, 2) hard (old, new) pairs of the task (R6); within a task only

    scores_held_out = True  # R1 (W applies to any class) also scores the zero-shot sets (docs/variants.md, choice 11)

    @classmethod
    def fresh(cls, model, seed: int, device=None) -> "RAPFState":
        """R1: ``nn.Linear``'s default init of W (projection dim x projection dim), drawn from a generator seeded
        by the run's seed."""
        dim = family_of(model).embed_dim(clip_of(model).config)
        weight = rapf.init_adapter(dim, torch.Generator().manual_seed(seed))
        return cls(torch.nn.Parameter(weight.to(device)))

    @property
    def classes(self) -> int:
        return 0 if self.means is None else self.means.shape[0]

    # ------------------------------------------------------------------ files
    def save(self, folder, within_task: bool = False) -> None:
        """Into a task folder (W and the Gaussians) or, ``within_task``, a Trainer checkpoint (also W_old, pairs)."""
        tensors = {"adapter": self.adapter, "means": self.means, "covs": self.covs}
        if within_task:
            tensors.update(adapter_old=self.adapter_old, pairs=self.pairs)
        save_state(folder, tensors, {"variant": "rapf", "classes": self.classes, "within_task": within_task})

    def restore(self, folder) -> None:
        """Load a saved state in place (W stays the same Parameter, so an optimizer built on it keeps working)."""
        tensors, _ = load_state(folder)
        device = self.adapter.device
        with torch.no_grad():
            self.adapter.copy_(tensors["adapter"].to(device))
        self.means, self.covs = (tensors[k].to(device) if k in tensors else None for k in ("means", "covs"))
        self.adapter_old, self.pairs = (tensors[k].to(device) if k in tensors else None for k in ("adapter_old", "pairs"))

    @classmethod
    def load(cls, folder, device=None) -> "RAPFState":
        tensors, _ = load_state(folder)
        state = cls(torch.nn.Parameter(tensors["adapter"].to(device), requires_grad=False))
        state.restore(folder)
        return state

    # ------------------------------------------------------------------ task steps
    def begin_task(self, start: int, text: torch.Tensor, threshold: float) -> None:
        """Before task t: W_old = W, and the hard pairs R6 (t >= 2; ``text``: frozen text of the seen classes)."""
        self.adapter.grad = None  # Trainer zeroes only the model's gradients: none may carry over from the last task
        self.adapter_old = self.adapter.detach().clone()
        self.pairs = rapf.hard_pairs(text, start, threshold) if start > 0 else None

    def replayed(self, classes: list[int], per_class: int, generator: torch.Generator, shrink: bool):
        """R4: ``per_class`` samples of each class in ``classes`` and their labels (noise drawn on the CPU)."""
        samples, labels = [], []
        for c in classes:
            noise = torch.randn(per_class, self.means.shape[1], generator=generator).to(self.means.device)
            samples.append(rapf.gaussian_samples(self.means[c], self.covs[c], noise, shrink))
            labels.append(torch.full((per_class,), c, dtype=torch.long, device=self.means.device))
        return torch.cat(samples), torch.cat(labels)

    def hinge(self, text: torch.Tensor, per_pair: int, generator: torch.Generator, shrink: bool, margin: float):
        """R7 over every hard pair, or None without pairs."""
        if self.pairs is None or len(self.pairs) == 0:
            return None
        olds = self.pairs[:, 0].tolist()
        samples, positive = self.replayed(olds, per_pair, generator, shrink)
        negative = self.pairs[:, 1].to(positive.device).repeat_interleave(per_pair)
        return rapf.hinge_loss(samples @ self.adapter.T, text, positive, negative, margin)

    @torch.no_grad()
    def end_task(self, model, task, args) -> None:
        """R2 statistics of the task's classes (appended in class-position order), then the fusion R9 (t >= 2);
        ``task``: the run's TaskState, ``args``: its settings."""
        _, feats, labels = encode_dataset(model, task.train_dataset, task.data_collator, args.per_device_eval_batch_size,
                                          "projected", task.pixel_normalizer)
        _, means, covs = rapf.class_statistics(feats, labels)
        start, mix_bias = task.start, args.rapf_mix_bias
        keep = slice(0, start)
        self.means = means if self.means is None else torch.cat([self.means[keep].to(means), means])
        self.covs = covs if self.covs is None else torch.cat([self.covs[keep].to(covs), covs])
        if start > 0:
            self.adapter.copy_(rapf.fuse_adapter(self.adapter.detach(), self.adapter_old.to(self.adapter), mix_bias))
        self.adapter_old, self.pairs = None, None


    def score(self, model, pixel_values, text_embeds, classes, logit_scale: float, settings) -> torch.Tensor:
        """Inference R1: ``s cos(W f(x), u_c)`` over the scored classes, f the frozen CLIP's projected image
        embedding (``method.prototypes.task_scores`` calls it in place of the dual path)."""
        feats = encode_images(model, pixel_values, "projected")[1]
        with float32_heads(feats.device):
            return rapf.adapter_logits(feats, self.adapter.detach().to(feats.device), text_embeds, logit_scale)
