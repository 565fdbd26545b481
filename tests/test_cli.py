"""Command line: recipes, overrides, and user errors as one-line messages with exit code 2."""

from __future__ import annotations

import json

import yaml
from conftest import tiny_settings

from segp_hf import cli
from segp_hf.recipe import load_recipe, parse_config


def test_command_line_overrides_recipe(tmp_path):
    recipe_path = tmp_path / "r.yaml"
    recipe_path.write_text(yaml.safe_dump({"lambda_acgd": 2.0, "num_tasks": 5, "lora_target_modules": ["q_proj"]}))
    model_args, data_args, config = parse_config(load_recipe(str(recipe_path)), ["--lambda_acgd", "3", "--beta", "0"])
    assert config.lambda_acgd == 3.0 and config.beta == 0.0
    assert data_args.num_tasks == 5 and model_args.lora_target_modules == ["q_proj"]
    assert config.lambda_tsgr == 1.0  # untouched SPEC default


def test_spec_defaults():
    model_args, data_args, config = parse_config({}, [])
    assert (model_args.lora_r, model_args.lora_alpha, model_args.lora_target_modules) == (32, None, ["k_proj", "v_proj", "fc1", "fc2"])
    assert (config.lambda_acgd, config.acgd_temperature, config.anchor_batch_size) == (5.0, 20.0, 32)
    assert (config.lambda_tsgr, config.tsgr_k, config.tsgr_temperature, config.tsgr_reference) == (1.0, 10, 0.05, "pretrained")
    assert (config.anchors_per_class, config.dpgd_steps, config.dpgd_step_size) == (5, 10, 1.5e-3)
    assert abs(config.dpgd_epsilon - 4 / 255) < 1e-12 and config.dpgd_lambda_visual == 1.0
    assert (config.prototype_temperature, config.prototype_transfer, config.beta) == (0.1, "weighted", 0.5)
    assert (config.learning_rate, config.per_device_train_batch_size, config.num_train_epochs) == (1e-3, 128, 10)
    assert config.optim == "sgd" and config.optim_args == "momentum=0.9" and config.weight_decay == 0.0
    assert config.lr_scheduler_type == "cosine"
    assert config.raw_feature == "pre_projection" and config.cls_classes == "current"


def test_unknown_key_is_a_one_line_error(tmp_path, capsys):
    recipe_path = tmp_path / "r.yaml"
    recipe_path.write_text(yaml.safe_dump({"lamda_acgd": 2.0}))
    code = cli.main(["train", "--config", str(recipe_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert "unknown setting 'lamda_acgd'" in err and "Did you mean 'lambda_acgd'" in err
    assert "Traceback" not in err


def test_bad_variant_choice(tmp_path, capsys):
    code = cli.main(["train", "--config", str(tmp_path / "missing.yaml")])
    assert code == 2 and "recipe file not found" in capsys.readouterr().err
    code = cli.main(["train", "--variant", "segp"])
    assert code == 2 and "variant='segp' is not valid" in capsys.readouterr().err


def test_unknown_benchmark_is_a_one_line_error(tmp_path, capsys):
    code = cli.main(["train", "--benchmark", "cifar1000", "--output_dir", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "unknown benchmark 'cifar1000'" in err and "cifar100" in err
    assert "Traceback" not in err


def test_train_command_runs_a_recipe(tiny_clip_dir, tmp_path, monkeypatch):
    from conftest import TEMPLATE, TINY_COLOURS, make_colour_dataset

    from segp_hf.data import registry

    tiny = registry.BenchmarkSpec(
        "tiny-colours", "test colours",
        lambda data_args: registry.LoadedBenchmark(
            make_colour_dataset(6, 0), make_colour_dataset(4, 1), [f"{c} square" for c in TINY_COLOURS],
            list(range(6)), TEMPLATE,
        ),
    )
    monkeypatch.setitem(registry.BENCHMARKS, "tiny-colours", tiny)
    recipe = tiny_settings(tiny_clip_dir, tmp_path / "ignored", benchmark="tiny-colours", num_tasks=2)
    recipe_path = tmp_path / "tiny.yaml"
    recipe_path.write_text(yaml.safe_dump(recipe))
    assert cli.main(["train", "--config", str(recipe_path), "--output_dir", str(tmp_path / "out")]) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert len(results["acc_matrix"]) == 2


def test_ablate_writes_table(tiny_clip_dir, tiny_benchmark, tmp_path):
    from segp_hf.commands.ablate import run_ablation

    recipe = tiny_settings(tiny_clip_dir, tmp_path / "unused", num_tasks=2)
    rows = run_ablation(recipe, [], seeds=2, output_dir=tmp_path, variants=["lora", "segp-cl"], benchmark=tiny_benchmark)
    saved = json.loads((tmp_path / "ablation.json").read_text())
    assert [r["variant"] for r in saved] == ["lora", "segp-cl"]
    for row in saved:
        assert len(row["per_seed"]) == 2
        lasts = [r["last"] for r in row["per_seed"]]
        assert abs(row["last_mean"] - sum(lasts) / 2) < 1e-9
        assert {"last_std", "avg_mean", "forgetting_mean", "bwt_mean", "fwt_mean"} <= set(row)
    table = (tmp_path / "ablation.md").read_text()
    assert table.startswith("| variant |") and "| segp-cl |" in table
    for figure in ("ablation_curves.png", "ablation_bars.png"):  # next to the table and linked from it
        assert (tmp_path / figure).stat().st_size > 0 and f"]({figure})" in table
    assert [len(r["accuracy_seen"]) for r in saved[0]["per_seed"]] == [2, 2]  # each seed's A_i curve
    assert rows[0]["per_seed"][0]["seed"] == 0


def test_same_seed_same_results(tiny_clip_dir, tiny_benchmark, tmp_path):
    from segp_hf.run.continual import run_continual

    results = []
    for name in ("a", "b"):
        settings = tiny_settings(tiny_clip_dir, tmp_path / name, num_tasks=2, seed=7)
        results.append(run_continual(*parse_config(settings), benchmark=tiny_benchmark))
    assert results[0]["acc_matrix"] == results[1]["acc_matrix"]


def test_debug_is_off_unless_asked_in_every_command():
    """A clash resolved on the shared --debug once made it an always-true positional: user errors then
    showed tracebacks in every command."""
    parser = cli.build_parser()
    for argv in (["train"], ["eval", "--checkpoint", "x"], ["push", "out", "--repo_id", "a/b"], ["ablate"],
                 ["diagnose", "run", "--output_dir", "o"]):
        args, _ = parser.parse_known_args(argv)
        assert args.debug is False, argv
        assert parser.parse_known_args([*argv, "--debug"])[0].debug is True, argv
