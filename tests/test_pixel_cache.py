"""The pixel cache: inputs bit-identical to the uncached path, at most one decode per distinct image in a run,
the memory budget and its fallbacks, DataLoader workers filling the parent's store, and resume placement."""

from __future__ import annotations

import io
import json
import logging
import threading
import time

import datasets
import numpy as np
import pytest
import torch
from conftest import tiny_settings
from decode_counter import count_decode_rgb
from PIL import Image
from transformers import CLIPImageProcessor, default_data_collator

from segp_hf.data import pixel_cache
from segp_hf.data.pixel_cache import CachePlan, PixelNormalizer, PixelStore, model_pixels, plan_cache
from segp_hf.data.scenario import ClassIncrementalScenario
from segp_hf.data.spec import DataError
from segp_hf.recipe import parse_config
from segp_hf.run.continual import ContinualRunner


def _encoded(image: Image.Image, fmt: str) -> dict:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, quality=90)
    return {"bytes": buffer.getvalue(), "path": None}


def _photo_dataset(count, height, width, fmt, seed=0):
    """Noisy gradients (so resampling matters), stored encoded like a Hub image column."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width]
    images = []
    for i in range(count):
        base = np.stack([(xs * (i + 3)) % 256, (ys * (i + 5)) % 256, (xs + ys) % 256], -1)
        pixels = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
        images.append(_encoded(Image.fromarray(pixels), fmt))
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b"])})
    return datasets.Dataset.from_dict({"image": images, "label": [i % 2 for i in range(count)]}, features=features)


def _scenario(data, processor, plan):
    return ClassIncrementalScenario(train=data, test=data, class_names=["a", "b"], class_order=[1, 0], num_tasks=2,
                                    image_processor=processor, pixel_cache=plan)


@pytest.mark.parametrize("size,fmt", [((32, 32), "PNG"), ((375, 500), "JPEG")], ids=["cifar-png", "imagenet-jpeg"])
def test_cached_pixels_are_bit_identical_to_the_processor(size, fmt, tmp_path):
    processor = CLIPImageProcessor()  # OpenAI CLIP's: shortest edge 224, bicubic, center crop 224, CLIP mean/std
    data = _photo_dataset(6, *size, fmt)
    plain = _scenario(data, processor, None)
    for plan in (CachePlan("memory", (3, 224, 224)), CachePlan("disk", (3, 224, 224), directory=tmp_path)):
        cached = _scenario(data, processor, plan)
        normalizer = cached.pixel_normalizer
        for task in (0, 1):
            for build in ("train_dataset", "test_dataset"):
                expected = getattr(plain, build)(task)[:]
                first = getattr(cached, build)(task)[:]  # fills the store
                again = getattr(cached, build)(task)[[2, 0, 1]]  # read back from the store, another order
                assert first["pixel_values"].dtype == torch.uint8
                assert torch.equal(normalizer(first["pixel_values"]), expected["pixel_values"])
                assert torch.equal(normalizer(again["pixel_values"]), expected["pixel_values"][[2, 0, 1]])
                assert torch.equal(first["labels"], expected["labels"])
        assert torch.equal(normalizer(cached.train_dataset(0)[0]["pixel_values"]), plain.train_dataset(0)[0]["pixel_values"])
        cached.close_cache()
    assert not list(tmp_path.glob("*.u8"))  # disk stores are removed with the cache


def test_arithmetic_normalising_is_used_only_where_it_equals_the_table():
    processor = CLIPImageProcessor()
    exact = PixelNormalizer.from_processor(processor)
    assert exact.exact_arithmetic()  # (x / 255 - mean) / std in float32 reproduces CLIP's processor here
    pixels = torch.randint(0, 256, (2, 3, 5, 7), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    assert torch.equal(exact(pixels), PixelNormalizer(exact.table.view(3, 256))(pixels))
    # a formula that misses the table by one float32 step somewhere is refused: the table is used
    wrong = PixelNormalizer(exact.table.view(3, 256), 255.0, processor.image_mean, [0.2686, 0.2613, 0.2758])
    assert not wrong.exact_arithmetic()
    assert torch.equal(wrong(pixels), exact(pixels))


def test_normalizer_passes_float_input_and_refuses_uint8_without_one():
    table = torch.arange(768, dtype=torch.float32).reshape(3, 256)
    normalizer = PixelNormalizer(table)
    pixels = torch.tensor([[[[0, 255]], [[1, 2]], [[3, 4]]]], dtype=torch.uint8)  # (1, 3, 1, 2)
    assert normalizer(pixels).tolist() == [[[[0.0, 255.0]], [[257.0, 258.0]], [[515.0, 516.0]]]]
    floats = torch.randn(1, 3, 1, 2)
    assert normalizer(floats) is floats
    with pytest.raises(RuntimeError, match="without a PixelNormalizer"):
        model_pixels(pixels, "cpu", None)


SHAPES_RUN = dict(num_tasks=2, num_train_epochs=1, per_device_train_batch_size=16, anchors_per_class=1, dpgd_steps=1,
                  save_strategy="no", disable_tqdm=True, logging_steps=50)


@pytest.fixture(scope="module")
def short_shapes():
    """The shapes world (shifted domain) with 2 train and 2 test images per class: the recipe's data, small."""
    from segp_hf.data.shapes import TASK_CLASSES, make_shapes_dataset
    from segp_hf.data.spec import LoadedBenchmark

    return LoadedBenchmark(
        train=make_shapes_dataset("shifted", "train", images_per_class=2, seed=0),
        test=make_shapes_dataset("shifted", "test", images_per_class=2, seed=0),
        class_names=list(TASK_CLASSES), class_order=list(range(len(TASK_CLASSES))), template="a good photo of a {}.",
    )


