"""How RAPF and MG-CLIP are wired into the harness (docs/variants.md, "How they map onto segp_hf"), each checked
against a recomputation from CLIPModel's own outputs and the equations, so each test fails when its wiring breaks.
Mutations of these decisions: tests/wiring_mutations.py (the 'rapf' and 'mg-clip' entries)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_settings
from transformers import default_data_collator

from segp_hf.modeling.student import clip_of
from segp_hf.recipe import parse_config
from segp_hf.run.continual import ContinualRunner
from segp_hf.variants.rapf import math as rapf

FAST = dict(num_train_epochs=2, per_device_train_batch_size=4, mgclip_epochs="fixed", mgclip_agent_batch_size=4,
            rapf_threshold=2.0)


def _runner(tiny_clip_dir, tiny_benchmark, tmp_path, variant, drop=(), **overrides):
    settings = tiny_settings(tiny_clip_dir, tmp_path, variant=variant, **{**FAST, **overrides})
    for key in drop:
        settings.pop(key)
    return ContinualRunner(*parse_config(settings), benchmark=tiny_benchmark)


def _f(model, pixels):  # f(x): the projected, unnormalised image embedding
    return clip_of(model).get_image_features(pixel_values=pixels).pooler_output


def _text(model, state, classes=None):
    inputs = state.seen_text_inputs("cpu", classes)
    return F.normalize(clip_of(model).get_text_features(**inputs).pooler_output, dim=-1)


def _batch(trainer, dataset, n=4):
    return trainer._prepare_inputs(default_data_collator([dataset[i] for i in range(n)]))


def _cos(a, b):
    return F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T


def _all_train(runner, task):
    data = runner.scenario.train_dataset(task)
    batch = default_data_collator([data[i] for i in range(len(data))])
    return runner.scenario.pixel_normalizer(batch["pixel_values"]), batch["labels"]


# ------------------------------------------------------------------------------------------------ RAPF
def test_rapf_trains_only_W_and_lora_stays_frozen(tiny_clip_dir, tiny_benchmark, tmp_path):
    runner = _runner(tiny_clip_dir, tiny_benchmark, tmp_path, "rapf", num_tasks=3)
    before = {n: p.detach().clone() for n, p in runner.model.named_parameters()}
    start = runner.variant.state.adapter.detach().clone()
    for task in (0, 1):
        trainer = runner.make_trainer(task)
        runner.train_task(trainer, task)
        assert {id(p) for g in trainer.optimizer.param_groups for p in g["params"]} == {id(runner.variant.state.adapter)}
    for name, parameter in runner.model.named_parameters():
        assert torch.equal(parameter.detach(), before[name]) and not parameter.requires_grad, name
    assert not torch.equal(runner.variant.state.adapter.detach(), start)


def _expected_rapf_loss(model, trainer, batch, classes, seed):
    """R8 + R7 from the equations, with the draws of a generator seeded ``seed`` in the trainer's order."""
    vs, args, state = trainer.variant_state, trainer.args, trainer.task_state
    g = torch.Generator().manual_seed(seed)
    text = _text(model, state)
    feats, labels = [_f(model, batch["pixel_values"])], [batch["labels"]]
    for c in classes:
        noise = torch.randn(int(10 * args.rapf_beta), vs.means.shape[1], generator=g)
        feats.append(vs.means[c] + noise @ torch.linalg.cholesky(vs.covs[c]).T)
        labels.append(torch.full((len(noise),), c))
    samples, olds, news = [], [], []
    for old, new in vs.pairs.tolist():
        noise = torch.randn(int(20 * args.rapf_beta), vs.means.shape[1], generator=g)
        samples.append(vs.means[old] + noise @ torch.linalg.cholesky(vs.covs[old]).T)
        olds += [old] * len(noise)
        news += [new] * len(noise)
    W = vs.adapter.detach()
    logits = state.logit_scale * _cos(torch.cat(feats) @ W.T, text)
    ce = F.cross_entropy(logits, torch.cat(labels))
    adapted = F.normalize(torch.cat(samples) @ W.T, dim=-1)
    hinge = torch.relu((adapted * text[news]).sum(-1) - (adapted * text[olds]).sum(-1) + 0.1).mean()
    return ce, hinge


