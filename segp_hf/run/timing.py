"""Where a task's time goes: wall-clock seconds per phase, summed into a dict kept with the task's state."""

from __future__ import annotations

import time
from contextlib import contextmanager

PHASES = ("train_s", "anchors_s", "prototypes_s", "eval_s")


@contextmanager
def timed(store: dict, key: str):
    """Add the seconds the block takes to ``store[key]`` (also when it raises)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        store[key] = store.get(key, 0.0) + time.perf_counter() - start


def task_timing(raw: dict, train_images: int, eval_images: int) -> dict:
    """The per-task record of results.json. ``train_s`` is the Trainer's wall time less the anchor and
    prototype phases, which run inside it (in its callbacks); images/s are images per second of those phases."""
    anchors, prototypes = raw.get("anchors_s", 0.0), raw.get("prototypes_s", 0.0)
    train = max(raw.get("train_s", 0.0) - anchors - prototypes, 0.0)
    timing = {"train_s": train, "anchors_s": anchors, "prototypes_s": prototypes, "eval_s": raw.get("eval_s", 0.0)}
    timing["train_images_per_s"] = train_images / train if train > 0 else None
    timing["eval_images_per_s"] = eval_images / timing["eval_s"] if timing["eval_s"] > 0 else None
    timing["total_s"] = raw.get("total_s", sum(timing[key] for key in PHASES))
    return {key: (round(value, 3) if isinstance(value, float) else value) for key, value in timing.items()}


def format_seconds(seconds: float) -> str:
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{rest:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
