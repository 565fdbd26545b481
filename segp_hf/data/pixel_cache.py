"""Pixel cache: every stored image is decoded, resized and cropped at most once per run.

The paper uses no augmentation, so an image's model input never changes: the uncached path re-decodes and
re-resizes it in every epoch, for seed scoring, DPGD seeds, prototypes and every evaluation. Here the image
processor's resize + crop output (uint8, channels first) is kept in a slot of a ``PixelStore`` (process memory,
shared memory when DataLoader workers fill it, or a memory-mapped file), batches carry uint8 pixels, and
``PixelNormalizer`` turns them into the model's float input on the model's device.

Bit-identical to the uncached path: see data/pixel_cache.py. Whole batches are handed to the DataLoader
by data/ready_batches.py.
"""

from __future__ import annotations

import io
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .spec import DataError

# Decoding one stored image to RGB, with an error that names the file to fix.

def decode_rgb(image) -> Image.Image:
    """An RGB PIL image from a decoded image or an undecoded ``{"bytes", "path"}`` record.

    Grayscale, RGBA and palette images are converted; an unreadable or truncated file is a DataError
    naming it (images are decoded here, not by ``datasets``, so the error can say what to fix).
    """
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    source = image.get("path") or "<embedded bytes>"
    try:
        opened = Image.open(io.BytesIO(image["bytes"])) if image.get("bytes") else Image.open(image["path"])
        opened.load()  # forces the full decode, so truncation shows up here
        return opened.convert("RGB")
    except (OSError, ValueError, SyntaxError, TypeError) as error:
        raise DataError(
            f"cannot decode image {source} ({type(error).__name__}: {error}); remove or replace it in the dataset"
        ) from None


# Cached uint8 pixels -> the model's float input, bit-identical to the image processor's own output.
# 
# The processor resizes and crops uint8 images to uint8 (PIL backend), then rescales and normalises each value
# independently, so the float input is a function of (channel, uint8 value) only. ``normalisation_table``
# computes that function for all 3 x 256 values by running the processor itself on a 16x16 image holding every
# value, and normalising is a table lookup (tests/test_pixel_cache.py checks equality with the processor's own
# output, CIFAR-sized and ImageNet-sized).

def normalisation_table(processor) -> torch.Tensor:
    """(3, 256) float32: the processor's model input for each channel and uint8 value (its own rescale and
    normalise, run on an image holding every value, so any mean/std/rescale factor is honoured exactly)."""
    grid = np.repeat(np.arange(256, dtype=np.uint8).reshape(16, 16, 1), 3, axis=2)
    out = processor(images=[grid], do_resize=False, do_center_crop=False, return_tensors="pt")["pixel_values"][0]
    if tuple(out.shape) != (3, 16, 16):
        raise DataError(f"the image processor maps a 16x16 RGB image to {tuple(out.shape)}; the pixel cache needs "
                        "an element-wise rescale/normalise (set --pixel_cache off)")
    return out.reshape(3, 256).float().contiguous()


