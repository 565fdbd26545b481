"""The GPU check as one command: training rate and peak memory at ViT-B/16 shape, the CIFAR-100 recipe at the
paper's data size (what a paper run costs), the data pipeline against that rate, the four ratio benchmarks, and a
two-task run of the paper's settings; one table, one JSON.

Model: ``CLIPModel`` from the shipped ``segp_hf/assets/clip-vit-base-patch16/config.json`` (random weights, no
download), B-only LoRA r=32 on k_proj, v_proj, fc1, fc2; bf16 autocast on a GPU. Tokenizer: a fabricated
word-level one (prompt token ids only matter for shapes here).

    python benchmarks/gpu_check.py --out DIR/gpu_check.json   # one GPU, within --budget_s (420); unrun so far
    bash benchmarks/offline_gpu_check.sh DIR                   # the same on a node without network (carried wheels)
    python benchmarks/gpu_check.py --tiny     # CPU, seconds: a 1-layer, 64-wide model (tests/test_gpu_check.py)

Order: the training rate, then the paper-scale CIFAR-100 run (benchmarks/paper_scale.py: 10 tasks, 50k fabricated
train images, 10k test, 2 epochs per task run and 10 extrapolated per phase; it gets the budget less 2 minutes),
the data pipeline, the two-task run, and the ratio benchmarks while the budget lasts.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from _common import machine, peak_rss_mib, write_json  # noqa: E402

CONFIG = Path(__file__).parents[1] / "segp_hf" / "assets" / "clip-vit-base-patch16" / "config.json"
WORDS = ["a", "good", "photo", "of", "the", "."] + [f"class{i}" for i in range(100)]


def save_model(path: Path, tiny: bool, extra_words=()) -> str:
    """``extra_words``: more tokenizer words (class names: prompts that differ, so the text gradients do not cancel)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, PreTrainedTokenizerFast

    config = CLIPConfig.from_json_file(str(CONFIG))
    if tiny:  # same structure, toy sizes
        for sub, width, heads in ((config.vision_config, 64, 2), (config.text_config, 64, 2)):
            sub.hidden_size, sub.intermediate_size, sub.num_hidden_layers, sub.num_attention_heads = width, 2 * width, 1, heads
        config.vision_config.image_size, config.vision_config.patch_size, config.projection_dim = 32, 16, 32
    # The text tower pools at the first eos_token_id: it must be the fabricated tokenizer's (else every prompt
    # pools at position 0, all classes get the same text embedding and the CE gradients cancel).
    for ids in (config.text_config, config):
        ids.pad_token_id, ids.bos_token_id, ids.eos_token_id = 0, 2, 3
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(path)
    words = WORDS + sorted(set(extra_words) - set(WORDS))
    vocab = {t: i for i, t in enumerate(["<pad>", "<unk>", "<bos>", "<eos>"] + words)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace(), pre_tokenizers.Punctuation()])
    backend.post_processor = processors.TemplateProcessing(single="<bos> $A <eos>",
                                                           special_tokens=[("<bos>", 2), ("<eos>", 3)])
    PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
                            unk_token="<unk>", model_max_length=77).save_pretrained(path)
    size = config.vision_config.image_size
    CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size}).save_pretrained(path)
    return str(path)


