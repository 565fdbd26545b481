"""Pictures and pages: the A_i curve, the ablation figures linked from ablation.md, `segp-hf report` (checked in
a headless Chromium when one is installed), and the grouped `train --help`."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from conftest import tiny_settings

from segp_hf import cli
from segp_hf.commands.ablate import ABLATION_FIGURES, figure_links, write_ablation_figures
from segp_hf.commands.report import differing_settings, load_run, write_report
from segp_hf.recipe import parse_config
from segp_hf.run.continual import run_continual
from segp_hf.run.results import seen_curve


def test_seen_curve_is_the_weighted_accuracy_over_seen_tasks():
    matrix = [[80.0, 10.0, None], [60.0, 90.0, None], [None, None, None]]  # stopped after task 2
    assert seen_curve(matrix, [100, 300, 50]) == pytest.approx([80.0, (60 * 100 + 90 * 300) / 400])
    assert seen_curve(matrix) == pytest.approx([80.0, 75.0])


def _row(variant, lasts, curves):
    return {"variant": variant, "seeds": list(range(len(lasts))), "last_mean": sum(lasts) / len(lasts), "last_std": 1.0,
            "avg_mean": 70.0, "avg_std": 2.0, "forgetting_mean": 5.0, "forgetting_std": 0.5,
            "per_seed": [{"seed": s, "accuracy_seen": c} for s, c in enumerate(curves)]}


def test_ablation_figures_are_written_and_linked(tmp_path):
    rows = [_row("segp-cl", [60.0, 62.0], [[80.0, 61.0], [82.0, 61.0]]), _row("lora", [40.0, 44.0], [[80.0, 42.0], [81.0, 42.0]])]
    figures = write_ablation_figures(rows, tmp_path)
    for name in ABLATION_FIGURES.values():
        assert (tmp_path / name).stat().st_size > 5000
    links = figure_links(figures)
    assert "](ablation_curves.png)" in links and "](ablation_bars.png)" in links


@pytest.fixture(scope="module")
def two_runs(tiny_clip_dir, tiny_benchmark, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for name, variant in (("a", "segp-cl"), ("b", "zero-shot")):
        settings = tiny_settings(tiny_clip_dir, root / name, num_tasks=2, variant=variant)
        run_continual(*parse_config(settings), benchmark=tiny_benchmark)
    return root / "a", root / "b"


def test_run_writes_its_curve(two_runs):
    assert (two_runs[0] / "accuracy_seen.png").stat().st_size > 0


def test_report_page_compares_runs(two_runs, tmp_path):
    page = write_report(two_runs, tmp_path / "report")
    text = page.read_text()
    assert text.count("data:image/png;base64,") == 3  # the curves and one heatmap per run, embedded
    for name in ("segp-cl", "zero-shot", "Last", "Forgetting", "Settings that differ", "variant"):
        assert name in text
    differing = differing_settings([load_run(run) for run in two_runs])
    assert differing["variant"] == ["segp-cl", "zero-shot"] and "output_dir" not in differing
    assert "seed" not in differing  # shared settings are not listed


def test_report_command_refuses_a_folder_without_results(tmp_path, capsys):
    assert cli.main(["report", str(tmp_path), "--output_dir", str(tmp_path / "out")]) == 2
    assert "has no results.json" in capsys.readouterr().err


BROWSER = shutil.which("chromium-headless-shell") or shutil.which("chromium")


@pytest.mark.skipif(BROWSER is None, reason="no headless Chromium (Debian: apt-get install chromium-headless-shell)")
def test_report_loads_in_a_headless_browser_with_every_figure(two_runs, tmp_path):
    page = write_report(two_runs, tmp_path / "report")
    common = [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=3000"]
    dom = subprocess.run([*common, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=60)
    assert dom.returncode == 0
    assert 'data-figures-loaded="3/3"' in dom.stdout  # the page's script ran: every image decoded
    shot = tmp_path / "shot.png"
    logged = subprocess.run([*common, "--enable-logging=stderr", "--v=0", f"--screenshot={shot}",
                             "--window-size=1200,1600", page.as_uri()], capture_output=True, text=True, timeout=60)
    assert shot.stat().st_size > 10_000
    assert "Uncaught" not in logged.stderr and "CONSOLE" not in logged.stderr


def test_train_help_groups_our_settings_and_points_to_training_arguments(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    text = capsys.readouterr().out
    positions = [text.index(f"{group} settings") for group in ("model", "data", "method", "run")]
    assert positions == sorted(positions)
    method = text[positions[2]:positions[3]]
    assert "--lambda_acgd" in method and "Weight of the ACGD loss. [5.0]" in method
    run = text[positions[3]:]
    assert "--learning_rate" in run and "[0.001]" in run and "--report_to" in run
    assert "TrainingArguments" in text and "--adafactor" not in text  # the rest: transformers' docs
    from segp_hf.recipe import setting_groups

    for members in setting_groups().values():  # each of our settings once, with its default
        for field in members:
            assert text.count(f"  --{field.name} ") + text.count(f"  --{field.name}\n") == 1, field.name


def test_quiet_and_debug_set_the_console_mode(monkeypatch):
    from segp_hf.run import console

    seen = []
    monkeypatch.setattr(cli, "_train", lambda args, overrides: seen.append(console.mode()))
    try:
        for flag, mode in (("--quiet", "quiet"), ("--debug", "debug"), (None, "normal")):
            assert cli.main(["train", *([flag] if flag else [])]) == 0
            assert seen[-1] == mode
    finally:
        console.set_mode("normal")
    with pytest.raises(SystemExit):
        cli.main(["train", "--quiet", "--debug"])  # one or the other
