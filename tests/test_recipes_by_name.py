"""Recipes by name (issue 26, item 4): ``--config NAME`` (with or without ``.yaml``) finds a shipped recipe when
no such file exists (a real file always wins), ``segp-hf recipes`` lists them, an unknown name is one line with
the list; and all of it works from a wheel installed outside the checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from segp_hf import cli
from segp_hf.recipe import find_recipe, load_recipe, shipped_recipes

ROOT = Path(__file__).resolve().parents[1]
PAPER_RECIPES = {"cifar100_10tasks", "cub200_10tasks", "imagenet_r_10tasks", "imagenet_sub_10tasks", "ucf101_10tasks"}


def test_a_name_finds_the_shipped_recipe_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert set(shipped_recipes()) == PAPER_RECIPES | {"shapes"}
    for value in ("cifar100_10tasks", "cifar100_10tasks.yaml"):
        assert Path(find_recipe(value)) == ROOT / "segp_hf" / "recipes" / "cifar100_10tasks.yaml"
    assert load_recipe("cifar100_10tasks")["benchmark"] == "cifar100"


def test_a_real_file_of_that_name_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "shapes.yaml").write_text(yaml.safe_dump({"num_tasks": 2}))
    assert load_recipe("shapes.yaml") == {"num_tasks": 2}
    assert load_recipe("shapes")["num_tasks"] == 10  # no file called 'shapes': the shipped one


def test_an_unknown_name_is_one_line_with_the_list(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["train", "--config", "cifar100", "--dry_run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no shipped recipe of that name" in err and "did you mean 'cifar100_10tasks'" in err
    assert all(name in err for name in PAPER_RECIPES)
    assert cli.main(["train", "--config", "sub/missing.yaml"]) == 2  # meant as a path: no name lookup
    assert "recipe file not found" in capsys.readouterr().err


def test_recipes_lists_each_with_its_first_comment_line(capsys):
    assert cli.main(["recipes"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == sorted(PAPER_RECIPES | {"shapes"})
    assert any(line.startswith("cifar100_10tasks") and "CIFAR-100, 10 tasks x 10 classes" in line for line in lines)
    assert cli.main(["recipes", "--bogus"]) == 2


_IGNORED = shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "outputs", "runs", "__pycache__",
                                  ".pytest_cache", "tests", "benchmarks")

_CHECKS = """
import sys
import segp_hf
from segp_hf.cli import main
print("package", segp_hf.__file__)
code = main(["train", "--config", "shapes", "--dry_run", "--num_tasks", "2", "--output_dir", "out"])
print("shapes exit", code)
code = main(["train", "--config", "cifar100_10tasks.yaml", "--dry_run"])
print("cifar100 exit", code)
"""


def test_an_installed_wheel_runs_its_recipes_by_name(tmp_path):
    """Build a wheel of the checkout, install it outside, and run from a folder with no recipes in it."""
    pytest.importorskip("setuptools")  # the test extra brings it: the wheel is built without network
    source, wheels, target, work = (tmp_path / name for name in ("src", "wheels", "site", "work"))
    shutil.copytree(ROOT, source, symlinks=True, ignore=_IGNORED)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(source)], check=True)
    (wheel,) = wheels.glob("segp_hf-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)], check=True)
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1"}
    listed = subprocess.run([str(target / "bin" / "segp-hf"), "recipes"], cwd=work, env=env, capture_output=True,
                            text=True, check=True).stdout
    assert {line.split()[0] for line in listed.splitlines()} == PAPER_RECIPES | {"shapes"}
    run = subprocess.run([sys.executable, "-c", _CHECKS], cwd=work, env=env, capture_output=True, text=True)
    assert f"package {target / 'segp_hf' / '__init__.py'}" in run.stdout, run.stdout + run.stderr
    assert "plan check passed" in run.stdout and "shapes exit 0" in run.stdout, run.stdout + run.stderr
    # CIFAR-100's recipe is found and its plan starts: the data is what is missing offline, not the recipe
    assert "data: hub uoft-cs/cifar100@" in run.stdout and "cifar100 exit 2" in run.stdout
    assert "could not load the dataset 'uoft-cs/cifar100'" in run.stderr and "recipe" not in run.stderr