def training_rate(model_dir: str, batch: int, anchors: int, steps: int) -> dict:
    """Images/s of one SeGP-CL-sized training step (batch + anchors, forward + backward + SGD) and its peak memory."""
    from segp_hf.modeling.student import build_lora_clip, encode_images, encode_texts

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = build_lora_clip(model_dir, r=32).to(device)
    size = model.base_model.model.config.vision_config.image_size
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3, momentum=0.9)
    pixels = torch.randn(batch + anchors, 3, size, size, device=device)
    ids = torch.randint(4, 4 + len(WORDS), (20, 12), device=device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    rss = peak_rss_mib()
    times = []
    for step in range(steps + 1):
        start = time.perf_counter()
        with autocast:
            image, _ = encode_images(model, pixels)
            text = encode_texts(model, ids)
            loss = torch.nn.functional.cross_entropy(100 * image @ text.T, torch.arange(len(pixels), device=device) % 20)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if step:  # the first step warms up
            times.append(time.perf_counter() - start)
    seconds = sorted(times)[len(times) // 2]
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else peak_rss_mib() - rss
    return {"device": str(device), "images_per_step": batch + anchors, "step_s": seconds,
            "images_per_s": (batch + anchors) / seconds, "peak_memory_mib": peak,
            "peak_memory_kind": "torch.cuda.max_memory_allocated" if device.type == "cuda" else "process peak RSS growth"}


def two_task_run(model_dir: str, tiny: bool, output: Path) -> dict:
    """Two tasks of the CIFAR-100 recipe's method settings on fabricated CIFAR-schema data (a few images)."""
    import datasets
    import numpy as np
    from PIL import Image

    from segp_hf.data.spec import LoadedBenchmark
    from segp_hf.recipe import load_recipe, parse_config
    from segp_hf.run.continual import run_continual

    rng = np.random.default_rng(0)
    names = [f"class{i}" for i in range(4)]

    def split(per_class):
        images = [Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in range(4 * per_class)]
        features = datasets.Features({"img": datasets.Image(), "fine_label": datasets.ClassLabel(names=names)})
        return datasets.Dataset.from_dict({"img": images, "fine_label": [i % 4 for i in range(4 * per_class)]},
                                          features=features)

    bench = LoadedBenchmark(split(2), split(1), names, [0, 1, 2, 3], "a good photo of a {}.",
                            image_column="img", label_column="fine_label")
    recipe = load_recipe(str(HERE.parent / "segp_hf" / "recipes" / "cifar100_10tasks.yaml"))
    recipe.update(model_name_or_path=model_dir, num_tasks=2, global_train_batch_size=4, num_train_epochs=1,
                  zero_shot_sets=[],  # the recipe's Food-101/Pets/ImageNet are not what this check times
                  anchors_per_class=1, output_dir=str(output), save_strategy="no", disable_tqdm=True,
                  bf16=torch.cuda.is_available(), use_cpu=not torch.cuda.is_available(), report_to="none")
    recipe.pop("benchmark")
    recipe.pop("zero_shot_sets", None)  # held-out zero-shot sets need downloads
    start = time.perf_counter()
    results = run_continual(*parse_config(recipe), benchmark=bench)
    return {"seconds": time.perf_counter() - start, "tasks_completed": results["tasks_completed"],
            "acc_matrix": results["acc_matrix"]}


def ratio_benchmarks(tiny: bool, folder: Path, deadline: float) -> dict:
    """The four ratio benchmarks (ViT-B/32-shaped, 12 layers per tower, batch 128 on a GPU), each in its own process,
    while the budget lasts (one that would outrun it is stopped and marked)."""
    small = ["--layers", "1", "--repeats", "1"]
    runs = {
        "step_overhead": small + ["--batch", "2", "--anchor_batch", "2"] if tiny else ["--layers", "12", "--batch", "128"],
        "inference": small + ["--batch", "2"] if tiny else ["--layers", "12", "--batch", "128"],
        "anchor_cost": small + ["--epochs", "1", "--batch", "2", "--anchors_per_class", "1"] if tiny else ["--layers", "12", "--batch", "128"],
        "memory": ["--batch", "2", "--steps", "1", "--images", "6", "--repeats", "1", "--layers", "1"] if tiny else ["--layers", "12", "--batch", "128"],
    }
    out = {}
    for name, extra in runs.items():
        path = folder / f"{name}.json"
        done = _bounded([sys.executable, str(HERE / f"{name}.py"), *extra, "--out", str(path)], deadline)
        out[name] = json.loads(path.read_text()) if done == "ok" and path.exists() else {"error": done}
    return out


def _bounded(command: list[str], deadline: float) -> str:
    """Run ``command`` until ``deadline`` (perf_counter): 'ok', or why not (the end of its output)."""
    left = deadline - time.perf_counter()
    if left < 10:
        return "skipped: the time budget (--budget_s) was spent"
    try:
        done = subprocess.run(command, capture_output=True, text=True, cwd=HERE.parent, timeout=left)
    except subprocess.TimeoutExpired:
        return "stopped at the time budget (--budget_s)"
    return "ok" if done.returncode == 0 else (done.stdout + done.stderr)[-2000:]


def paper_scale_run(tiny: bool, folder: Path, deadline: float) -> dict:
    """benchmarks/paper_scale.py: the CIFAR-100 recipe at the paper's data size (in-process with --tiny), bounded
    by the budget; what it finished is kept (it rewrites its JSON after every task)."""
    path = folder / "paper_scale.json"
    if tiny:
        import paper_scale

        return paper_scale.main(["--tiny", "--out", str(path)])["paper_scale"]
    done = _bounded([sys.executable, str(HERE / "paper_scale.py"), "--out", str(path)], deadline)
    result = json.loads(path.read_text()).get("paper_scale", {}) if path.exists() else {}
    return {**result, "status": done}


def table(report: dict) -> str:
    training = report["training"]
    rows = [(f"training step images/s ({training['device']})", f"{training['images_per_s']:.1f}"),
            ("training step peak memory MiB", f"{training['peak_memory_mib']:.1f}")]
    paper = report.get("paper_scale", {})
    if "phases" in paper:
        done, measured = paper["tasks_completed"], paper["phases"]["measured"]
        extrapolated = paper["phases"]["at_paper_epochs"]
        rows.append((f"CIFAR-100 recipe, {done} tasks x {paper['epochs_run']} epochs: s", f"{measured['total_s']:.1f}"))
        rows.append(("... at 10 epochs (extrapolated): s", f"{extrapolated['total_s']:.1f}"))
        for phase in ("train_s", "anchors_s", "prototypes_s", "eval_s", "other_s"):
            rows.append((f"    {phase[:-2]} at 10 epochs: s", f"{extrapolated[phase]:.1f}"))
    elif "paper_scale" in report:
        rows.append(("CIFAR-100 recipe at paper scale", str(paper.get("status", "error"))[:40]))
    if "data_pipeline" in report:
        rows.append(("pipeline cached images/s", f"{report['data_pipeline']['cached_images_per_s']:.1f}"))
        rows.append(("pipeline / training rate", f"{report['data_pipeline']['cached_over_training_rate']:.2f}"))
    if "two_task_run" in report:
        rows.append(("two-task run seconds", f"{report['two_task_run']['seconds']:.1f}"))
    for name, result in report.get("ratios", {}).items():
        rows.append((name, "ok" if "error" not in result else result["error"][:40]))
    rows.append(("whole check seconds", f"{report['seconds']:.1f}"))
    return "\n".join([f"{'check':48} {'value':>14}"] + [f"{label:48} {value:>14}" for label, value in rows])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--skip_ratios", action="store_true", help="Leave out the four ratio benchmarks.")
    parser.add_argument("--skip_paper_scale", action="store_true", help="Leave out the paper-scale CIFAR-100 run.")
    parser.add_argument("--budget_s", type=float, default=420,
                        help="Seconds for the whole check: the paper-scale run and the ratio benchmarks stop there.")
    parser.add_argument("--out", default=str(HERE / "results" / "gpu_check.json"),
                        help="The JSON; the table goes beside it (same name, .txt).")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    deadline = started + args.budget_s
    report = {"machine": machine(), "tiny": args.tiny, "budget_s": args.budget_s,
              "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None}
    with tempfile.TemporaryDirectory(prefix="segp-gpu-check-") as tmp:
        tmp = Path(tmp)
        model_dir = save_model(tmp / "model", args.tiny)
        report["training"] = training_rate(model_dir, 2 if args.tiny else 128, 1 if args.tiny else 32,
                                           2 if args.tiny else 10)
        if not args.skip_paper_scale:  # the figure a GPU user wants first: what a paper run costs
            report["paper_scale"] = paper_scale_run(args.tiny, tmp, deadline - 120)
            write_json(args.out, report)
        import data_pipeline

        pipeline = data_pipeline.main((["--tiny"] if args.tiny else ["--images", "1024", "--workers", "0", "4"])
                                      + ["--output", str(tmp / "data_pipeline.json")])
        cached = max(row["cached"] for row in pipeline["results"].values())
        report["data_pipeline"] = {"cached_images_per_s": cached,
                                   "cached_over_training_rate": cached / report["training"]["images_per_s"],
                                   "results": pipeline["results"]}
        report["two_task_run"] = two_task_run(model_dir, args.tiny, tmp / "run")
        if not args.skip_ratios:
            report["ratios"] = ratio_benchmarks(args.tiny, tmp, deadline)
    report["seconds"] = time.perf_counter() - started
    text = table(report)
    print("\n" + text)
    write_json(args.out, report)
    Path(args.out).with_suffix(".txt").write_text(text + "\n")
    return report


if __name__ == "__main__":
    main()
