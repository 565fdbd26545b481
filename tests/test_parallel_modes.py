"""Parallel modes that would bypass our direct tower calls are refused before any work; the global batch."""

from __future__ import annotations

from unittest import mock

import pytest
from conftest import tiny_settings
from transformers import TrainingArguments, default_data_collator

from segp_hf import cli
from segp_hf.config import SeGPConfig
from segp_hf.errors import RecipeError
from segp_hf.recipe import config_to_dict, load_recipe, parse_config
from segp_hf.run.distributed import check_parallel_mode, per_device_batch


def test_per_device_batch_from_the_global_batch():
    assert per_device_batch(128, 1, 1) == 128
    assert per_device_batch(128, 4, 1) == 32
    assert per_device_batch(128, 2, 2) == 32
    with pytest.raises(RecipeError, match="does not divide into 3 process"):
        per_device_batch(128, 3, 1)
    with pytest.raises(RecipeError, match="must be >= 1"):
        per_device_batch(0, 1, 1)


def test_the_global_batch_sets_the_per_device_batch_and_is_saved(tiny_clip_dir, tmp_path):
    settings = tiny_settings(tiny_clip_dir, tmp_path, global_train_batch_size=8, gradient_accumulation_steps=2)
    model_args, data_args, config = parse_config(settings)
    assert config.per_device_train_batch_size == 4
    saved = config_to_dict(model_args, data_args, config)
    assert saved["global_train_batch_size"] == 8 and saved["per_device_train_batch_size"] == 4
    with mock.patch.object(TrainingArguments, "world_size", new_callable=mock.PropertyMock, return_value=4):
        assert parse_config(tiny_settings(tiny_clip_dir, tmp_path, global_train_batch_size=8))[2].per_device_train_batch_size == 2
        with pytest.raises(RecipeError, match="global_train_batch_size=6 does not divide"):
            parse_config(tiny_settings(tiny_clip_dir, tmp_path, global_train_batch_size=6))


@pytest.mark.parametrize("name", ["cifar100", "imagenet_r", "imagenet_sub", "cub200", "ucf101"])
def test_paper_recipes_use_the_global_batch_of_128(name):
    recipe = load_recipe(f"segp_hf/recipes/{name}_10tasks.yaml")
    assert recipe["global_train_batch_size"] == 128
    assert "per_device_train_batch_size" not in recipe


def test_no_global_batch_leaves_the_per_device_batch_alone(tiny_clip_dir, tmp_path):
    assert parse_config(tiny_settings(tiny_clip_dir, tmp_path))[2].per_device_train_batch_size == 4


def _config(**kwargs):
    return SeGPConfig(output_dir="unused", use_cpu=True, **kwargs)


def test_several_gpus_in_one_process_are_refused_with_the_launch_command():
    config = _config()
    check_parallel_mode(config)
    with mock.patch.object(TrainingArguments, "n_gpu", new_callable=mock.PropertyMock, return_value=2):
        with pytest.raises(RecipeError, match="accelerate launch .*CUDA_VISIBLE_DEVICES=0"):
            check_parallel_mode(config)


def test_deepspeed_and_fsdp_are_refused(monkeypatch):
    config = _config()
    config.deepspeed = "ds_config.json"  # set after init: building a real DeepSpeed config needs deepspeed
    with pytest.raises(RecipeError, match="DeepSpeed is not supported"):
        check_parallel_mode(config)
    config = _config()
    config.fsdp = ["full_shard"]
    with pytest.raises(RecipeError, match="FSDP is not supported"):
        check_parallel_mode(config)
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")  # what an accelerate config file with FSDP sets
    with pytest.raises(RecipeError, match="FSDP"):
        check_parallel_mode(_config())


def test_the_runner_refuses_before_building_any_model(tiny_clip_dir, tiny_benchmark, tmp_path, monkeypatch):
    import segp_hf.run.continual as continual

    built = []
    monkeypatch.setattr(continual, "build_lora_clip", lambda *a, **k: built.append(1))
    monkeypatch.setattr(continual, "build_scenario", lambda *a, **k: built.append(2))
    model_args, data_args, config = parse_config(tiny_settings(tiny_clip_dir, tmp_path))
    with mock.patch.object(TrainingArguments, "n_gpu", new_callable=mock.PropertyMock, return_value=4):
        with pytest.raises(RecipeError, match="DataParallel"):
            continual.ContinualRunner(model_args, data_args, config, benchmark=tiny_benchmark)
    assert built == []


def test_rapf_is_refused_on_several_processes_before_any_model(tiny_clip_dir, tiny_benchmark, tmp_path, monkeypatch):
    """RAPF's W lives outside the DDP wrapper: its gradient would not be averaged across ranks."""
    import segp_hf.run.continual as continual

    built = []
    monkeypatch.setattr(continual, "build_lora_clip", lambda *a, **k: built.append(1))
    model_args, data_args, config = parse_config(tiny_settings(tiny_clip_dir, tmp_path, variant="rapf"))
    with mock.patch.object(TrainingArguments, "world_size", new_callable=mock.PropertyMock, return_value=2):
        with pytest.raises(RecipeError, match="rapf trains its adapter W outside the model"):
            continual.ContinualRunner(model_args, data_args, config, benchmark=tiny_benchmark)
        _, _, segp = parse_config(tiny_settings(tiny_clip_dir, tmp_path))
        continual.check_parallel_mode(segp)  # SeGP-CL under DDP is fine
    assert built == []


def test_the_trainer_refuses_what_its_accelerator_set_up(tiny_clip_dir, tiny_benchmark, tmp_path, monkeypatch):
    """An accelerate config file can enable DeepSpeed/FSDP with no TrainingArguments field: the trainer checks
    what its accelerator really built."""
    from test_trainer import _setup

    from segp_hf.trainer import SeGPTrainer

    model, config, scenario, state, train = _setup(tiny_clip_dir, tiny_benchmark, tmp_path, task=0)
    original = SeGPTrainer.create_accelerator_and_postprocess

    def with_fsdp(self):
        original(self)
        self.is_fsdp_enabled = True

    monkeypatch.setattr(SeGPTrainer, "create_accelerator_and_postprocess", with_fsdp)
    with pytest.raises(RecipeError, match="FSDP is not supported"):
        SeGPTrainer(model=model, args=config, train_dataset=train, data_collator=default_data_collator, task_state=state)


def test_cli_gives_one_line_and_exit_2_for_an_undividable_global_batch(capsys):
    code = cli.main(["train", "--global_train_batch_size", "7", "--gradient_accumulation_steps", "2"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "global_train_batch_size=7" in err[0]
