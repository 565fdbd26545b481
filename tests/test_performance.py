"""Performance features (issue 6): merged-adapter inference copies, mixed precision. No timing here."""

from __future__ import annotations

import torch
from conftest import tiny_settings
from peft import PeftModel
from transformers import CLIPModel, default_data_collator

from segp_hf.callbacks import PrototypeCallback, TeacherTargetsCallback
from segp_hf.data.scenario import prompts_for, tokenize_prompts
from segp_hf.method.task_state import TaskState
from segp_hf.modeling.student import build_lora_clip, encode_images, encode_texts, logit_scale_of, merged_copy
from segp_hf.recipe import parse_config
from segp_hf.run.continual import build_scenario
from segp_hf.trainer import SeGPTrainer


def _trained_lora(tiny_clip_dir, seed=0):
    """A LoRA CLIP whose lora_B is not zero (a zero B would make merging a no-op)."""
    torch.manual_seed(seed)
    model = build_lora_clip(tiny_clip_dir, r=4)
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(0.05 * torch.randn(parameter.shape, generator=generator))
    return model


def _snapshot(model):
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def test_merged_copy_predicts_like_the_adapter_and_leaves_the_model_untouched(tiny_clip_dir):
    model = _trained_lora(tiny_clip_dir)
    model.train()
    before = _snapshot(model)
    requires_grad = {name: p.requires_grad for name, p in model.named_parameters()}
    pixels = torch.randn(5, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    text = {"input_ids": torch.tensor([[1, 5, 6, 2], [1, 7, 2, 0]]), "attention_mask": torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])}

    merged = merged_copy(model)

    assert isinstance(merged, CLIPModel) and not isinstance(merged, PeftModel)
    assert not any("lora" in name for name, _ in merged.named_parameters())
    assert not merged.training and not any(p.requires_grad for p in merged.parameters())
    # the training model: same weights bit for bit, same trainable set, same mode, adapter still unmerged
    after = _snapshot(model)
    assert after.keys() == before.keys()
    assert all(torch.equal(after[name], before[name]) for name in before)
    assert {name: p.requires_grad for name, p in model.named_parameters()} == requires_grad
    assert model.training and isinstance(model, PeftModel)
    assert not any(getattr(module, "merged", False) for module in model.modules())
    assert merged.vision_model.encoder.layers[0].mlp.fc1.weight.data_ptr() != \
        model.get_base_model().vision_model.encoder.layers[0].mlp.fc1.base_layer.weight.data_ptr()

    model.eval()
    with torch.no_grad():
        expected_embeds, expected_raw = encode_images(model, pixels)
        embeds, raw = encode_images(merged, pixels)
        expected_text, merged_text = encode_texts(model, **text), encode_texts(merged, **text)
        plain_embeds, _ = encode_images(CLIPModel.from_pretrained(tiny_clip_dir).eval(), pixels)
    torch.testing.assert_close(embeds, expected_embeds, rtol=0, atol=1e-5)
    torch.testing.assert_close(raw, expected_raw, rtol=0, atol=1e-5)
    torch.testing.assert_close(merged_text, expected_text, rtol=0, atol=1e-5)
    assert (plain_embeds - expected_embeds).abs().max() > 1e-3, "the adapter must matter for this test to mean anything"


def test_merged_copy_of_a_plain_model_is_the_model(tiny_clip_dir):
    plain = CLIPModel.from_pretrained(tiny_clip_dir)
    assert merged_copy(plain) is plain


def _task1_trainer(tiny_clip_dir, tiny_benchmark, tmp_path, **overrides):
    from transformers import AutoTokenizer

    model_args, data_args, config = parse_config(tiny_settings(tiny_clip_dir, tmp_path, **overrides))
    scenario, template = build_scenario(model_args, data_args, tiny_benchmark)
    model = _trained_lora(tiny_clip_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_clip_dir)
    state = TaskState.for_run(
        config.variant,
        text_inputs=tokenize_prompts(tokenizer, prompts_for(scenario.ordered_class_names, template)),
        logit_scale=logit_scale_of(model),
        pixel_normalizer=scenario.pixel_normalizer,
    )
    train = scenario.train_dataset(1)
    state.begin_task(1, scenario.bounds[1], train, default_data_collator)
    state.prototypes = torch.randn(state.end, 32, generator=torch.Generator().manual_seed(3))
    trainer = SeGPTrainer(model=model, args=config, train_dataset=train, data_collator=default_data_collator,
                          task_state=state)
    return trainer, scenario, state


