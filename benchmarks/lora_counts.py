"""LoRA parameter counts of the supported model families (docs/usage.md, "Other backbones"): trainable lora_B
parameters at r=32 on the default targets (k_proj, v_proj, fc1, fc2 of every encoder block of both towers), for
published checkpoints' shapes, counted on the meta device (no download, no weights) through the same family
adapter and ``add_lora`` that a run uses.

    python benchmarks/lora_counts.py [--r 32] [--markdown]

Each config below holds the values of the checkpoint's config.json on the Hub (its ``text_config`` /
``vision_config`` / ``projection_dim``); what a SigLIP config.json leaves out is transformers' ``SiglipConfig``
default, which is the base shape (768 wide, 12 blocks, MLP 3072, patch 16, 224 px, 64 text tokens). The counts
depend only on the widths and block counts: a B matrix of a layer with ``out`` outputs has ``out * r`` entries.
"""

from __future__ import annotations

import argparse
import json

CLIP_TEXT_B = {"hidden_size": 512, "intermediate_size": 2048, "num_hidden_layers": 12, "num_attention_heads": 8,
               "max_position_embeddings": 77, "vocab_size": 49408}
CLIP_TEXT_L = {**CLIP_TEXT_B, "hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12}
CLIP_VISION_B = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
                 "image_size": 224}
CLIP_VISION_L = {"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24, "num_attention_heads": 16,
                 "image_size": 224, "patch_size": 14}

# checkpoint -> (family, config values from its config.json on the Hub)
CHECKPOINTS = {
    "openai/clip-vit-base-patch32": ("clip", {"text_config": CLIP_TEXT_B, "projection_dim": 512,
                                              "vision_config": {**CLIP_VISION_B, "patch_size": 32}}),
    "openai/clip-vit-base-patch16": ("clip", {"text_config": CLIP_TEXT_B, "projection_dim": 512,
                                              "vision_config": {**CLIP_VISION_B, "patch_size": 16}}),
    "openai/clip-vit-large-patch14": ("clip", {"text_config": CLIP_TEXT_L, "projection_dim": 768,
                                               "vision_config": CLIP_VISION_L}),
    "openai/clip-vit-large-patch14-336": ("clip", {"text_config": CLIP_TEXT_L, "projection_dim": 768,
                                                   "vision_config": {**CLIP_VISION_L, "image_size": 336}}),
    "google/siglip-base-patch16-224": ("siglip", {"text_config": {"vocab_size": 32000}, "vision_config": {}}),
    "google/siglip2-base-patch16-224": ("siglip", {"text_config": {"vocab_size": 256000}, "vision_config": {}}),
}
PAPER_TARGETS = ("k_proj", "v_proj", "fc1", "fc2")


def build_config(family: str, values: dict):
    from transformers import CLIPConfig, SiglipConfig

    return (CLIPConfig if family == "clip" else SiglipConfig)(**values)


def count(family: str, values: dict, r: int = 32, targets=PAPER_TARGETS) -> dict:
    """Trainable (lora_B) parameters per tower, and what the default targets name, for one checkpoint's shape."""
    import torch

    from segp_hf.modeling.families import FAMILY_NAMES
    from segp_hf.modeling.student import add_lora

    adapter = FAMILY_NAMES[family]
    with torch.device("meta"):
        model = add_lora(adapter.model_class()(build_config(family, values)), r=r, target_modules=targets)
    towers = {tower: sum(p.numel() for n, p in model.named_parameters() if p.requires_grad and f".{tower}." in n)
              for tower in ("text_model", "vision_model")}
    layers = sum(1 for n, _ in model.named_modules() if n.endswith(".lora_B.default"))
    return {"family": family, "model_class": adapter.model_class_name, "lora_layers": layers, **towers,
            "trainable": sum(towers.values())}


def table(rows: dict, r: int) -> str:
    lines = [f"| checkpoint | family (class) | LoRA layers | lora_B text | lora_B vision | lora_B total (r={r}) |",
             "|---|---|---|---|---|---|"]
    for name, row in rows.items():
        lines.append(f"| `{name}` | {row['family']} (`{row['model_class']}`) | {row['lora_layers']} | "
                     f"{row['text_model']:,} | {row['vision_model']:,} | {row['trainable']:,} "
                     f"({row['trainable'] / 1e6:.2f}M) |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--r", type=int, default=32)
    parser.add_argument("--markdown", action="store_true", help="print the docs table instead of JSON")
    args = parser.parse_args(argv)
    rows = {name: count(family, values, args.r) for name, (family, values) in CHECKPOINTS.items()}
    print(table(rows, args.r) if args.markdown else json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
