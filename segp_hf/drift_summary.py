"""Summaries of a ``segp-hf diagnose`` result (diagnostics.json): the interface vs core means, their markdown
table, and the model card's drift section (read from the file only: no model, no data)."""

from __future__ import annotations

from pathlib import Path

from . import checkpoints as ckpt

DIAGNOSTICS_FILE = "diagnostics.json"

SUMMARY_MEASURES = ("text_kl_before", "margin_change_before", "cosine_change_before", "visual_shift_before",
                    "text_kl_pretrained", "margin_change_pretrained")


def group_means(result: dict, measure: str, up_to: int | None = None, split: str | None = None) -> dict:
    """A measure's mean over every (task, interface class) pair and every (task, core class) pair, pooled over
    the analysed tasks (up to ``up_to``) where both groups are non-empty, so that the two means cover the same
    tasks; ``split``: the run's by default."""
    split = split or result["split"]
    pooled, tasks = {"interface": [], "core": []}, []
    for record in result["tasks"]:
        part, values = record["splits"][split], record["per_class"].get(measure)
        if not part["interface"] or not part["core"] or values is None or (up_to is not None and record["task"] > up_to):
            continue
        tasks.append(record["task"])
        inside = set(part["interface"])
        for c, value in zip(record["old_classes"], values):
            if value is not None:
                pooled["interface" if c in inside else "core"].append(value)
    out = {group: sum(v) / len(v) if v else None for group, v in pooled.items()}
    return {**out, "pairs": {group: len(v) for group, v in pooled.items()}, "tasks": tasks}


def summary_table(result: dict, measures=SUMMARY_MEASURES, up_to: int | None = None, split: str | None = None) -> str:
    """A markdown table: per measure, the pooled interface and core means (``group_means``) and their ratio."""
    lines = ["| measure | interface | core | interface / core |", "|---|---|---|---|"]
    for measure in measures:
        means = group_means(result, measure, up_to, split)
        ratio = (means["interface"] / means["core"]) if means["interface"] is not None and means["core"] else None
        lines.append(f"| {measure} | {_fmt(means['interface'])} | {_fmt(means['core'])} | {_fmt(ratio)} |")
    return "\n".join(lines)


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def card_section(output_dir, task: int) -> str:
    """The model card's drift section for ``task``, from ``output_dir/diagnostics.json`` if the run has one
    (``segp-hf diagnose RUN --model_card``); only tasks up to ``task`` count. Empty otherwise."""
    path = Path(output_dir) / DIAGNOSTICS_FILE
    if not path.is_file():
        return ""
    result = ckpt.read_json(path)
    if not group_means(result, SUMMARY_MEASURES[0], up_to=task)["tasks"]:
        return ""
    return (
        "\n## Semantic-geometry drift (segp-hf diagnose)\n\n"
        f"Old classes split into the interface ({result['split']} split, k = {result['k']}) and the core. Each "
        "value is a mean over (task, old class) pairs of the class's drift after that task, against the model "
        f"before it (`_before`) or the pretrained CLIP (`_pretrained`), over the tasks up to {task} where both groups "
        "are non-empty.\n\n" + summary_table(result, up_to=task) + "\n"
    )
