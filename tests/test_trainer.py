"""SeGPTrainer: gradient accumulation, what trains, logged loss terms, dual-path predictions."""

from __future__ import annotations

import torch
from conftest import tiny_settings
from transformers import default_data_collator

from segp_hf.callbacks import PrototypeCallback, TeacherTargetsCallback
from segp_hf.data.scenario import prompts_for, tokenize_prompts
from segp_hf.method.anchors import AnchorSet
from segp_hf.method.task_state import TaskState
from segp_hf.modeling.student import build_lora_clip, logit_scale_of
from segp_hf.recipe import parse_config
from segp_hf.run.continual import build_scenario
from segp_hf.trainer import SeGPTrainer


def _setup(tiny_clip_dir, tiny_benchmark, tmp_path, task=1, **overrides):
    from transformers import AutoTokenizer

    model_args, data_args, config = parse_config(tiny_settings(tiny_clip_dir, tmp_path, **overrides))
    scenario, template = build_scenario(model_args, data_args, tiny_benchmark)
    torch.manual_seed(0)
    model = build_lora_clip(tiny_clip_dir, r=4)
    tokenizer = AutoTokenizer.from_pretrained(tiny_clip_dir)
    state = TaskState.for_run(
        config.variant,
        text_inputs=tokenize_prompts(tokenizer, prompts_for(scenario.ordered_class_names, template)),
        logit_scale=logit_scale_of(model),
        pixel_normalizer=scenario.pixel_normalizer,
    )
    train = scenario.train_dataset(task)
    state.begin_task(task, scenario.bounds[task], train, default_data_collator)
    return model, config, scenario, state, train


def _fake_anchors(state, count=6, dim=32, generator_seed=1):
    g = torch.Generator().manual_seed(generator_seed)
    start = state.start
    return AnchorSet(
        pixel_values=torch.randn(count, 3, 16, 16, generator=g),
        targets=torch.arange(count) % start,
        teacher_logits=10 * torch.randn(count, start, generator=g),
        teacher_raw=torch.randn(count, dim, generator=g),
    )


def _one_step(tiny_clip_dir, tiny_benchmark, tmp_path, batch, accumulation):
    model, config, scenario, state, train = _setup(
        tiny_clip_dir, tiny_benchmark, tmp_path, per_device_train_batch_size=batch,
        gradient_accumulation_steps=accumulation, max_steps=1, optim="sgd", optim_args="momentum=0.0",
        lr_scheduler_type="constant", learning_rate=0.5, anchor_batch_size=64,
        max_grad_norm=0.0,  # clipping would hide a wrongly scaled loss
    )
    train = train.select(range(8))
    state.train_dataset = train
    state.anchors = _fake_anchors(state)  # anchor_batch_size >= anchors: every step sees all of them
    state.reference_text = torch.nn.functional.normalize(torch.randn(state.end, 16, generator=torch.Generator().manual_seed(2)), dim=-1)
    trainer = SeGPTrainer(model=model, args=config, train_dataset=train, data_collator=default_data_collator, task_state=state)
    trainer.train()
    weights = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_B" in n}
    return weights, trainer


def test_gradient_accumulation_matches_full_batch(tiny_clip_dir, tiny_benchmark, tmp_path):
    full, _ = _one_step(tiny_clip_dir, tiny_benchmark, tmp_path / "a", batch=8, accumulation=1)
    accumulated, trainer = _one_step(tiny_clip_dir, tiny_benchmark, tmp_path / "b", batch=4, accumulation=2)
    assert any(w.abs().sum() > 0 for w in full.values()), "the step must move lora_B"
    for name in full:
        torch.testing.assert_close(accumulated[name], full[name], rtol=1e-4, atol=1e-5)  # anchors drawn in another order
    logged = trainer.state.log_history[0]
    for term in ("loss_cls", "loss_acgd", "loss_tsgr"):
        assert term in logged and logged[term] > 0


