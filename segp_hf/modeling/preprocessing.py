"""The image preprocessing a run uses, chosen explicitly so pixels do not depend on what is installed.

transformers 5.x's ``CLIPImageProcessor`` is the torchvision backend when torchvision is installed and
silently falls back to ``CLIPImageProcessorPil`` when it is not, so a GPU box and CI could feed the model
different pixels. ``image_preprocessing`` picks one:

- ``hf`` (default): ``CLIPImageProcessorPil`` (``SiglipImageProcessorPil`` for a SigLIP checkpoint) with the
  checkpoint's preprocessor config, on every machine.
- ``openai`` (CLIP checkpoints only): OpenAI CLIP's own transform (``clip/clip.py`` ``_transform`` in
  github:openai/CLIP): bicubic resize of the short side, center crop, RGB, ``ToTensor``, normalise, written here
  with PIL and numpy (torchvision's PIL path is PIL's ``resize``; its crop offsets are ``round((h - th) / 2)``).
  ``benchmarks/preprocessing_diff.py`` measures how far ``hf`` is from it.
"""

from __future__ import annotations

import numpy as np

IMAGE_PREPROCESSING = ("hf", "openai")


class OpenAICLIPTransform:
    """OpenAI CLIP's ``_transform(n_px)`` with the processor's call signature:
    ``transform(images=[PIL...], return_tensors="pt")["pixel_values"]``."""

    def __init__(self, size: int, crop: int, mean, std):
        self.size, self.crop = int(size), int(crop)
        self.mean = np.asarray(mean, dtype=np.float32).reshape(3, 1, 1)
        self.std = np.asarray(std, dtype=np.float32).reshape(3, 1, 1)

    def resize(self, image):
        """Short side to ``size``, long side ``int(size * long / short)`` (torchvision's rule), bicubic."""
        from PIL import Image

        width, height = image.size
        short, long = (width, height) if width <= height else (height, width)
        new_short, new_long = self.size, int(self.size * long / short)
        new_size = (new_short, new_long) if width <= height else (new_long, new_short)
        return image if new_size == image.size else image.resize(new_size, Image.BICUBIC)

    def center_crop(self, image):
        width, height = image.size
        if width < self.crop or height < self.crop:  # torchvision pads with zeros first
            from PIL import Image

            padded = Image.new(image.mode, (max(width, self.crop), max(height, self.crop)))
            left, top = (padded.size[0] - width) // 2, (padded.size[1] - height) // 2
            padded.paste(image, (left, top))
            image, (width, height) = padded, padded.size
        top = int(round((height - self.crop) / 2.0))
        left = int(round((width - self.crop) / 2.0))
        return image.crop((left, top, left + self.crop, top + self.crop))

    def pixels(self, image) -> np.ndarray:
        image = self.center_crop(self.resize(image)).convert("RGB")
        array = np.asarray(image, dtype=np.uint8).transpose(2, 0, 1).astype(np.float32) / np.float32(255)
        return (array - self.mean) / self.std

    def __call__(self, images=None, return_tensors=None, **kwargs):
        import torch

        if not isinstance(images, (list, tuple)):
            images = [images]
        batch = np.stack([self.pixels(image) for image in images])
        return {"pixel_values": torch.from_numpy(batch) if return_tensors == "pt" else batch}


def build_image_processor(model_path: str, revision: str | None = None, mode: str = "hf", **kwargs):
    """The preprocessing of ``mode`` (see the module doc) for a checkpoint's preprocessor config, by its model
    family (``families.py``): CLIP's or SigLIP's PIL processor; ``openai`` exists for CLIP only."""
    import transformers

    from .families import family_of_checkpoint

    if mode not in IMAGE_PREPROCESSING:
        from ..errors import RecipeError

        raise RecipeError(f"image_preprocessing={mode!r} is not valid; choose one of: {', '.join(IMAGE_PREPROCESSING)}")
    if revision:
        kwargs["revision"] = revision
    family = family_of_checkpoint(model_path, **kwargs)
    family.check_preprocessing(mode)
    processor = getattr(transformers, family.processor_class_name).from_pretrained(model_path, **kwargs)
    if mode == "hf":
        return processor
    size = processor.size.get("shortest_edge") or processor.size.get("height")
    return OpenAICLIPTransform(size, processor.crop_size["height"], processor.image_mean, processor.image_std)
