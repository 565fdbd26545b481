"""Counts every image decode of a process, its DataLoader workers and (as ``sitecustomize``) the ranks a launcher
starts: one line ``<rank> <sha1 of the decoded pixels>`` per decode, appended to a log file.

The count sits at PIL's ``ImageFile.load`` (where a stored JPEG/PNG is really decoded, whoever asks: our
``decode_rgb``, ``datasets``' own decoding, a processor), so a decode path nobody knew of is counted too.
Decodes per distinct image = lines / distinct hashes."""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from pathlib import Path

LOG_VARIABLE = "SEGP_HF_DECODE_LOG"


def install(log_path) -> None:
    """Count this process's decodes (and its forked workers') into ``log_path``."""
    from PIL import ImageFile

    original = ImageFile.ImageFile.load
    if getattr(original, "counting_into", None) is not None:
        original = original.original
    path = str(log_path)

    def load(self):
        decoding = bool(getattr(self, "tile", None))  # an image already loaded has no tiles left
        out = original(self)
        if decoding:
            line = f"{os.environ.get('RANK', '0')} {hashlib.sha1(self.tobytes()).hexdigest()}\n"
            with open(path, "a") as log:  # O_APPEND: lines from several processes never interleave
                log.write(line)
        return out

    load.counting_into, load.original = path, original
    ImageFile.ImageFile.load = load


def uninstall() -> None:
    from PIL import ImageFile

    if getattr(ImageFile.ImageFile.load, "counting_into", None) is not None:
        ImageFile.ImageFile.load = ImageFile.ImageFile.load.original


def count_decode_rgb(patch) -> Counter:
    """Count, in this process, every ``decode_rgb`` of either path (cached or not), keyed by the stored image's
    bytes: ``patch`` is pytest's monkeypatch (the count ends with the test)."""
    from segp_hf.data import pixel_cache
    from segp_hf.data import scenario as scenario_module

    counts, original = Counter(), scenario_module.decode_rgb

    def counting(image):
        counts[hashlib.sha1(image["bytes"]).hexdigest()] += 1
        return original(image)

    patch.setattr(pixel_cache, "decode_rgb", counting)
    patch.setattr(scenario_module, "decode_rgb", counting)
    return counts


def sitecustomize_dir(folder: Path, log_path: Path) -> dict:
    """A folder holding a ``sitecustomize.py`` that installs the counter in every Python process started with
    it on PYTHONPATH; returns the environment entries to start them with."""
    folder.mkdir(parents=True, exist_ok=True)
    here = Path(__file__).parent
    (folder / "sitecustomize.py").write_text(
        f"import os, sys\nsys.path.insert(0, {str(here)!r})\nimport decode_counter\n"
        f"decode_counter.install(os.environ[{LOG_VARIABLE!r}])\n"
    )
    return {"PYTHONPATH": os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
            LOG_VARIABLE: str(log_path)}


def read(log_path) -> list[tuple[str, str]]:
    """(rank, image hash) of every decode logged."""
    path = Path(log_path)
    if not path.exists():
        return []
    return [tuple(line.split()) for line in path.read_text().splitlines() if line.strip()]


def decodes_per_image(entries) -> float:
    counts = Counter(key for _, key in entries)
    return len(entries) / max(len(counts), 1)