def test_accumulation_without_the_fix_would_differ(tiny_clip_dir, tiny_benchmark, tmp_path, monkeypatch):
    """Guard that the GA test can fail: if the Trainer skipped the division, the updates double."""
    monkeypatch.setattr(SeGPTrainer, "loss_is_scaled_for_ga", True)
    full, _ = _one_step(tiny_clip_dir, tiny_benchmark, tmp_path / "a", batch=8, accumulation=1)
    accumulated, _ = _one_step(tiny_clip_dir, tiny_benchmark, tmp_path / "b", batch=4, accumulation=2)
    assert any(not torch.allclose(accumulated[n], full[n], rtol=1e-4, atol=1e-5) for n in full)


def test_only_lora_B_changes_over_a_whole_task(tiny_clip_dir, tiny_benchmark, tmp_path):
    model, config, scenario, state, train = _setup(tiny_clip_dir, tiny_benchmark, tmp_path, task=0, num_train_epochs=2)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = SeGPTrainer(
        model=model, args=config, train_dataset=train, data_collator=default_data_collator, task_state=state,
        callbacks=[TeacherTargetsCallback(state), PrototypeCallback(state)],
    )
    trainer.train()
    assert state.reference_text is not None  # the adapter was toggled off for TSGR's reference
    for name, parameter in model.named_parameters():
        changed = not torch.equal(parameter.detach(), before[name])
        if "lora_B" in name:
            assert parameter.requires_grad
        else:
            assert not changed, f"{name} changed"
            assert not parameter.requires_grad, f"{name} is trainable"
    assert any(not torch.equal(p.detach(), before[n]) for n, p in model.named_parameters() if "lora_B" in n)
    trained = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert all("lora_B" in n for n, p in model.named_parameters() if id(p) in trained)


def test_prediction_step_returns_dual_path_logits(tiny_clip_dir, tiny_benchmark, tmp_path):
    """Expected logits rebuilt from CLIPModel's own outputs and the SPEC formula
    s * cos(F(x), u_c) + beta * s * cos(h(x), p_c), not from our helpers."""
    model, config, scenario, state, train = _setup(tiny_clip_dir, tiny_benchmark, tmp_path, task=1)
    state.prototypes = torch.randn(state.end, 32, generator=torch.Generator().manual_seed(3))
    trainer = SeGPTrainer(model=model, args=config, train_dataset=train, data_collator=default_data_collator, task_state=state)
    batch = trainer._prepare_inputs(default_data_collator([train[i] for i in range(3)]))
    _, logits, labels = trainer.prediction_step(model, batch, prediction_loss_only=False)
    clip = model.get_base_model()
    scale = float(clip.logit_scale.exp())
    with torch.no_grad():
        image = clip.get_image_features(pixel_values=batch["pixel_values"]).pooler_output
        raw = clip.vision_model(pixel_values=batch["pixel_values"]).pooler_output

        def text_of(classes):
            tokens = {k: v[classes] for k, v in state.text_inputs.items()}
            return clip.get_text_features(**tokens).pooler_output

        def cosine(a, b):
            return (a / a.norm(dim=-1, keepdim=True)) @ (b / b.norm(dim=-1, keepdim=True)).T

        seen = torch.arange(state.end)
        expected = scale * cosine(image, text_of(seen)) + 0.5 * scale * cosine(raw, state.prototypes)
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-4)
    assert logits.shape == (3, state.end)
    torch.testing.assert_close(labels, batch["labels"])
    # a future task (classes without prototypes) is scored by the CLIP path alone
    future = torch.tensor([0, 1, 2, 3, 4, 5])
    trainer._eval_text = None
    with trainer.scoring(future):
        _, logits, labels = trainer.prediction_step(model, batch, prediction_loss_only=False)
    with torch.no_grad():
        expected = scale * cosine(image, text_of(future))
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(labels, batch["labels"])  # positions 2, 3 are columns 2, 3
