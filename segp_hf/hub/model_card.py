"""The model card of a task checkpoint (README.md with the metrics so far, the accuracy matrix, its pictures
and how to load the task), written into ``output_dir/task-k`` after each task and pushed with it."""

from __future__ import annotations

import math
from pathlib import Path

from ..evaluation.drift import card_section
from ..modeling.families import family_named
from ..run import checkpoints as ckpt
from ..run.results import format_matrix, save_heatmap, save_seen_curve
from .tasks import branch_name, looks_like_hub_id

CARD_FILE = "README.md"
HEATMAP_FILE = "acc_matrix.png"
CURVE_FILE = "accuracy_seen.png"  # A_i after each task so far
EVAL_RESULTS_FILE = ".eval_results/segp-cl.yaml"  # the Hub's eval-results format
CARD_TAGS = ["continual-learning", "clip", "lora", "segp-cl"]
METRIC_KEYS = ("avg", "last", "forgetting", "bwt", "fwt")


def accuracy_rows(output_dir, task: int) -> list[list[float]]:
    """Rows 0..task of the accuracy matrix, read back from the task directories."""
    return [
        ckpt.none_to_nan(ckpt.read_json(ckpt.task_dir(output_dir, t) / ckpt.METRICS_FILE)["acc_row"])
        for t in range(task + 1)
    ]


def _fmt(value) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.2f}"


def _retention_section(table: dict | None) -> str:
    """Zero-shot accuracy on held-out sets, pretrained CLIP vs this task's model (when the run measured it)."""
    if not table:
        return ""
    rows = "\n".join(f"| {name} | {_fmt(row.get('before'))} | {_fmt(row.get('after'))} |" for name, row in table.items())
    return ("## Zero-shot retention (%)\n\nCLIP path on held-out sets no task trains on: the pretrained CLIP "
            "(before) and this model (after; n/a where not measured at this task).\n\n"
            f"| set | before | after |\n|---|---|---|\n{rows}\n\n")


def build_model_card(output_dir, task: int, repo_id: str | None = None):
    """The model card of ``output_dir/task-k`` (from the files of tasks 0..k only)."""
    from huggingface_hub import ModelCard

    folder = ckpt.task_dir(output_dir, task)
    config = ckpt.read_json(folder / ckpt.CONFIG_FILE)
    classes = ckpt.read_json(folder / ckpt.CLASSES_FILE)
    saved = ckpt.read_json(folder / ckpt.METRICS_FILE)
    rows = accuracy_rows(output_dir, task)
    card_data = _card_metadata(config, classes, saved, rows, task, repo_id)
    body = _card_body(output_dir, task, repo_id, config, classes, saved, rows)
    body += card_section(output_dir, task)  # drift, when `segp-hf diagnose --model_card` ran on this run
    return ModelCard(f"---\n{card_data.to_yaml()}\n---\n{body}")


def benchmark_label(config: dict) -> str:
    """What the card calls the run's data: the benchmark's name, or for ``custom`` the user's own dataset (its Hub
    id, else its folder's name)."""
    benchmark = str(config.get("benchmark"))
    if benchmark != "custom":
        return benchmark
    if config.get("dataset_name"):
        return str(config["dataset_name"])
    return f"your dataset `{Path(str(config.get('data_dir'))).name}` (custom)"


def hub_dataset(config: dict) -> tuple[str | None, str | None]:
    """The Hub dataset a run's benchmark was read from (``--dataset_name``, else the benchmark's source in
    ``data/hub_sources.py``) and the commit it was read at; ``(None, None)`` for data not from the Hub (shapes, a
    local copy)."""
    from ..data.hub_sources import SOURCES

    own = config.get("dataset_name")
    source = None if own or config.get("data_dir") else SOURCES.get(config.get("benchmark"))
    dataset_id = own or (source.dataset_id if source else None)
    if not looks_like_hub_id(dataset_id):
        return None, None
    return dataset_id, config.get("dataset_commit") or config.get("dataset_revision") or (source and source.revision)


def _zero_shot_sources(config: dict, table: dict | None) -> dict[str, tuple[str | None, str | None, float]]:
    """Zero-shot set -> (its Hub dataset id or None, the revision it was loaded at, accuracy after this task)."""
    from ..data.hub_sources import SOURCES
    from ..data.zero_shot_sets import parse_set_revisions

    try:
        revisions = parse_set_revisions(config.get("zero_shot_revisions"))
    except Exception:  # noqa: BLE001 - a card is still written for a run whose saved setting no longer parses
        revisions = {}
    found = {}
    for name, row in (table or {}).items():
        after = row.get("after")
        if after is None or (isinstance(after, float) and math.isnan(after)):
            continue
        source = SOURCES.get(name) if config.get("zero_shot_data_dir") is None else None
        found[name] = (source.dataset_id if source else None, revisions.get(name) or (source and source.revision),
                       float(after))
    return found


