"""The criteria that chose the shapes world (benchmarks/world_search.py) look at the baselines only."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "world_search.py"


@pytest.fixture(scope="module")
def world_search():
    spec = importlib.util.spec_from_file_location("world_search", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_only_the_baselines_can_run(world_search):
    assert world_search.BASELINES == ("zero-shot", "lora")


def test_world_v1_fails_and_v2_passes(world_search):
    # seed-0 figures of benchmarks/results/world_search.json
    v1 = world_search.criteria({"last": 35.85, "forgetting": 15.83}, {"forgetting": 20.39, "forgetting_til": 0.39})
    assert v1 == {"zero_shot_last_in_20_60": True, "lora_forgetting_ge_5": True,
                  "lora_til_forgetting_ge_3": False, "zero_shot_forgetting_le_half_lora": False}
    v2 = world_search.criteria({"last": 30.10, "forgetting": 11.44}, {"forgetting": 28.33, "forgetting_til": 10.44})
    assert all(v2.values())


@pytest.mark.parametrize(
    ("zero_shot", "lora", "failing"),
    [
        ({"last": 19.9, "forgetting": 1.0}, {"forgetting": 10.0, "forgetting_til": 5.0}, "zero_shot_last_in_20_60"),
        ({"last": 60.1, "forgetting": 1.0}, {"forgetting": 10.0, "forgetting_til": 5.0}, "zero_shot_last_in_20_60"),
        ({"last": 30.0, "forgetting": 1.0}, {"forgetting": 4.9, "forgetting_til": 4.9}, "lora_forgetting_ge_5"),
        ({"last": 30.0, "forgetting": 1.0}, {"forgetting": 10.0, "forgetting_til": 2.9}, "lora_til_forgetting_ge_3"),
        ({"last": 30.0, "forgetting": 5.1}, {"forgetting": 10.0, "forgetting_til": 5.0}, "zero_shot_forgetting_le_half_lora"),
    ],
)
def test_each_criterion_can_fail_alone(world_search, zero_shot, lora, failing):
    checks = world_search.criteria(zero_shot, lora)
    assert [name for name, ok in checks.items() if not ok] == [failing]
