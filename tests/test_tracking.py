"""Trackers on one step axis across tasks (TensorBoard event files read back), the console of a run (one bar
per evaluation round, one summary line per task, no warnings from our use of the libraries), timing in
results.json."""

from __future__ import annotations

import contextlib
import io
import json
import re
import warnings

import pytest
from conftest import tiny_settings
from transformers import TrainerState

from segp_hf.recipe import parse_config
from segp_hf.run import console
from segp_hf.run.continual import run_continual
from segp_hf.run.tracking import GlobalStepForwarder, TrackerRun

pytest.importorskip("tensorboard")

# Warnings that our use of torch/transformers/peft/datasets used to cause (issue 17): their cause is removed.
LIBRARIES = ("segp_hf", "torch", "transformers", "peft", "datasets", "accelerate")


@pytest.fixture(scope="module")
def tracked_run(tiny_clip_dir, tiny_benchmark, tmp_path_factory):
    """A 2-task run with TensorBoard and progress bars on, its console and every warning recorded."""
    output_dir = tmp_path_factory.mktemp("tracked")
    settings = tiny_settings(tiny_clip_dir, output_dir, num_tasks=2, report_to="tensorboard", disable_tqdm=False,
                              use_cpu=False)  # as a user runs it: use_cpu=True would itself turn pin memory off
    out, err = io.StringIO(), io.StringIO()
    console.set_mode("normal")
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        warnings.simplefilter("always")
        results = run_continual(*parse_config(settings), benchmark=tiny_benchmark)
    return output_dir, results, out.getvalue(), err.getvalue(), caught


def _events(output_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(output_dir / "runs"), size_guidance={"scalars": 0, "images": 0})
    accumulator.Reload()
    return accumulator


def _task_ends(output_dir):
    return [json.loads((output_dir / f"task-{t}" / "metrics.json").read_text())["global_step_end"] for t in range(2)]


def test_training_scalars_share_one_step_axis_that_never_goes_back(tracked_run):
    output_dir, _, _, _, _ = tracked_run
    events = _events(output_dir)
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/loss_cls", "train/loss_tsgr", "train/loss_acgd", "train/learning_rate",
            "train/grad_norm"} <= tags
    end0, end1 = _task_ends(output_dir)
    steps = [event.step for event in events.Scalars("train/loss")]
    # logging_steps=1: one point per optimizer step of both tasks, numbered 1..end1 without restarting at 0
    assert steps == list(range(1, end1 + 1)) and 0 < end0 < end1
    acgd = [event.step for event in events.Scalars("train/loss_acgd")]
    assert acgd and min(acgd) > end0  # ACGD exists from task 2 on: its points lie after task 1's


def test_per_task_metrics_reach_the_trackers_at_each_task_end(tracked_run):
    output_dir, results, _, _, _ = tracked_run
    events = _events(output_dir)
    ends = _task_ends(output_dir)
    matrix = results["acc_matrix"]
    seen = events.Scalars("eval/accuracy_seen")
    assert [e.step for e in seen] == ends
    sizes = results["test_sizes"]
    a1 = (matrix[1][0] * sizes[0] + matrix[1][1] * sizes[1]) / (sizes[0] + sizes[1])
    assert [e.value for e in seen] == pytest.approx([matrix[0][0], a1], abs=1e-4)
    assert [e.value for e in events.Scalars("eval/accuracy_T0")] == pytest.approx([matrix[0][0], matrix[1][0]], abs=1e-4)
    assert [(e.step, e.value) for e in events.Scalars("eval/accuracy_T1")] == [(ends[1], pytest.approx(matrix[1][1], abs=1e-4))]
    assert [e.value for e in events.Scalars("eval/forgetting")] == pytest.approx([results["forgetting"]], abs=1e-4)
    assert [e.value for e in events.Scalars("eval/avg")][-1] == pytest.approx(results["avg"], abs=1e-4)
    anchors = events.Scalars("train/timing_anchors_s")
    assert [e.step for e in anchors] == ends and anchors[1].value == pytest.approx(results["timing"][1]["anchors_s"], abs=1e-3)
    assert {"eval/acc_matrix", "eval/accuracy_seen_curve"} <= set(events.Tags()["images"])
    # the per-evaluation dicts of the Trainer (task0_accuracy, task0_runtime...) are not logged one by one
    assert not any(tag.startswith("train/task") for tag in events.Tags()["scalars"])


def test_the_forwarder_shifts_only_what_the_integrations_see():
    seen = []

    class Recorder:
        def on_log(self, args, state, control, logs=None, **kwargs):
            seen.append((state.global_step, dict(logs)))

        def on_train_end(self, args, state, control, **kwargs):
            seen.append(("end", state.global_step))

    run = TrackerRun("unused")
    run.callbacks, run.offset = [Recorder()], 40
    state = TrainerState(global_step=3)
    forwarder = GlobalStepForwarder(run)
    forwarder.on_log(None, state, None, logs={"loss": 1.0})
    forwarder.on_train_end(None, state, None)
    assert seen == [(43, {"loss": 1.0})] and state.global_step == 3  # the Trainer's own state (checkpoints) unchanged
    run.close()  # on_train_end is held until the run ends (it closes TensorBoard's writer)
    assert seen[-1] == ("end", 43)