def card_eval_results(config: dict, classes: dict, saved: dict) -> list:
    """The accuracies the Hub renders from the card's ``model-index``: Avg and Last over the seen classes (and
    task-IL Last where measured) on the benchmark's test split, and each zero-shot set's accuracy after this task."""
    return [result for _, result in _keyed_results(config, classes, saved)]


def _keyed_results(config: dict, classes: dict, saved: dict) -> list[tuple[str, object]]:
    from huggingface_hub.repocard_data import EvalResult

    metrics, benchmark = saved.get("metrics", {}), benchmark_label(config)
    dataset_id, revision = hub_dataset(config)
    seen, num_tasks = len(classes.get("class_names_seen", [])), classes.get("num_tasks")
    common = {"task_type": "image-classification", "task_name": f"Class-incremental learning ({num_tasks} tasks)",
              "dataset_type": dataset_id or str(config.get("benchmark")), "dataset_name": benchmark, "dataset_split": "test",
              "dataset_revision": revision, "metric_type": "accuracy"}
    names = {"avg": "Avg accuracy over the tasks so far (%)", "last": f"Last: accuracy on the {seen} classes seen (%)",
             "last_til": "Last, task-incremental: each task over its own classes (%)"}
    results = [(key, EvalResult(**common, metric_value=float(metrics[key]), metric_name=name))
               for key, name in names.items() if metrics.get(key) is not None and not math.isnan(float(metrics[key]))]
    for name, (set_id, set_revision, after) in _zero_shot_sources(config, saved.get("zero_shot_retention")).items():
        results.append(("zero-shot", EvalResult(
            task_type="zero-shot-image-classification", task_name="Zero-shot retention (CLIP path)",
            dataset_type=set_id or name, dataset_name=name, dataset_revision=set_revision, metric_type="accuracy",
            metric_value=after, metric_name=f"Zero-shot accuracy on {name} after task {classes.get('task')} (%)")))
    return results


def eval_result_files(config: dict, classes: dict, saved: dict, repo_id: str | None) -> list[dict]:
    """The same accuracies as entries of the Hub's ``.eval_results/*.yaml`` format (huggingface.co/docs/hub/
    eval-results; huggingface_hub's ``EvalResultEntry`` / ``eval_result_entries_to_yaml`` write the same shape),
    for the results whose dataset is on the Hub. The Hub puts them on a leaderboard only where the dataset is a
    registered Benchmark; the model-index in README.md is what every model page renders."""
    from huggingface_hub import constants

    task, num_tasks = int(classes.get("task", 0)), classes.get("num_tasks")
    source = ({"url": f"{constants.ENDPOINT}/{repo_id}/tree/{branch_name(task)}", "name": f"SeGP-CL {branch_name(task)}"}
              if repo_id else None)
    entries = []
    for key, result in _keyed_results(config, classes, saved):
        if not looks_like_hub_id(result.dataset_type):
            continue
        kind = key if key == "zero-shot" else f"class-incremental-{num_tasks}-tasks-{key.replace('_', '-')}"
        dataset = {"id": result.dataset_type, "task_id": kind}
        if result.dataset_revision:
            dataset["revision"] = result.dataset_revision
        entry = {"dataset": dataset, "value": round(result.metric_value, 4)}
        if source:
            entry["source"] = source
        entry["notes"] = f"{result.metric_name}; variant {config.get('variant')}, after task {task} of {num_tasks}"
        entries.append(entry)
    return entries


def _card_metadata(config: dict, classes: dict, saved: dict, rows, task: int, repo_id: str | None):
    """The card's YAML header: base model, dataset, the accuracies as eval results (model-index), the run's numbers."""
    from huggingface_hub import ModelCardData

    base = config.get("model_name_or_path")
    metrics = saved.get("metrics", {})
    dataset_id, _ = hub_dataset(config)
    results = card_eval_results(config, classes, saved)
    return ModelCardData(
        base_model=base if looks_like_hub_id(base) else None,
        datasets=[dataset_id] if dataset_id else None,
        library_name="peft",
        tags=[family_named(config.get("model_family")).name if tag == "clip" else tag for tag in CARD_TAGS],
        model_name=repo_id or f"segp-cl-{branch_name(task)}",
        eval_results=results or None,
        segp_cl={
            "task": task,
            "num_tasks": classes.get("num_tasks", len(rows[0])),
            "classes_seen": len(classes.get("class_names_seen", [])),
            "variant": config.get("variant"),
            "base_model_revision": config.get("model_revision") or config.get("base_model_commit"),
            "metrics": {key: metrics.get(key) for key in METRIC_KEYS},
            "acc_matrix": ckpt.nan_to_none(rows),
        },
    )