def _shapes_run(benchmark, output_dir, **overrides):
    from segp_hf.recipe import load_recipe
    from segp_hf.run.continual import run_continual

    recipe = {**load_recipe("recipes/shapes.yaml"), **SHAPES_RUN, "output_dir": str(output_dir), **overrides}
    run_continual(*parse_config(recipe), benchmark=benchmark)
    return json.loads((output_dir / "results.json").read_text())


def test_a_shapes_run_decodes_each_image_at_most_once_and_scores_like_the_uncached_run(short_shapes, monkeypatch,
                                                                                       tmp_path):
    from segp_hf.evaluation.zero_shot import load_retention_set

    held_out = len(load_retention_set("shapes_heldout").dataset)  # scored before the first task and after the last
    counts = count_decode_rgb(monkeypatch)
    cached = _shapes_run(short_shapes, tmp_path / "cached")
    # 2 tasks x 25 classes x 2 images, train and test: every image read (epochs, seeds, prototypes, 3 evaluations),
    # and the zero-shot set's, read twice
    assert len(counts) == 200 + held_out and max(counts.values()) == 1, counts.most_common(3)
    assert cached["zero_shot_retention"]["shapes_heldout"]["after"] is not None

    counts.clear()  # the same run without the cache decodes every image again at every use
    plain = _shapes_run(short_shapes, tmp_path / "plain", pixel_cache="off")
    assert len(counts) == 200 and max(counts.values()) >= 3
    assert cached["acc_matrix"] == plain["acc_matrix"]  # bit-identical inputs: identical scores
    assert cached["zero_shot_retention"] == plain["zero_shot_retention"]
    assert cached["acc_matrix_til"] == plain["acc_matrix_til"]


def test_budget_fallbacks_are_announced(tmp_path, caplog):
    processor = CLIPImageProcessor()
    need = 2 * 1024**3
    with caplog.at_level(logging.WARNING):
        assert plan_cache("memory", processor, need, 8.0, tmp_path).mode == "memory"
        plan = plan_cache("memory", processor, need, 1.0, tmp_path)
        assert (plan.mode, plan.directory) == ("disk", tmp_path)
        assert "needs 2.00 GB > --pixel_cache_budget_gb 1" in caplog.text
        assert plan_cache("memory", processor, need, 1.0, None).mode == "off"
        assert "needs a directory" in caplog.text
        assert plan_cache("disk", processor, 10**18, 1.0, tmp_path).mode == "off"
        assert "free; pixel cache off" in caplog.text
    assert plan_cache("off", processor, need, 8.0, tmp_path).mode == "off"
    no_crop = CLIPImageProcessor(do_center_crop=False)  # output size depends on the image: nothing to cache
    assert plan_cache("memory", no_crop, need, 8.0, tmp_path).mode == "off"
    with pytest.raises(DataError, match="pixel_cache='ram' is not valid"):
        plan_cache("ram", processor, need, 8.0, tmp_path)


def test_a_run_refuses_an_unknown_cache_mode(tmp_path, tiny_clip_dir, tiny_benchmark):
    """Refused with the other settings, before any model or data (validation.RULES)."""
    from segp_hf.errors import RecipeError

    settings = tiny_settings(tiny_clip_dir, tmp_path, pixel_cache="ram")
    with pytest.raises(RecipeError, match="pixel_cache='ram' is not valid.*choose one of: memory, disk, off"):
        parse_config(settings)