def test_rapf_loss_is_ce_over_real_and_replayed_samples_plus_the_hinge_from_task_2(tiny_clip_dir, tiny_benchmark, tmp_path):
    runner = _runner(tiny_clip_dir, tiny_benchmark, tmp_path, "rapf", num_tasks=3)
    first = runner.make_trainer(0)
    batch = _batch(first, runner.state.train_dataset)
    with torch.no_grad():  # task 1: CE over the real images only
        expected = F.cross_entropy(runner.state.logit_scale * _cos(_f(runner.model, batch["pixel_values"])
                                   @ runner.variant.state.adapter.detach().T, _text(runner.model, runner.state)), batch["labels"])
    torch.testing.assert_close(first.compute_loss(runner.model, batch).detach(), expected, rtol=1e-5, atol=1e-6)
    runner.train_task(first, 0)
    trainer = runner.make_trainer(1)
    assert len(trainer.variant_state.pairs) == 4  # every (old, new) pair under threshold 2
    trainer._batch_draw = lambda: ([1, 0], torch.Generator().manual_seed(7))
    batch = _batch(trainer, runner.state.train_dataset)
    with torch.no_grad():
        ce, hinge = _expected_rapf_loss(runner.model, trainer, batch, [1, 0], 7)
    assert hinge > 1e-3
    torch.testing.assert_close(trainer.compute_loss(runner.model, batch).detach(), ce + hinge, rtol=1e-5, atol=1e-6)


def test_rapf_replays_every_old_class_once_per_epoch_and_the_draws_repeat(tiny_clip_dir, tiny_benchmark, tmp_path):
    runner = _runner(tiny_clip_dir, tiny_benchmark, tmp_path, "rapf", num_tasks=3, rapf_replay_classes=1)
    runner.train_task(runner.make_trainer(0), 0)
    trainer = runner.make_trainer(1)  # 2 old classes, 3 steps an epoch
    draws = []
    for step in range(6):
        trainer.state.global_step = step
        draws.append(trainer._batch_draw()[0][0])
    assert sorted(draws[:2]) == [0, 1] and sorted(draws[3:5]) == [0, 1]
    trainer._micro, trainer._perm = (-1, 0), (None, None)
    trainer.state.global_step = 4
    assert trainer._batch_draw()[0][0] == draws[4]