class PixelNormalizer:
    """uint8 (B, 3, H, W) -> the processor's float32 model input, on any device. Float input passes through
    unchanged (anchors, the uncached path).

    Two exact ways: a gather in the 768-entry table, or, where it reproduces the table bit for bit on that
    device (checked on all 768 values the first time the device is seen), the in-place arithmetic
    ``(x / divisor - mean) / std`` in float32, ~3x faster on a CPU. Both give the table's values: the input is
    a function of (channel, value) only, so equality on every (channel, value) is equality on every image."""

    def __init__(self, table: torch.Tensor, divisor: float | None = None, mean=None, std=None):
        self.table = table.reshape(-1).float()
        self.arithmetic = None if divisor is None else (float(divisor), torch.tensor(mean, dtype=torch.float32),
                                                        torch.tensor(std, dtype=torch.float32))
        self._per_device = {}

    @classmethod
    def from_processor(cls, processor) -> PixelNormalizer:
        table = normalisation_table(processor)
        if getattr(processor, "do_rescale", False) and getattr(processor, "do_normalize", False):
            return cls(table, 1.0 / processor.rescale_factor, processor.image_mean, processor.image_std)
        return cls(table)

    def _on(self, device):
        key = str(device)
        if key not in self._per_device:
            table = self.table.to(device)
            offsets = (torch.arange(3, device=device) * 256).view(1, 3, 1, 1)
            arithmetic = None
            if self.arithmetic is not None:
                divisor, mean, std = self.arithmetic
                arithmetic = (divisor, mean.to(device).view(1, 3, 1, 1), std.to(device).view(1, 3, 1, 1))
                grid = torch.arange(256, device=device, dtype=torch.uint8).expand(1, 3, 1, 256)
                if not torch.equal(self._arithmetic(grid, arithmetic), table.view(1, 3, 1, 256)):
                    arithmetic = None  # not exact on this device: the table it is
            self._per_device[key] = (table, offsets, arithmetic)
        return self._per_device[key]

    @staticmethod
    def _arithmetic(pixels, arithmetic):
        divisor, mean, std = arithmetic
        out = pixels.float()
        return out.div_(divisor).sub_(mean).div_(std)

    def exact_arithmetic(self, device="cpu") -> bool:
        return self._on(torch.device(device))[2] is not None

    def __call__(self, pixel_values: torch.Tensor, device=None) -> torch.Tensor:
        if device is not None:
            pixel_values = pixel_values.to(device, non_blocking=True)
        if pixel_values.dtype != torch.uint8:
            return pixel_values
        table, offsets, arithmetic = self._on(pixel_values.device)
        squeeze = pixel_values.dim() == 3  # one image
        batch = pixel_values.unsqueeze(0) if squeeze else pixel_values
        out = self._arithmetic(batch, arithmetic) if arithmetic is not None else table[batch.long() + offsets]
        return out[0] if squeeze else out


