"""Callbacks that run SeGP-CL's per-task steps around ``Trainer.train``.

- ``TeacherTargetsCallback`` (train begin): everything the frozen teacher (the model as task t starts)
  provides, computed once: DPGD anchors with their teacher logits and raw features, the TSGR reference
  geometry, and for the LwF baseline the teacher logits of the new images. No teacher copy is kept.
- ``PrototypeCallback`` (train end): moves old prototypes by the anchors' drift, adds new-class ones.
"""

from __future__ import annotations

import math

import torch
from torch.utils.data import DataLoader
from transformers import TrainerCallback

from .anchors import dpgd_attack, select_seeds
from .console import progress
from .data.pixel_cache import model_pixels, ready_batches
from .losses import tsgr_neighbours
from .modeling import adapter_disabled, encode_images, encode_texts, image_encoder
from .prototypes import class_sums, transfer_prototypes
from .task_state import AnchorSet, TaskState
from .timing import timed


def _device_of(model):
    return next(model.parameters()).device


# ------------------------------------------------------------------------------------ several processes
def distributed_world() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside torch.distributed."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def broadcast_from_main(*tensors: torch.Tensor) -> None:
    """Make rank 0's copy of tensors every rank computed deterministically bit-identical everywhere
    (in place; same shapes on every rank by construction)."""
    if distributed_world()[1] > 1:
        for tensor in tensors:
            torch.distributed.broadcast(tensor, src=0)


def shard_bounds(count: int, rank: int, world: int) -> tuple[int, int]:
    """This rank's contiguous share [lo, hi) of ``count`` items (sizes differ by at most one)."""
    return count * rank // world, count * (rank + 1) // world


def gather_shards(local: torch.Tensor, count: int) -> torch.Tensor:
    """Every rank's ``shard_bounds`` rows of a (count, ...) tensor, concatenated in rank order on every rank
    (padded to equal sizes for all_gather, then trimmed); the local tensor itself outside torch.distributed."""
    rank, world = distributed_world()
    if world == 1:
        return local
    sizes = [shard_bounds(count, r, world) for r in range(world)]
    most = max(max(hi - lo for lo, hi in sizes), 1)
    padded = local.new_zeros((most, *local.shape[1:]))
    padded[: local.shape[0]] = local
    parts = [torch.empty_like(padded) for _ in range(world)]
    torch.distributed.all_gather(parts, padded.contiguous())
    return torch.cat([part[: hi - lo] for part, (lo, hi) in zip(parts, sizes)])


def _loader(dataset, collator, batch_size):
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=ready_batches(collator))


@torch.no_grad()
def encode_dataset(model, dataset, collator, batch_size, raw_feature, normalizer=None):
    """Projected embeddings, raw features and labels of every image of ``dataset``, in order (``normalizer``:
    the run's PixelNormalizer, for cached uint8 batches)."""
    device = _device_of(model)
    embeds, raws, labels = [], [], []
    for batch in _loader(dataset, collator, batch_size):
        embed, raw = encode_images(model, model_pixels(batch["pixel_values"], device, normalizer), raw_feature)
        embeds.append(embed)
        raws.append(raw)
        labels.append(batch["labels"].to(device))
    return torch.cat(embeds), torch.cat(raws), torch.cat(labels)


def build_anchors(model, state: TaskState, args, old_text: torch.Tensor, image_embeds: torch.Tensor) -> AnchorSet:
    """Seed scoring on the teacher, then DPGD toward each old class's text and visual prototype."""
    indices, targets = select_seeds(image_embeds, old_text, args.anchors_per_class)
    device = _device_of(model)
    # Several processes: each attacks its contiguous share of the anchors, then all shares are gathered.
    rank, world = distributed_world()
    lo, hi = shard_bounds(len(indices), rank, world)
    use_visual = state.switches.dpgd_visual and state.prototypes is not None
    prototypes = state.prototypes.to(device) if use_visual else torch.zeros(old_text.shape[0], 1, device=device)
    encoder = image_encoder(model, args.raw_feature)
    pixels, logits, raws = [], [], []
    chunks = torch.split(torch.arange(lo, hi), args.dpgd_batch_size)
    for chunk in progress(chunks, args, "building anchors"):
        seeds = model_pixels(state.train_dataset[indices[chunk].tolist()]["pixel_values"], device, state.pixel_normalizer)
        chunk_targets = targets[chunk].to(device)
        anchors = dpgd_attack(
            encoder, seeds, chunk_targets, old_text, prototypes, logit_scale=state.logit_scale,
            steps=args.dpgd_steps, step_size=args.dpgd_step_size, epsilon=args.dpgd_epsilon,
            lambda_visual=args.dpgd_lambda_visual if use_visual else 0.0,
        )
        with torch.no_grad():
            embeds, raw = encode_images(model, anchors, args.raw_feature)
        pixels.append(anchors)
        logits.append(state.logit_scale * embeds @ old_text.T)
        raws.append(raw)
    if not pixels:  # an empty share (more ranks than anchors): empty tensors of the right widths join the gather
        pixels, logits, raws = _empty_anchor_share(model, args, old_text, device)
    local = (torch.cat(pixels), torch.cat(logits), torch.cat(raws))
    return AnchorSet(gather_shards(local[0], len(indices)), targets.to(device),
                     gather_shards(local[1], len(indices)), gather_shards(local[2], len(indices)))