def test_rapf_end_of_task_saves_the_class_gaussians_and_fuses_W_from_task_2(tiny_clip_dir, tiny_benchmark, tmp_path):
    runner = _runner(tiny_clip_dir, tiny_benchmark, tmp_path, "rapf", num_tasks=3)
    vs = runner.variant.state
    runner.run_task(0)
    trainer = runner.make_trainer(1)
    g = torch.Generator().manual_seed(3)
    w_new = torch.randn(vs.adapter.shape, generator=g)
    with torch.no_grad():
        vs.adapter.copy_(w_new)
    old_means = vs.means.clone()
    callback = next(c for c in trainer.callback_handler.callbacks if type(c).__name__ == "RAPFCallback")
    callback.on_train_end(trainer.args, trainer.state, trainer.control, model=runner.model)
    torch.testing.assert_close(vs.adapter.detach(), rapf.fuse_adapter(w_new, vs_old := trainer_old(trainer), 0.6))
    pixels, labels = _all_train(runner, 1)
    with torch.no_grad():
        feats = _f(runner.model, pixels)
    for c in (2, 3):
        rows = feats[labels == c]
        torch.testing.assert_close(vs.means[c], rows.mean(0), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(vs.covs[c], torch.cov(rows.T) + 1e-4 * torch.eye(rows.shape[1]), rtol=1e-3, atol=1e-5)
    torch.testing.assert_close(vs.means[:2], old_means)
    assert vs_old is not None


def trainer_old(trainer):
    return trainer._w_old_for_test


@pytest.fixture(autouse=True)
def _remember_w_old(monkeypatch):
    """Keep W_old as the task started (the state drops it after the fusion) for the fusion test."""
    from segp_hf.variants.rapf.trainer import RAPFTrainer

    original = RAPFTrainer.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self._w_old_for_test = self.variant_state.adapter_old.clone()

    monkeypatch.setattr(RAPFTrainer, "__init__", init)


def test_rapf_does_not_fuse_after_the_first_task(tiny_clip_dir, tiny_benchmark, tmp_path):
    runner = _runner(tiny_clip_dir, tiny_benchmark, tmp_path, "rapf", num_tasks=3)
    trainer = runner.make_trainer(0)
    w = torch.randn(runner.variant.state.adapter.shape, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        runner.variant.state.adapter.copy_(w)
    callback = next(c for c in trainer.callback_handler.callbacks if type(c).__name__ == "RAPFCallback")
    callback.on_train_end(trainer.args, trainer.state, trainer.control, model=runner.model)
    assert torch.equal(runner.variant.state.adapter.detach(), w)


def test_rapf_predictions_are_R1_over_the_seen_classes(tiny_clip_dir, tiny_benchmark, tmp_path):
    runner = _runner(tiny_clip_dir, tiny_benchmark, tmp_path, "rapf", num_tasks=3)
    runner.run_task(0)
    trainer = runner.make_trainer(1)
    batch = _batch(trainer, runner.scenario.test_dataset(0))
    _, logits, _ = trainer.prediction_step(runner.model, batch, prediction_loss_only=False)
    with torch.no_grad():
        expected = runner.state.logit_scale * _cos(_f(runner.model, batch["pixel_values"]) @ runner.variant.state.adapter.T,
                                                   _text(runner.model, runner.state))
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-4)


# --------------------------------------------------------------------------------------------- MG-CLIP
def test_mgclip_lora_is_r8_alpha1_on_k_v_with_A_and_B_trained_and_A_xavier(tiny_clip_dir, tiny_benchmark, tmp_path):
    runner = _runner(tiny_clip_dir, tiny_benchmark, tmp_path, "mg-clip", drop=("lora_r",), num_tasks=3)
    model = runner.model
    layers = [(n, m) for n, m in model.named_modules() if hasattr(m, "lora_A") and "default" in m.lora_A]
    assert layers and {n.rsplit(".", 1)[-1] for n, _ in layers} == {"k_proj", "v_proj"}
    assert any("text_model" in n for n, _ in layers) and any("vision_model" in n for n, _ in layers)
    for _, module in layers:
        assert module.r["default"] == 8 and module.scaling["default"] == pytest.approx(1 / 8)
        A = module.lora_A["default"].weight
        assert A.requires_grad and module.lora_B["default"].weight.requires_grad
        fan_out, fan_in = A.shape
        assert A.abs().max() <= math.sqrt(6 / (fan_in + fan_out)) and A.abs().max() > 1.2 / math.sqrt(fan_in)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    runner.train_task(runner.make_trainer(0), 0)
    changed = {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert changed and all("lora_A" in n or "lora_B" in n for n in changed)
    assert any("lora_A" in n for n in changed) and any("lora_B" in n for n in changed)


def test_mgclip_loss_is_ce_over_the_current_task(tiny_clip_dir, tiny_benchmark, tmp_path):
    runner = _runner(tiny_clip_dir, tiny_benchmark, tmp_path, "mg-clip", num_tasks=3)
    runner.run_task(0)
    trainer = runner.make_trainer(1)
    batch = _batch(trainer, runner.state.train_dataset)
    with torch.no_grad():
        logits = runner.state.logit_scale * _cos(_f(runner.model, batch["pixel_values"]), _text(runner.model, runner.state))
        expected = F.cross_entropy(logits[:, 2:4], batch["labels"] - 2)
    torch.testing.assert_close(trainer.compute_loss(runner.model, batch).detach(), expected, rtol=1e-5, atol=1e-6)


def test_mgclip_agent_rows_start_at_class_means_and_only_new_rows_train(tiny_clip_dir, tiny_benchmark, tmp_path):
    runner = _runner(tiny_clip_dir, tiny_benchmark, tmp_path, "mg-clip", num_tasks=3, mgclip_agent_epochs=0)
    runner.run_task(0)
    pixels, labels = _all_train(runner, 0)
    with torch.no_grad():
        feats = F.normalize(_f(runner.model, pixels), dim=-1)
    means = torch.stack([feats[labels == c].mean(0) for c in (0, 1)])
    torch.testing.assert_close(runner.variant.state.rows, means, rtol=1e-4, atol=1e-5)
    runner.config.mgclip_agent_epochs = 3
    runner.run_task(1)
    rows = runner.variant.state.rows
    assert rows.shape[0] == 4
    torch.testing.assert_close(rows[:2], means, rtol=1e-4, atol=1e-5)
    pixels, labels = _all_train(runner, 1)
    with torch.no_grad():
        feats = F.normalize(_f(runner.model, pixels), dim=-1)
    assert not torch.allclose(rows[2:], torch.stack([feats[labels == c].mean(0) for c in (2, 3)]), atol=1e-4)


def test_mgclip_predicts_with_the_1_to_4_mixture_and_the_clip_path_for_future_tasks(tiny_clip_dir, tiny_benchmark, tmp_path):
    runner = _runner(tiny_clip_dir, tiny_benchmark, tmp_path, "mg-clip", num_tasks=3)
    runner.run_task(0)
    trainer = runner.make_trainer(1)
    runner.variant.state.rows = torch.randn(4, 16, generator=torch.Generator().manual_seed(5))
    batch = _batch(trainer, runner.scenario.test_dataset(0))
    with torch.no_grad():
        feats = _f(runner.model, batch["pixel_values"])
        clip_logits = runner.state.logit_scale * _cos(feats, _text(runner.model, runner.state))
        agent = 4 * torch.softmax(_cos(feats, runner.variant.state.rows), -1)
        twice = (torch.softmax(torch.softmax(clip_logits, -1), -1) + agent) / 5  # the authors' code, the default
        once = (torch.softmax(clip_logits, -1) + agent) / 5  # mgclip_clip_softmax: once (the paper's formula)
    assert trainer.args.mgclip_clip_softmax == "twice"
    _, logits, _ = trainer.prediction_step(runner.model, batch, prediction_loss_only=False)
    torch.testing.assert_close(logits, twice.log(), rtol=1e-5, atol=1e-5)
    trainer.args.mgclip_clip_softmax = "once"
    _, logits, _ = trainer.prediction_step(runner.model, batch, prediction_loss_only=False)
    torch.testing.assert_close(logits, once.log(), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(twice, once, atol=1e-3)  # the two readings differ on this batch
    future = torch.arange(6)  # classes 4, 5 have no agent row yet: CLIP path only
    trainer._eval_text = None  # evaluate() clears it per round
    with trainer.scoring(future):
        _, logits, _ = trainer.prediction_step(runner.model, batch, prediction_loss_only=False)
    with torch.no_grad():
        expected = runner.state.logit_scale * _cos(feats, _text(runner.model, runner.state, future))
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-4)


def test_mgclip_auto_epochs_probe_the_first_task_once(tiny_clip_dir, tiny_benchmark, tmp_path, monkeypatch):
    from segp_hf.variants.mg_clip import trainer as mgclip_trainer

    calls = []
    monkeypatch.setattr(mgclip_trainer, "probe_epochs", lambda model, state, args: calls.append(state.task) or 3)
    runner = _runner(tiny_clip_dir, tiny_benchmark, tmp_path, "mg-clip", num_tasks=3, mgclip_epochs="auto")
    assert runner.make_trainer(0).args.num_train_epochs == 3 and runner.variant.state.epochs == 3
    assert runner.make_trainer(1).args.num_train_epochs == 3 and calls == [0]


@pytest.mark.parametrize("variant, factors", [("rapf", [1] * 4 + [0.1] * 6 + [0.01] * 2),
                                              ("mg-clip", [0.01 + 0.99 * (1 + math.cos(math.pi * e / 12)) / 2
                                                           for e in range(12)])])
def test_the_lr_is_stepped_per_epoch(tiny_clip_dir, tiny_benchmark, tmp_path, variant, factors):
    runner = _runner(tiny_clip_dir, tiny_benchmark, tmp_path, variant, num_tasks=3, num_train_epochs=12,
                     epoch_lr_schedule="multistep" if variant == "rapf" else "cosine")
    trainer = runner.make_trainer(0)  # 3 steps an epoch
    trainer.create_optimizer_and_scheduler(num_training_steps=36)
    for step in range(36):
        assert trainer.lr_scheduler.lr_lambdas[0](step) == pytest.approx(factors[step // 3]), step
