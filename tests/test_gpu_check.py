"""benchmarks/gpu_check.py in its tiny CPU mode, so the one-command GPU check cannot rot."""

from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


def test_gpu_check_tiny_mode_runs_and_reports(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    monkeypatch.chdir(tmp_path)
    import gpu_check

    report = gpu_check.main(["--tiny", "--skip_ratios", "--out", str(tmp_path / "gpu_check.json")])
    assert (tmp_path / "gpu_check.json").exists()
    table = (tmp_path / "gpu_check.txt").read_text()  # the table beside the JSON
    assert "at 10 epochs (extrapolated)" in table and "whole check seconds" in table
    paper = report["paper_scale"]  # the CIFAR-100 recipe end to end: 10 tasks, every phase timed
    assert paper["tasks_completed"] == 10 and paper["settings"]["num_tasks"] == 10 and paper["train_images"] == 200
    assert sorted(paper["epoch_s"]) == list(range(10)) and all(len(t) == 2 for t in paper["epoch_s"].values())
    measured, extrapolated = paper["phases"]["measured"], paper["phases"]["at_paper_epochs"]
    assert extrapolated["train_s"] > measured["train_s"] and extrapolated["anchors_s"] == measured["anchors_s"]
    assert report["training"]["images_per_s"] > 0 and report["training"]["images_per_step"] == 3
    assert report["two_task_run"]["tasks_completed"] == 2
    pipeline = report["data_pipeline"]["results"]
    assert all(row["decodes_per_distinct_image"]["cached"] == 1.0 for row in pipeline.values())
    assert all(row["decodes_per_distinct_image"]["uncached"] > 1.0 for row in pipeline.values())


def test_shipped_config_is_vit_b16():
    from transformers import CLIPConfig

    config = CLIPConfig.from_json_file(str(Path(__file__).parents[1] / "segp_hf/assets/clip-vit-base-patch16/config.json"))
    v, t = config.vision_config, config.text_config
    assert (v.hidden_size, v.num_hidden_layers, v.num_attention_heads, v.intermediate_size, v.patch_size, v.image_size) == (768, 12, 12, 3072, 16, 224)
    assert (t.hidden_size, t.num_hidden_layers, t.num_attention_heads, t.intermediate_size, t.max_position_embeddings, t.vocab_size) == (512, 12, 8, 2048, 77, 49408)
    assert config.projection_dim == 512 and config.logit_scale_init_value == pytest.approx(2.6592)


def test_paper_scale_extrapolates_the_training_phase_from_the_later_epochs():
    import sys

    sys.path.insert(0, str(BENCHMARKS))
    import paper_scale

    # 1 s outside the epochs, a first epoch of 5 s (the pixel cache's first pass), later epochs of 2 s
    assert paper_scale.extrapolate_train(8.0, [5.0, 2.0]) == pytest.approx(1 + 5 + 9 * 2)
    assert paper_scale.extrapolate_train(6.0, [5.0]) == pytest.approx(1 + 5 * 10)
    timing = [{"train_s": 8.0, "anchors_s": 1.0, "prototypes_s": 0.5, "eval_s": 2.0, "total_s": 12.0}]
    totals = paper_scale.extrapolated_totals(timing, {0: [5.0, 2.0]})
    assert totals["measured"]["other_s"] == pytest.approx(0.5) and totals["measured"]["total_s"] == pytest.approx(12)
    assert totals["at_paper_epochs"]["total_s"] == pytest.approx(12 - 8 + 24)
