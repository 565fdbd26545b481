"""Cached uint8 pixels -> the model's float input, bit-identical to the image processor's own output.

The processor resizes and crops uint8 images to uint8 (PIL backend), then rescales and normalises each value
independently, so the float input is a function of (channel, uint8 value) only. ``normalisation_table``
computes that function for all 3 x 256 values by running the processor itself on a 16x16 image holding every
value, and normalising is a table lookup (tests/test_pixel_cache.py checks equality with the processor's own
output, CIFAR-sized and ImageNet-sized).
"""

from __future__ import annotations

import numpy as np
import torch

from .errors import DataError


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
    def from_processor(cls, processor) -> "PixelNormalizer":
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