def test_timing_is_recorded_per_task(tracked_run):
    output_dir, results, _, _, _ = tracked_run
    timing = results["timing"]
    assert len(timing) == 2
    for record in timing:
        assert set(record) >= {"train_s", "anchors_s", "prototypes_s", "eval_s", "train_images_per_s", "total_s"}
        phases = record["train_s"] + record["anchors_s"] + record["prototypes_s"] + record["eval_s"]
        assert record["train_s"] > 0 and record["eval_s"] > 0 and record["prototypes_s"] > 0
        assert phases <= record["total_s"] + 1e-3
    assert timing[1]["anchors_s"] > timing[0]["anchors_s"]  # DPGD anchors are built from task 2 on
    assert json.loads((output_dir / "task-1" / "metrics.json").read_text())["timing"] == timing[1]


def test_no_warnings_from_our_use_of_the_libraries(tracked_run):
    _, _, _, _, caught = tracked_run
    ours = [w for w in caught if issubclass(w.category, (UserWarning, FutureWarning, DeprecationWarning))
            and any(f"/{name}/" in w.filename.replace("\\", "/") for name in LIBRARIES)]
    assert not ours, [f"{w.category.__name__} {w.filename}:{w.lineno} {w.message}" for w in ours]


_BAR = re.compile(r"(?:^|\r)([^\r\n|]*?)\s*\d+%\|[^|]*\|\s*\d+/(\d+) \[")


def test_console_one_bar_per_evaluation_round_and_one_line_per_task(tracked_run):
    output_dir, results, out, err, _ = tracked_run
    bars = {(desc.strip().rstrip(":"), total) for desc, total in _BAR.findall(err)}
    evaluation = {desc for desc, _ in bars if desc.startswith("evaluating")}
    assert evaluation == {"evaluating after task 1", "evaluating after task 2"}
    steps = _task_ends(output_dir)
    # every other bar is a task's training bar (total = its steps), the anchor bar or transformers' bar loading
    # the model once per run: no bar per evaluated task
    others = {(desc, int(total)) for desc, total in bars
              if not desc.startswith(("evaluating", "building anchors", "Loading weights"))}
    assert others <= {("", steps[0]), ("", steps[1] - steps[0])}, others
    lines = [line for line in out.splitlines() if line.startswith("task ")]
    assert lines[0].startswith("task 1/2: accuracy on the 3 classes seen") and lines[1].startswith("task 2/2")
    assert f"Forgetting {results['forgetting']:.1f}" in lines[1]
    assert "{'loss'" not in out and "{'loss'" not in err  # losses go to the bar's postfix, not a line per step


def test_quiet_prints_only_the_results(tiny_clip_dir, tiny_benchmark, tmp_path):
    settings = tiny_settings(tiny_clip_dir, tmp_path, num_tasks=2, variant="zero-shot", disable_tqdm=False)
    out, err = io.StringIO(), io.StringIO()
    console.set_mode("quiet")
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            run_continual(*parse_config(settings), benchmark=tiny_benchmark)
    finally:
        console.set_mode("normal")
    out, err = out.getvalue(), err.getvalue()
    assert "it/s" not in err and "task 1/2" not in out
    assert out.splitlines()[0].startswith("after \\ on") and "Avg:" in out


TRACKIO_SCRIPT = r"""
import json, sys
sys.path.append(sys.argv[1])  # where trackio is installed, after our own packages
sys.path.insert(0, sys.argv[2])  # tests/ (conftest helpers)
from conftest import make_colour_dataset, save_tiny_clip, tiny_settings, TINY_COLOURS, TEMPLATE
from segp_hf.config import parse_config
from segp_hf.continual import run_continual
from segp_hf.data.registry import LoadedBenchmark

root = sys.argv[3]
benchmark = LoadedBenchmark(make_colour_dataset(6, 0), make_colour_dataset(4, 1), [f"{c} square" for c in TINY_COLOURS],
                            [3, 0, 5, 1, 4, 2], TEMPLATE)
settings = tiny_settings(save_tiny_clip(root + "/clip"), root + "/run", num_tasks=2, report_to="trackio",
                         project="segp-test", run_name="tiny")
run_continual(*parse_config(settings), benchmark=benchmark)
from trackio.sqlite_storage import SQLiteStorage
logs = SQLiteStorage.get_logs("segp-test", "tiny")
print("LOGS" + json.dumps([{k: v for k, v in row.items() if k in ("train/global_step", "train/loss", "eval/accuracy_seen")}
                           for row in logs], default=str))
"""


def test_trackio_gets_the_same_step_axis(tmp_path):
    """trackio (local, no Space) through report_to: the loss on one monotone axis, A_i at each task end. (The
    Trainer's TrackioCallback puts the step in the ``train/global_step`` metric, trackio's x-axis for Trainer
    runs; trackio's own ``step`` counts log calls.)"""
    import os
    import subprocess
    import sys
    from pathlib import Path

    trackio = pytest.importorskip("trackio")
    site = str(Path(trackio.__file__).parents[1])
    env = {**os.environ, "TRACKIO_DIR": str(tmp_path / "trackio"), "PYTHONPATH": os.pathsep.join(
        p for p in (os.environ.get("PYTHONPATH"),) if p)}
    done = subprocess.run([sys.executable, "-c", TRACKIO_SCRIPT, site, str(Path(__file__).parent), str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads(done.stdout.split("LOGS", 1)[1])
    loss_steps = [row["train/global_step"] for row in rows if "train/loss" in row]
    seen_steps = [row["train/global_step"] for row in rows if "eval/accuracy_seen" in row]
    assert loss_steps == sorted(loss_steps) and len(set(loss_steps)) == len(loss_steps) and len(loss_steps) >= 4
    assert len(seen_steps) == 2 and seen_steps[0] < seen_steps[1] == max(loss_steps)
