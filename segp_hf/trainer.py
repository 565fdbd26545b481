"""SeGPTrainer: a Trainer whose loss is CE + lambda_A * ACGD + lambda_GR * TSGR and whose predictions
are dual-path logits over the classes seen so far."""

from __future__ import annotations

from collections import defaultdict
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from transformers import Trainer

from .data.ready_batches import loader_workers, ready_batches
from .evaluation.metrics import AccuracyMetric
from .method.losses import acgd_loss, acgd_teacher_targets, tsgr_loss, tsgr_neighbours, tsgr_reference_targets
from .method.prototypes import task_scores
from .method.task_state import TaskState
from .modeling.student import encode_images, encode_texts, float32_heads
from .run.distributed import check_trainer_parallelism
from .variants.schedules import PerEpochSchedule


def _argmax_logits(logits, labels):
    return logits.argmax(dim=-1)


def accuracy_metrics(eval_prediction) -> dict[str, float]:
    predictions = eval_prediction.predictions
    return AccuracyMetric().compute(predictions=predictions.reshape(-1), references=eval_prediction.label_ids.reshape(-1))


class SeGPTrainer(PerEpochSchedule, Trainer):
    # compute_loss returns a per-batch mean, so the Trainer must divide it by the accumulation steps.
    loss_is_scaled_for_ga = False
    loss_terms = ("loss_cls", "loss_acgd", "loss_tsgr")  # averaged over the logging window and logged

    def __init__(self, *args, task_state: TaskState, variant_state=None, **kwargs):
        kwargs.setdefault("compute_metrics", accuracy_metrics)
        kwargs.setdefault("preprocess_logits_for_metrics", _argmax_logits)
        super().__init__(*args, **kwargs)
        check_trainer_parallelism(self)
        self.data_collator = ready_batches(self.data_collator)  # cached sets hand over whole batches
        self.model_accepts_loss_kwargs = False
        self.task_state = task_state
        self.variant_state = variant_state  # a competitor's state (variants/): its own rule scores the predictions
        self._scored_classes = None  # class positions evaluate() scores over (None: every seen class)
        self._fixed_targets = {}  # per-task constants of the losses, computed on first use
        self._term_sums = defaultdict(float)
        self._term_count = 0
        self._eval_text = None
        self._draw_step, self._draw_micro = -1, 0
        self._logs_muted = False

    # ------------------------------------------------------------------ loaders
    def _loader(self, dataset, make):
        """``make()`` with the DataLoader workers ``loader_workers`` chooses: a cached split is decoded by the
        configured workers first, then read in this process (data/pixel_cache.py)."""
        args = self.args
        workers = loader_workers(dataset, args.dataloader_num_workers)
        if workers == args.dataloader_num_workers:
            return make()
        saved = args.dataloader_num_workers, args.dataloader_prefetch_factor, args.dataloader_persistent_workers
        args.dataloader_num_workers, args.dataloader_prefetch_factor, args.dataloader_persistent_workers = workers, None, False
        try:
            return make()
        finally:
            args.dataloader_num_workers, args.dataloader_prefetch_factor, args.dataloader_persistent_workers = saved

    def get_train_dataloader(self):
        return self._loader(self.train_dataset, super().get_train_dataloader)

    def get_eval_dataloader(self, eval_dataset=None):
        dataset = self.eval_dataset[eval_dataset] if isinstance(eval_dataset, str) else (
            eval_dataset if eval_dataset is not None else self.eval_dataset)
        return self._loader(dataset, lambda: super(SeGPTrainer, self).get_eval_dataloader(eval_dataset))

    # ------------------------------------------------------------------ training
    def _anchor_batch(self):
        """The anchor mini-batch of this micro-batch: a function of (seed, task, optimizer step,
        micro-batch within the step) only, so a task resumed from a Trainer checkpoint draws exactly
        the anchors an uninterrupted run draws (a checkpoint is always at a step boundary)."""
        anchors = self.task_state.anchors
        if anchors is None or self.task_state.switches.distillation != "anchors" or self.args.lambda_acgd == 0:
            return None
        step = self.state.global_step
        self._draw_micro = self._draw_micro + 1 if step == self._draw_step else 0
        self._draw_step = step
        key = ((self.args.seed * 1_000 + self.task_state.task) * 1_000_003 + step) * 1_024 + self._draw_micro
        generator = torch.Generator().manual_seed(key % (2**63))
        count = min(self.args.anchor_batch_size, len(anchors))
        return torch.randperm(len(anchors), generator=generator)[:count].to(anchors.targets.device)

    def autocast_smart_context_manager(self, cache_enabled: bool | None = True):
        # transformers 5 leaves autocast to accelerate, which wraps ``model.forward`` only; compute_loss and
        # predict_logits call the towers directly (encode_images / encode_texts), so without this bf16/fp16
        # from TrainingArguments would silently train and evaluate in float32. Without mixed precision this
        # is a nullcontext: float32 runs are unchanged.
        return self.accelerator.autocast()

    def _fixed(self, name, sources, build):
        """A per-task constant of the losses (the teacher's ACGD targets, TSGR's reference softmax), computed
        once from ``sources`` and reused while they are the same objects (a new task brings new ones)."""
        cached = self._fixed_targets.get(name)
        same = cached is not None and len(cached[0]) == len(sources) and all(
            a is b or (not isinstance(a, torch.Tensor) and not isinstance(b, torch.Tensor) and a == b)
            for a, b in zip(cached[0], sources)
        )
        if not same:
            cached = (sources, build())
            self._fixed_targets[name] = cached
        return cached[1]

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        pixel_values, labels = inputs["pixel_values"], inputs["labels"]
        batch = pixel_values.shape[0]
        anchor_index = self._anchor_batch()
        image_embeds, text = self._forward_towers(model, pixel_values, anchor_index)
        with float32_heads(pixel_values.device):
            loss, terms, logits = self._loss_terms(image_embeds, text, labels, batch, anchor_index, inputs)
        if model.training:
            self._record_terms(terms)
        return (loss, {"logits": logits}) if return_outputs else loss

    def _forward_towers(self, model, pixel_values, anchor_index):
        """(image embeddings of the batch then of the anchors, text embeddings of every seen class), float32:
        one text forward and one image forward per step."""
        state = self.task_state
        text_inputs = state.seen_text_inputs(pixel_values.device)
        if anchor_index is not None:
            anchor_pixels = state.anchors.pixel_values[anchor_index].to(pixel_values)
            pixel_values = torch.cat([pixel_values, anchor_pixels])
        if isinstance(model, DistributedDataParallel):
            # Under DDP the forward must go through the wrapper, or the gradients are never all-reduced.
            outputs = model(pixel_values=pixel_values, **text_inputs, return_dict=True)
            return outputs.image_embeds.float(), outputs.text_embeds.float()
        return encode_images(model, pixel_values, self.args.raw_feature)[0], encode_texts(model, **text_inputs)

    def _loss_terms(self, image_embeds, text, labels, batch, anchor_index, inputs):
        """L = L_cls + lambda_A * L_ACGD + lambda_GR * L_GR (SPEC), with each term for logging."""
        state, args = self.task_state, self.args
        start, end = state.bounds
        logits = state.logit_scale * image_embeds[:batch] @ text.T
        if args.cls_classes == "current":
            loss_cls = F.cross_entropy(logits[:, start:end], labels - start)
        else:
            loss_cls = F.cross_entropy(logits, labels)
        terms = {"loss_cls": loss_cls}
        loss = loss_cls
        acgd = self._acgd_term(image_embeds[batch:], text[:start], logits[:, :start], anchor_index, inputs)
        if acgd is not None:
            terms["loss_acgd"] = acgd
            loss = loss + args.lambda_acgd * acgd
        tsgr = self._tsgr_term(text)
        if tsgr is not None:
            terms["loss_tsgr"] = tsgr
            loss = loss + args.lambda_tsgr * tsgr
        return loss, terms, logits

    def _acgd_term(self, anchor_embeds, old_text, old_logits, anchor_index, inputs):
        """ACGD on the anchors (the student's own text, so both towers learn from it); LwF on the new images."""
        state, args = self.task_state, self.args
        if anchor_index is not None:
            student = state.logit_scale * anchor_embeds @ old_text.T
            teacher_logits = state.anchors.teacher_logits
            log_probs, probs = self._fixed("acgd", (teacher_logits, args.acgd_temperature),
                                           lambda: acgd_teacher_targets(teacher_logits, args.acgd_temperature))
            return acgd_loss(student, None, args.acgd_temperature,
                             teacher_targets=(log_probs[anchor_index], probs[anchor_index]))
        if state.switches.distillation == "new_images" and state.lwf_teacher_logits is not None and args.lambda_acgd:
            teacher = state.lwf_teacher_logits[inputs["sample_index"].to(state.lwf_teacher_logits.device)]
            return acgd_loss(old_logits, teacher.to(old_logits.device), args.acgd_temperature)
        return None

    def _tsgr_term(self, text):
        state, args = self.task_state, self.args
        start, end = state.bounds
        if not (state.switches.tsgr and args.lambda_tsgr and state.reference_text is not None and end > 1):
            return None
        reference = state.reference_text

        def reference_targets():
            roots = torch.arange(start, end, device=reference.device)
            neighbours = state.tsgr_neighbours
            if neighbours is None:
                neighbours = tsgr_neighbours(reference, roots, args.tsgr_k)
            return neighbours, tsgr_reference_targets(reference, roots, neighbours, args.tsgr_temperature)

        neighbours, targets = self._fixed(
            "tsgr", (reference, state.tsgr_neighbours, start, end, args.tsgr_k, args.tsgr_temperature),
            reference_targets,
        )
        return tsgr_loss(text, reference, torch.arange(start, end), args.tsgr_k, args.tsgr_temperature,
                         neighbours=neighbours, reference_targets=targets)

    def _record_terms(self, terms):
        # Summed as tensors: no device sync per step, only at logging time.
        for name in self.loss_terms:
            if name in terms:
                self._term_sums[name] = self._term_sums[name] + terms[name].detach()
        self._term_count += 1

    @contextmanager
    def logs_muted(self):
        """No ``log`` calls in the block: the continual loop's per-task evaluations report their accuracies
        itself, once per round (run/tracking.py), instead of one log line per evaluated task."""
        self._logs_muted = True
        try:
            yield
        finally:
            self._logs_muted = False

    def log(self, logs, *args, **kwargs):
        if self._logs_muted:
            return
        # Training logs carry "loss": add each term's mean over the micro-batches since the last log.
        if "loss" in logs and self._term_count:
            for name, total in self._term_sums.items():
                logs[name] = round(float(total) / self._term_count, 6)
            self._term_sums.clear()
            self._term_count = 0
        super().log(logs, *args, **kwargs)

    # ---------------------------------------------------------------- inference
    @contextmanager
    def scoring(self, classes: torch.Tensor):
        """``evaluate`` calls in the block score over the class positions ``classes`` (evaluation/rounds.py's rounds)."""
        self._scored_classes = classes
        try:
            yield
        finally:
            self._scored_classes = None

    def scored_classes(self) -> torch.Tensor:
        return self._scored_classes if self._scored_classes is not None else torch.arange(self.task_state.end)

    def evaluate(self, *args, **kwargs):
        self._eval_text = None  # text embeddings are computed once per evaluation, not per batch
        try:
            return super().evaluate(*args, **kwargs)
        finally:
            self._eval_text = None

    def predict_logits(self, model, pixel_values):
        """Logits over the scored classes by ``score``; their text embeddings are encoded once per evaluation."""
        classes = self.scored_classes()
        if self._eval_text is None:
            self._eval_text = encode_texts(model, **self.task_state.seen_text_inputs(pixel_values.device, classes))
        return self.score(model, pixel_values, self._eval_text, classes)

    def score(self, model, pixel_values, text_embeds, classes):
        return task_scores(model, pixel_values, text_embeds, classes, self.task_state, self.args, self.variant_state)

    def _prepare_inputs(self, inputs):
        # Cached batches carry uint8 pixels: normalised here, on the model's device (data/pixel_cache.py).
        inputs = super()._prepare_inputs(inputs)
        normalizer = self.task_state.pixel_normalizer
        if normalizer is not None and "pixel_values" in inputs:
            inputs["pixel_values"] = normalizer(inputs["pixel_values"])
        return inputs

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = self._prepare_inputs(inputs)
        state = self.task_state
        classes = self.scored_classes()
        with torch.no_grad(), self.compute_loss_context_manager():
            logits = self.predict_logits(model, inputs["pixel_values"])
        # labels are class positions; map them to columns of the scored class list
        column_of = torch.full((state.text_inputs["input_ids"].shape[0],), -1, dtype=torch.long)
        column_of[classes.cpu()] = torch.arange(len(classes))
        labels = column_of[inputs["labels"].cpu()].to(logits.device)
        return (None, logits, labels)
