"""What every competitor shares: where it keeps its state across tasks (``variant_state.safetensors`` for the
tensors, ``variant_state.json`` for the rest, in a task folder ``task-k`` or a Trainer checkpoint inside a task;
the Hub push uploads the whole folder, so they travel with it, and ``load_task`` reads them back), and the
callback that ends its task.

A competitor's state class (``variants/<name>/state.py``) has ``fresh(model, seed, device)``, ``load(folder)``,
``save(folder)``, ``restore(folder)``, ``end_task(model, task_state, args)``, ``score(model, pixel_values,
text_embeds, classes, logit_scale, settings)`` and ``scores_held_out``."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import TrainerCallback

from ..modeling.student import eval_mode
from ..run.timing import timed

TENSORS_FILE = "variant_state.safetensors"
META_FILE = "variant_state.json"
STATE_FILES = (TENSORS_FILE, META_FILE)


def save_state(folder, tensors: dict[str, torch.Tensor | None], meta: dict) -> None:
    """Write the tensors (float32 or int64, on the CPU; None entries skipped) and the metadata into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    kept = {name: value.detach().cpu().contiguous() for name, value in tensors.items() if value is not None}
    save_file(kept, str(folder / TENSORS_FILE))
    (folder / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")


def load_state(folder) -> tuple[dict[str, torch.Tensor], dict]:
    """``(tensors, meta)`` saved by :func:`save_state`; a missing file raises FileNotFoundError naming it."""
    folder = Path(folder)
    for name in STATE_FILES:
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder / name} is missing: this variant's state (docs/variants.md) was not saved")
    return load_file(str(folder / TENSORS_FILE)), json.loads((folder / META_FILE).read_text())


class EndOfTaskCallback(TrainerCallback):
    """A competitor's task end: its state's ``end_task`` on the trained model, in eval mode, timed as the task's
    prototypes phase (the slot of SeGP-CL's prototype update, which a competitor's run does not have)."""

    def __init__(self, task_state, variant_state):
        self.state, self.variant_state = task_state, variant_state

    def on_train_end(self, args, state, control, model=None, **kwargs):
        with eval_mode(model), timed(self.state.timing, "prototypes_s"):
            self.variant_state.end_task(model, self.state, args)
