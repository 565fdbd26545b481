"""Pixel cache: every stored image is decoded, resized and cropped at most once per run.

The paper uses no augmentation, so an image's model input never changes: the uncached path re-decodes and
re-resizes it in every epoch, for seed scoring, DPGD seeds, prototypes and every evaluation. Here the image
processor's resize + crop output (uint8, channels first) is kept in a slot of a ``PixelStore`` (process memory,
shared memory when DataLoader workers fill it, or a memory-mapped file), batches carry uint8 pixels, and
``PixelNormalizer`` turns them into the model's float input on the model's device.

Bit-identical to the uncached path: see data/pixel_normalizer.py. Whole batches are handed to the DataLoader
by data/ready_batches.py.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import DataError
from .images import decode_rgb
# moved to data/pixel_normalizer.py and data/ready_batches.py; kept for old imports
from .pixel_normalizer import PixelNormalizer, model_pixels, normalisation_table  # noqa: F401
from .ready_batches import CachedSplit, ReadyBatch, ReadyBatchCollator, loader_workers, ready_batches  # noqa: F401

logger = logging.getLogger(__name__)

CACHE_MODES = ("memory", "disk", "off")
GIB = 1024**3


# ------------------------------------------------------------------------------------------------ storage
def pixel_shape(processor) -> tuple[int, int, int] | None:
    """(3, H, W) of every processed image, or None when the output size depends on the image."""
    if getattr(processor, "do_center_crop", False):
        crop = processor.crop_size
        return 3, int(crop["height"]), int(crop["width"])
    size = getattr(processor, "size", None) or {}
    if getattr(processor, "do_resize", False) and size.get("height") and size.get("width"):
        return 3, int(size["height"]), int(size["width"])
    return None


class PixelStore:
    """``count`` uint8 slots of ``shape`` with a filled flag each. ``mode``: 'memory' (this process; ``shared``
    puts it in shared memory so DataLoader worker processes fill the parent's copy) or 'disk' (a memory-mapped
    file at ``path``, shared with workers by construction). Pages are only committed when a slot is written."""

    def __init__(self, count: int, shape: tuple[int, int, int], mode: str = "memory", path: Path | None = None,
                 shared: bool = False):
        self.count, self.shape, self.mode, self.path = count, tuple(shape), mode, path
        size = count * int(np.prod(shape))
        if mode == "disk":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.unlink(missing_ok=True)
            flat = torch.from_file(str(path), shared=True, size=max(size, 1), dtype=torch.uint8)
        else:
            flat = torch.empty(max(size, 1), dtype=torch.uint8)
        self.pixels = flat[:size].view(count, *shape)
        self.filled = torch.zeros(count, dtype=torch.bool)
        if shared and mode == "memory":
            self.pixels.share_memory_()
        if shared or mode == "disk":
            self.filled.share_memory_()
        self.shared = shared or mode == "disk"  # other processes (DataLoader workers) can fill it

    @property
    def nbytes(self) -> int:
        return self.pixels.numel()

    def close(self):
        if self.mode == "disk" and self.path is not None:
            self.path.unlink(missing_ok=True)


def store_bytes(count: int, shape) -> int:
    return count * int(np.prod(shape))


# -------------------------------------------------------------------------------------------- transform
class CachedImageLabelTransform:
    """Batch transform of a subset carrying a ``pixel_slot`` column: uint8 ``pixel_values`` read from the
    store, decoding (``decode_rgb``), resizing and cropping only the slots not filled yet; native labels ->
    class-order positions. ``source`` is the split's image column (undecoded), ``rows`` the split row of each
    slot."""

    def __init__(self, store: PixelStore, rows: np.ndarray, source, processor, position_of_label,
                 image_column="image", label_column="label"):
        self.store, self.rows, self.source, self.processor = store, rows, source, processor
        self.position_of_label = position_of_label
        self.image_column, self.label_column = image_column, label_column

    def fill(self, slots: np.ndarray):
        records = self.source[[int(r) for r in self.rows[slots]]][self.image_column]
        images = [decode_rgb(record) for record in records]
        pixels = self.processor(images=images, do_rescale=False, do_normalize=False, return_tensors="np")["pixel_values"]
        if pixels.dtype != np.uint8 or tuple(pixels.shape[1:]) != self.store.shape:
            raise DataError(f"the image processor's resize/crop gives {pixels.dtype} {tuple(pixels.shape[1:])}, not uint8 "
                            f"{self.store.shape}: the pixel cache cannot store it exactly (set --pixel_cache off)")
        index = torch.as_tensor(slots, dtype=torch.long)
        self.store.pixels[index] = torch.from_numpy(pixels)
        self.store.filled[index] = True

    def read(self, slots: np.ndarray) -> torch.Tensor:
        """uint8 (len(slots), 3, H, W) of these slots, filling the missing ones first. One gather (numpy's
        ``take``: a row-wise memcpy, ~6x faster than torch's advanced indexing on uint8 here)."""
        slots = np.asarray(slots, dtype=np.int64)
        missing = slots[~self.store.filled.numpy()[slots]]
        if len(missing):
            self.fill(np.unique(missing))
        return torch.from_numpy(np.take(self.store.pixels.numpy(), slots, axis=0))

    def __call__(self, batch):
        labels = torch.as_tensor(self.position_of_label[np.asarray(batch[self.label_column])], dtype=torch.long)
        out = {"pixel_values": self.read(batch["pixel_slot"]), "labels": labels}
        if "sample_index" in batch:
            out["sample_index"] = torch.as_tensor(batch["sample_index"], dtype=torch.long)
        return out


# ------------------------------------------------------------------------------------------------ policy
@dataclass
class CachePlan:
    """The cache a run uses: mode after the budget check, and where disk stores go."""

    mode: str
    shape: tuple[int, int, int] | None
    directory: Path | None = None
    shared: bool = False
    rank: int = 0


def plan_cache(mode: str, processor, need_bytes: int, budget_gb: float, directory: Path | None,
               workers: int = 0, rank: int = 0) -> CachePlan:
    """Choose the cache for a run needing ``need_bytes`` of pixels: the requested mode if it fits, else the
    next one down (memory -> disk -> off), each fallback logged with what to change."""
    if mode not in CACHE_MODES:
        raise DataError(f"pixel_cache={mode!r} is not valid; choose one of: {', '.join(CACHE_MODES)}")
    shape = pixel_shape(processor) if processor is not None else None
    if mode == "off" or processor is None:
        return CachePlan("off", shape)
    if shape is None:
        logger.warning("pixel cache off: the image processor's output size depends on the image (no center crop)")
        return CachePlan("off", shape)
    need_gb = need_bytes / GIB
    if mode == "memory":
        shared = workers > 0
        room = _free_bytes("/dev/shm") if shared else None
        if need_gb <= budget_gb and (room is None or need_bytes <= room):
            return CachePlan("memory", shape, shared=shared, rank=rank)
        why = (f"needs {need_gb:.2f} GB > --pixel_cache_budget_gb {budget_gb:g}" if need_gb > budget_gb else
               f"needs {need_gb:.2f} GB of shared memory for the DataLoader workers, /dev/shm has {room / GIB:.2f} GB")
        logger.warning("pixel cache in memory %s; falling back to a memory-mapped file under the output dir "
                       "(raise the budget, or set --pixel_cache disk / off to choose)", why)
        mode = "disk"
    if mode == "disk":
        if directory is not None:
            room = _free_bytes(directory)
            if room is None or need_bytes <= room:
                return CachePlan("disk", shape, directory=directory, rank=rank)
            logger.warning("pixel cache on disk needs %.2f GB, %s has %.2f GB free; pixel cache off (every image is "
                           "decoded again at each use)", need_gb, directory, room / GIB)
        else:
            logger.warning("pixel cache on disk needs a directory (the run's output_dir); pixel cache off")
    return CachePlan("off", shape)


def _free_bytes(path) -> int | None:
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None