@pytest.mark.parametrize("mode", ["memory", "disk"])
def test_dataloader_workers_fill_the_parents_store(mode, tmp_path):
    data = _photo_dataset(8, 40, 48, "PNG")
    processor = CLIPImageProcessor(size={"shortest_edge": 24}, crop_size={"height": 24, "width": 24})
    plan = CachePlan(mode, (3, 24, 24), directory=tmp_path, shared=True)
    cached = _scenario(data, processor, plan)
    train = cached.train_dataset(0)
    store = cached._stores["train"][0]
    loader = torch.utils.data.DataLoader(train, batch_size=2, num_workers=2, collate_fn=default_data_collator)
    from_workers = torch.cat([batch["pixel_values"] for batch in loader])
    assert bool(store.filled.all())  # written by the worker processes, seen here
    assert torch.equal(store.pixels, from_workers)
    expected = _scenario(data, processor, None).train_dataset(0)[:]["pixel_values"]
    assert torch.equal(cached.pixel_normalizer(from_workers), expected)


def test_stores_are_sized_per_task_for_training_and_per_run_for_test():
    data = _photo_dataset(6, 8, 8, "PNG")
    processor = CLIPImageProcessor(size={"shortest_edge": 8}, crop_size={"height": 8, "width": 8})
    cached = _scenario(data, processor, CachePlan("memory", (3, 8, 8)))
    assert cached.cache_need_bytes() == (3 + 6) * 3 * 8 * 8
    cached.train_dataset(0)
    first = cached._stores["train"][0]
    assert cached.train_dataset(0) is not None and cached._stores["train"][0] is first  # same task: same store
    cached.train_dataset(1)
    assert cached._stores["train"][0] is not first and cached._stores["train"][0].count == 3
    cached.test_dataset(0)
    test_store = cached._stores["test"][0]
    cached.test_dataset(1)
    assert cached._stores["test"][0] is test_store and test_store.count == 6


def test_pixel_store_on_disk_is_a_file_under_the_output_dir(tmp_path):
    store = PixelStore(3, (3, 2, 2), "disk", path=tmp_path / "pixel-cache" / "train-rank0.u8")
    store.pixels[1] = 7
    assert (tmp_path / "pixel-cache" / "train-rank0.u8").stat().st_size == 36
    assert (tmp_path / "pixel-cache" / "train-rank0.u8").read_bytes()[12:24] == bytes([7] * 12)
    store.close()
    assert not (tmp_path / "pixel-cache" / "train-rank0.u8").exists()


# ------------------------------------------------------------------------------------ ranks of a machine
def _rank_scenario(data, processor, directory, index, peers=2):
    """One rank's scenario whose stores the machine's ``peers`` ranks share (files under ``directory``)."""
    return _scenario(data, processor, CachePlan("disk", (3, 16, 16), directory=directory, peers=(index, peers)))


class _Fills(list):
    """Slots filled, in order; ``by_thread``: (thread id, slot) of each."""

    def __init__(self):
        super().__init__()
        self.by_thread = []

    def clear(self):
        super().clear()
        self.by_thread.clear()


def _counting_fills(monkeypatch):
    filled = _Fills()
    original = pixel_cache.CachedImageLabelTransform.fill

    def fill(self, slots):
        filled.extend(int(s) for s in slots)
        filled.by_thread.extend((threading.get_ident(), int(s)) for s in slots)
        return original(self, slots)

    monkeypatch.setattr(pixel_cache.CachedImageLabelTransform, "fill", fill)
    return filled


def test_ranks_of_a_machine_decode_their_share_and_read_the_others(tmp_path, monkeypatch):
    """Rank 1 finds rank 0's slots filled and decodes only its own half; both read every image, bit-identical
    to the uncached path; once both have their share, the files' names are gone (nothing left on disk)."""
    data = _photo_dataset(10, 20, 20, "PNG")
    processor = CLIPImageProcessor(size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16})
    filled = _counting_fills(monkeypatch)
    first, second = (_rank_scenario(data, processor, tmp_path, index) for index in (0, 1))
    split_0, split_1 = first.train_dataset(0), second.train_dataset(0)  # both open the one file
    store = first._stores["train"][0]
    assert store.across_processes and store.path.exists()
    split_0.prefill(patience_s=0.05)  # rank 1 has not decoded yet: rank 0 waits briefly, then decodes its half too
    assert sorted(filled) == list(range(store.count))
    filled.clear()
    split_1.prefill()  # everything is in the shared file already: rank 1 decodes nothing
    assert filled == [] and bool(second._stores["train"][0].filled.all())
    expected = _scenario(data, processor, None).train_dataset(0)[:]["pixel_values"]
    read = split_1.__getitems__(list(range(len(split_1)))).batch["pixel_values"]
    assert torch.equal(second.pixel_normalizer(read), expected)
    assert not store.path.exists() and not pixel_cache.flags_path(store.path).exists()


