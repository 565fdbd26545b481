"""Where a competitor keeps its state across tasks: ``variant_state.safetensors`` (tensors) and
``variant_state.json`` (the rest) in a task folder (``task-k``) or a Trainer checkpoint inside a task.
The Hub push uploads the whole task folder, so they travel with it; ``load_task`` reads them back."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

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
