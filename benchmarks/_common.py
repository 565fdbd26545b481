"""Shared pieces of the benchmarks: a ViT-B/32-shaped CLIP with random weights, fabricated task data,
a TaskState at task 1 with fabricated anchors, and interleaved timing with medians."""

from __future__ import annotations

import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch
import torch.nn.functional as F

from segp_hf.method.anchors import AnchorSet
from segp_hf.method.task_state import TaskState

VOCAB = 49408
EOS = 49407
BOS = 49406


def add_model_arguments(parser):
    parser.add_argument("--layers", type=int, default=2, help="Layers in each tower (ViT-B/32 has 12).")
    parser.add_argument("--classes", type=int, default=20, help="Classes seen at task 1 (half of them old).")
    parser.add_argument("--prompt_tokens", type=int, default=16, help="Padded prompt length.")
    parser.add_argument("--lora_r", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5, help="Timed repeats per case (after one warm-up).")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default).")
    parser.add_argument("--seed", type=int, default=0)


MODEL_SHAPE = {"vision_hidden": 768, "text_hidden": 512, "patch": 32, "image": 224}


def run_settings(args) -> dict:
    """A benchmark's command-line settings and the model shape, for its JSON (internal flags left out)."""
    return {k: v for k, v in vars(args).items() if k != "case"} | MODEL_SHAPE


def save_vit_b32_shaped_clip(path, layers: int, seed: int = 0) -> str:
    """CLIPConfig shaped like openai/clip-vit-base-patch32 (768 vision / 512 text, patch 32, image 224,
    projection 512) with ``layers`` layers per tower and random weights."""
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(seed)
    config = CLIPConfig(
        text_config=dict(
            vocab_size=VOCAB, hidden_size=512, intermediate_size=2048, num_hidden_layers=layers,
            num_attention_heads=8, max_position_embeddings=77, pad_token_id=1, bos_token_id=BOS, eos_token_id=EOS,
        ),
        vision_config=dict(
            hidden_size=768, intermediate_size=3072, num_hidden_layers=layers, num_attention_heads=12,
            image_size=224, patch_size=32,
        ),
        projection_dim=512,
    )
    CLIPModel(config).save_pretrained(path)
    return str(path)


def fabricated_text_inputs(classes: int, tokens: int, generator) -> dict:
    """Token ids of ``classes`` prompts: BOS, random words of varying length, EOS, padding."""
    input_ids = torch.full((classes, tokens), EOS, dtype=torch.long)
    attention_mask = torch.zeros(classes, tokens, dtype=torch.long)
    for i in range(classes):
        length = int(torch.randint(6, tokens + 1, (1,), generator=generator))
        input_ids[i, 0] = BOS
        input_ids[i, 1:length - 1] = torch.randint(0, 49000, (length - 2,), generator=generator)
        input_ids[i, length - 1] = EOS
        attention_mask[i, :length] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def task1_state(text_inputs, classes: int, logit_scale: float, anchors_per_class: int, raw_dim: int, generator,
                variant: str = "segp-cl") -> TaskState:
    """A TaskState at task 1: classes [0, classes//2) are old, [classes//2, classes) new, with fabricated
    anchors (teacher logits and raw features cached, as TeacherTargetsCallback leaves them) and a reference
    text geometry."""
    start = classes // 2
    state = TaskState.for_run(variant, text_inputs, logit_scale)
    state.begin_task(1, (start, classes), None, None)
    count = anchors_per_class * start
    state.anchors = AnchorSet(
        pixel_values=torch.randn(count, 3, 224, 224, generator=generator),
        targets=torch.arange(count) % start,
        teacher_logits=10 * torch.randn(count, start, generator=generator),
        teacher_raw=torch.randn(count, raw_dim, generator=generator),
    )
    state.reference_text = F.normalize(torch.randn(classes, 512, generator=generator), dim=-1)
    return state


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved(cases: dict, repeats: int, warmup: int = 1, cpu_times: dict | None = None) -> dict:
    """Run every case once per round, ``warmup + repeats`` rounds; the warm-up rounds are dropped.
    The order alternates (forward, then reversed, ...) so that no case always runs right after the same
    other one (allocator and cache state carry over between cases). Returns {name: [wall seconds per
    repeat]}; ``cpu_times``, if given, is filled with the process CPU seconds of the same runs (less
    sensitive than wall time to other jobs on the machine, but it counts every thread's spinning)."""
    times = {name: [] for name in cases}
    names = list(cases)
    for round_ in range(warmup + repeats):
        for name in (names if round_ % 2 == 0 else names[::-1]):
            cpu = time.process_time()
            seconds = timed(cases[name])
            cpu = time.process_time() - cpu
            if round_ >= warmup:
                times[name].append(seconds)
                if cpu_times is not None:
                    cpu_times.setdefault(name, []).append(cpu)
    return times


def summary(times: dict) -> dict:
    return {name: {"median_s": statistics.median(t), "min_s": min(t), "max_s": max(t), "all_s": t}
            for name, t in times.items()}


def machine() -> dict:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def add_task_callback(runner, callback_for_task) -> None:
    """Make every task's Trainer of a ``ContinualRunner`` carry ``callback_for_task(task)`` as well."""
    make_trainer = runner.make_trainer

    def make_trainer_with_callback(task):
        trainer = make_trainer(task)
        trainer.add_callback(callback_for_task(task))
        return trainer

    runner.make_trainer = make_trainer_with_callback


def write_json(path, payload):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {path}")


def temp_model_dir():
    return tempfile.TemporaryDirectory(prefix="segp-bench-")


class FabricatedImages(torch.utils.data.Dataset):
    """Random ``pixel_values`` with labels, indexable like a transformed ``datasets.Dataset``: an int gives
    one example, a list of ints a dict of stacked tensors (what the callbacks' seed lookup uses)."""

    def __init__(self, count: int, labels: torch.Tensor, generator, image_size: int = 224):
        self.pixel_values = torch.randn(count, 3, image_size, image_size, generator=generator)
        self.labels = labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return {"pixel_values": self.pixel_values[index], "labels": self.labels[index]}


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports ru_maxrss in KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
