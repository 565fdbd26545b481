"""Images per second delivered as ready batches, cached vs uncached, and decodes per distinct image.

Data: fabricated photos stored encoded like a Hub image column: CIFAR-sized (32x32 PNG) and ImageNet-sized
(500x375 JPEG, quality 90). Processor: OpenAI CLIP's (``CLIPImageProcessor()``: shortest edge 224, bicubic,
center crop 224). Each case iterates the task's training set with a ``DataLoader`` as the Trainer does
(shuffled, batch 128, ``SeGPTrainer``'s collator and worker choice) for several epochs:

- ``uncached``: ``--pixel_cache off``, every epoch decodes, resizes, crops, rescales and normalises again;
- ``cached first pass``: the epoch that fills the store (decode + resize + crop once, by the DataLoader workers
  when there are any, writing into the shared store), then reads it;
- ``cached``: every later epoch: whole uint8 batches gathered from the store in the training process (one copy
  per batch; the model's float input is made on its device);
- ``cached + CPU normalise``: the same batches normalised on the CPU (what a CPU-only run pays).

Decodes are counted through a wrapper around ``decode_rgb`` over the whole run (all epochs plus two
evaluation passes over a separate test set, as after two tasks; in-process cases only): the cache's target is <= 1 per distinct image.

    python benchmarks/data_pipeline.py                 # ~3 min on 2 cores [--images 1024 --epochs 3 --workers 0 2]
    python benchmarks/data_pipeline.py --tiny          # seconds (gpu_check's CPU test)
"""

from __future__ import annotations

import argparse
import io
import time
from collections import Counter
from pathlib import Path

import datasets
import numpy as np
import torch
from _common import machine, write_json
from PIL import Image
from transformers import CLIPImageProcessor, default_data_collator

from segp_hf.data import pixel_cache
from segp_hf.data import scenario as scenario_module
from segp_hf.data.pixel_cache import CachePlan, pixel_shape
from segp_hf.data.ready_batches import loader_workers, ready_batches
from segp_hf.data.scenario import ClassIncrementalScenario

SIZES = {"cifar": ((32, 32), "PNG"), "imagenet": ((375, 500), "JPEG")}


def fabricated_images(count: int, height: int, width: int, fmt: str, seed: int = 0) -> datasets.Dataset:
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width]
    images = []
    for i in range(count):
        base = np.stack([(xs * (i % 7 + 1)) % 256, (ys * (i % 5 + 1)) % 256, (xs + ys + i) % 256], -1)
        pixels = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format=fmt, quality=90)
        images.append({"bytes": buffer.getvalue(), "path": None})
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=[str(c) for c in range(10)])})
    return datasets.Dataset.from_dict({"image": images, "label": [i % 10 for i in range(count)]}, features=features)


def epoch(dataset, batch_size: int, workers: int, normalizer=None, seed: int = 0) -> tuple[float, int]:
    start = time.perf_counter()
    workers = loader_workers(dataset, workers)  # as SeGPTrainer: a cached set is decoded by the workers, read here
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers,
                                         collate_fn=ready_batches(default_data_collator), generator=torch.Generator().manual_seed(seed))
    images = 0
    for batch in loader:
        pixels = batch["pixel_values"]
        if normalizer is not None:
            pixels = normalizer(pixels)
        images += pixels.shape[0]
    return time.perf_counter() - start, images


class DecodeCounter:
    """Counts decodes per image (by its bytes) while installed in both decoding paths."""

    def __init__(self):
        self.counts = Counter()
        self.original = scenario_module.decode_rgb

    def __call__(self, image):
        self.counts[hash(image["bytes"])] += 1
        return self.original(image)

    def __enter__(self):
        pixel_cache.decode_rgb = scenario_module.decode_rgb = self
        return self

    def __exit__(self, *exc):
        pixel_cache.decode_rgb = scenario_module.decode_rgb = self.original


