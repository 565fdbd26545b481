"""Performance features (issue 6): merged-adapter inference copies, mixed precision. No timing here."""

from __future__ import annotations

import torch
from peft import PeftModel
from transformers import CLIPModel, default_data_collator

from conftest import tiny_settings
from segp_hf.callbacks import PrototypeCallback, TeacherTargetsCallback
from segp_hf.config import method_switches, parse_config
from segp_hf.continual import build_scenario
from segp_hf.data.scenario import prompts_for, tokenize_prompts
from segp_hf.modeling import build_lora_clip, encode_images, encode_texts, logit_scale_of, merged_copy
from segp_hf.task_state import TaskState
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


def _task1_trainer(tiny_clip_dir, tiny_benchmark, tmp_path, eval_merged, **overrides):
    from transformers import AutoTokenizer

    model_args, data_args, config = parse_config(tiny_settings(tiny_clip_dir, tmp_path, **overrides))
    scenario, template = build_scenario(model_args, data_args, tiny_benchmark)
    model = _trained_lora(tiny_clip_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_clip_dir)
    state = TaskState(
        switches=method_switches(config.variant),
        text_inputs=tokenize_prompts(tokenizer, prompts_for(scenario.ordered_class_names, template)),
        logit_scale=logit_scale_of(model),
    )
    train = scenario.train_dataset(1)
    state.begin_task(1, scenario.bounds[1], train, default_data_collator)
    state.prototypes = torch.randn(state.end, 32, generator=torch.Generator().manual_seed(3))
    trainer = SeGPTrainer(model=model, args=config, train_dataset=train, data_collator=default_data_collator,
                          task_state=state, eval_merged=eval_merged)
    return trainer, scenario, state


def test_evaluate_with_a_merged_copy_scores_like_the_adapter(tiny_clip_dir, tiny_benchmark, tmp_path):
    plain, scenario, _ = _task1_trainer(tiny_clip_dir, tiny_benchmark, tmp_path / "a", eval_merged=False)
    merged, _, _ = _task1_trainer(tiny_clip_dir, tiny_benchmark, tmp_path / "b", eval_merged=True)
    before = _snapshot(merged.model)
    test = {f"task{t}": scenario.test_dataset(t) for t in (0, 1)}
    expected = plain.evaluate(eval_dataset=test)
    got = merged.evaluate(eval_dataset=test)
    for t in (0, 1):
        assert got[f"eval_task{t}_accuracy"] == expected[f"eval_task{t}_accuracy"]
    assert merged._eval_model is None  # dropped after evaluate: no lasting extra copy
    after = _snapshot(merged.model)
    assert all(torch.equal(after[name], before[name]) for name in before)
    assert isinstance(merged.model, PeftModel)
    # the logits themselves agree to float rounding
    batch = default_data_collator([scenario.test_dataset(1)[i] for i in range(4)])
    merged._eval_model = merged_copy(merged.model)
    merged._eval_text = plain._eval_text = None
    _, merged_logits, _ = merged.prediction_step(merged.model, batch, prediction_loss_only=False)
    _, plain_logits, _ = plain.prediction_step(plain.model, batch, prediction_loss_only=False)
    torch.testing.assert_close(merged_logits, plain_logits, rtol=0, atol=1e-4)  # logits are ~100 * cos


def test_a_task_trains_and_evaluates_under_bf16_autocast_on_cpu(tiny_clip_dir, tiny_benchmark, tmp_path):
    """bf16 from TrainingArguments: compute_loss runs under the Trainer's autocast, the callbacks (anchors,
    prototypes) outside it in the weights' float32; everything must stay finite and float32 where stored."""
    trainer, scenario, state = _task1_trainer(tiny_clip_dir, tiny_benchmark, tmp_path, eval_merged=False,
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
