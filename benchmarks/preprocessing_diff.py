"""How far HF's CLIP preprocessing is from OpenAI CLIP's reference transform, in normalised pixels.

Reference: OpenAI CLIP's ``_transform(224)`` (github:openai/CLIP clip/clip.py): Resize(224, bicubic),
CenterCrop(224), RGB, ToTensor, Normalize(CLIP mean/std). torchvision is not installable beside this
project's torch 2.13 CPU build, so the reference is written out here with PIL (torchvision's PIL path
calls PIL's ``resize``; its crop offsets are ``int(round((h - 224) / 2))``) and float32 numpy, independently
of ``segp_hf.preprocessing``.

    OMP_NUM_THREADS=1 python benchmarks/preprocessing_diff.py

prints, per image size, max and mean |difference| of ``hf`` (CLIPImageProcessorPil, the default) and of
``openai`` (image_preprocessing: openai) against the reference.
"""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32).reshape(3, 1, 1)
STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32).reshape(3, 1, 1)
SIZES = [(500, 375), (375, 500), (32, 32), (640, 480), (333, 517), (1024, 683)]


def reference(image: Image.Image, n_px: int = 224) -> np.ndarray:
    w, h = image.size
    if w <= h:
        size = (n_px, int(n_px * h / w))
    else:
        size = (int(n_px * w / h), n_px)
    if size != image.size:
        image = image.resize(size, Image.BICUBIC)
    w, h = image.size
    top, left = int(round((h - n_px) / 2.0)), int(round((w - n_px) / 2.0))
    image = image.crop((left, top, left + n_px, top + n_px)).convert("RGB")
    x = np.asarray(image).transpose(2, 0, 1).astype(np.float32) / np.float32(255)
    return (x - MEAN) / STD


def photo_like(width: int, height: int, seed: int = 0) -> Image.Image:
    """Smooth gradients plus noise (edges and texture, like a photo), deterministic."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x / width * 255, y / height * 255, ((x + y) % 64) * 4], axis=-1)
    noisy = base + rng.normal(0, 25, size=base.shape)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def main() -> dict:
    from transformers import CLIPImageProcessorPil

    from segp_hf.modeling.preprocessing import OpenAICLIPTransform

    hf = CLIPImageProcessorPil(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224})
    openai = OpenAICLIPTransform(224, 224, MEAN.ravel(), STD.ravel())
    rows = {}
    for seed, (w, h) in enumerate(SIZES):
        image = photo_like(w, h, seed)
        ref = reference(image)
        ours = hf(images=[image], return_tensors="np")["pixel_values"][0]
        exact = openai(images=[image])["pixel_values"][0]
        rows[f"{w}x{h}"] = {
            "hf_max": float(np.abs(ours - ref).max()), "hf_mean": float(np.abs(ours - ref).mean()),
            "openai_max": float(np.abs(exact - ref).max()), "openai_mean": float(np.abs(exact - ref).mean()),
        }
    for size, row in rows.items():
        print(f"{size:>9}: hf max {row['hf_max']:.3g} mean {row['hf_mean']:.3g} | "
              f"openai max {row['openai_max']:.3g} mean {row['openai_mean']:.3g}")
    print(json.dumps(rows))
    return rows


if __name__ == "__main__":
    main()
