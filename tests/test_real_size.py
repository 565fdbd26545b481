"""benchmarks/real_size.py in its tiny mode (toy widths, same code): the CIFAR-100 recipe's two-task run on a
fabricated copy in the Hub schema through the registry's data_dir path, and the memory measurement/projection."""

from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


def test_real_size_tiny_mode_runs_two_recipe_tasks_and_projects_memory(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    monkeypatch.chdir(tmp_path)
    import real_size

    report = real_size.main(["--tiny", "--out", str(tmp_path / "real_size.json")])
    run = report["two_task_run"]
    assert run["tasks_completed"] == 2 and len(run["acc_matrix"]) == 2
    settings = run["recipe_settings"]  # the recipe's own settings, not the toy model's defaults
    assert settings["bf16"] is True and settings["optim"] == "sgd" and settings["lora_r"] == 32
    assert settings["lora_target_modules"] == ["k_proj", "v_proj", "fc1", "fc2"] and settings["variant"] == "segp-cl"
    norms = run["lora_b_grad_norms"]  # recorded before every optimiser step; the script asserts them non-zero
    assert {n["task"] for n in norms} == {0, 1} and all(n["text"] > 0 and n["vision"] > 0 for n in norms)
    for name, images in (("train_step", 160), ("anchor_building", 64)):
        memory = report["memory"][name]
        assert memory["images"] == images and memory["weights_mib"] > 0
        assert memory["projected_peak_gib"] == pytest.approx(
            (memory["weights_mib"] + memory["resident_extra_mib"] + memory["step_fixed_mib"]
             + memory["per_image_mib"] * images) / 1024)


def test_fabricated_tokenizer_gives_each_cifar_class_its_own_prompt(tmp_path, monkeypatch):
    # identical prompts would make the classes' text gradients cancel (a run that trains nothing)
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import real_size
    from hub_fakes import CIFAR100_HUB_FINE
    from transformers import AutoTokenizer

    from segp_hf.modeling.student import build_lora_clip, encode_texts

    path = real_size.save_model(tmp_path / "m", True, real_size.cifar_words())
    tokenizer = AutoTokenizer.from_pretrained(path)
    prompts = [f"a good photo of a {name.replace('_', ' ')}." for name in CIFAR100_HUB_FINE]
    ids = {tuple(tokenizer(prompt)["input_ids"]) for prompt in prompts}
    assert len(ids) == 100 and not any(tokenizer.unk_token_id in row for row in ids)
    # and the text tower pools at the tokenizer's end token: different prompts, different embeddings
    tokens = tokenizer(prompts[:3], padding=True, return_tensors="pt")
    embeds = encode_texts(build_lora_clip(path, r=4), tokens["input_ids"], tokens["attention_mask"])
    assert not torch.allclose(embeds[0], embeds[1]) and not torch.allclose(embeds[1], embeds[2])


def test_projection_is_the_line_through_the_two_measurements():
    import sys

    sys.path.insert(0, str(BENCHMARKS))
    import real_size

    points = [{"batch": 2, "step_mib": 300.0, "params_mib": 600.0}, {"batch": 6, "step_mib": 700.0, "params_mib": 600.0}]
    projected = real_size.project(points, 160, resident_mib=50.0)
    assert projected["per_image_mib"] == 100.0 and projected["step_fixed_mib"] == 100.0
    assert projected["projected_peak_gib"] == pytest.approx((600 + 50 + 100 + 100 * 160) / 1024)


def test_gradient_check_refuses_a_run_whose_text_tower_got_no_gradient():
    import sys

    sys.path.insert(0, str(BENCHMARKS))
    import real_size

    real_size.check_gradients([{"task": 0, "text": 1.0, "vision": 2.0}, {"task": 1, "text": 0.5, "vision": 1.0}], 2)
    with pytest.raises(AssertionError, match="task 1: text"):
        real_size.check_gradients([{"task": 0, "text": 1.0, "vision": 2.0}, {"task": 1, "text": 0.0, "vision": 1.0}], 2)
    with pytest.raises(AssertionError, match="task 1: text"):  # a task with no optimiser step at all
        real_size.check_gradients([{"task": 0, "text": 1.0, "vision": 2.0}], 2)
