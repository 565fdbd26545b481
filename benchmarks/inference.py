"""Inference: dual-path prediction throughput vs plain CLIP zero-shot prediction, side by side on the same
weights and images.

    python benchmarks/inference.py [--layers 2 --batch 64 --classes 20 --repeats 5]

Cases (eval mode, no_grad, text embeddings computed once per evaluation and cached in every case):
  dual-merged  SeGPTrainer.predict_logits on segp_hf.modeling.merged_copy(model): the LoRA merged into the
               base weights (what load_task / segp-hf eval predict with),
               s*cos(image, text) + beta*s*cos(raw, prototype) over the seen classes
  dual         the same on the LoRA CLIP with the adapter unmerged (SeGPTrainer's default evaluation)
  lora-clip    the unmerged LoRA model, CLIP path only (beta = 0): separates the adapter's cost from the
               prototype path's
  zero-shot    the plain CLIPModel (no LoRA) from the same checkpoint: s*cos(image, text)
Target (issue 6): throughput(dual-merged) / throughput(zero-shot) >= 0.95 (dual / zero-shot is reported).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402
import torch  # noqa: E402

from segp_hf.config import SeGPConfig  # noqa: E402
from segp_hf.method.prototypes import dual_path_logits  # noqa: E402
from segp_hf.modeling.student import (  # noqa: E402
    build_lora_clip,
    encode_images,
    encode_texts,
    load_clip,
    logit_scale_of,
    merged_copy,
)
from segp_hf.trainer import SeGPTrainer  # noqa: E402

TARGET = 0.95


def _with_text(trainer, text, fn):
    """Run ``fn`` with ``text`` as the trainer's cached evaluation text embeddings (each model has its own)."""
    saved, trainer._eval_text = trainer._eval_text, text
    try:
        return fn()
    finally:
        trainer._eval_text = saved


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
        merged = merged_copy(model)
        pixel_values = torch.randn(args.batch, 3, 224, 224, generator=generator).to(device)
        seen_text = state.seen_text_inputs(device)

        with torch.no_grad():
            lora_text = encode_texts(model, **seen_text)
            plain_text = encode_texts(plain, **seen_text)
        trainer._eval_text = lora_text  # what evaluate() caches on its first batch
        with torch.no_grad():
            merged_text = encode_texts(merged, **seen_text)
            max_logit_difference = float((trainer.predict_logits(model, pixel_values[:8])
                                          - _with_text(trainer, merged_text, lambda: trainer.predict_logits(merged, pixel_values[:8]))).abs().max())

        def sync():
            if device.type == "cuda":
                torch.cuda.synchronize()

        def dual():
            with torch.no_grad():
                trainer.predict_logits(model, pixel_values).argmax(-1)
            sync()

        def dual_merged():
            with torch.no_grad():
                _with_text(trainer, merged_text, lambda: trainer.predict_logits(merged, pixel_values)).argmax(-1)
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

        cases = {"dual-merged": dual_merged, "dual": dual, "lora-clip": lora_clip, "zero-shot": zero_shot}
        cpu = {}
        times = C.summary(C.interleaved(cases, args.repeats, cpu_times=cpu))
        merged_bytes = sum(p.numel() * p.element_size() for p in merged.parameters())

    throughput = {name: args.batch / t["median_s"] for name, t in times.items()}
    ratios = {"dual-merged/zero-shot": throughput["dual-merged"] / throughput["zero-shot"],
              "dual/zero-shot": throughput["dual"] / throughput["zero-shot"],
              "lora-clip/zero-shot": throughput["lora-clip"] / throughput["zero-shot"]}
    cpu_ratio = statistics.median(cpu["zero-shot"]) / statistics.median(cpu["dual-merged"])
    print(f"\nInference: ViT-B/32-shaped CLIP, {args.layers}+{args.layers} layers, LoRA r={args.lora_r}, "
          f"batch {args.batch}, {args.classes} seen classes, {args.repeats} interleaved repeats, "
          f"{torch.get_num_threads()} torch threads")
    print(f"{'case':<12} {'median s':>9} {'min s':>8} {'max s':>8} {'images/s':>9} {'cpu s':>7}")
    for name, t in times.items():
        print(f"{name:<12} {t['median_s']:>9.3f} {t['min_s']:>8.3f} {t['max_s']:>8.3f} {throughput[name]:>9.1f} "
              f"{statistics.median(cpu[name]):>7.3f}")
    met = ratios["dual-merged/zero-shot"] >= TARGET
    print(f"dual-merged / zero-shot throughput = {ratios['dual-merged/zero-shot']:.3f}  (target >= {TARGET}: "
          f"{'met' if met else 'NOT met'}; from CPU time: {cpu_ratio:.3f})")
    print(f"dual / zero-shot throughput        = {ratios['dual/zero-shot']:.3f}  (adapter unmerged, reported only)")
    print(f"lora-clip / zero-shot throughput   = {ratios['lora-clip/zero-shot']:.3f}  (reported only)")
    print(f"merged copy: {merged_bytes / 2**20:.0f} MiB of extra weights while it lives; "
          f"max |logit difference| merged vs unmerged = {max_logit_difference:.2e}")
    C.write_json(args.out, {
        "benchmark": "inference",
        "settings": C.run_settings(args),
        "machine": C.machine(),
        "device": str(device),
        "timings": times,
        "cpu_s": cpu,
        "throughput_images_per_s": throughput,
        "ratios": ratios,
        "ratio_dual_merged_over_zero_shot_from_cpu_time": cpu_ratio,
        "merged_copy_extra_bytes": merged_bytes,
        "max_abs_logit_difference_merged_vs_unmerged": max_logit_difference,
        "target_dual_merged_over_zero_shot": TARGET,
        "target_met": met,
    })


if __name__ == "__main__":
    main()
