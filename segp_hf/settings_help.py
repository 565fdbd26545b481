"""``segp-hf train --help``: our own settings grouped (model, data, method, run), each with its default and help
text; every other TrainingArguments field is accepted too and documented by transformers."""

from __future__ import annotations

import textwrap
from dataclasses import MISSING, fields

from transformers import TrainingArguments

from .arguments import DataArguments, ModelArguments, SeGPConfig

TRAINING_ARGUMENTS_DOCS = "https://huggingface.co/docs/transformers/main_classes/trainer#transformers.TrainingArguments"
# SeGPConfig fields that are about running (not the method) although TrainingArguments lacks them.
RUN_FIELDS = {"global_train_batch_size", "hub_push_retries", "hub_push_backoff"}
# TrainingArguments fields SeGPConfig re-declares only to keep our columns and labels: not worth a user's eye.
PLUMBING = {"remove_unused_columns", "label_names", "ddp_find_unused_parameters"}


def _default(field) -> str:
    if field.default is not MISSING:
        return repr(field.default) if isinstance(field.default, str) else str(field.default)
    if field.default_factory is not MISSING:
        return str(field.default_factory())
    return "required"


def setting_groups() -> dict[str, list]:
    training = {f.name for f in fields(TrainingArguments)}
    declared = set(vars(SeGPConfig).get("__annotations__", {}))  # SeGPConfig's own fields and re-declarations
    ours = [f for f in fields(SeGPConfig) if f.init and f.name in declared and f.name not in PLUMBING]
    return {
        "model": [f for f in fields(ModelArguments) if f.init],
        "data": [f for f in fields(DataArguments) if f.init],
        "method": [f for f in ours if f.name not in training and f.name not in RUN_FIELDS],
        "run": [f for f in ours if f.name in training or f.name in RUN_FIELDS],
    }


def settings_epilog(width: int = 100) -> str:
    lines = []
    for group, members in setting_groups().items():
        lines.append(f"{group} settings (default in brackets):")
        for field in members:
            text = f"{field.metadata.get('help', '').strip()} [{_default(field)}]"
            head = f"  --{field.name}"
            body = textwrap.wrap(text, width=width - 30) or [""]
            first = f"{head:<30}{body[0]}" if len(head) < 29 else f"{head}\n{'':<30}{body[0]}"
            lines.append(first)
            lines.extend(f"{'':<30}{rest}" for rest in body[1:])
        lines.append("")
    lines.append(textwrap.fill(
        "Every other transformers.TrainingArguments field (bf16, gradient_accumulation_steps, save_steps, "
        "dataloader_num_workers, push_to_hub, ...) is accepted as --key value as well; see " + TRAINING_ARGUMENTS_DOCS,
        width=width))
    return "\n".join(lines)
