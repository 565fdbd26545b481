"""What the frozen teacher (the model as a task starts) provides for that task, computed once at its start:
DPGD anchors with their teacher logits and raw features, the TSGR reference geometry, and for the LwF
baseline the teacher logits of the new images. No teacher copy is kept."""

from __future__ import annotations

import torch

from ..modeling.student import adapter_disabled, device_of, encode_dataset, encode_texts, eval_mode
from ..run.distributed import broadcast_from_main, distributed_world, gather_shards, shard_bounds
from .anchors import build_anchors
from .losses import tsgr_neighbours


def prepare_teacher_targets(model, task_state, args):
    """Compute the task's teacher targets from ``model`` as it is now, once per task (``task_state``: the run's
    TaskState, which receives them).

    The continual loop calls this itself before resuming a task from a Trainer checkpoint, because
    the Trainer loads the checkpoint's (already trained) weights before ``on_train_begin``; the
    callback then finds the targets ready and leaves them alone."""
    if task_state.teacher_task == task_state.task:
        return
    with eval_mode(model):
        switches = task_state.switches
        if switches.tsgr and args.lambda_tsgr:
            _tsgr_reference(model, task_state, args)
        if task_state.start > 0 and switches.distillation is not None and args.lambda_acgd:
            old_text, embeds = _teacher_view_of_task(model, task_state, args)
            if switches.distillation == "anchors":
                task_state.anchors = build_anchors(model, task_state, args, old_text, embeds)
            else:  # LwF: distil on the new images themselves, in dataset order (matched by sample_index)
                task_state.lwf_teacher_logits = (task_state.logit_scale * embeds @ old_text.T).contiguous()
                broadcast_from_main(task_state.lwf_teacher_logits)
    task_state.teacher_task = task_state.task


def _tsgr_reference(model, task_state, args):
    """The seen classes' text embeddings TSGR keeps the geometry of, and each new class's neighbours in them."""
    device = device_of(model)
    start, end = task_state.bounds
    with torch.no_grad():
        if args.tsgr_reference == "pretrained":
            with adapter_disabled(model):
                reference = encode_texts(model, **task_state.seen_text_inputs(device))
        else:
            reference = encode_texts(model, **task_state.seen_text_inputs(device))
    broadcast_from_main(reference)
    task_state.reference_text = reference
    if end > 1:
        task_state.tsgr_neighbours = tsgr_neighbours(reference, torch.arange(start, end), args.tsgr_k)


def _teacher_view_of_task(model, task_state, args):
    """(old classes' text embeddings, the task's images' embeddings in dataset order), on the teacher.

    Seed scoring and DPGD are sharded across ranks and gathered: every rank then holds the same embeddings
    (in dataset order) and the same anchors, each computed once."""
    device = device_of(model)
    with torch.no_grad():
        old_text = encode_texts(model, **task_state.seen_text_inputs(device, torch.arange(task_state.start)))
    rank, world = distributed_world()
    dataset = task_state.train_dataset
    lo, hi = shard_bounds(len(dataset), rank, world)
    if hi > lo:
        embeds, _, _ = encode_dataset(
            model, dataset.select(range(lo, hi)) if world > 1 else dataset, task_state.data_collator,
            args.per_device_eval_batch_size, args.raw_feature, task_state.pixel_normalizer,
        )
    else:  # an empty share
        embeds = torch.zeros(0, old_text.shape[1], device=device)
    return old_text, gather_shards(embeds, len(dataset))