def test_the_trainers_scorer_on_a_merged_copy_scores_like_the_adapter(tiny_clip_dir, tiny_benchmark, tmp_path):
    """What load_task predicts with (the adapter merged into the base weights) scores like the training model
    with its adapter, through the same dual-path scorer; the training model is left untouched."""
    trainer, scenario, _ = _task1_trainer(tiny_clip_dir, tiny_benchmark, tmp_path)
    before = _snapshot(trainer.model)
    batch = default_data_collator([scenario.test_dataset(1)[i] for i in range(4)])
    _, plain_logits, _ = trainer.prediction_step(trainer.model, batch, prediction_loss_only=False)
    trainer._eval_text = None
    _, merged_logits, _ = trainer.prediction_step(merged_copy(trainer.model), batch, prediction_loss_only=False)
    torch.testing.assert_close(merged_logits, plain_logits, rtol=0, atol=1e-4)  # logits are ~100 * cos
    after = _snapshot(trainer.model)
    assert all(torch.equal(after[name], before[name]) for name in before)
    assert isinstance(trainer.model, PeftModel)


def test_a_task_trains_and_evaluates_under_bf16_autocast_on_cpu(tiny_clip_dir, tiny_benchmark, tmp_path):
    """bf16 from TrainingArguments: compute_loss runs under the Trainer's autocast, the callbacks (anchors,
    prototypes) outside it in the weights' float32; everything must stay finite and float32 where stored."""
    trainer, scenario, state = _task1_trainer(tiny_clip_dir, tiny_benchmark, tmp_path,
                                              bf16=True, max_steps=2)
    state.prototypes = state.prototypes[: state.start]  # old classes only, as after task 0
    trainer.add_callback(TeacherTargetsCallback(state))
    trainer.add_callback(PrototypeCallback(state))
    autocast_seen, compute_loss = [], trainer.compute_loss

    def recording_compute_loss(*args, **kwargs):
        autocast_seen.append(torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16)
        return compute_loss(*args, **kwargs)

    trainer.compute_loss = recording_compute_loss
    result = trainer.train()
    assert autocast_seen and all(autocast_seen), "the Trainer must run compute_loss under bf16 autocast"
    assert torch.isfinite(torch.tensor(result.training_loss))
    logged = [log for log in trainer.state.log_history if "loss" in log]
    assert logged and all(term in logged[0] for term in ("loss_cls", "loss_acgd", "loss_tsgr"))
    assert state.anchors is not None and state.anchors.teacher_logits.dtype == torch.float32
    assert state.prototypes.shape[0] == state.end and state.prototypes.dtype == torch.float32
    assert torch.isfinite(state.prototypes).all()
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
    metrics = trainer.evaluate(eval_dataset=scenario.test_dataset(1))
    assert 0.0 <= metrics["eval_accuracy"] <= 1.0


# ---- per-task constants of the losses, computed once: bit-identical to recomputing them every step ----

def _acgd_per_step(student_logits, teacher_logits, temperature):
    """ACGD as computed before the teacher's targets were cached (everything from the logits, every step)."""
    import torch.nn.functional as F

    teacher_log_probs = F.log_softmax(teacher_logits.detach().float() / temperature, dim=-1)
    student_log_probs = F.log_softmax(student_logits.float() / temperature, dim=-1)
    return temperature**2 * (teacher_log_probs.exp() * (teacher_log_probs - student_log_probs)).sum(dim=-1).mean()


