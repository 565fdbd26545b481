"""How the method's parts are wired together, each checked against an independent recomputation from the
model's own outputs (CLIPModel's get_*_features, never our helpers), so that each test fails when its
wiring decision is broken: loss weights, gradient paths, anchor sampling, DPGD's visual term, CE classes,
prototype transfer, what trains, the optimiser and scheduler the Trainer builds, the trainable count."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_settings
from test_trainer import _setup
from transformers import default_data_collator

from segp_hf.callbacks import PrototypeCallback, TeacherTargetsCallback
from segp_hf.config import SeGPConfig
from segp_hf.method.anchors import AnchorSet, build_anchors
from segp_hf.method.prototypes import update_prototypes
from segp_hf.modeling.student import build_lora_clip, clip_of, encode_dataset, encode_texts
from segp_hf.recipe import load_recipe, parse_config
from segp_hf.trainer import SeGPTrainer


def _features(model, pixel_values=None, text_inputs=None):
    """Normalised projected embeddings straight from CLIPModel's API."""
    clip = clip_of(model)
    if pixel_values is not None:
        return F.normalize(clip.get_image_features(pixel_values=pixel_values).pooler_output, dim=-1)
    return F.normalize(clip.get_text_features(**text_inputs).pooler_output, dim=-1)


def _raw(model, pixel_values):
    """h(x): the vision tower's pooled CLS after its post-layernorm, before the projection."""
    return clip_of(model).vision_model(pixel_values=pixel_values).pooler_output


def _kl(log_target, log_pred):
    return (log_target.exp() * (log_target - log_pred)).sum(-1)


def _trainer(tiny_clip_dir, tiny_benchmark, tmp_path, anchors=8, **overrides):
    model, config, scenario, state, train = _setup(tiny_clip_dir, tiny_benchmark, tmp_path, task=1, **overrides)
    g = torch.Generator().manual_seed(5)
    state.anchors = AnchorSet(
        pixel_values=torch.randn(anchors, 3, 16, 16, generator=g),
        targets=torch.arange(anchors) % state.start,
        teacher_logits=30 * torch.randn(anchors, state.start, generator=g),
        teacher_raw=torch.randn(anchors, 32, generator=g),
    )
    state.reference_text = F.normalize(torch.randn(state.end, 16, generator=g), dim=-1)
    trainer = SeGPTrainer(model=model, args=config, train_dataset=train, data_collator=default_data_collator,
                          task_state=state)
    return model, trainer, state, train


def _expected_loss(model, state, batch, anchor_index, args, cls_classes="current"):
    start, end = state.bounds
    scale = state.logit_scale
    text = _features(model, text_inputs=state.seen_text_inputs("cpu"))
    images = _features(model, torch.cat([batch["pixel_values"], state.anchors.pixel_values[anchor_index]]))
    n = batch["pixel_values"].shape[0]
    logits = scale * images[:n] @ text.T
    if cls_classes == "current":
        ce = F.cross_entropy(logits[:, start:end], batch["labels"] - start)
    else:
        ce = F.cross_entropy(logits, batch["labels"])
    tau = args.acgd_temperature
    student = scale * images[n:] @ text[:start].T
    teacher = state.anchors.teacher_logits[anchor_index]
    acgd = tau**2 * _kl(F.log_softmax(teacher / tau, -1), F.log_softmax(student / tau, -1)).mean()
    reference = state.reference_text
    kls = []
    for c in range(start, end):
        others = [j for j in range(end) if j != c]
        k = min(args.tsgr_k, end - 1)
        neighbours = sorted(others, key=lambda j: -float(reference[c] @ reference[j]))[:k]
        q = F.log_softmax(torch.stack([reference[c] @ reference[j] for j in neighbours]) / args.tsgr_temperature, -1)
        p = F.log_softmax(torch.stack([text[c] @ text[j] for j in neighbours]) / args.tsgr_temperature, -1)
        kls.append(_kl(q, p))
    tsgr = torch.stack(kls).mean()
    return ce, acgd, tsgr


# ------------------------------------------------------------------------------------------- the loss
def test_returned_loss_is_ce_plus_weighted_acgd_and_tsgr(tiny_clip_dir, tiny_benchmark, tmp_path):
    model, trainer, state, train = _trainer(tiny_clip_dir, tiny_benchmark, tmp_path, lambda_acgd=3.0,
                                            lambda_tsgr=2.0, tsgr_k=2)
    index = torch.tensor([1, 3, 4])
    trainer._anchor_batch = lambda: index
    batch = trainer._prepare_inputs(default_data_collator([train[i] for i in range(4)]))  # pixels normalised
    loss = trainer.compute_loss(model, batch)
    ce, acgd, tsgr = _expected_loss(model, state, batch, index, trainer.args)
    assert ce > 0.1 and acgd > 0.1 and tsgr > 0.01  # every term weighs in, so a dropped weight shows
    torch.testing.assert_close(loss, ce + 3.0 * acgd + 2.0 * tsgr, rtol=1e-5, atol=1e-6)