def model_pixels(pixel_values: torch.Tensor, device, normalizer: PixelNormalizer | None) -> torch.Tensor:
    """A batch's ``pixel_values`` as the model's float input on ``device`` (cached batches are uint8)."""
    if pixel_values.dtype == torch.uint8:
        if normalizer is None:
            raise RuntimeError("uint8 pixel_values (pixel cache) reached the model without a PixelNormalizer")
        return normalizer(pixel_values, device)
    return pixel_values.to(device)



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
    file at ``path``, shared with workers by construction). Pages are only committed when a slot is written.

    ``peers`` = (this process's index, the number of processes) among the ranks of one machine that share the
    store: pixels and flags then live in files at ``path`` (under the output dir, or /dev/shm for 'memory')
    that every peer opens (the first creates them, none truncates another's), each peer decodes its own share
    of the slots (``share``) and reads the others' once they are filled (``wait_for_peers``)."""

    def __init__(self, count: int, shape: tuple[int, int, int], mode: str = "memory", path: Path | None = None,
                 shared: bool = False, peers: tuple[int, int] = (0, 1)):
        self.count, self.shape, self.mode, self.path, self.peers = count, tuple(shape), mode, path, tuple(peers)
        size = count * int(np.prod(shape))
        if self.across_processes:
            self.pixels = _mapped(path, size).view(count, *shape)
            self.filled = _mapped(flags_path(path), count).view(torch.bool)
            self.shared = True
            return
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
    def across_processes(self) -> bool:
        """Shared with the other ranks of this machine (not only with this process's DataLoader workers)."""
        return self.peers[1] > 1 and self.path is not None

    @property
    def nbytes(self) -> int:
        return self.pixels.numel()

    def share(self, slots: np.ndarray) -> np.ndarray:
        """The mask of ``slots`` this process decodes: a contiguous range of slot ids, the same on every peer
        whatever each has filled already (1/peers of the store each)."""
        index, peers = self.peers
        lo, hi = self.count * index // peers, self.count * (index + 1) // peers
        return (slots >= lo) & (slots < hi)

    def wait_for_peers(self, slots: np.ndarray, patience_s: float) -> np.ndarray:
        """Wait while the peers fill ``slots``; the slots still empty once none was filled for ``patience_s``
        seconds (a peer that is not decoding them: this process decodes those itself)."""
        pending, progress = np.asarray(slots, dtype=np.int64), time.monotonic()
        while len(pending):
            still = pending[~self.filled.numpy()[pending]]
            if len(still) < len(pending):
                progress = time.monotonic()
            pending = still
            if not len(pending) or time.monotonic() - progress > patience_s:
                break
            time.sleep(0.005)
        return pending

    def close(self):
        if self.path is not None and (self.mode == "disk" or self.across_processes):
            self.path.unlink(missing_ok=True)
            flags_path(self.path).unlink(missing_ok=True)

    def release_name(self):
        """Once every peer has it open (it filled its share): remove the files' names, so nothing stays in
        /dev/shm or the output dir after the run, whatever way it ends; the mappings live on until closed."""
        if self.across_processes:
            self.close()


def flags_path(path: Path) -> Path:
    return path.with_name(path.name + ".filled")


def _mapped(path: Path, size: int) -> torch.Tensor:
    """``size`` bytes of the file at ``path``, mapped shared: created zero-filled by the first process to open it,
    opened as it is by the others (never truncated, so a peer's filled slots stay)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return torch.from_file(str(path), shared=True, size=max(size, 1), dtype=torch.uint8)[:size]


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
    """The cache a run uses: mode after the budget check, where disk stores go, and the ranks of this machine
    that share its stores (``peers``: this process's index among them, their number)."""

    mode: str
    shape: tuple[int, int, int] | None
    directory: Path | None = None
    shared: bool = False
    peers: tuple[int, int] = (0, 1)

    def store_path(self, name: str) -> Path | None:
        """Where store ``name`` lives (None: this process's memory)."""
        if self.directory is None or (self.mode == "memory" and self.peers[1] == 1):
            return None
        return self.directory / f"{name}.u8"


def plan_cache(mode: str, processor, need_bytes: int, budget_gb: float, directory: Path | None,
               workers: int = 0, peers: tuple[int, int] = (0, 1), shm_directory: Path | None = None,
               budget_name: str = "--pixel_cache_budget_gb") -> CachePlan:
    """Choose the cache for a run needing ``need_bytes`` of pixels: the requested mode if it fits, else the
    next one down (memory -> disk -> off), each fallback logged with what to change. ``peers``: the ranks of
    this machine that share one copy (the budget counts the machine); in memory their stores are files in
    ``shm_directory`` (under /dev/shm), on disk in ``directory``. ``budget_name``: what the warnings call
    ``budget_gb``."""
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
        across = peers[1] > 1 and shm_directory is not None
        shared = workers > 0 or across
        room = _free_bytes("/dev/shm") if shared else None
        if need_gb <= budget_gb and (room is None or need_bytes <= room):
            return CachePlan("memory", shape, directory=shm_directory if across else None, shared=shared,
                             peers=peers if across else (0, 1))
        why = (f"needs {need_gb:.2f} GB > {budget_name} {budget_gb:.3g}" if need_gb > budget_gb else
               f"needs {need_gb:.2f} GB of shared memory for the DataLoader workers or ranks, /dev/shm has "
               f"{room / GIB:.2f} GB")
        logger.warning("pixel cache in memory %s; falling back to a memory-mapped file under the output dir "
                       "(raise the budget, or set --pixel_cache disk / off to choose)", why)
        mode = "disk"
    if mode == "disk":
        if directory is not None:
            room = _free_bytes(directory)
            if room is None or need_bytes <= room:
                return CachePlan("disk", shape, directory=directory, peers=peers)
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