def run_case(train_data, test_data, processor, cached: bool, args, workers: int) -> dict:
    plan = CachePlan("memory", pixel_shape(processor), shared=workers > 0) if cached else None
    scenario = ClassIncrementalScenario(train=train_data, test=test_data, class_names=[str(c) for c in range(10)],
                                        class_order=list(range(10)), num_tasks=1, image_processor=processor,
                                        pixel_cache=plan)
    with DecodeCounter() as counter:
        train = scenario.train_dataset(0)
        rates = []  # cached: the first epoch fills the store, the later ones are short to time, so more of them
        for e in range(1 + args.cached_epochs if cached else args.epochs):
            seconds, images = epoch(train, args.batch, workers, seed=e)
            rates.append(images / seconds)
        result = {"epoch_images_per_s": rates}
        if cached:  # the same cached batches, normalised on the CPU (a GPU run does this on the device)
            seconds, images = epoch(train, args.batch, workers, scenario.pixel_normalizer, seed=99)
            result["cpu_normalised_images_per_s"] = images / seconds
        for _ in range(2):  # two evaluations of the test set (as after two tasks)
            epoch(scenario.test_dataset(0), args.batch, workers, seed=7)
    distinct = len(train_data) + len(test_data)
    # With workers the decodes happen in the worker processes, out of the counter's sight.
    decodes = sum(counter.counts.values()) if workers == 0 else None
    result.update(decodes=decodes, distinct_images=distinct,
                  decodes_per_distinct_image=None if decodes is None else decodes / distinct,
                  max_decodes_of_one_image=max(counter.counts.values()) if workers == 0 else None)
    scenario.close_cache()
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1024, help="Distinct images per size.")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--cached_epochs", type=int, default=8, help="Cached epochs timed after the filling one.")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="DataLoader worker counts to run.")
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default).")
    parser.add_argument("--tiny", action="store_true", help="A few images, 2 epochs: checks the script runs.")
    parser.add_argument("--output", default=str(Path(__file__).parent / "results" / "data_pipeline.json"))
    args = parser.parse_args(argv)
    if args.tiny:
        args.images, args.epochs, args.cached_epochs, args.batch, args.workers = 20, 2, 1, 8, [0]
    if args.threads:
        torch.set_num_threads(args.threads)
    processor = CLIPImageProcessor()
    results = {}
    print(f"{'size':9} {'workers':>7} {'case':24} {'images/s':>10}")
    for size in args.sizes:
        (height, width), fmt = SIZES[size]
        train = fabricated_images(args.images, height, width, fmt, seed=0)
        test = fabricated_images(max(args.images // 4, 10), height, width, fmt, seed=1)
        for workers in args.workers:
            uncached = run_case(train, test, processor, False, args, workers)
            cached = run_case(train, test, processor, True, args, workers)
            row = {
                "uncached": float(np.median(uncached["epoch_images_per_s"])),
                "cached_first_pass": cached["epoch_images_per_s"][0],
                "cached": float(np.median(cached["epoch_images_per_s"][1:])),
                "cached_cpu_normalised": cached["cpu_normalised_images_per_s"],
            }
            for case, rate in row.items():
                print(f"{size:9} {workers:>7} {case:24} {rate:>10.0f}")
            row["cached_over_uncached"] = row["cached"] / row["uncached"]
            row["decodes_per_distinct_image"] = {"uncached": uncached["decodes_per_distinct_image"],
                                                 "cached": cached["decodes_per_distinct_image"]}
            row["runs"] = {"uncached": uncached, "cached": cached}
            results[f"{size}/workers{workers}"] = row
            print(f"{size:9} {workers:>7} decodes per distinct image (train epochs + 2 evaluations): "
                  f"uncached {uncached['decodes_per_distinct_image']}, cached {cached['decodes_per_distinct_image']}")
    payload = {"settings": vars(args), "results": results, "machine": machine()}
    write_json(args.output, payload)
    return payload


if __name__ == "__main__":
    main()
