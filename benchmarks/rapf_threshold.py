"""RAPF's hard-pair threshold (docs/variants.md, R6) for a recipe's text tower: the distances between the
normalised prompt embeddings of every (old class, new class) pair of the task order, their quantiles, and how many
pairs each candidate threshold selects per task. The shapes default (0.9) was chosen from this on the toy CLIP.

    python benchmarks/rapf_threshold.py [--config RECIPE.yaml] [--thresholds 0.55 0.65 0.9 ...]
"""

from __future__ import annotations

import argparse
import tempfile

import torch
from transformers import AutoTokenizer

from segp_hf.data.scenario import prompts_for, tokenize_prompts
from segp_hf.modeling.student import build_lora_clip, encode_texts, resolve_model_path
from segp_hf.recipe import load_recipe, parse_config
from segp_hf.run.continual import build_scenario


def old_new_distances(config_path: str | None) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Per task t >= 1, the (old, new) pairs' distances ||u_n/|u_n| - u_o/|u_o|||, and all of them together."""
    with tempfile.TemporaryDirectory() as scratch:
        model_args, data_args, _ = parse_config(load_recipe(config_path), ["--output_dir", scratch])
        scenario, template = build_scenario(model_args, data_args)
    path = resolve_model_path(model_args.model_name_or_path)
    model = build_lora_clip(path, r=1).eval()  # B = 0: exactly the frozen text tower RAPF uses
    tokens = tokenize_prompts(AutoTokenizer.from_pretrained(path), prompts_for(scenario.ordered_class_names, template))
    with torch.no_grad():
        text = encode_texts(model, **tokens)  # normalised
    distances = torch.cdist(text, text)
    per_task = [distances[:start, start:end].flatten() for start, end in scenario.bounds if start > 0]
    return per_task, torch.cat(per_task)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="recipe YAML (default: the offline shapes recipe)")
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.55, 0.65, 0.8, 0.9, 1.0, 1.1])
    args = parser.parse_args()
    per_task, pooled = old_new_distances(args.config)
    quantiles = {q: round(float(pooled.quantile(q)), 3) for q in (0.0, 0.01, 0.05, 0.1, 0.5)}
    print(f"{len(pooled)} (old, new) pairs; distance quantiles {quantiles}")
    for threshold in args.thresholds:
        print(f"theta {threshold}: {int((pooled < threshold).sum())} pairs; per task "
              f"{[int((d < threshold).sum()) for d in per_task]}")


if __name__ == "__main__":
    main()