def test_each_rank_decodes_only_its_share_when_both_do_their_part(tmp_path, monkeypatch):
    """Rank 0 decodes its half and waits while rank 1 (here a thread, a little later) decodes the other."""
    data = _photo_dataset(10, 20, 20, "PNG")
    processor = CLIPImageProcessor(size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16})
    first, second = (_rank_scenario(data, processor, tmp_path, index) for index in (0, 1))
    split_0, split_1 = first.train_dataset(0), second.train_dataset(0)
    filled = _counting_fills(monkeypatch)
    peer = threading.Thread(target=lambda: (time.sleep(0.3), split_1.prefill(patience_s=5.0)))
    peer.start()
    split_0.prefill(patience_s=5.0)
    peer.join()
    store = first._stores["train"][0]
    mine = np.flatnonzero(store.share(np.arange(store.count))).tolist()
    assert len(mine) == store.count // 2 and bool(store.filled.all())
    assert sorted(filled) == list(range(store.count))  # each image decoded once, by one of the two
    assert sorted(slot for thread, slot in filled.by_thread if thread == threading.get_ident()) == mine


# ---------------------------------------------------------------------------------------------- resume
def test_resume_puts_prototypes_on_the_training_device(tiny_clip_dir, tiny_benchmark, tmp_path, monkeypatch):
    settings = tiny_settings(tiny_clip_dir, tmp_path / "run", num_tasks=2)
    from segp_hf.run.continual import run_continual

    run_continual(*parse_config(settings), benchmark=tiny_benchmark)
    runner = ContinualRunner(*parse_config(settings), benchmark=tiny_benchmark)
    # On the CPU the training device is the model's: resume places them there.
    assert runner.resume() == 2
    assert runner.state.prototypes.device == runner.training_device() == next(runner.model.parameters()).device
    # Where training runs elsewhere (a GPU), they go there, not where the checkpoint was read.
    monkeypatch.setattr(ContinualRunner, "training_device", lambda self: torch.device("meta"))
    runner = ContinualRunner(*parse_config(settings), benchmark=tiny_benchmark)
    runner.resume()
    assert runner.state.prototypes.device.type == "meta"


def test_a_zero_shot_set_beyond_the_budget_left_is_cached_on_disk_and_scores_the_same(tiny_clip_dir, tmp_path, caplog):
    """The benchmark's stores take the memory budget first; a zero-shot set that does not fit in what is left
    goes to a memory-mapped file (announced), is decoded once, scores as uncached, and is removed at the end."""
    from transformers import AutoTokenizer, CLIPImageProcessor, CLIPModel

    from segp_hf.evaluation.zero_shot import HeldOutSets, zero_shot_counts

    model = CLIPModel.from_pretrained(tiny_clip_dir)
    processor, tokenizer = CLIPImageProcessor.from_pretrained(tiny_clip_dir), AutoTokenizer.from_pretrained(tiny_clip_dir)
    _, data_args, _ = parse_config(tiny_settings(tiny_clip_dir, tmp_path, zero_shot_sets=["shapes_heldout"],
                                                 zero_shot_max_images=24))
    held_out = HeldOutSets(data_args, processor, PixelNormalizer.from_processor(processor), cache_dir=tmp_path / "pc",
                           budget_bytes=100)  # the benchmark left 100 bytes
    with caplog.at_level(logging.WARNING):
        cached = held_out.measure(model, tokenizer, 8, "cpu")
    shard = held_out.shard("shapes_heldout")
    store = shard.cached.transform.store
    assert store.mode == "disk" and store.path.parent == tmp_path / "pc" and bool(store.filled.all())
    assert "leaves for zero-shot set shapes_heldout" in caplog.text
    correct, total = zero_shot_counts(model, processor, tokenizer, shard.zero_shot, 8)  # decoded now, uncached
    assert total == 24 and cached["shapes_heldout"] == 100.0 * correct / total
    held_out.close()
    assert not list((tmp_path / "pc").glob("*.u8"))
