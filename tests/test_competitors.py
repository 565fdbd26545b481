"""RAPF and MG-CLIP as variants (docs/variants.md): their published settings as defaults, end-to-end runs that
resume and load like SeGP-CL's, and the wiring of each method, checked against recomputations from CLIPModel's
own outputs (get_image_features / get_text_features) and the equations, so each test fails when its wiring breaks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_settings
from safetensors.torch import load_file
from test_continual import _check_matrix_against_checkpoints, killed_as_task_starts

from segp_hf.modeling.student import clip_of
from segp_hf.recipe import load_recipe, parse_config
from segp_hf.run import checkpoints as ckpt
from segp_hf.run.continual import run_continual
from segp_hf.variants.mg_clip.trainer import MGCLIPTrainer
from segp_hf.variants.rapf.trainer import RAPFTrainer

COMPETITORS = ("rapf", "mg-clip")
# Tiny runs: the published epochs and batch are far too many for seconds; explicit keys win over them.
FAST = dict(num_train_epochs=2, per_device_train_batch_size=4, mgclip_epochs="fixed", mgclip_agent_batch_size=4,
            rapf_threshold=2.0)  # every (old, new) pair is a hard pair on the tiny text tower


def _settings(tiny_clip_dir, output_dir, variant, **overrides):
    return tiny_settings(tiny_clip_dir, output_dir, variant=variant, **{**FAST, **overrides})


def _run(tiny_clip_dir, tiny_benchmark, output_dir, variant, **overrides):
    return run_continual(*parse_config(_settings(tiny_clip_dir, output_dir, variant, **overrides)),
                         benchmark=tiny_benchmark)


def _image_features(model, pixels):
    return clip_of(model).get_image_features(pixel_values=pixels).pooler_output


def _text_features(model, inputs):
    return F.normalize(clip_of(model).get_text_features(**inputs).pooler_output, dim=-1)


# ---------------------------------------------------------------------------------- published defaults
def test_published_settings_apply_unless_given_explicitly(tmp_path):
    recipe = load_recipe("recipes/cifar100_10tasks.yaml")
    recipe.pop("bf16")
    base = ["--output_dir", str(tmp_path), "--use_cpu", "true"]
    _, _, segp = parse_config(recipe, base)
    m, _, lora = parse_config(recipe, [*base, "--variant", "lora"])
    assert (str(segp.optim.value), segp.num_train_epochs, lora.optim.value, m.lora_r) == ("sgd", 10, "sgd", 32)
    m, _, r = parse_config(recipe, [*base, "--variant", "rapf"])  # RAPF cifar100_10-10.yaml, main.py
    assert (r.optim.value, r.learning_rate, r.num_train_epochs, r.per_device_train_batch_size) == ("adamw_torch", 1e-3, 15, 100)
    assert (r.epoch_lr_schedule, r.lr_milestones, r.rapf_beta, r.rapf_threshold, r.rapf_mix_bias) == ("multistep", [4, 10], 2.0, 0.55, 0.6)
    m, _, g = parse_config(recipe, [*base, "--variant", "mg-clip"])  # MindtheGap cifar100_10-10.yaml
    assert (m.lora_r, m.lora_alpha, m.lora_target_modules, g.lora_trainable, g.lora_init_A) == (8, 1.0, ["k_proj", "v_proj"], "AB", "xavier")
    assert (g.num_train_epochs, g.per_device_train_batch_size, g.mgclip_agent_lr, g.epoch_lr_schedule) == (1, 128, 5e-4, "cosine")
    assert g.mgclip_clip_softmax == "twice"  # models.py returns softmax(z) in test mode; main.py softmaxes it again
    # explicit: the command line, or a recipe written for the variant itself
    _, _, r = parse_config(recipe, [*base, "--variant=rapf", "--num_train_epochs", "3"])
    assert r.num_train_epochs == 3 and r.learning_rate == 1e-3
    _, _, r = parse_config({**recipe, "variant": "rapf", "learning_rate": 0.5}, base)
    assert r.learning_rate == 0.5 and r.num_train_epochs == 10 and r.rapf_beta == 2.0


def test_runs_saved_before_mgclip_clip_softmax_existed_count_as_once(tmp_path):
    """Until issue 28, M7 took a single softmax of CLIP's logits: an MG-CLIP run saved then (no
    ``mgclip_clip_softmax`` key) is not resumed under today's ``twice``, which would change its predictions mid-run,
    but is with ``once``; a SeGP-CL run saved then resumes as before; a loaded task's saved settings score ``once``."""
    from segp_hf.errors import RecipeError
    from segp_hf.hub.inference import saved_run_settings
    from segp_hf.recipe import config_to_dict
    from segp_hf.run.resume import check_resume_config, read_saved_settings

    for variant in ("mg-clip", "segp-cl"):
        folder = tmp_path / variant
        folder.mkdir()
        current = ckpt.nan_to_none(config_to_dict(*parse_config({"variant": variant, "output_dir": str(folder)})))
        assert current["mgclip_clip_softmax"] == "twice"
        older = {key: value for key, value in current.items() if key != "mgclip_clip_softmax"}
        ckpt.write_json_atomic(folder / ckpt.CONFIG_FILE, older)
        saved = read_saved_settings(folder, current)
        assert saved["mgclip_clip_softmax"] == ("once" if variant == "mg-clip" else "twice")
        if variant == "mg-clip":
            with pytest.raises(RecipeError, match="mgclip_clip_softmax: saved 'once' vs now 'twice'"):
                check_resume_config(saved, current, folder)
            check_resume_config(saved, {**current, "mgclip_clip_softmax": "once"}, folder)
            assert saved_run_settings(ckpt.read_json(folder / ckpt.CONFIG_FILE)).mgclip_clip_softmax == "once"
        else:
            check_resume_config(saved, current, folder)


