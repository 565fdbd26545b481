"""Peak memory: one SeGP-CL task vs one plain LoRA task, same model, data and batch.

    python benchmarks/memory.py [--layers 2 --batch 32 --steps 4 --repeats 2]

Each case runs in a fresh Python process (so one case's peak cannot hide another's) through
SeGPTrainer.train() with the real callbacks, on the scaled-down task of anchor_cost.py (2 old classes ->
10 anchors, 111 fabricated training images, batch 32 + 8 anchors; --steps optimizer steps, enough to reach
the steady peak):
  segp     variant segp-cl: TSGR reference text, seed scoring, DPGD anchors with their cached teacher
           logits and raw features, training with the anchor mini-batch in the batch, prototype transfer and
           the new prototypes (everything SeGP-CL keeps is alive at the peak)
  lora     variant lora on the same data and batch (no anchors, no teacher targets, no prototypes)
  lora+A   variant lora on batch + anchor mini-batch images (the floor for SeGP-CL's forward + backward)
  baseline the same process up to the start of training (interpreter, torch, model, data): not a task
Peak = the process's peak resident memory (getrusage ru_maxrss) on CPU; on CUDA also
torch.cuda.max_memory_allocated. The median over repeats is reported.
Target (issue 6): peak(segp) / peak(lora) <= 1.15.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402
import torch  # noqa: E402

TARGET = 1.15
CASES = ("segp", "lora", "lora+A", "baseline")


def run_case(args) -> dict:
    """One case, in this (fresh) process; returns its peaks."""
    from transformers import default_data_collator

    from segp_hf.callbacks import PrototypeCallback, TeacherTargetsCallback
    from segp_hf.config import SeGPConfig
    from segp_hf.method.task_state import TaskState
    from segp_hf.modeling.student import build_lora_clip, logit_scale_of
    from segp_hf.trainer import SeGPTrainer

    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = torch.cuda.is_available()
    generator = torch.Generator().manual_seed(args.seed)
    anchors = 5 * args.old_classes
    classes = args.old_classes + args.new_classes
    anchor_batch = max(1, args.batch // 4)  # the paper's 32 anchors per batch of 128
    with C.temp_model_dir() as tmp:
        path = C.save_vit_b32_shaped_clip(Path(tmp) / "clip", args.layers, args.seed)
        model = build_lora_clip(path, r=args.lora_r)
        text_inputs = C.fabricated_text_inputs(classes, args.prompt_tokens, generator)
        labels = args.old_classes + torch.arange(args.images) % args.new_classes
        dataset = C.FabricatedImages(args.images, labels, generator)
        variant = "segp-cl" if args.case == "segp" else "lora"
        batch = args.batch + anchor_batch if args.case == "lora+A" else args.batch
        state = TaskState.for_run(variant, text_inputs, logit_scale_of(model))
        state.begin_task(1, (args.old_classes, classes), dataset, default_data_collator)
        if variant == "segp-cl":
            state.prototypes = torch.randn(args.old_classes, 768, generator=generator)
        config = SeGPConfig(
            output_dir=str(Path(tmp) / "out"), use_cpu=not cuda, report_to="none", disable_tqdm=True,
            save_strategy="no", logging_steps=10_000, seed=args.seed, variant=variant,
            per_device_train_batch_size=batch, per_device_eval_batch_size=64, max_steps=args.steps,
            anchor_batch_size=anchor_batch, anchors_per_class=5, dpgd_steps=10, dataloader_num_workers=0,
        )
        trainer = SeGPTrainer(model=model, args=config, train_dataset=dataset, data_collator=default_data_collator,
                              task_state=state, callbacks=[TeacherTargetsCallback(state), PrototypeCallback(state)])
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        before = C.peak_rss_mib()
        if args.case != "baseline":
            trainer.train()
        kept = {}
        if state.anchors is not None:
            kept["anchors_mib"] = sum(t.numel() * t.element_size() for t in
                                      (state.anchors.pixel_values, state.anchors.targets, state.anchors.teacher_logits,
                                       state.anchors.teacher_raw)) / 2**20
            assert len(state.anchors) == anchors
        if state.prototypes is not None:
            kept["prototypes_mib"] = state.prototypes.numel() * state.prototypes.element_size() / 2**20
        return {"case": args.case, "batch": batch, "peak_rss_mib": C.peak_rss_mib(), "rss_peak_before_training_mib": before,
                "cuda_max_allocated_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else None, **kept}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    C.add_model_arguments(parser)
    parser.set_defaults(repeats=2)
    parser.add_argument("--batch", type=int, default=32, help="Training images per step (anchors: a quarter more).")
    parser.add_argument("--steps", type=int, default=4, help="Optimizer steps per task.")
    parser.add_argument("--old_classes", type=int, default=2)
    parser.add_argument("--new_classes", type=int, default=2)
    parser.add_argument("--images", type=int, default=111, help="Training images of the task.")
    parser.add_argument("--case", choices=CASES, help=argparse.SUPPRESS)  # a child process runs one case
    parser.add_argument("--out", default="benchmarks/results/memory.json")
    args = parser.parse_args(argv)

    if args.case:
        print("RESULT " + json.dumps(run_case(args)), flush=True)
        return

    child_args = [a for a in (argv if argv is not None else sys.argv[1:])]
    results = {case: [] for case in CASES}
    for round_ in range(args.repeats):
        for case in (CASES if round_ % 2 == 0 else CASES[::-1]):
            done = subprocess.run([sys.executable, __file__, *child_args, "--case", case],
                                  capture_output=True, text=True, check=False)
            lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
            if done.returncode or not lines:
                sys.stderr.write(done.stdout[-3000:] + done.stderr[-3000:])
                raise SystemExit(f"case {case} failed")
            results[case].append(json.loads(lines[-1][len("RESULT "):]))
            print(f"round {round_} {case}: peak RSS {results[case][-1]['peak_rss_mib']:.0f} MiB", flush=True)

    key = "cuda_max_allocated_mib" if torch.cuda.is_available() else "peak_rss_mib"
    peak = {case: statistics.median(r[key] for r in runs) for case, runs in results.items()}
    base = peak["baseline"]
    ratios = {"segp/lora": peak["segp"] / peak["lora"], "segp/lora+A": peak["segp"] / peak["lora+A"]}
    if key == "peak_rss_mib":
        ratios["(segp-baseline)/(lora-baseline)"] = (peak["segp"] - base) / (peak["lora"] - base)
    kept = {k: v for k, v in results["segp"][0].items() if k.endswith("_mib") and k.startswith(("anchors", "prototypes"))}
    print(f"\nPeak memory: ViT-B/32-shaped CLIP, {args.layers}+{args.layers} layers, LoRA r={args.lora_r}, "
          f"batch {args.batch} (+{max(1, args.batch // 4)} anchors), {args.images} images, {args.steps} steps, "
          f"{args.repeats} repeats, one fresh process per case; measure: {key}")
    print(f"{'case':<10} {'batch':>6} {'median MiB':>11} {'min':>7} {'max':>7}")
    for case, runs in results.items():
        values = [r[key] for r in runs]
        print(f"{case:<10} {runs[0]['batch']:>6} {peak[case]:>11.0f} {min(values):>7.0f} {max(values):>7.0f}")
    print(f"segp / lora   = {ratios['segp/lora']:.3f}  (target <= {TARGET}: {'met' if ratios['segp/lora'] <= TARGET else 'NOT met'})")
    print(f"segp / lora+A = {ratios['segp/lora+A']:.3f}  (reported only)")
    if "(segp-baseline)/(lora-baseline)" in ratios:
        print(f"above the baseline process: segp / lora = {ratios['(segp-baseline)/(lora-baseline)']:.3f}")
    print("kept by SeGP-CL after the task: " + ", ".join(f"{k} {v:.2f}" for k, v in kept.items()))
    C.write_json(args.out, {
        "benchmark": "memory",
        "settings": C.run_settings(args),
        "machine": C.machine(),
        "measure": key,
        "runs": results,
        "median_mib": peak,
        "ratios": ratios,
        "kept_by_segp": kept,
        "target_segp_over_lora": TARGET,
        "target_met": ratios["segp/lora"] <= TARGET,
    })


if __name__ == "__main__":
    main()
