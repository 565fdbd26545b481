"""Anchor building (DPGD) under 2 gloo ranks vs 1 process: sharded (each rank attacks its share, then all
shares are gathered) against replicated (the former scheme: every rank builds every anchor, rank 0's are
broadcast).

Model: the shipped ViT-B/16 CLIPConfig scaled to CPU size (``--layers`` layers, ``--width`` wide, ``--image``
px, patch 16), random weights, LoRA r=32 on the paper's targets. Work: ``--anchors`` anchors (old classes x
anchors_per_class), ``--steps`` DPGD steps each, batches of dpgd_batch_size 64, visual term on. Each rank runs
with one thread (OMP_NUM_THREADS=1, torch.set_num_threads(1)), as tests/test_distributed.py launches ranks.
Time: wall clock of ``method.anchors.build_anchors`` between two barriers, median of ``--repeats``, on rank 0.

    python benchmarks/anchor_sharding.py     # ~2 min on 2 cores
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import torch
import torch.multiprocessing as mp

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from _common import machine, write_json  # noqa: E402

CONFIG = HERE.parent / "segp_hf" / "assets" / "clip-vit-base-patch16" / "config.json"


def save_model(path: Path, layers: int, width: int, image: int) -> str:
    from transformers import CLIPConfig, CLIPModel

    config = CLIPConfig.from_json_file(str(CONFIG))
    for sub in (config.vision_config, config.text_config):
        sub.hidden_size, sub.intermediate_size, sub.num_hidden_layers, sub.num_attention_heads = width, 4 * width, layers, width // 64
    config.vision_config.image_size = image
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(path)
    return str(path)


class _Pixels:
    """The train set as build_anchors reads it: ``ds[indices]['pixel_values']``."""

    def __init__(self, pixels):
        self.pixels = pixels

    def __getitem__(self, indices):
        return {"pixel_values": self.pixels[torch.as_tensor(indices)]}

    def __len__(self):
        return len(self.pixels)


def _setup(model_dir: str, args):
    from segp_hf.method.task_state import TaskState
    from segp_hf.modeling.student import build_lora_clip, encode_images

    torch.manual_seed(0)
    model = build_lora_clip(model_dir, r=32).eval()
    config = model.base_model.model.config
    classes = args.anchors // args.anchors_per_class
    generator = torch.Generator().manual_seed(1)
    pixels = torch.randn(args.anchors, 3, config.vision_config.image_size, config.vision_config.image_size, generator=generator)
    with torch.no_grad():
        image_embeds, raw = encode_images(model, pixels)
    old_text = torch.nn.functional.normalize(torch.randn(classes, config.projection_dim, generator=generator), dim=-1)
    state = TaskState.for_run("segp-cl")
    state.train_dataset, state.prototypes = _Pixels(pixels), raw[:classes].clone()
    settings = SimpleNamespace(anchors_per_class=args.anchors_per_class, dpgd_batch_size=64, dpgd_steps=args.steps,
                               dpgd_step_size=1.5e-3, dpgd_epsilon=4 / 255, dpgd_lambda_visual=1.0,
                               raw_feature="pre_projection")
    return model, state, settings, old_text, image_embeds


def _time_build(model_dir, args, replicated: bool) -> list[float]:
    from segp_hf.method import anchors as anchors_module
    from segp_hf.run.distributed import broadcast_from_main

    model, state, settings, old_text, image_embeds = _setup(model_dir, args)
    distributed = torch.distributed.is_initialized()
    times = []
    for _ in range(args.repeats):
        if distributed:
            torch.distributed.barrier()
        start = time.perf_counter()
        if replicated:  # every rank builds every anchor, then rank 0's are broadcast (the former scheme)
            with mock.patch.object(anchors_module, "distributed_world", return_value=(0, 1)):
                anchors = anchors_module.build_anchors(model, state, settings, old_text, image_embeds)
            broadcast_from_main(anchors.pixel_values, anchors.teacher_logits, anchors.teacher_raw)
        else:
            anchors = anchors_module.build_anchors(model, state, settings, old_text, image_embeds)
        if distributed:
            torch.distributed.barrier()
        times.append(time.perf_counter() - start)
    assert len(anchors.pixel_values) == args.anchors
    return times


def _rank(rank, world, port, model_dir, args, replicated, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1")
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    times = _time_build(model_dir, args, replicated)
    if rank == 0:
        torch.save(times, out)
    torch.distributed.destroy_process_group()


def two_ranks(model_dir, args, replicated: bool, folder: Path) -> list[float]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = folder / f"times-{replicated}.pt"
    mp.spawn(_rank, args=(2, port, model_dir, args, replicated, str(out)), nprocs=2, join=True)
    return torch.load(out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--image", type=int, default=96)
    parser.add_argument("--anchors", type=int, default=40, help="old classes x anchors_per_class")
    parser.add_argument("--anchors_per_class", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10, help="DPGD steps (the paper's 10)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(HERE / "results" / "anchor_sharding.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    median = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    with tempfile.TemporaryDirectory(prefix="segp-anchor-sharding-") as tmp:
        tmp = Path(tmp)
        model_dir = save_model(tmp / "model", args.layers, args.width, args.image)
        rows = {"one_process": _time_build(model_dir, args, replicated=False),
                "two_ranks_replicated": two_ranks(model_dir, args, True, tmp),
                "two_ranks_sharded": two_ranks(model_dir, args, False, tmp)}
    result = {name: {"seconds": median(times), "all": times} for name, times in rows.items()}
    one = result["one_process"]["seconds"]
    print(f"{'anchor building':28} {'seconds':>9} {'vs 1 process':>13}")
    for name, row in result.items():
        row["speedup_vs_one_process"] = one / row["seconds"]
        print(f"{name:28} {row['seconds']:>9.2f} {row['speedup_vs_one_process']:>12.2f}x")
    write_json(args.out, {"settings": vars(args), "results": result, "machine": machine()})
    return result


if __name__ == "__main__":
    main()