@pytest.fixture(scope="module")
def runs(tiny_clip_dir, tiny_benchmark, tmp_path_factory):
    out = {}
    for variant in COMPETITORS:
        folder = tmp_path_factory.mktemp(variant)
        out[variant] = folder, _run(tiny_clip_dir, tiny_benchmark, folder, variant)
    return out


@pytest.mark.parametrize("variant", COMPETITORS)
def test_runs_save_their_state_and_load_task_predicts_like_the_run(runs, tiny_benchmark, variant):
    folder, results = runs[variant]
    assert len(results["acc_matrix"]) == 3 and results["last"] is not None
    _check_matrix_against_checkpoints(folder, results, tiny_benchmark, merge=True)  # load_task's scorer = the run's
    for task in range(3):
        saved = ckpt.read_json(folder / f"task-{task}" / ckpt.CONFIG_FILE)
        assert saved["epoch_lr_schedule"] == ("multistep" if variant == "rapf" else "cosine")  # applied, recorded
        assert saved["learning_rate"] == 0.05  # explicit (tiny_settings) beat the published 1e-3
        state = load_file(folder / f"task-{task}" / "variant_state.safetensors")
        rows = state["means"] if variant == "rapf" else state["rows"]
        assert rows.shape[0] == 2 * (task + 1)
    with pytest.raises(ckpt.DamagedCheckpointError, match="variant_state.safetensors.*missing"):
        (folder / "task-2" / "variant_state.safetensors").rename(folder / "moved")
        try:
            from segp_hf.hub.inference import load_task

            load_task(str(folder), task=2)
        finally:
            (folder / "moved").rename(folder / "task-2" / "variant_state.safetensors")


@pytest.mark.parametrize("variant", COMPETITORS)
def test_eval_command_scores_a_competitor_s_task_by_its_own_rule(runs, tiny_benchmark, variant):
    """``segp-hf eval`` on a competitor's task gives its run's row of the matrix (R1 / M7, not the dual path)."""
    from segp_hf.commands.eval_task import evaluate_checkpoint

    folder, results = runs[variant]
    result = evaluate_checkpoint(f"{folder}@task-2", benchmark=tiny_benchmark)
    assert result["acc_per_task"] == pytest.approx(results["acc_matrix"][2][:3], abs=1e-9)


