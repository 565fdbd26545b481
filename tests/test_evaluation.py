"""evaluation/rounds.py: the one dual-path scorer (hand values), which classes a round scores, and that the trainer's
evaluation and a loaded task both go through it (the variant's beta switch included)."""

from __future__ import annotations

import math

import torch
from test_trainer import _setup
from transformers import default_data_collator

from segp_hf.evaluation.rounds import evaluated_tasks, round_batches, scored_classes
from segp_hf.method.prototypes import class_prototypes, dual_path_scores, effective_beta
from segp_hf.method.switches import method_switches
from segp_hf.modeling.student import encode_images, encode_texts
from segp_hf.trainer import SeGPTrainer


def test_dual_path_scores_by_hand():
    # image (1, 0) vs texts (1, 0) and (0, 1); raw (0, 2) vs prototypes (0, 1) and (1, 1): s = 10, beta = 0.5
    image, text = torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    raw, prototypes = torch.tensor([[0.0, 2.0]]), torch.tensor([[0.0, 1.0], [1.0, 1.0]])
    scores = dual_path_scores(image, raw, text, prototypes, logit_scale=10.0, beta=0.5)
    # class 0: 10 * 1 + 0.5 * 10 * 1 = 15; class 1: 10 * 0 + 0.5 * 10 * (1 / sqrt 2) = 3.5355
    torch.testing.assert_close(scores, torch.tensor([[15.0, 5 / math.sqrt(2)]]))
    clip_only = torch.tensor([[10.0, 0.0]])
    torch.testing.assert_close(dual_path_scores(image, raw, text, None, 10.0, 0.5), clip_only)
    torch.testing.assert_close(dual_path_scores(image, raw, text, prototypes, 10.0, 0.0), clip_only)


def test_scores_are_float32_and_prototypes_keep_their_precision_under_bf16_features():
    image, text = torch.tensor([[1.0, 0.0]]).bfloat16(), torch.tensor([[1.0, 0.0]])
    raw = torch.tensor([[0.0, 1.0]]).bfloat16()  # exact in bf16
    prototype = torch.tensor([[1.0, 1.01]])  # bf16 would round 1.01 to 1.0078125
    scores = dual_path_scores(image, raw, text, prototype, 1.0, 1.0)
    assert scores.dtype == torch.float32
    # 1 * cos(image, text) + 1 * cos(raw, prototype) = 1 + 1.01 / sqrt(1 + 1.01^2) = 1.710605 (bf16 prototype: 1.709852)
    torch.testing.assert_close(scores[:, 0], torch.tensor([1.0 + 1.01 / math.sqrt(1 + 1.01**2)]), rtol=0, atol=2e-6)


def test_class_prototypes_need_a_row_for_every_scored_class():
    bank = torch.arange(6.0).reshape(3, 2)
    torch.testing.assert_close(class_prototypes(bank, torch.tensor([2, 0])), torch.tensor([[4.0, 5.0], [0.0, 1.0]]))
    assert class_prototypes(bank, torch.tensor([0, 3])) is None  # class 3 has no prototype yet (a future task)
    assert class_prototypes(None, torch.tensor([0])) is None


def test_effective_beta_follows_the_variant():
    assert effective_beta(method_switches("segp-cl"), 0.5) == 0.5
    assert effective_beta(method_switches("segp-cl-onlyclip"), 0.5) == 0.0  # prototypes built, not used to score
    assert effective_beta(method_switches("lora"), 0.5) == 0.0


class _Scenario:
    bounds = [(0, 2), (2, 4), (4, 6)]

    def seen_end(self, task):
        return self.bounds[task][1]


def test_which_tasks_and_classes_a_round_scores():
    assert evaluated_tasks(1, 3, future_tasks=False) == [0, 1]
    assert evaluated_tasks(1, 3, future_tasks=True) == [0, 1, 2]
    assert scored_classes(_Scenario(), 1, 0).tolist() == [0, 1, 2, 3]  # a seen task: every seen class
    assert scored_classes(_Scenario(), 1, 2).tolist() == [0, 1, 2, 3, 4, 5]  # a future task: seen + its own
    tests = {0: range(5), 1: range(3), 2: range(4)}
    # batches of 2: task 0 -> 3, task 1 -> 2, task 2 -> 2; task-IL scores the seen ones (0, 1) twice
    assert round_batches(tests, 1, 2, task_incremental=False) == 7
    assert round_batches(tests, 1, 2, task_incremental=True) == 12


def test_the_trainer_scores_onlyclip_with_the_clip_path_alone(tiny_clip_dir, tiny_benchmark, tmp_path):
    """segp-cl-onlyclip keeps prototypes (for DPGD) but scores like CLIP; segp-cl adds the visual path."""
    logits = {}
    for variant in ("segp-cl", "segp-cl-onlyclip"):
        model, config, scenario, state, train = _setup(tiny_clip_dir, tiny_benchmark, tmp_path / variant, task=1,
                                                       variant=variant)
        state.prototypes = torch.randn(state.end, 32, generator=torch.Generator().manual_seed(3))
        trainer = SeGPTrainer(model=model, args=config, train_dataset=train, data_collator=default_data_collator,
                              task_state=state)
        batch = trainer._prepare_inputs(default_data_collator([train[i] for i in range(3)]))
        _, logits[variant], _ = trainer.prediction_step(model, batch, prediction_loss_only=False)
        if variant == "segp-cl-onlyclip":  # s * cos(image, text) over the seen classes, nothing else
            with torch.no_grad():
                embeds, _ = encode_images(model, batch["pixel_values"], config.raw_feature)
                text = encode_texts(model, **state.seen_text_inputs(embeds.device))
            torch.testing.assert_close(logits[variant], state.logit_scale * embeds @ text.T, rtol=1e-5, atol=1e-4)
    assert not torch.allclose(logits["segp-cl"], logits["segp-cl-onlyclip"])
