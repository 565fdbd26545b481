"""Every setting is checked against the rule table (segp_hf/validation.py) before any model or data is
loaded: out-of-range numbers, unknown choices, paths of the wrong kind and impossible combinations all end
in one line and exit 2, never a traceback; the README's table is the table's own output."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml

from segp_hf import cli, validation
from segp_hf import validation as setting_checks
from segp_hf.config import ARGUMENT_CLASSES
from segp_hf.recipe import parse_config

README = Path(__file__).resolve().parents[1] / "docs" / "troubleshooting.md"  


def numeric_settings() -> list[str]:
    """Every int/float setting of the three argument dataclasses (bools excluded), from their type hints."""
    names = []
    for cls in ARGUMENT_CLASSES:
        hints = typing.get_type_hints(cls)
        for field in dataclasses.fields(cls):
            kinds = typing.get_args(hints[field.name]) or (hints[field.name],)
            if field.init and bool not in kinds and any(k in (int, float) for k in kinds):
                names.append(field.name)
    return names


@pytest.fixture
def nothing_built(monkeypatch):
    """Fails the test if a model is built or data is loaded."""
    from segp_hf.commands import plan
    from segp_hf.data import registry
    from segp_hf.run import continual

    def forbidden(*args, **kwargs):
        raise AssertionError("a model was built or data loaded before the settings were refused")

    for module, name in ((continual, "build_lora_clip"), (continual, "load_benchmark"),
                         (registry, "load_benchmark"), (plan, "load_benchmark")):
        monkeypatch.setattr(module, name, forbidden)


def _main(argv, capsys):
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


# ----------------------------------------------------------------------------------------- ranges
@pytest.mark.parametrize("name", numeric_settings())
def test_every_numeric_setting_out_of_range_exits_2_before_any_model(name, nothing_built, tmp_path, capsys):
    rules = [rule for rule in validation.rules_for(name) if rule.kind == "range"]
    assert rules, f"numeric setting {name} has no range rule in validation.RULES"
    bad = rules[0].range.outside()
    code, err = _main(["train", "--output_dir", str(tmp_path / "out"), f"--{name}", str(bad)], capsys)
    assert code == 2, err
    assert f"{name}=" in err and "out of range" in err and rules[0].allowed in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name, value", [("lora_dropout", 1.0), ("adam_beta2", 1.0), ("seed", 2**32),
                                         ("data_seed", 2**32), ("label_smoothing_factor", 1.0)])
def test_upper_bounds(name, value, nothing_built, tmp_path, capsys):
    code, err = _main(["train", "--output_dir", str(tmp_path), f"--{name}", str(value)], capsys)
    assert code == 2 and f"{name}=" in err


def test_every_numeric_command_argument_has_a_rule(capsys):
    """``ablate --seeds``, ``push --retries`` ...: each numeric argument of every command is in the table."""
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    walked = 0
    for command, sub in commands.items():
        for action in sub._actions:
            if action.type not in (int, float):
                continue
            option = action.option_strings[0]
            rule = next((r for r in validation.RULES if r.setting == option and command in (r.command or "").split("|")), None)
            assert rule is not None and rule.range is not None, f"segp-hf {command} {option} has no range rule"
            argv = {"push": ["push", "/tmp", "user/x"],
                    "diagnose": ["diagnose", "/tmp", "--output_dir", "/tmp/diagnose-out"]}.get(command, [command])
            code, err = _main([*argv, option, str(rule.range.outside())], capsys)
            assert code == 2 and option in err
            walked += 1
    assert walked >= 3


def test_defaults_and_shipped_recipes_pass():
    from segp_hf.commands.plan import dry_run_overrides

    parse_config({}, [])
    recipes = sorted((Path(validation.__file__).parent / "recipes").glob("*.yaml"))
    assert recipes
    for recipe in recipes:
        parse_config(yaml.safe_load(recipe.read_text()), dry_run_overrides(["--output_dir", "unused"]))


# ---------------------------------------------------------------------------------------- choices
@pytest.mark.parametrize("argv, expected", [
    (["--variant", "segp"], "variant='segp' is not valid (did you mean 'segp-cl'?)"),
    (["--optim", "sgdd"], "optim='sgdd' is not valid (did you mean 'sgd'?)"),  # ours, before transformers'
    (["--lr_scheduler_type", "cosin"], "lr_scheduler_type='cosin' is not valid"),
    (["--save_strategy", "epochs"], "save_strategy='epochs' is not valid"),
    (["--lora_target_modules", "k_proj", "v_prj"], "lora_target_modules=['v_prj'] is not valid"),
    (["--tsgr_reference", "student"], "tsgr_reference='student' is not valid"),
    (["--mgclip_clip_softmax", "one"], "mgclip_clip_softmax='one' is not valid (did you mean 'once'?)"),
])
def test_choices(argv, expected, nothing_built, tmp_path, capsys):
    code, err = _main(["train", "--output_dir", str(tmp_path), *argv], capsys)
    assert code == 2 and expected in err


def test_argparse_errors_keep_their_message_as_one_line(nothing_built, tmp_path, capsys):
    code, err = _main(["train", "--output_dir", str(tmp_path), "--learning_rate", "abc"], capsys)
    assert code == 2
    assert err.strip().splitlines() == ["segp-hf: error: argument --learning_rate/--learning-rate: invalid float value: 'abc'"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="bf16 is accepted where there is a GPU")
def test_transformers_own_checks_are_one_line(nothing_built, tmp_path, capsys):
    code, err = _main(["train", "--output_dir", str(tmp_path), "--bf16", "true"], capsys)
    assert code == 2 and "bf16" in err and len(err.strip().splitlines()) == 1


# ------------------------------------------------------------------------------------------ paths
def test_paths(nothing_built, tmp_path, capsys):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    cases = [
        (["train", "--config", str(tmp_path)], "is a folder, not a recipe file"),
        (["train", "--output_dir", str(a_file)], f"output_dir='{a_file}' is a file, not a folder"),
        (["train", "--output_dir", str(tmp_path / "o"), "--data_dir", str(tmp_path / "nope")], "data_dir="),
        (["train", "--output_dir", str(tmp_path / "o"), "--data_dir", str(a_file)], "is a file, not a folder"),
        (["train", "--output_dir", str(tmp_path / "o"), "--model_name_or_path", str(tmp_path / "clip")], "does not exist"),
        (["eval", "--checkpoint", f"{tmp_path / 'run'}@task-1"], "does not exist"),
        (["eval", "--checkpoint", f"{a_file}@task-1"], "is a file"),
        (["push", str(tmp_path / "run"), "user/x"], "does not exist"),
        (["ablate", "--config", str(tmp_path / "missing.yaml")], "recipe file not found"),
    ]
    for argv, expected in cases:
        code, err = _main(argv, capsys)
        assert code == 2 and expected in err, (argv, err)


# ----------------------------------------------------------------------------------- combinations
def test_more_tasks_than_classes(nothing_built, tmp_path, capsys):
    code, err = _main(["train", "--output_dir", str(tmp_path), "--num_tasks", "51"], capsys)  # shapes: 50
    assert code == 2 and "num_tasks=51 is more than the 50 classes of shapes" in err
    with pytest.raises(AssertionError, match="data loaded"):  # 50 tasks of one class each is allowed: the run goes on
        cli.main(["train", "--output_dir", str(tmp_path), "--num_tasks", "50"])


def test_class_order_ids_must_be_a_permutation(nothing_built, tmp_path, capsys):
    code, err = _main(["train", "--output_dir", str(tmp_path), "--class_order", "0,1,2", "--num_tasks", "2"], capsys)
    assert code == 2 and "not a permutation of the 50 classes" in err


def test_both_precisions(tmp_path):
    config = SimpleNamespace(bf16=True, fp16=True)
    assert setting_checks.both_precisions(None, None, config) == "bf16 and fp16 are both set"


def test_global_batch_must_divide():
    config = SimpleNamespace(global_train_batch_size=10, world_size=4, gradient_accumulation_steps=1)
    assert "does not divide" in setting_checks.global_batch(None, None, config)
    config.global_train_batch_size = 12
    assert setting_checks.global_batch(None, None, config) is None
    config.gradient_accumulation_steps = 2  # 4 devices x 2 = 8 does not divide 12
    assert "does not divide" in setting_checks.global_batch(None, None, config)
    assert setting_checks.global_batch(None, None, SimpleNamespace(gradient_accumulation_steps=3)) is None  # unset


def test_global_batch_from_the_command_line(nothing_built, tmp_path, capsys):
    code, err = _main(["train", "--output_dir", str(tmp_path), "--global_train_batch_size", "9",
                       "--gradient_accumulation_steps", "2"], capsys)
    assert code == 2 and "does not divide" in err


def test_allowed_combinations_are_not_refused():
    _, _, config = parse_config({}, ["--variant", "zero-shot", "--eval_task_incremental", "true", "--dpgd_steps", "0",
                                     "--beta", "0", "--lambda_acgd", "0", "--max_steps", "-1"])
    assert config.variant == "zero-shot"


def test_registry_class_counts_match_the_data():
    from segp_hf.data import registry
    from segp_hf.data.protocol_assets import protocol
    from segp_hf.data.shapes import TASK_CLASSES

    assert registry.BENCHMARKS["shapes"].num_classes == len(TASK_CLASSES)
    for name, file in (("cifar100", "cifar100"), ("imagenet_r", "imagenet_r"), ("imagenet_sub", "imagenet100"),
                       ("cub200", "cub200"), ("ucf101", "ucf101")):
        assert registry.BENCHMARKS[name].num_classes == protocol(file)["num_classes"]


# ---------------------------------------------------------------------------------------- README
def test_readme_troubleshooting_is_the_table():
    text = README.read_text()
    assert validation.readme_block() in text, "README is out of date: run `python -m segp_hf.validation --write`"
    assert validation.exit_code_block() in text, "exit codes out of date: run `python -m segp_hf.validation --write`"
    section = text[text.index("# Troubleshooting"):]
    for rule in validation.RULES:
        assert f"| `{rule.setting}`" in section


def test_a_new_command_inherits_the_error_handling(monkeypatch, capsys):
    """A command added later (diagnose, report, ...) gets --debug and exit 2 for user errors without doing anything."""
    from segp_hf.errors import DamagedCheckpointError

    build = cli.build_parser

    def with_report():
        parser = build()
        commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        report = cli._Commands(commands).add_parser("a-later-command")
        report.set_defaults(handler=lambda args, overrides: (_ for _ in ()).throw(
            DamagedCheckpointError("task-1: run/task-1/metrics.json is damaged (JSONDecodeError)")))
        return parser

    monkeypatch.setattr(cli, "build_parser", with_report)
    code, err = _main(["a-later-command"], capsys)
    assert code == 2 and err.strip() == "segp-hf: error: task-1: run/task-1/metrics.json is damaged (JSONDecodeError)"
    with pytest.raises(DamagedCheckpointError):
        cli.main(["a-later-command", "--debug"])
