"""SeGP-CL's settings and each competitor's own (issue 23): the competitors' dataclasses live in their folders and
are composed into SeGPConfig, and nothing a user sees changes: every key is still accepted by the command line
and a recipe, saved flat, and settings saved by v0.2 runs (before the move) still load, as data."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import pytest

from segp_hf.config import SeGPConfig
from segp_hf.recipe import config_to_dict, parse_config, setting_groups
from segp_hf.run import checkpoints as ckpt
from segp_hf.run.resume import changed_settings, read_saved_settings
from segp_hf.variants.mg_clip.config import MGCLIPConfig
from segp_hf.variants.rapf.config import RAPFConfig

SAVED = Path(__file__).parent / "data"  # config_to_dict of each variant's defaults, written by v0.2's code


def test_each_competitor_s_knobs_are_its_own_and_composed_into_segp_config():
    own = {f.name for f in fields(RAPFConfig)} | {f.name for f in fields(MGCLIPConfig)}
    assert all(name.startswith(("rapf_", "mgclip_")) for name in own)
    assert own <= {f.name for f in fields(SeGPConfig)}
    assert not own & set(vars(SeGPConfig).get("__annotations__", {}))  # declared in the folders, not here


def test_competitor_keys_from_the_command_line_and_a_recipe_are_saved_flat():
    _, _, config = parse_config({"rapf_margin": 0.3}, ["--variant", "mg-clip", "--mgclip_agent_weight", "2.5"])
    assert (config.rapf_margin, config.mgclip_agent_weight) == (0.3, 2.5)
    flat = config_to_dict(*parse_config({"rapf_margin": 0.3}, ["--mgclip_agent_weight", "2.5"]))
    assert (flat["rapf_margin"], flat["mgclip_agent_weight"]) == (0.3, 2.5)


def test_the_help_lists_each_competitor_s_settings_in_its_own_group():
    groups = {name: {f.name for f in members} for name, members in setting_groups().items()}
    assert groups["rapf"] == {f.name for f in fields(RAPFConfig)}
    assert groups["mg-clip"] == {f.name for f in fields(MGCLIPConfig)}
    assert not (groups["rapf"] | groups["mg-clip"]) & groups["method"]


CUSTOM_DATA_SETTINGS = ["class_names_file", "dataset_config", "holdout_fraction", "test_split", "train_split"]


@pytest.mark.parametrize("variant", ["segp-cl", "rapf", "mg-clip"])
def test_settings_saved_before_the_move_load_as_the_same_settings(variant, tmp_path):
    saved_file = SAVED / f"settings_v0.2_{variant}.json"
    current = ckpt.nan_to_none(json.loads(json.dumps(
        config_to_dict(*parse_config({}, ["--variant", variant, "--output_dir", "unused"])))))
    saved = json.loads(saved_file.read_text())
    # added since v0.2: issue 28's M7 reading, issue 25's revision per zero-shot set, issue 26's custom benchmark
    added = ["mgclip_clip_softmax", "zero_shot_revisions"] + CUSTOM_DATA_SETTINGS
    assert sorted(set(current) - set(saved)) == sorted(added)
    assert {key: current[key] for key in saved} == saved
    (tmp_path / ckpt.CONFIG_FILE).write_text(saved_file.read_text())
    # an MG-CLIP run of v0.2 took one softmax in M7: it resumes only under that reading
    expected = ["mgclip_clip_softmax"] if variant == "mg-clip" else []
    assert changed_settings(read_saved_settings(tmp_path, current), current) == expected
