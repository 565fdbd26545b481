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
