"""``segp-hf report RUN_DIR [RUN_DIR ...] --output_dir OUT``: one self-contained HTML page comparing finished
runs: a metrics table, every run's A_i curve in one figure, each run's accuracy-matrix heatmap, where the time
went, and the settings that differ between the runs. Figures are embedded as data URIs, so the page is one file
that can be mailed or attached; a small script marks ``data-figures-loaded`` on <body> once every figure has
decoded (the headless-browser check reads it)."""

from __future__ import annotations

import base64
import html
import json
import math
import tempfile
from pathlib import Path

from ..errors import RecipeError
from ..run import checkpoints as ckpt
from ..run.results import save_heatmap, save_seen_curve
from ..run.timing import format_seconds

REPORT_FILE = "index.html"
CURVES_FILE = "accuracy_seen.png"
METRIC_COLUMNS = (("last", "Last"), ("avg", "Avg"), ("forgetting", "Forgetting"), ("bwt", "BWT"), ("fwt", "FWT"))
# Settings that always differ between runs and say nothing about the method.
NOT_COMPARED = {"output_dir", "logging_dir", "base_model_commit", "model_family"}


def load_run(run_dir) -> dict:
    folder = Path(run_dir)
    results_path = folder / ckpt.RESULTS_FILE
    if not results_path.is_file():
        raise RecipeError(f"{folder} has no {ckpt.RESULTS_FILE}: give the output_dir of a run that finished a task")
    results = ckpt.read_json(results_path)
    done = ckpt.completed_tasks(folder)
    settings = ckpt.read_json(ckpt.task_dir(folder, done - 1) / ckpt.CONFIG_FILE) if done else {}
    return {"dir": folder, "results": results, "settings": settings}


def run_labels(runs: list[dict]) -> list[str]:
    """The variant, with the folder name where several runs share a variant."""
    variants = [run["results"].get("variant", "run") for run in runs]
    return [f"{variant} ({run['dir'].name})" if variants.count(variant) > 1 else variant
            for variant, run in zip(variants, runs)]


def differing_settings(runs: list[dict]) -> dict[str, list]:
    keys = sorted({key for run in runs for key in run["settings"]} - NOT_COMPARED)
    table = {key: [run["settings"].get(key) for run in runs] for key in keys}
    return {key: values for key, values in table.items()
            if len({json.dumps(v, sort_keys=True, default=str) for v in values}) > 1}


def _number(value) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.2f}"


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _figure(path: Path, caption: str) -> str:
    return (f'<figure><img src="{_data_uri(path)}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def metrics_rows(runs, labels) -> list[list[str]]:
    rows = []
    for label, run in zip(labels, runs):
        results = run["results"]
        retention = results.get("zero_shot_retention") or {}
        after = [row.get("after") for row in retention.values() if row.get("after") is not None]
        timing = [t for t in results.get("timing") or [] if t]
        total = sum(t.get("total_s") or 0.0 for t in timing)
        rows.append([label, str(results.get("benchmark", "")), f"{results.get('tasks_completed')}/{results.get('num_tasks')}",
                     *(_number(results.get(key)) for key, _ in METRIC_COLUMNS),
                     _number(sum(after) / len(after)) if after else "n/a",
                     format_seconds(total) if timing else "n/a"])
    return rows


def timing_rows(runs, labels) -> list[list[str]]:
    rows = []
    for label, run in zip(labels, runs):
        timing = [t for t in run["results"].get("timing") or [] if t]
        if not timing:
            continue
        sums = {key: sum(t.get(key) or 0.0 for t in timing) for key in ("train_s", "anchors_s", "prototypes_s", "eval_s")}
        rates = [t["train_images_per_s"] for t in timing if t.get("train_images_per_s")]
        rows.append([label, *(format_seconds(v) for v in sums.values()),
                     f"{sum(rates) / len(rates):.1f}" if rates else "n/a"])
    return rows


STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}thead{background:#f3f3f3}
figure{display:inline-block;margin:0.5em;vertical-align:top}img{max-width:100%}figcaption{font-size:0.85em;color:#555}
"""
SCRIPT = """
window.addEventListener('load', function () {
  var images = Array.prototype.slice.call(document.images);
  var ok = images.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute('data-figures-loaded', ok + '/' + images.length);
});
"""


def render(runs: list[dict], curves_png: Path, heatmaps: list[Path]) -> str:
    labels = run_labels(runs)
    metric_header = ["run", "benchmark", "tasks", *(name for _, name in METRIC_COLUMNS), "zero-shot after", "time"]
    parts = [f"<h1>SeGP-CL runs: {html.escape(', '.join(labels))}</h1>",
             "<h2>Metrics</h2>", _table(metric_header, metrics_rows(runs, labels)),
             "<p>Accuracies in %; forgetting, BWT and FWT as in the SPEC (textbook convention).</p>",
             "<h2>Accuracy on the classes seen so far</h2>", _figure(curves_png, "A_i after each task"),
             "<h2>Accuracy matrices</h2>",
             "".join(_figure(path, f"{label}: accuracy on each task (column) after each task (row)")
                     for label, path in zip(labels, heatmaps))]
    timing = timing_rows(runs, labels)
    if timing:
        parts += ["<h2>Where the time went</h2>",
                  _table(["run", "training", "anchors", "prototypes", "evaluation", "train images/s"], timing)]
    differing = differing_settings(runs)
    parts.append("<h2>Settings that differ</h2>")
    if len(runs) < 2:
        parts.append("<p>One run: nothing to compare.</p>")
    elif differing:
        parts.append(_table(["setting", *labels], [[key, *(json.dumps(v, default=str) for v in values)]
                                                    for key, values in differing.items()]))
    else:
        parts.append("<p>The runs share every setting.</p>")
    parts.append("<h2>Runs</h2><ul>" + "".join(f"<li>{html.escape(label)}: <code>{html.escape(str(run['dir']))}</code></li>"
                                             for label, run in zip(labels, runs)) + "</ul>")
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>SeGP-CL report</title>"
            f"<style>{STYLE}</style><script>{SCRIPT}</script></head><body>{''.join(parts)}</body></html>\n")


def write_report(run_dirs, output_dir) -> Path:
    """Write OUTPUT_DIR/index.html (and the comparison curve as a PNG beside it); returns the page's path."""
    runs = [load_run(run_dir) for run_dir in run_dirs]
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    labels = run_labels(runs)
    curves_png = output / CURVES_FILE
    save_seen_curve({label: (run["results"]["acc_matrix"], run["results"].get("test_sizes"))
                     for label, run in zip(labels, runs)}, curves_png)
    with tempfile.TemporaryDirectory() as scratch:
        heatmaps = []
        for index, (label, run) in enumerate(zip(labels, runs)):
            path = Path(scratch) / f"heatmap-{index}.png"
            save_heatmap(run["results"]["acc_matrix"], path, title=f"{label}: accuracy (%)")
            heatmaps.append(path)
        page = render(runs, curves_png, heatmaps)
    target = output / REPORT_FILE
    target.write_text(page, encoding="utf-8")
    return target