def _empty_anchor_share(model, args, old_text, device):
    from .modeling import clip_of

    config = clip_of(model).config
    size = config.vision_config.image_size
    raw_width = config.vision_config.hidden_size if args.raw_feature == "pre_projection" else config.projection_dim
    return ([torch.zeros(0, 3, size, size, device=device)], [torch.zeros(0, old_text.shape[0], device=device)],
            [torch.zeros(0, raw_width, device=device)])


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; the task is stopped before anything of it is saved."""


class NonFiniteLossCallback(TrainerCallback):
    """Stops the task at the first logged non-finite loss (the logged loss is not NaN-filtered here)."""

    def __init__(self, task_state: TaskState):
        self.state = task_state

    def on_log(self, args, state, control, logs=None, **kwargs):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            raise TrainingDivergedError(f"the loss became {loss} at step {state.global_step} of task {self.state.task}")


class TeacherTargetsCallback(TrainerCallback):
    def __init__(self, task_state: TaskState):
        self.state = task_state

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        with timed(self.state.extra.setdefault("timing", {}), "anchors_s"):
            prepare_teacher_targets(model, self.state, args)


def prepare_teacher_targets(model, task_state: TaskState, args):
    """Compute the task's teacher targets from ``model`` as it is now, once per task.

    The continual loop calls this itself before resuming a task from a Trainer checkpoint, because
    the Trainer loads the checkpoint's (already trained) weights before ``on_train_begin``; the
    callback then finds the targets ready and leaves them alone."""
    if task_state.teacher_ready:
        return
    was_training = model.training
    model.eval()
    device = _device_of(model)
    switches = task_state.switches
    start, end = task_state.bounds

    if switches.tsgr and args.lambda_tsgr:
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

    if start > 0 and switches.acgd is not None and args.lambda_acgd:
        with torch.no_grad():
            old_text = encode_texts(model, **task_state.seen_text_inputs(device, torch.arange(start)))
        # Seed scoring and DPGD are sharded across ranks and gathered: every rank then holds the same
        # embeddings (in dataset order) and the same anchors, each computed once.
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
        embeds = gather_shards(embeds, len(dataset))
        if switches.acgd == "anchors":
            task_state.anchors = build_anchors(model, task_state, args, old_text, embeds)
        else:  # LwF: distil on the new images themselves, in dataset order (matched by sample_index)
            task_state.lwf_teacher_logits = (task_state.logit_scale * embeds @ old_text.T).contiguous()
            broadcast_from_main(task_state.lwf_teacher_logits)
    model.train(was_training)
    task_state.teacher_ready = True


class PrototypeCallback(TrainerCallback):
    def __init__(self, task_state: TaskState):
        self.state = task_state

    def on_train_end(self, args, state, control, model=None, **kwargs):
        with timed(self.state.extra.setdefault("timing", {}), "prototypes_s"):
            update_prototypes(model, self.state, args)


def _empty_sums(model, num_classes, raw_feature, width=None):
    """Zero sums/counts for a rank whose shard is empty (more ranks than images)."""
    from .modeling import clip_of

    config = clip_of(model).config
    width = width or (config.vision_config.hidden_size if raw_feature == "pre_projection" else config.projection_dim)
    device = _device_of(model)
    return torch.zeros(num_classes, width, device=device), torch.zeros(num_classes, dtype=torch.long, device=device)


def update_prototypes(model, task_state: TaskState, args):
    """Transfer old prototypes along the anchors' drift, then append the new classes' mean raw features."""
    if not task_state.switches.prototypes:
        return
    was_training = model.training
    model.eval()
    start, end = task_state.bounds
    anchors = task_state.anchors
    if start > 0 and anchors is not None and task_state.prototypes is not None:
        with torch.no_grad():
            student_raw = torch.cat([
                encode_images(model, pixels, args.raw_feature)[1]
                for pixels in torch.split(anchors.pixel_values, args.per_device_eval_batch_size)
            ])
        task_state.prototypes = transfer_prototypes(
            task_state.prototypes.to(student_raw.device), anchors.teacher_raw, student_raw, anchors.targets,
            temperature=args.prototype_temperature, mode=args.prototype_transfer,
        )
    # Class means from sums and counts: under several processes each rank encodes its shard of the task's
    # images and the sums and counts are all-reduced (then every rank holds the same prototypes).
    rank, world = distributed_world()
    dataset = task_state.train_dataset
    if world > 1:
        dataset = dataset.select(range(rank, len(dataset), world))
    if len(dataset):
        _, raws, labels = encode_dataset(
            model, dataset, task_state.data_collator, args.per_device_eval_batch_size, args.raw_feature,
            task_state.pixel_normalizer,
        )
        sums, counts = class_sums(raws, labels - start, end - start)
    else:
        width = task_state.prototypes.shape[1] if task_state.prototypes is not None else None
        sums, counts = _empty_sums(model, end - start, args.raw_feature, width)
    if world > 1:
        torch.distributed.all_reduce(sums)
        torch.distributed.all_reduce(counts)
    new_prototypes = sums / counts.clamp(min=1).unsqueeze(1)
    old = task_state.prototypes[:start].to(new_prototypes) if task_state.prototypes is not None else new_prototypes[:0]
    task_state.prototypes = torch.cat([old, new_prototypes])
    model.train(was_training)
