"""segp-hf diagnose end to end on the tiny CLIP: the run's checkpoints in, diagnostics.json and plots out."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import tiny_settings

from segp_hf import cli
from segp_hf.commands.diagnose import GROUP_PLOT, NEIGHBOURHOOD_PLOT, diagnose_run
from segp_hf.evaluation import drift
from segp_hf.evaluation.drift import DIAGNOSTICS_FILE, group_means
from segp_hf.hub.inference import load_task
from segp_hf.hub.model_card import build_model_card
from segp_hf.modeling.student import adapter_disabled, encode_texts
from segp_hf.recipe import parse_config
from segp_hf.run.continual import run_continual


def _train(tiny_clip_dir, tiny_benchmark, output_dir, **overrides):
    settings = tiny_settings(tiny_clip_dir, output_dir, **overrides)
    run_continual(*parse_config(settings), benchmark=tiny_benchmark)
    return output_dir


@pytest.fixture(scope="module")
def segp_run(tiny_clip_dir, tiny_benchmark, tmp_path_factory):
    """3 tasks of 2 classes, segp-cl, a learning rate that moves the model."""
    return _train(tiny_clip_dir, tiny_benchmark, tmp_path_factory.mktemp("segp"), learning_rate=0.1)


@pytest.fixture(scope="module")
def segp_diagnostics(segp_run, tiny_benchmark, tmp_path_factory):
    out = tmp_path_factory.mktemp("diag")
    return out, diagnose_run(segp_run, out, benchmark=tiny_benchmark, k=1)


def _text(loaded, pretrained=False):
    with torch.no_grad():
        if pretrained:
            with adapter_disabled(loaded.model):
                return encode_texts(loaded.model, **loaded.text_inputs).float()
        return encode_texts(loaded.model, **loaded.text_inputs).float()


def test_diagnostics_json_and_plots(segp_diagnostics):
    out, result = segp_diagnostics
    on_disk = json.loads((out / DIAGNOSTICS_FILE).read_text())
    assert on_disk["tasks"] == json.loads(json.dumps(result["tasks"]))
    assert (out / GROUP_PLOT).stat().st_size > 0 and (out / NEIGHBOURHOOD_PLOT).stat().st_size > 0
    assert [r["task"] for r in result["tasks"]] == [0, 1, 2]
    assert result["k"] == 1 and result["split"] == "text" and result["variant"] == "segp-cl"
    first = result["tasks"][0]
    assert first["old_classes"] == [] and first["groups"] is None and first["per_class"] == {}  # nothing old yet
    for record in result["tasks"][1:]:
        t = record["task"]
        assert record["old_classes"] == list(range(2 * t)) and record["new_classes"] == [2 * t, 2 * t + 1]
        assert sorted(record["interface"] + record["core"]) == record["old_classes"]
        for measure in ("text_kl", "text_shift", "margin_change", "cosine_change", "visual_shift"):
            for reference in ("before", "pretrained"):
                values = record["per_class"][f"{measure}_{reference}"]
                assert len(values) == 2 * t and all(v is not None for v in values)
        for key in ("prototype_error", "stale_prototype_error", "new_class_confusion"):
            assert len(record["per_class"][key]) == 2 * t
        groups = record["groups"]
        assert set(groups) == {"interface", "core", "ratio"}
        assert groups["interface"]["classes"] == record["interface"]
        kl = record["per_class"]["text_kl_pretrained"]
        for group in ("interface", "core"):
            index = [record["old_classes"].index(c) for c in record[group]]
            expected = sum(kl[i] for i in index) / len(index) if index else None
            assert groups[group]["text_kl_pretrained"] == pytest.approx(expected)
    # the model moved: some drift is measured against the pretrained model
    assert max(result["tasks"][2]["per_class"]["text_shift_pretrained"]) > 1e-4
    assert result["most_drifted"]["task"] == 2


def test_measures_match_the_checkpoints(segp_run, segp_diagnostics):
    """'before' is task t-1's checkpoint and 'pretrained' the adapter switched off: recompute from load_task."""
    _, result = segp_diagnostics
    after = {t: load_task(str(segp_run), t, merge=False) for t in (1, 2)}
    text_1, text_2, pre = _text(after[1]), _text(after[2]), _text(after[2], pretrained=True)
    record = result["tasks"][2]
    old = record["old_classes"]
    assert record["per_class"]["text_shift_before"] == pytest.approx(
        drift.cosine_distance(text_1[old], text_2[old]).tolist(), abs=1e-5)
    assert record["per_class"]["text_kl_before"] == pytest.approx(
        drift.neighbourhood_kl(text_1, text_2, old, k=1, temperature=0.05).tolist(), abs=1e-4)
    assert record["per_class"]["text_kl_pretrained"] == pytest.approx(
        drift.neighbourhood_kl(pre, text_2, old, k=1, temperature=0.05).tolist(), abs=1e-4)
    assert record["interface"] == drift.interface_by_text(pre, record["new_classes"], old, k=1)
    # before and pretrained differ once a task has trained
    assert record["per_class"]["text_shift_before"] != pytest.approx(record["per_class"]["text_shift_pretrained"])