def test_ce_runs_over_the_current_task_classes_by_default(tiny_clip_dir, tiny_benchmark, tmp_path):
    assert SeGPConfig(output_dir="x").cls_classes == "current"
    for name in ("cifar100", "imagenet_r", "imagenet_sub", "cub200", "ucf101"):
        assert load_recipe(f"segp_hf/recipes/{name}_10tasks.yaml")["cls_classes"] == "current"
    model, trainer, state, train = _trainer(tiny_clip_dir, tiny_benchmark, tmp_path, lambda_acgd=0.0, lambda_tsgr=0.0)
    batch = trainer._prepare_inputs(default_data_collator([train[i] for i in range(4)]))  # pixels normalised
    current = trainer.compute_loss(model, batch)
    ce_current, _, _ = _expected_loss(model, state, batch, torch.tensor([0]), trainer.args)
    ce_seen, _, _ = _expected_loss(model, state, batch, torch.tensor([0]), trainer.args, cls_classes="seen")
    torch.testing.assert_close(current, ce_current)
    assert not torch.allclose(ce_current, ce_seen)
    trainer.args.cls_classes = "seen"
    torch.testing.assert_close(trainer.compute_loss(model, batch), ce_seen)


def _lora_B_grads(model, tower):
    return torch.cat([p.grad.flatten() for n, p in model.named_parameters()
                      if "lora_B" in n and tower in n and p.grad is not None])


def test_acgd_gradient_reaches_lora_B_of_both_towers(tiny_clip_dir, tiny_benchmark, tmp_path):
    """The student scores anchors against its OWN text embeddings: ACGD's gradient must reach the text tower."""
    model, trainer, state, train = _trainer(tiny_clip_dir, tiny_benchmark, tmp_path, lambda_tsgr=0.0)
    trainer._anchor_batch = lambda: torch.tensor([0, 2, 5])
    batch = trainer._prepare_inputs(default_data_collator([train[i] for i in range(4)]))  # pixels normalised
    grads = {}
    for weight in (0.0, 1.0):
        model.zero_grad()
        trainer.args.lambda_acgd = weight
        trainer.compute_loss(model, batch).backward()
        grads[weight] = {tower: _lora_B_grads(model, tower) for tower in ("text_model", "vision_model")}
    for tower in ("text_model", "vision_model"):
        acgd_part = grads[1.0][tower] - grads[0.0][tower]
        assert acgd_part.abs().max() > 1e-6, f"ACGD sends no gradient to the {tower}'s lora_B"


# ---------------------------------------------------------------------------------------- anchors
def test_anchor_batches_are_resampled_each_step_and_reproducible(tiny_clip_dir, tiny_benchmark, tmp_path):
    model, trainer, state, train = _trainer(tiny_clip_dir, tiny_benchmark, tmp_path, anchors=40, anchor_batch_size=4)

    def draws(trainer, steps=5):
        out = []
        for step in range(steps):
            trainer.state.global_step = step
            out.append(tuple(trainer._anchor_batch().tolist()))
        return out

    first = draws(trainer)
    assert len(set(first)) == len(first), "the same anchor mini-batch at several steps"
    assert all(len(set(batch)) == 4 for batch in first)
    _, again, _, _ = _trainer(tiny_clip_dir, tiny_benchmark, tmp_path / "again", anchors=40, anchor_batch_size=4)
    assert draws(again) == first  # a function of (seed, task, step)
    _, other_seed, _, _ = _trainer(tiny_clip_dir, tiny_benchmark, tmp_path / "seed", anchors=40, anchor_batch_size=4,
                                   seed=1)
    assert draws(other_seed) != first
    again.task_state.task = 2
    assert draws(again) != first


def test_training_draws_different_anchors_at_every_step(tiny_clip_dir, tiny_benchmark, tmp_path):
    model, trainer, state, train = _trainer(tiny_clip_dir, tiny_benchmark, tmp_path, anchors=40, anchor_batch_size=4,
                                            per_device_train_batch_size=2, max_steps=4)
    drawn = []
    original = trainer._anchor_batch
    trainer._anchor_batch = lambda: drawn.append(original()) or drawn[-1]
    trainer.train()
    assert len(drawn) == 4
    assert len({tuple(d.tolist()) for d in drawn}) == 4


