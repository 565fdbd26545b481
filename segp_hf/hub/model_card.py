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
    card_data = _card_metadata(config, classes, saved.get("metrics", {}), rows, task, repo_id)
    body = _card_body(output_dir, task, repo_id, config, classes, saved, rows)
    body += card_section(output_dir, task)  # drift, when `segp-hf diagnose --model_card` ran on this run
    return ModelCard(f"---\n{card_data.to_yaml()}\n---\n{body}")


def _card_metadata(config: dict, classes: dict, metrics: dict, rows, task: int, repo_id: str | None):
    """The card's YAML header: base model, dataset, Avg/Last as eval results, and the run's numbers."""
    from huggingface_hub import ModelCardData
    from huggingface_hub.repocard_data import EvalResult

    base = config.get("model_name_or_path")
    benchmark = config.get("benchmark")
    dataset_id = config.get("dataset_name") or benchmark
    results = [
        EvalResult(
            task_type="image-classification", dataset_type=str(dataset_id), dataset_name=str(benchmark),
            metric_type="accuracy", metric_value=float(metrics[key]),
            metric_name=f"{key.capitalize()} accuracy over seen classes (%)",
        )
        for key in ("avg", "last") if metrics.get(key) is not None
    ]
    return ModelCardData(
        base_model=base if looks_like_hub_id(base) else None,
        datasets=[dataset_id] if looks_like_hub_id(dataset_id) else None,
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
    benchmark = config.get("benchmark")
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
    return path