def _tsgr_per_step(student_text, reference_text, roots, neighbours, temperature):
    import torch.nn.functional as F

    reference = F.normalize(reference_text.detach().float(), dim=-1)
    student = F.normalize(student_text.float(), dim=-1)
    reference_cos = (reference[roots].unsqueeze(1) * reference[neighbours]).sum(-1)
    student_cos = (student[roots].unsqueeze(1) * student[neighbours]).sum(-1)
    log_q = F.log_softmax(reference_cos / temperature, dim=-1)
    log_p = F.log_softmax(student_cos / temperature, dim=-1)
    return (log_q.exp() * (log_q - log_p)).sum(-1).mean()


def test_cached_acgd_targets_are_bit_identical_to_per_step_ones():
    from segp_hf.method.losses import acgd_loss, acgd_teacher_targets

    generator = torch.Generator().manual_seed(7)
    for anchors, old, drawn in ((450, 90, 32), (10, 2, 8), (37, 13, 37)):
        teacher = 10 * torch.randn(anchors, old, generator=generator)
        log_probs, probs = acgd_teacher_targets(teacher, 20.0)
        for _ in range(3):
            index = torch.randperm(anchors, generator=generator)[:drawn]
            student = (30 * torch.randn(drawn, old, generator=generator)).requires_grad_()
            expected = _acgd_per_step(student, teacher[index], 20.0)
            (expected_grad,) = torch.autograd.grad(expected, student)
            got = acgd_loss(student, None, 20.0, teacher_targets=(log_probs[index], probs[index]))
            (got_grad,) = torch.autograd.grad(got, student)
            assert torch.equal(got, expected) and torch.equal(got_grad, expected_grad)
            assert torch.equal(acgd_loss(student, teacher[index], 20.0), expected)


def test_cached_tsgr_reference_targets_are_bit_identical_to_per_step_ones():
    from segp_hf.method.losses import tsgr_loss, tsgr_neighbours, tsgr_reference_targets

    generator = torch.Generator().manual_seed(8)
    for seen, start, k in ((100, 90, 10), (20, 10, 10), (4, 2, 3)):
        reference = torch.randn(seen, 64, generator=generator)
        student = torch.randn(seen, 64, generator=generator).requires_grad_()
        roots = torch.arange(start, seen)
        neighbours = tsgr_neighbours(reference, roots, k)
        expected = _tsgr_per_step(student, reference, roots, neighbours, 0.05)
        (expected_grad,) = torch.autograd.grad(expected, student)
        targets = tsgr_reference_targets(reference, roots, neighbours, 0.05)
        got = tsgr_loss(student, reference, roots, k, 0.05, neighbours=neighbours, reference_targets=targets)
        (got_grad,) = torch.autograd.grad(got, student)
        assert torch.equal(got, expected) and torch.equal(got_grad, expected_grad)


def test_trainer_recomputes_the_cached_targets_for_new_anchors_and_reference(tiny_clip_dir, tiny_benchmark, tmp_path):
    from segp_hf.method.anchors import AnchorSet

    trainer, scenario, state = _task1_trainer(tiny_clip_dir, tiny_benchmark, tmp_path)
    generator = torch.Generator().manual_seed(9)
    batch = default_data_collator([scenario.train_dataset(1)[i] for i in range(4)])

    def fresh_targets():
        state.anchors = AnchorSet(torch.randn(6, 3, 16, 16, generator=generator), torch.arange(6) % state.start,
                                  10 * torch.randn(6, state.start, generator=generator), torch.randn(6, 32, generator=generator))
        state.reference_text = torch.nn.functional.normalize(torch.randn(state.end, 16, generator=generator), dim=-1)
        state.tsgr_neighbours = None

    trainer.model.train()
    losses = []
    for _ in range(2):
        fresh_targets()
        trainer._term_sums.clear()
        trainer._term_count = 0
        trainer.compute_loss(trainer.model, batch)
        losses.append({k: float(v) for k, v in trainer._term_sums.items()})
        assert trainer._fixed_targets["acgd"][0][0] is state.anchors.teacher_logits
        assert trainer._fixed_targets["tsgr"][0][0] is state.reference_text
    assert losses[0]["loss_tsgr"] != losses[1]["loss_tsgr"]