def _anchor_inputs(tiny_clip_dir, tiny_benchmark, tmp_path, **overrides):
    model, config, scenario, state, train = _setup(tiny_clip_dir, tiny_benchmark, tmp_path, task=1, dpgd_steps=3,
                                                   dpgd_step_size=0.05, dpgd_epsilon=0.2, anchors_per_class=2,
                                                   **overrides)
    model.eval()
    state.prototypes = torch.randn(state.start, 32, generator=torch.Generator().manual_seed(4))
    old_text = encode_texts(model, **state.seen_text_inputs("cpu", torch.arange(state.start))).detach()
    embeds, _, _ = encode_dataset(model, train, default_data_collator, 16, "pre_projection", state.pixel_normalizer)
    return model, config, state, old_text, embeds


def test_dpgd_visual_term_changes_the_anchors(tiny_clip_dir, tiny_benchmark, tmp_path):
    model, config, state, old_text, embeds = _anchor_inputs(tiny_clip_dir, tiny_benchmark, tmp_path)
    pixels = {}
    for weight in (0.0, 1.0, 5.0):
        args = dataclasses.replace(config, dpgd_lambda_visual=weight)
        pixels[weight] = build_anchors(model, state, args, old_text, embeds).pixel_values
    assert not torch.equal(pixels[0.0], pixels[1.0])
    assert not torch.equal(pixels[1.0], pixels[5.0])


def test_dpgd_visual_term_is_off_without_prototypes_in_the_variant(tiny_clip_dir, tiny_benchmark, tmp_path):
    model, config, state, old_text, embeds = _anchor_inputs(tiny_clip_dir, tiny_benchmark, tmp_path)
    text_only = build_anchors(model, state, dataclasses.replace(config, dpgd_lambda_visual=0.0), old_text, embeds)
    state.switches = dataclasses.replace(state.switches, dpgd_visual=False)
    assert torch.equal(build_anchors(model, state, config, old_text, embeds).pixel_values, text_only.pixel_values)