@pytest.mark.parametrize("variant", COMPETITORS)
def test_resume_after_a_task_restores_the_state(runs, tiny_clip_dir, tiny_benchmark, tmp_path, variant, monkeypatch):
    _, uninterrupted = runs[variant]
    killed_as_task_starts(monkeypatch, 2, lambda: _run(tiny_clip_dir, tiny_benchmark, tmp_path, variant))
    resumed = _run(tiny_clip_dir, tiny_benchmark, tmp_path, variant)
    assert resumed["acc_matrix"] == uninterrupted["acc_matrix"]
    reference = load_file(runs[variant][0] / "task-2" / "variant_state.safetensors")
    saved = load_file(tmp_path / "task-2" / "variant_state.safetensors")
    assert all(torch.equal(saved[k], reference[k]) for k in reference)


@pytest.mark.parametrize("variant", COMPETITORS)
def test_kill_inside_a_task_resumes_to_the_uninterrupted_results(runs, tiny_clip_dir, tiny_benchmark, tmp_path,
                                                                 variant, monkeypatch):
    """A kill at step 4 of task 1 (checkpoint at step 3, the end of epoch 1): W, W_old and the Gaussians come
    back from the Trainer checkpoint, so the rerun ends bit-identical to the uninterrupted run."""
    _, uninterrupted = runs[variant]
    trainer_class = RAPFTrainer if variant == "rapf" else MGCLIPTrainer
    original_step = trainer_class.training_step

    def killed(self, *args, **kwargs):
        if self.task_state.task == 1 and self.state.global_step == 4:
            raise KeyboardInterrupt("simulated kill")
        return original_step(self, *args, **kwargs)

    monkeypatch.setattr(trainer_class, "training_step", killed)
    with pytest.raises(KeyboardInterrupt):
        _run(tiny_clip_dir, tiny_benchmark, tmp_path, variant)
    assert ckpt.last_trainer_checkpoint(ckpt.trainer_dir(tmp_path, 1)).name == "checkpoint-3"
    monkeypatch.setattr(trainer_class, "training_step", original_step)
    resumed = _run(tiny_clip_dir, tiny_benchmark, tmp_path, variant)
    assert resumed["acc_matrix"] == uninterrupted["acc_matrix"]
    for task in range(3):
        reference = load_file(runs[variant][0] / f"task-{task}" / "variant_state.safetensors")
        saved = load_file(tmp_path / f"task-{task}" / "variant_state.safetensors")
        assert all(torch.equal(saved[k], reference[k]) for k in reference), task


def test_rapf_retention_scores_held_out_sets_with_its_adapter(tiny_clip_dir, tiny_benchmark, tmp_path):
    """docs/variants.md, RAPF choice 11: after the tasks, held-out sets are scored by R1 with the learnt W (the
    frozen CLIP alone would show no forgetting by construction); before, by the pretrained CLIP."""
    from transformers import AutoTokenizer, CLIPModel

    from segp_hf.evaluation.zero_shot import evaluate_zero_shot, load_retention_set
    from segp_hf.hub.inference import load_task
    from segp_hf.modeling.preprocessing import build_image_processor
    from segp_hf.variants.mg_clip.state import MGCLIPState
    from segp_hf.variants.registry import held_out_scorer

    results = _run(tiny_clip_dir, tiny_benchmark, tmp_path, "rapf", num_tasks=2, zero_shot_sets=["shapes_heldout"],
                   zero_shot_max_images=30)
    held_out = load_retention_set("shapes_heldout", max_images=30)
    processor, tokenizer = build_image_processor(tiny_clip_dir), AutoTokenizer.from_pretrained(tiny_clip_dir)
    frozen = 100 * evaluate_zero_shot(CLIPModel.from_pretrained(tiny_clip_dir), processor, tokenizer, held_out)
    loaded = load_task(str(tmp_path), task=1)
    scorer = held_out_scorer(loaded.variant_state, loaded.settings)
    with_adapter = 100 * evaluate_zero_shot(loaded.model, processor, tokenizer, held_out, scorer=scorer)
    table = results["zero_shot_retention"]["shapes_heldout"]
    assert table == {"before": pytest.approx(frozen), "after": pytest.approx(with_adapter)}
    assert with_adapter != pytest.approx(frozen)  # so a CLIP-path "after" cannot pass unnoticed
    assert held_out_scorer(MGCLIPState(), None) is None and held_out_scorer(None, None) is None