def test_zero_learning_rate_gives_zero_drift(tiny_clip_dir, tiny_benchmark, tmp_path):
    """A run that never moves (the zero-shot variant: B stays zero; a learning rate of 0 is refused as a setting):
    every model equals the pretrained one, so every drift is 0."""
    run = _train(tiny_clip_dir, tiny_benchmark, tmp_path / "run", variant="zero-shot", num_tasks=2)
    result = diagnose_run(run, tmp_path / "diag", benchmark=tiny_benchmark, plots=False)
    record = result["tasks"][1]
    assert record["groups"] is not None
    for key, values in record["per_class"].items():
        if key.startswith("new_class_confusion"):  # a share, not a drift
            continue
        assert max(abs(v) for v in values) < 1e-5, key
    assert "prototype_error" not in record["per_class"]  # zero-shot keeps no prototypes


def test_task_selection_and_confusion_split(segp_run, tiny_benchmark, tmp_path):
    result = diagnose_run(segp_run, tmp_path, tasks=[2], split="confusion", confusion_threshold=0.0,
                          benchmark=tiny_benchmark, plots=False)
    assert [r["task"] for r in result["tasks"]] == [2]
    record = result["tasks"][0]
    assert record["interface"] == record["old_classes"] and record["core"] == []  # threshold 0: every old class


def test_model_card_section(segp_run, tiny_benchmark, tmp_path):
    assert "Semantic-geometry drift" not in str(build_model_card(segp_run, 2))
    diagnose_run(segp_run, tmp_path, benchmark=tiny_benchmark, k=1, plots=False, model_card=True)
    assert (segp_run / DIAGNOSTICS_FILE).is_file()
    card = str(build_model_card(segp_run, 2))
    assert "Semantic-geometry drift" in card and "| text_kl_before |" in card
    assert "Semantic-geometry drift" not in str(build_model_card(segp_run, 0))  # task 0 has no old class
    (segp_run / DIAGNOSTICS_FILE).unlink()


def test_cli_diagnose(segp_run, tiny_clip_dir, tmp_path, monkeypatch, capsys):
    from conftest import TEMPLATE, TINY_COLOURS, make_colour_dataset

    from segp_hf.data import registry

    tiny = registry.BenchmarkSpec(
        "tiny-colours", "test colours",
        lambda data_args: registry.LoadedBenchmark(
            make_colour_dataset(6, 0), make_colour_dataset(4, 1), [f"{c} square" for c in TINY_COLOURS],
            [3, 0, 5, 1, 4, 2], TEMPLATE),
    )
    monkeypatch.setitem(registry.BENCHMARKS, "tiny-colours", tiny)
    out = tmp_path / "out"
    code = cli.main(["diagnose", str(segp_run), "--output_dir", str(out), "--tasks", "1,2", "--benchmark", "tiny-colours"])
    assert code == 0
    assert [r["task"] for r in json.loads((out / DIAGNOSTICS_FILE).read_text())["tasks"]] == [1, 2]
    assert "| text_kl_before |" in capsys.readouterr().out
    for argv, says in (
        (["diagnose", str(tmp_path / "missing"), "--output_dir", str(out)], "no complete task checkpoint"),
        (["diagnose", str(segp_run), "--output_dir", str(out), "--tasks", "7"], "cannot diagnose task(s) [7]"),
        (["diagnose", str(segp_run), "--output_dir", str(out), "--tasks", "one"], "--tasks must be"),
        (["diagnose", str(segp_run), "--output_dir", str(out), "--split", "nearest"], "--split must be"),
        (["diagnose", str(segp_run), "--output_dir", str(out), "--k", "0"], "--k=0 is out of range"),
    ):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert says in err and len(err.splitlines()) == 1, err


def test_group_means_pool_task_class_pairs_by_hand():
    """Pooled over (task, class) pairs, only over tasks where both groups are non-empty."""
    def record(task, old, interface, values):
        split = {"interface": interface, "core": [c for c in old if c not in interface]}
        return {"task": task, "old_classes": old, "per_class": {"m": values}, "splits": {"text": split}}

    result = {"split": "text", "tasks": [
        {"task": 0, "old_classes": [], "per_class": {}, "splits": {"text": {"interface": [], "core": []}}},
        record(1, [0, 1], [0, 1], [5.0, 7.0]),  # no core: left out
        record(2, [0, 1, 2], [1], [1.0, 4.0, 3.0]),
        record(3, [0, 1, 2, 3], [0, 3], [2.0, 9.0, None, 6.0]),  # None (undefined) left out
    ]}
    means = group_means(result, "m")
    assert means["tasks"] == [2, 3]
    assert means["interface"] == pytest.approx((4.0 + 2.0 + 6.0) / 3)
    assert means["core"] == pytest.approx((1.0 + 3.0 + 9.0) / 3)
    assert means["pairs"] == {"interface": 3, "core": 3}
    assert group_means(result, "m", up_to=2)["interface"] == 4.0