# ------------------------------------------------------------------------------------- prototypes
def test_drift_transfer_moves_the_old_prototypes_by_the_anchor_drift(tiny_clip_dir, tiny_benchmark, tmp_path):
    model, config, scenario, state, train = _setup(tiny_clip_dir, tiny_benchmark, tmp_path, task=1)
    model.eval()
    g = torch.Generator().manual_seed(6)
    anchor_pixels = torch.randn(6, 3, 16, 16, generator=g)
    with torch.no_grad():
        teacher_raw = _raw(model, anchor_pixels)
    old = torch.randn(state.start, 32, generator=g)
    state.prototypes = old.clone()
    state.anchors = AnchorSet(anchor_pixels, torch.arange(6) % state.start, torch.zeros(6, state.start), teacher_raw)
    with torch.no_grad():  # "training": the student moves away from the teacher
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(0.3 * torch.randn(parameter.shape, generator=g))
    update_prototypes(model, state, config)
    with torch.no_grad():
        drift = _raw(model, anchor_pixels) - teacher_raw
        expected_old = []
        for c in range(state.start):
            weights = torch.softmax(F.cosine_similarity(teacher_raw, old[c:c + 1]) / config.prototype_temperature, 0)
            rho = F.cosine_similarity(teacher_raw[state.anchors.targets == c], old[c:c + 1]).mean().clamp(0, 1)
            expected_old.append(old[c] + rho * (weights[:, None] * drift).sum(0))
        train_pixels = default_data_collator([train[i] for i in range(len(train))])
        raw_new = _raw(model, state.pixel_normalizer(train_pixels["pixel_values"]))
        labels = train_pixels["labels"]
        expected_new = [raw_new[labels == c].mean(0) for c in range(state.start, state.end)]
    assert not torch.allclose(state.prototypes[: state.start], old)
    torch.testing.assert_close(state.prototypes[: state.start], torch.stack(expected_old), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(state.prototypes[state.start:], torch.stack(expected_new), rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------------- what trains
def test_lora_A_and_base_weights_never_change_in_a_task_with_acgd_and_tsgr(tiny_clip_dir, tiny_benchmark, tmp_path):
    """Task 1 toggles the adapter off for TSGR's reference and builds anchors: PEFT re-enables lora_A on
    such toggles, so this is where a missed re-freeze would show."""
    model, config, scenario, state, train = _setup(tiny_clip_dir, tiny_benchmark, tmp_path, task=1, num_train_epochs=2)
    state.prototypes = torch.randn(state.start, 32, generator=torch.Generator().manual_seed(7))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = SeGPTrainer(model=model, args=config, train_dataset=train, data_collator=default_data_collator,
                          task_state=state, callbacks=[TeacherTargetsCallback(state), PrototypeCallback(state)])
    trainer.train()
    assert state.anchors is not None and state.reference_text is not None
    assert any("loss_acgd" in log for log in trainer.state.log_history)
    for name, parameter in model.named_parameters():
        if "lora_B" not in name:
            assert torch.equal(parameter.detach(), before[name]), f"{name} changed"
            assert not parameter.requires_grad, f"{name} is trainable"
    assert any(not torch.equal(p.detach(), before[n]) for n, p in model.named_parameters() if "lora_B" in n)
    optimised = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert optimised == {id(p) for n, p in model.named_parameters() if "lora_B" in n}


@pytest.mark.parametrize("trainable", ["B", "AB"])
def test_switching_the_adapter_off_leaves_the_trainable_set_as_it_was(tiny_clip_dir, trainable):
    """SeGP-CL (B only) and MG-CLIP (A and B): retention's and TSGR's pretrained pass must change neither."""
    from segp_hf.modeling.student import adapter_disabled

    model = build_lora_clip(tiny_clip_dir, r=4, trainable=trainable)
    before = {n: p.requires_grad for n, p in model.named_parameters()}
    assert any(v for n, v in before.items() if "lora_A" in n) == (trainable == "AB")
    with adapter_disabled(model):
        pass
    assert {n: p.requires_grad for n, p in model.named_parameters()} == before


# ------------------------------------------------------------------------- optimiser and scheduler
@pytest.mark.parametrize("recipe", [None, "segp_hf/recipes/cifar100_10tasks.yaml"])
def test_the_trainer_builds_sgd_momentum_09_no_decay_with_cosine_decay(tiny_clip_dir, tiny_benchmark, tmp_path,
                                                                        recipe):
    settings = load_recipe(recipe) if recipe else {}
    settings.update(model_name_or_path=tiny_clip_dir, output_dir=str(tmp_path), use_cpu=True, benchmark="shapes")
    settings.pop("bf16", None)  # no bf16 on this CPU test; the optimiser is the point
    model_args, data_args, config = parse_config(settings)
    assert config.max_grad_norm == 0 and config.warmup_steps == 0
    model, _, _, state, train = _setup(tiny_clip_dir, tiny_benchmark, tmp_path, task=0)
    trainer = SeGPTrainer(model=model, args=config, train_dataset=train, data_collator=default_data_collator,
                          task_state=state)
    trainer.create_optimizer_and_scheduler(num_training_steps=10)
    optimizer = trainer.optimizer
    assert type(optimizer) is torch.optim.SGD
    for group in optimizer.param_groups:
        assert group["momentum"] == 0.9 and group["weight_decay"] == 0.0
        assert group["dampening"] == 0 and group["nesterov"] is False
        assert group["lr"] == pytest.approx(1e-3)
    scheduler = trainer.lr_scheduler
    for step in range(11):
        expected = 0.5 * (1 + math.cos(math.pi * step / 10))
        assert scheduler.lr_lambdas[0](step) == pytest.approx(expected), step


def test_no_gradient_clipping_by_default_and_the_norm_is_still_logged(tiny_clip_dir, tiny_benchmark, tmp_path,
                                                                       monkeypatch):
    from segp_hf.recipe import default_settings

    clipped = []
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_",
                        lambda parameters, max_norm, *a, **k: clipped.append(max_norm) or torch.tensor(1.0))
    settings = tiny_settings(tiny_clip_dir, tmp_path, max_steps=2)
    model_args, data_args, config = parse_config(settings)
    assert config.max_grad_norm == 0.0
    assert default_settings()["max_grad_norm"] == 1.0  # what runs saved before the setting existed used
    model, _, _, state, train = _setup(tiny_clip_dir, tiny_benchmark, tmp_path, task=0, max_steps=2)
    trainer = SeGPTrainer(model=model, args=config, train_dataset=train, data_collator=default_data_collator,
                          task_state=state)
    trainer.train()
    assert "grad_norm" in trainer.state.log_history[0]
    assert all(math.isinf(norm) for norm in clipped)  # measured with an infinite bound: nothing clipped


def test_vit_b16_has_the_papers_3_44m_trainable_parameters():
    """B-only LoRA r=32 on k/v/fc1/fc2 of both towers of openai/clip-vit-base-patch16's shape (its config.json:
    vision 768 wide x 12 layers, MLP 3072; text 512 x 12, MLP 2048), built on the meta device (no weights)."""
    from peft import get_peft_model
    from transformers import CLIPConfig, CLIPModel

    from segp_hf.modeling.student import lora_config, peft_wrapping, train_only_lora_B

    config = CLIPConfig(
        text_config=dict(hidden_size=512, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=8,
                         max_position_embeddings=77, vocab_size=49408),
        vision_config=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                           image_size=224, patch_size=16),
        projection_dim=512,
    )
    with torch.device("meta"), peft_wrapping():
        model = get_peft_model(CLIPModel(config), lora_config(32))
    train_only_lora_B(model)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 3_440_640


