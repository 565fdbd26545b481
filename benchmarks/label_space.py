"""Label-space scaling: one SeGP-CL training step at ViT-B/16 shape against the number of seen classes.

Every step encodes the prompts of every class seen so far through the text tower (ACGD and TSGR need the
student's own old-class texts), so the text tower's share of a step grows with the label space. This measures it.

Step: ``SeGPTrainer.compute_loss`` (CE on the current classes + ACGD on a 32-anchor mini-batch concatenated to
the batch in one image forward + TSGR; one text forward over the seen classes) and ``backward()``, on a CLIP built
from the shipped ``segp_hf/assets/clip-vit-base-patch16/config.json`` (random weights), LoRA r=32 on k_proj,
v_proj, fc1, fc2 of both towers (lora_B trained), at the last task of 10: seen classes C, of them C/10 new.
Prompts: ``--prompt_tokens`` (16) tokens each, padded (the run pads to the benchmark's longest prompt; text FLOPs
are proportional to that length).

- FLOPs (exact, hardware-independent): torch.utils.flop_counter.FlopCounterMode under FakeTensorMode (shapes
  only, nothing computed), at the paper's batch (128 + 32 anchors), for every count in ``--classes`` and
  ``--project``, with eager attention (same arithmetic as SDPA, but the counter has no formula for CPU SDPA
  and would leave the attention matmuls out: ~6% of the vision tower). The step's total is counted on the step
  itself; the text tower's and the vision tower's forward + backward are counted on the same inputs in isolation
  (their FLOPs depend on shapes only; the module tracker's own attribution inside one backward moves
  vision-backward FLOPs to the text tower, so it is not used); rest = step - text - vision (logits, losses).
- Wall clock (this CPU, ``--threads`` 1, bf16 autocast as the recipe, median of ``--repeats``) at the counts in
  ``--timed_classes``: the text tower forward + backward over the seen classes, the vision tower forward +
  backward on ``--timed_batch`` images (scaled linearly to 160), and the whole step at that small batch; share =
  text / (text + vision x 160 / timed_batch + the step's rest).

    python benchmarks/label_space.py        # ~15 min on one core: FLOPs at 100..10,000 classes, wall time at 100, 300
    python benchmarks/label_space.py --tiny # toy widths, seconds (tests/test_label_space.py)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from _common import machine, write_json  # noqa: E402

BATCH, ANCHOR_BATCH, ANCHORS = 128, 32, 64  # the paper's batch and anchor mini-batch; anchors held (any >= 32)


def fabricated_prompts(classes: int, tokens: int, generator) -> dict:
    """Token ids of ``classes`` prompts for gpu_check.save_model's tokenizer ids (bos 2, eos 3, pad 0)."""
    input_ids = torch.zeros(classes, tokens, dtype=torch.long)
    attention_mask = torch.zeros(classes, tokens, dtype=torch.long)
    lengths = torch.randint(max(tokens - 6, 4), tokens + 1, (classes,), generator=generator)
    for i, length in enumerate(lengths.tolist()):
        input_ids[i, 0], input_ids[i, length - 1] = 2, 3
        input_ids[i, 1:length - 1] = torch.randint(4, 1000, (length - 2,), generator=generator)
        attention_mask[i, :length] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def last_task_state(classes: int, tokens: int, logit_scale: float, size: int, raw_dim: int, generator):
    """A TaskState at the last of 10 tasks with ``classes`` seen: anchors (teacher logits, raw features cached as
    TeacherTargetsCallback leaves them) and a reference text geometry, fabricated."""
    from segp_hf.method.anchors import AnchorSet
    from segp_hf.method.task_state import TaskState

    start = classes - max(classes // 10, 1)
    state = TaskState.for_run("segp-cl", fabricated_prompts(classes, tokens, generator), logit_scale)
    state.begin_task(9, (start, classes), None, None)
    state.anchors = AnchorSet(pixel_values=torch.randn(ANCHORS, 3, size, size, generator=generator),
                              targets=torch.arange(ANCHORS) % start,
                              teacher_logits=10 * torch.randn(ANCHORS, start, generator=generator),
                              teacher_raw=torch.randn(ANCHORS, raw_dim, generator=generator))
    state.reference_text = F.normalize(torch.randn(classes, 512, generator=generator), dim=-1)
    return state


def trainer_for(model, state, folder: Path):
    from segp_hf.config import SeGPConfig
    from segp_hf.trainer import SeGPTrainer

    config = SeGPConfig(output_dir=str(folder), use_cpu=True, report_to="none", disable_tqdm=True, bf16=True,
                        anchor_batch_size=ANCHOR_BATCH, per_device_train_batch_size=BATCH, seed=0)
    return SeGPTrainer(model=model, args=config, task_state=state)


def pieces(trainer, state, batch: int, size: int, generator):
    """The step, the text tower and the vision tower as forward + backward closures on the same inputs."""
    from segp_hf.modeling.student import encode_images, encode_texts

    model = trainer.model
    start, end = state.bounds
    pixels = torch.randn(batch, 3, size, size, generator=generator)
    labels = torch.randint(start, end, (batch,), generator=generator)
    images = torch.cat([pixels, state.anchors.pixel_values[:ANCHOR_BATCH]])

    def run(loss):
        def closure():
            model.zero_grad(set_to_none=True)
            with trainer.autocast_smart_context_manager():
                value = loss()
            value.backward()
        return closure

    return {"step": run(lambda: trainer.compute_loss(model, {"pixel_values": pixels, "labels": labels})),
            "text": run(lambda: encode_texts(model, **state.seen_text_inputs(pixels.device)).sum()),
            "vision": run(lambda: encode_images(model, images, trainer.args.raw_feature)[0].sum())}


def count_flops(model, classes: int, tokens: int, folder: Path, size: int, raw_dim: int) -> dict:
    """FLOPs of the step, the text tower and the vision tower (forward + backward) at the paper's batch."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.utils.flop_counter import FlopCounterMode

    from segp_hf.modeling.student import logit_scale_of

    generator = torch.Generator().manual_seed(classes)
    state = last_task_state(classes, tokens, logit_scale_of(model), size, raw_dim, generator)
    trainer = trainer_for(model, state, folder)
    clip = model.base_model.model
    attention = clip.config._attn_implementation
    clip.set_attn_implementation("eager")  # the counter has no formula for CPU SDPA: its matmuls would go uncounted
    counts = {}
    try:
        with FakeTensorMode(allow_non_fake_inputs=True):
            for name, closure in pieces(trainer, state, BATCH, size, generator).items():
                counter = FlopCounterMode(display=False)
                with counter:
                    closure()
                counts[name] = counter.get_total_flops()
    finally:
        clip.set_attn_implementation(attention)
        model.zero_grad(set_to_none=True)
    counts["rest"] = counts["step"] - counts["text"] - counts["vision"]
    return {"classes": classes, "images": BATCH + ANCHOR_BATCH, **{f"{k}_flops": v for k, v in counts.items()},
            "text_share": counts["text"] / counts["step"]}


def time_pieces(model, classes: int, tokens: int, batch: int, repeats: int, folder: Path, size: int,
                raw_dim: int) -> dict:
    """Median wall seconds of the step, text and vision closures at ``batch`` images (+ 32 anchors); the share
    with the vision tower scaled to the paper's 160 images."""
    from segp_hf.modeling.student import logit_scale_of

    generator = torch.Generator().manual_seed(classes)
    state = last_task_state(classes, tokens, logit_scale_of(model), size, raw_dim, generator)
    trainer = trainer_for(model, state, folder)
    closures = pieces(trainer, state, batch, size, generator)
    times = {name: [] for name in closures}
    for repeat in range(repeats + 1):  # the first round warms up
        for name in (list(closures) if repeat % 2 else list(closures)[::-1]):
            start = time.perf_counter()
            closures[name]()
            if repeat:
                times[name].append(time.perf_counter() - start)
    median = {name: statistics.median(values) for name, values in times.items()}
    rest = max(median["step"] - median["text"] - median["vision"], 0.0)
    vision_at_paper = median["vision"] * (BATCH + ANCHOR_BATCH) / (batch + ANCHOR_BATCH)
    return {"classes": classes, "timed_images": batch + ANCHOR_BATCH, "median_s": median, "all_s": times,
            "rest_s": rest, "vision_s_scaled_to_160": vision_at_paper,
            "text_share_at_160": median["text"] / (median["text"] + vision_at_paper + rest),
            "text_share_as_timed": median["text"] / median["step"]}


def projections(rows: list[dict]) -> dict:
    """Text share of a whole run from the counted steps (text FLOPs linear in the classes, fitted): ImageNet-1k and
    CIFAR-100 in 10 tasks (task k sees 100k / 10k classes; every task has about as many steps), 10k classes."""
    first, last = rows[0], rows[-1]
    per_class = (last["text_flops"] - first["text_flops"]) / (last["classes"] - first["classes"])
    fixed = statistics.mean(r["step_flops"] - r["text_flops"] for r in rows)

    def run_share(seen):
        text = sum(per_class * c for c in seen)
        return text / (text + fixed * len(seen))

    return {"text_flops_per_class": per_class, "non_text_flops": fixed,
            "imagenet1k_10_tasks_last_task": run_share([1000]), "imagenet1k_10_tasks_whole_run":
            run_share([100 * k for k in range(1, 11)]), "cifar100_10_tasks_whole_run":
            run_share([10 * k for k in range(1, 11)]), "classes_10000": run_share([10000]),
            "classes_where_text_is_half": fixed / per_class}


def build(folder: Path, tiny: bool):
    from gpu_check import save_model

    from segp_hf.modeling.student import build_lora_clip

    path = save_model(folder / "model", tiny)
    model = build_lora_clip(path, r=32, target_modules=["k_proj", "v_proj", "fc1", "fc2"])
    model.train()
    config = model.base_model.model.config
    return model, config.vision_config.image_size, config.vision_config.hidden_size


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classes", type=int, nargs="+", default=[100, 300, 1000, 3000], help="FLOPs counted here.")
    parser.add_argument("--project", type=int, nargs="*", default=[10000], help="Counted too, beyond the range.")
    parser.add_argument("--timed_classes", type=int, nargs="*", default=[100, 300], help="Also timed here.")
    parser.add_argument("--timed_batch", type=int, default=8, help="Images per timed step (+ 32 anchors).")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--prompt_tokens", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tiny", action="store_true", help="Toy widths (gpu_check.save_model's tiny model).")
    parser.add_argument("--out", default=str(HERE / "results" / "label_space.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    report = {"machine": machine(), "tiny": args.tiny, "settings": vars(args), "paper_batch": BATCH + ANCHOR_BATCH}
    with tempfile.TemporaryDirectory(prefix="segp-label-space-") as tmp:
        tmp = Path(tmp)
        model, size, width = build(tmp, args.tiny)
        report["flops"] = [count_flops(model, c, args.prompt_tokens, tmp / "out", size, width)
                           for c in [*args.classes, *args.project]]
        report["projection"] = projections(report["flops"][: len(args.classes)])
        report["wall"] = [time_pieces(model, c, args.prompt_tokens, args.timed_batch, args.repeats, tmp / "out", size,
                                      width) for c in args.timed_classes]
    print(table(report))
    write_json(args.out, report)
    return report


def table(report: dict) -> str:
    wall = {row["classes"]: row for row in report["wall"]}
    lines = ["| seen classes | step TFLOP | text TFLOP | vision TFLOP | rest TFLOP | text share (FLOPs) | "
             "text share (wall, 1 thread) |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for row in report["flops"]:
        timed = wall.get(row["classes"])
        lines.append(f"| {row['classes']:,} | {row['step_flops'] / 1e12:.2f} | {row['text_flops'] / 1e12:.2f} | "
                     f"{row['vision_flops'] / 1e12:.2f} | {row['rest_flops'] / 1e12:.3f} | "
                     f"{100 * row['text_share']:.1f}% | "
                     + (f"{100 * timed['text_share_at_160']:.1f}% |" if timed else "- |"))
    p = report["projection"]
    lines.append(f"\nprojection: ImageNet-1k in 10 tasks: last task {100 * p['imagenet1k_10_tasks_last_task']:.1f}%, "
                 f"whole run {100 * p['imagenet1k_10_tasks_whole_run']:.1f}%; CIFAR-100 whole run "
                 f"{100 * p['cifar100_10_tasks_whole_run']:.1f}%; 10k classes {100 * p['classes_10000']:.1f}%; "
                 f"text = half the step at {p['classes_where_text_is_half']:,.0f} classes")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