def _card_body(output_dir, task: int, repo_id: str | None, config: dict, classes: dict, saved: dict, rows) -> str:
    """The card's markdown: what the task is, its metrics and accuracy matrix, its classes, how to load it."""
    metrics = saved.get("metrics", {})
    num_tasks = classes.get("num_tasks", len(rows[0]))
    base = config.get("model_name_or_path")
    base_revision = config.get("model_revision") or config.get("base_model_commit")
    family = family_named(config.get("model_family"))  # the base model's class (runs saved before it: CLIP)
    benchmark = benchmark_label(config)
    ref = f"{repo_id or 'OUTPUT_DIR'}@{branch_name(task)}"
    source = repo_id or str(Path(output_dir))
    revision_line = f', revision="{base_revision}"' if base_revision else ""
    names = ", ".join(classes.get("class_names_seen", []))
    return f"""
# SeGP-CL on {benchmark}: after task {task} of {num_tasks}

A LoRA adapter (both {family.display} towers, `lora_B` trained) and one visual prototype per seen class, learnt
class-incrementally with SeGP-CL (variant `{config.get('variant')}`) on top of `{base}`
(revision `{base_revision or 'default'}`). This is branch `{branch_name(task)}`; `main` holds the latest task.
Predictions are dual-path: `s * cos(F(x), u_c) + beta * s * cos(h(x), p_c)` with beta = {config.get('beta')},
over the {len(classes.get('class_names_seen', []))} classes seen so far.

## Metrics so far

| Avg | Last | Forgetting | BWT | FWT |
|---|---|---|---|---|
| {' | '.join(_fmt(metrics.get(key)) for key in METRIC_KEYS)} |

{_retention_section(saved.get("zero_shot_retention"))}## Accuracy matrix (%)

Row i: after training task i; column j: test images of task j (future columns are zero-shot).

```
{format_matrix(rows + [[math.nan] * len(rows[0])] * (len(rows[0]) - len(rows)))}
```

![accuracy matrix]({HEATMAP_FILE})

![accuracy on the classes seen so far, after each task]({CURVE_FILE})

## Classes seen so far (class order)

{names}

## How to load this task

```python
import segp_hf

task = segp_hf.load_task("{source}", task={task})
prediction = task.predict(images)          # PIL images -> prediction.class_names, prediction.indices
logits = task.logits(pixel_values)         # dual-path logits over the seen classes
```

By hand: `{family.model_class_name}.from_pretrained("{base}"{revision_line})`, then
`PeftModel.from_pretrained(clip, "{source}", revision="{branch_name(task)}")`; the prototypes are in
`{ckpt.PROTOTYPES_FILE}`, the class names in `{ckpt.CLASSES_FILE}`, the settings in `{ckpt.CONFIG_FILE}`.

```bash
segp-hf eval --checkpoint {ref}                      # accuracy on the seen classes' test images
segp-hf train --resume_from {ref} --output_dir OUT   # continue with task {task + 1}
```
"""


def write_task_card(output_dir, task: int, repo_id: str | None = None) -> Path:
    """Write the heatmap and README.md (model card) into ``output_dir/task-k``."""
    folder = ckpt.task_dir(output_dir, task)
    rows = accuracy_rows(output_dir, task)
    size = len(rows[0])
    save_heatmap(rows + [[math.nan] * size] * (size - len(rows)), folder / HEATMAP_FILE,
                 title=f"after task {task}: accuracy (%)")
    test_sizes = ckpt.read_json(folder / ckpt.METRICS_FILE).get("test_sizes")
    save_seen_curve({"this run": rows + [[math.nan] * size] * (size - len(rows))}, folder / CURVE_FILE,
                    task_weights=test_sizes, title=f"Accuracy on the classes seen, tasks 0..{task}")
    path = folder / CARD_FILE
    path.write_text(str(build_model_card(output_dir, task, repo_id)))
    _write_eval_results(output_dir, task, repo_id)
    return path


def _write_eval_results(output_dir, task: int, repo_id: str | None) -> None:
    """``task-k/.eval_results/segp-cl.yaml`` (pushed with the task), where some result's dataset is on the Hub."""
    import yaml

    folder = ckpt.task_dir(output_dir, task)
    entries = eval_result_files(ckpt.read_json(folder / ckpt.CONFIG_FILE), ckpt.read_json(folder / ckpt.CLASSES_FILE),
                                ckpt.read_json(folder / ckpt.METRICS_FILE), repo_id)
    target = folder / EVAL_RESULTS_FILE
    if entries:
        target.parent.mkdir(exist_ok=True)
        target.write_text(yaml.safe_dump(entries, sort_keys=False))
    elif target.is_file():
        target.unlink()
