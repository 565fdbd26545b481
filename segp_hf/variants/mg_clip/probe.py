"""MG-CLIP's epoch rule M3 (the authors' ``epoch.py``): train the first task for up to ``mgclip_probe_epochs``
epochs on a throw-away copy of the LoRA weights (cosine over the probe, per epoch), measure the mean wrong-class
logit M2 after each epoch, and keep as many epochs as left it within ``mgclip_gap_tolerance`` of the pretrained
value. The weights and the random-number state are restored afterwards, so the task then trains as if no probe ran."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from ...data.pixel_cache import model_pixels
from ...data.ready_batches import ready_batches
from ...modeling.student import device_of, encode_images, encode_texts, eval_mode
from ..schedules import epoch_factor
from . import math as mg_clip


def _loader(task_state, batch_size, generator=None):
    return DataLoader(task_state.train_dataset, batch_size=batch_size, shuffle=generator is not None,
                      generator=generator, collate_fn=ready_batches(task_state.data_collator))


def _logits(model, task_state, batch, device):
    pixels = model_pixels(batch["pixel_values"], device, task_state.pixel_normalizer)
    text = encode_texts(model, **task_state.seen_text_inputs(device))
    return task_state.logit_scale * encode_images(model, pixels)[0] @ text.T, batch["labels"].to(device)


@torch.no_grad()
def gap_statistic(model, task_state, batch_size: int) -> float:
    """M2: mean over batches of the mean wrong-class logit (eval mode, the seen classes)."""
    with eval_mode(model):
        values = [mg_clip.negative_logit_mean(*_logits(model, task_state, batch, device_of(model)))
                  for batch in _loader(task_state, batch_size)]
    return float(torch.stack(values).mean())


def probe_epochs(model, task_state, args) -> int:
    """M3 on the current (first) task; ``args``: the run's settings."""
    device = device_of(model)
    trainable = [p for p in model.parameters() if p.requires_grad]
    saved = [p.detach().clone() for p in trainable]
    reference = gap_statistic(model, task_state, args.per_device_eval_batch_size)
    optimizer = torch.optim.AdamW(trainable, lr=args.learning_rate, weight_decay=0.0)
    generator = torch.Generator().manual_seed(args.seed)
    measured, found = [], None
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        for epoch in range(args.mgclip_probe_epochs):
            for group in optimizer.param_groups:
                group["lr"] = args.learning_rate * epoch_factor("cosine", epoch, args.mgclip_probe_epochs,
                                                                min_ratio=args.lr_min_ratio)
            model.train()
            for batch in _loader(task_state, args.per_device_train_batch_size, generator):
                logits, labels = _logits(model, task_state, batch, device)
                loss = mg_clip.intra_task_ce(logits, labels, task_state.start)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            measured.append(gap_statistic(model, task_state, args.per_device_eval_batch_size))
            found = mg_clip.gap_epoch_count(reference, measured, args.mgclip_gap_tolerance)
            if found is not None:
                break
    with torch.no_grad():
        for parameter, value in zip(trainable, saved):
            parameter.copy_(value)
    model.zero_grad(set_to_none=True)
    return found if found is not None else args.mgclip_probe_epochs
