"""Callbacks: teacher targets (anchors, TSGR reference) before a task, prototypes after it."""

from __future__ import annotations

import torch
from test_trainer import _setup
from transformers import TrainerControl, TrainerState

from segp_hf.callbacks import PrototypeCallback, TeacherTargetsCallback
from segp_hf.method.prototypes import transfer_prototypes
from segp_hf.modeling.student import adapter_disabled, encode_dataset, encode_images, encode_texts


def _perturb_lora_B(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(0.2 * torch.randn(parameter.shape, generator=g))


def test_teacher_targets_before_task_two(tiny_clip_dir, tiny_benchmark, tmp_path):
    model, config, scenario, state, train = _setup(tiny_clip_dir, tiny_benchmark, tmp_path, task=1, dpgd_steps=3)
    _perturb_lora_B(model)  # the teacher is no longer the pretrained model
    state.prototypes = torch.randn(state.start, 32, generator=torch.Generator().manual_seed(5))
    TeacherTargetsCallback(state).on_train_begin(config, TrainerState(), TrainerControl(), model=model)

    anchors = state.anchors
    assert len(anchors) == config.anchors_per_class * state.start
    assert anchors.targets.tolist() == [0, 0, 1, 1]
    with torch.no_grad():
        embeds, _, _ = encode_dataset(model, train, state.data_collator, 16, "pre_projection", state.pixel_normalizer)
        old_text = encode_texts(model, **state.seen_text_inputs("cpu", torch.arange(state.start)))
        adv_embeds, adv_raw = encode_images(model, anchors.pixel_values)
    # each anchor stays within epsilon of one of the current-task images seeded for its class
    seeds = state.pixel_normalizer(torch.stack([train[i]["pixel_values"] for i in range(len(train))]))
    scores = old_text @ embeds.T
    for a, target in enumerate(anchors.targets.tolist()):
        rank = a % config.anchors_per_class
        seed_index = scores[target].topk(config.anchors_per_class).indices[rank]
        gap = (anchors.pixel_values[a] - seeds[seed_index]).abs().max()
        assert 0 < gap <= config.dpgd_epsilon + 1e-6
    torch.testing.assert_close(anchors.teacher_logits, state.logit_scale * adv_embeds @ old_text.T)
    torch.testing.assert_close(anchors.teacher_raw, adv_raw)
    # TSGR reference = the pretrained text tower (adapter off), not the teacher
    with torch.no_grad(), adapter_disabled(model):
        pretrained = encode_texts(model, **state.seen_text_inputs("cpu"))
    torch.testing.assert_close(state.reference_text, pretrained)
    assert state.tsgr_neighbours.shape == (2, min(config.tsgr_k, state.end - 1))
    assert not any(p.requires_grad for n, p in model.named_parameters() if "lora_A" in n)
    assert all(p.grad is None for p in model.parameters())


def test_prototypes_after_tasks(tiny_clip_dir, tiny_benchmark, tmp_path):
    model, config, scenario, state, train = _setup(tiny_clip_dir, tiny_benchmark, tmp_path, task=0)
    PrototypeCallback(state).on_train_end(config, TrainerState(), TrainerControl(), model=model)
    _, raws, labels = encode_dataset(model, train, state.data_collator, 16, "pre_projection", state.pixel_normalizer)
    expected = torch.stack([raws[labels == c].mean(0) for c in range(2)])
    torch.testing.assert_close(state.prototypes, expected)

    # task 1: anchors built by the teacher, then the student drifts; old prototypes move, new ones append
    train1 = scenario.train_dataset(1)
    state.begin_task(1, scenario.bounds[1], train1, state.data_collator)
    TeacherTargetsCallback(state).on_train_begin(config, TrainerState(), TrainerControl(), model=model)
    old = state.prototypes.clone()
    _perturb_lora_B(model, seed=3)
    PrototypeCallback(state).on_train_end(config, TrainerState(), TrainerControl(), model=model)
    with torch.no_grad():
        student_raw = encode_images(model, state.anchors.pixel_values)[1]
    moved = transfer_prototypes(old, state.anchors.teacher_raw, student_raw, state.anchors.targets, temperature=0.1)
    assert state.prototypes.shape == (4, 32)
    torch.testing.assert_close(state.prototypes[:2], moved)
    assert not torch.allclose(state.prototypes[:2], old)
    _, raws1, labels1 = encode_dataset(model, train1, state.data_collator, 16, "pre_projection", state.pixel_normalizer)
    torch.testing.assert_close(state.prototypes[2:], torch.stack([raws1[labels1 == c].mean(0) for c in (2, 3)]))
