"""Inference: dual-path prediction throughput vs plain CLIP zero-shot prediction, side by side on the same
weights and images.

    python benchmarks/inference.py [--layers 2 --batch 64 --classes 20 --repeats 5]

Cases (eval mode, no_grad, text embeddings computed once per evaluation and cached in every case):
  dual       SeGPTrainer.predict_logits: LoRA CLIP (adapter unmerged, as the trainer evaluates it),
             s*cos(image, text) + beta*s*cos(raw, prototype) over the seen classes
  lora-clip  the same LoRA model, CLIP path only (beta = 0): separates the adapter's cost from the
             prototype path's
  zero-shot  the plain CLIPModel (no LoRA) from the same checkpoint: s*cos(image, text)
Target (issue 6): throughput(dual) / throughput(zero-shot) >= 0.95.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402
import torch  # noqa: E402

from segp_hf.config import SeGPConfig  # noqa: E402
from segp_hf.modeling import build_lora_clip, encode_images, encode_texts, load_clip, logit_scale_of  # noqa: E402
from segp_hf.prototypes import dual_path_logits  # noqa: E402
from segp_hf.trainer import SeGPTrainer  # noqa: E402

TARGET = 0.95


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    C.add_model_arguments(parser)
    parser.add_argument("--batch", type=int, default=64, help="Images per prediction batch.")
    parser.add_argument("--beta", type=float, default=0.5)
    parser.add_argument("--out", default="benchmarks/results/inference.json")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    generator = torch.Generator().manual_seed(args.seed)
    with C.temp_model_dir() as tmp:
        path = C.save_vit_b32_shaped_clip(Path(tmp) / "clip", args.layers, args.seed)
        model = build_lora_clip(path, r=args.lora_r)
        # lora_B starts at zero: give it weights so the adapter is not a no-op in any sense
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "lora_B" in name:
                    p.normal_(0, 1e-3, generator=generator)
        plain = load_clip(path)
        text_inputs = C.fabricated_text_inputs(args.classes, args.prompt_tokens, generator)
        scale = logit_scale_of(model)
        state = C.task1_state(text_inputs, args.classes, scale, 1, 768, generator)
        state.prototypes = torch.randn(args.classes, 768, generator=generator)
        config = SeGPConfig(
            output_dir=str(Path(tmp) / "out"), use_cpu=not torch.cuda.is_available(), report_to="none",
            disable_tqdm=True, beta=args.beta, per_device_eval_batch_size=args.batch, seed=args.seed,
        )
        trainer = SeGPTrainer(model=model, args=config, task_state=state)
        model = trainer.model.eval()
        device = next(model.parameters()).device
        plain = plain.to(device).eval()
        pixel_values = torch.randn(args.batch, 3, 224, 224, generator=generator).to(device)
        seen_text = state.seen_text_inputs(device)

        with torch.no_grad():
            lora_text = encode_texts(model, **seen_text)
            plain_text = encode_texts(plain, **seen_text)
        trainer._eval_text = lora_text  # what evaluate() caches on its first batch

        def sync():
            if device.type == "cuda":
                torch.cuda.synchronize()

        def dual():
            with torch.no_grad():
                trainer.predict_logits(model, pixel_values).argmax(-1)
            sync()

        def lora_clip():
            with torch.no_grad():
                embeds, raw = encode_images(model, pixel_values)
                dual_path_logits(embeds, lora_text, raw, None, scale, beta=0.0).argmax(-1)
            sync()

        def zero_shot():
            with torch.no_grad():
                embeds, raw = encode_images(plain, pixel_values)
                dual_path_logits(embeds, plain_text, raw, None, scale, beta=0.0).argmax(-1)
            sync()

        cases = {"dual": dual, "lora-clip": lora_clip, "zero-shot": zero_shot}
        times = C.summary(C.interleaved(cases, args.repeats))

    throughput = {name: args.batch / t["median_s"] for name, t in times.items()}
    ratios = {"dual/zero-shot": throughput["dual"] / throughput["zero-shot"],
              "lora-clip/zero-shot": throughput["lora-clip"] / throughput["zero-shot"]}
    print(f"\nInference: ViT-B/32-shaped CLIP, {args.layers}+{args.layers} layers, LoRA r={args.lora_r}, "
          f"batch {args.batch}, {args.classes} seen classes, {args.repeats} interleaved repeats, "
          f"{torch.get_num_threads()} torch threads")
    print(f"{'case':<10} {'median s':>9} {'images/s':>9}")
    for name, t in times.items():
        print(f"{name:<10} {t['median_s']:>9.3f} {throughput[name]:>9.1f}")
    print(f"dual / zero-shot throughput      = {ratios['dual/zero-shot']:.3f}  (target >= {TARGET}: "
          f"{'met' if ratios['dual/zero-shot'] >= TARGET else 'NOT met'})")
    print(f"lora-clip / zero-shot throughput = {ratios['lora-clip/zero-shot']:.3f}  (reported only)")
    C.write_json(args.out, {
        "benchmark": "inference",
        "settings": vars(args) | {"vision_hidden": 768, "text_hidden": 512, "patch": 32, "image": 224},
        "machine": C.machine(),
        "device": str(device),
        "timings": times,
        "throughput_images_per_s": throughput,
        "ratios": ratios,
        "target_dual_over_zero_shot": TARGET,
        "target_met": ratios["dual/zero-shot"] >= TARGET,
    })


if __name__ == "__main__":
    main()