# ------------------------------------------------------------------------------- float32 heads under bf16
def _close_call_embeddings(images=256, classes=8, seed=0):
    """Embeddings whose logits (scale 100) lie near 69-82 with many top-2 margins below bf16's step of 0.5
    there: t_j = (u + w_j)/sqrt(2), x = normalise(u + sum_j b_j w_j) with b_j in [0, 0.2]."""
    g = torch.Generator().manual_seed(seed)
    basis = torch.eye(classes + 1, dtype=torch.float64)
    text = (basis[0] + basis[1:]) / math.sqrt(2)
    betas = 0.2 * torch.rand(images, classes, generator=g, dtype=torch.float64)
    image = F.normalize(basis[0] + betas @ basis[1:], dim=-1)
    return image.float(), text.float()


def _margins(logits):
    top2 = logits.topk(2, dim=-1).values
    return top2[:, 0] - top2[:, 1]


def test_bf16_predictions_equal_float32_ones_where_the_margin_exceeds_float_rounding(
        tiny_clip_dir, tiny_benchmark, tmp_path, monkeypatch):
    import segp_hf.method.prototypes as scorer_module
    import segp_hf.trainer as trainer_module

    image, text = _close_call_embeddings()
    reference = (100.0 * image.double() @ text.double().T)  # float64 truth
    with torch.autocast("cpu", dtype=torch.bfloat16):  # what a bf16 head would compute
        bf16_head = 100.0 * image @ text.T
    assert (bf16_head.argmax(-1) != reference.argmax(-1)).any(), "the data must be able to catch a bf16 head"

    model, config, scenario, state, train = _setup(tiny_clip_dir, tiny_benchmark, tmp_path, task=0, bf16=True)
    trainer = SeGPTrainer(model=model, args=config, train_dataset=train, data_collator=default_data_collator,
                          task_state=state)
    with trainer.autocast_smart_context_manager():
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    state.logit_scale = 100.0
    state.bounds = (0, text.shape[0])
    state.text_inputs = {k: v[:1].expand(text.shape[0], -1) for k, v in state.text_inputs.items()}
    for module in (trainer_module, scorer_module):  # the loss's towers and the scorer's
        monkeypatch.setattr(module, "encode_images", lambda m, pixels, raw_feature="pre_projection": (image, image))
    monkeypatch.setattr(trainer_module, "encode_texts", lambda m, **inputs: text)
    batch = {"pixel_values": torch.zeros(len(image), 3, 16, 16), "labels": reference.argmax(-1)}
    _, logits, _ = trainer.prediction_step(model, batch, prediction_loss_only=False)
    assert logits.dtype == torch.float32
    decided = _margins(reference) > 1e-4  # above float32 rounding of logits near 80
    assert decided.float().mean() > 0.9
    assert torch.equal(logits.argmax(-1)[decided], reference.argmax(-1)[decided])
    # the training loss too: CE over float32 logits
    with trainer.compute_loss_context_manager():
        loss = trainer.compute_loss(model, batch)
    expected = F.cross_entropy(reference, batch["labels"])
    assert loss.dtype == torch.float32
    assert abs(float(loss) - float(expected)) < 1e-5


def test_tower_outputs_are_float32_under_autocast(tiny_clip_dir):
    from segp_hf.modeling.student import build_lora_clip, encode_images

    model = build_lora_clip(tiny_clip_dir, r=4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        embeds, raw = encode_images(model, torch.randn(2, 3, 16, 16))
        text = encode_texts(model, torch.tensor([[2, 5, 3]]), torch.ones(1, 3, dtype=torch.long))
    assert embeds.dtype == raw.dtype == text.dtype == torch.float32


def test_eval_mode_turns_dropout_off_and_restores_the_mode_it_found_even_on_error():
    from segp_hf.modeling.student import eval_mode

    model = torch.nn.Sequential(torch.nn.Dropout(0.5))
    for mode in (True, False):
        model.train(mode)
        with eval_mode(model):
            assert not model.training and not model[0].training
        assert model.training is mode
    model.train()
    with pytest.raises(RuntimeError), eval_mode(model):
        raise RuntimeError("a measurement failed")
    assert model.training
