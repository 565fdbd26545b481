"""Cached sets hand the DataLoader whole batches (one gather from the store, no split into rows and re-stack):
the batches equal the row path's and the uncached path's, and the Trainer's and the callbacks' loaders take
them whole."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_settings
from test_pixel_cache import _photo_dataset
from transformers import CLIPImageProcessor, default_data_collator

from segp_hf.data.pixel_cache import CachePlan
from segp_hf.data.ready_batches import CachedSplit, ReadyBatch, ready_batches
from segp_hf.data.scenario import ClassIncrementalScenario
from segp_hf.method.task_state import TaskState
from segp_hf.modeling.student import build_lora_clip, encode_dataset, logit_scale_of
from segp_hf.recipe import parse_config
from segp_hf.run.continual import build_scenario
from segp_hf.trainer import SeGPTrainer


def _scenarios(count=10):
    data = _photo_dataset(count, 30, 40, "PNG")
    processor = CLIPImageProcessor(size={"shortest_edge": 24}, crop_size={"height": 24, "width": 24})

    def build(plan):
        return ClassIncrementalScenario(train=data, test=data, class_names=["a", "b"], class_order=[1, 0],
                                        num_tasks=1, image_processor=processor, pixel_cache=plan)

    return build(CachePlan("memory", (3, 24, 24))), build(None)


def _equal_batches(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), key


def test_whole_batches_equal_the_row_path_and_the_uncached_pixels():
    cached, plain = _scenarios()
    train = cached.train_dataset(0, with_index=True)
    assert isinstance(train, CachedSplit)
    order = [7, 2, 9, 0, 5, 3, 8, 1, 6, 4]
    sampler = torch.utils.data.BatchSampler(order, batch_size=4, drop_last=False)
    whole = list(torch.utils.data.DataLoader(train, batch_sampler=sampler, collate_fn=ready_batches(default_data_collator)))
    rows = list(torch.utils.data.DataLoader(train.dataset, batch_sampler=sampler, collate_fn=default_data_collator))
    uncached = plain.train_dataset(0, with_index=True)
    assert [len(b["labels"]) for b in whole] == [4, 4, 2]
    for got, expected, indices in zip(whole, rows, sampler):
        _equal_batches(got, expected)
        assert got["pixel_values"].dtype == torch.uint8  # uint8 until the device
        reference = default_data_collator([uncached[i] for i in indices])
        assert torch.equal(cached.pixel_normalizer(got["pixel_values"]), reference["pixel_values"])
        assert torch.equal(got["labels"], reference["labels"])
        assert torch.equal(got["sample_index"], reference["sample_index"])
    # a plain collator still gets rows (views of the batch): same tensors, one copy more
    fallback = next(iter(torch.utils.data.DataLoader(train, batch_sampler=sampler, collate_fn=default_data_collator)))
    _equal_batches(fallback, whole[0])
    # select keeps slots, labels and sample indices aligned
    part = train.select([3, 8, 1])
    _equal_batches(ready_batches(default_data_collator)(part.__getitems__([2, 0])),
                   default_data_collator([train.dataset[1], train.dataset[3]]))
    assert len(part) == 3 and part.column_names == train.dataset.column_names  # the datasets API is forwarded
    assert torch.equal(part[:2]["pixel_values"], train[[3, 8]]["pixel_values"])


@pytest.fixture
def trainer_parts(tiny_clip_dir, tiny_benchmark, tmp_path):
    from transformers import AutoTokenizer

    from segp_hf.data.scenario import prompts_for, tokenize_prompts

    model_args, data_args, config = parse_config(tiny_settings(tiny_clip_dir, tmp_path, per_device_train_batch_size=4))
    scenario, template = build_scenario(model_args, data_args, tiny_benchmark)
    model = build_lora_clip(tiny_clip_dir, r=4)
    tokenizer = AutoTokenizer.from_pretrained(tiny_clip_dir)
    state = TaskState.for_run(config.variant, logit_scale=logit_scale_of(model),
                              text_inputs=tokenize_prompts(tokenizer, prompts_for(scenario.ordered_class_names, template)),
                              pixel_normalizer=scenario.pixel_normalizer)
    return model, config, scenario, state


def test_the_trainers_and_callbacks_loaders_take_whole_batches(trainer_parts, monkeypatch):
    model, config, scenario, state = trainer_parts
    train, test = scenario.train_dataset(0), scenario.test_dataset(0)
    assert isinstance(train, CachedSplit) and isinstance(test, CachedSplit)
    monkeypatch.setattr(ReadyBatch, "__getitem__", lambda self, i: pytest.fail("a cached batch was split into rows"))
    state.begin_task(0, scenario.bounds[0], train, default_data_collator)
    trainer = SeGPTrainer(model=model, args=config, train_dataset=train, data_collator=default_data_collator,
                          task_state=state)
    seen = sum(len(batch["labels"]) for batch in trainer.get_train_dataloader())
    assert seen == len(train)
    assert sum(len(batch["labels"]) for batch in trainer.get_eval_dataloader(test)) == len(test)
    embeds, _, labels = encode_dataset(model, train, default_data_collator, 4, config.raw_feature, state.pixel_normalizer)
    assert len(embeds) == len(train) and torch.equal(labels, train.labels)


def test_workers_fill_a_cached_set_then_the_trainer_reads_it_in_process(trainer_parts):
    model, config, scenario, state = trainer_parts  # tiny_settings: pixel cache in memory, made for 0 workers
    from segp_hf.data.pixel_cache import CachePlan

    scenario.close_cache()
    scenario.pixel_cache = CachePlan("memory", scenario.pixel_cache.shape, shared=True)  # as planned for workers
    train, test = scenario.train_dataset(0), scenario.test_dataset(0)
    config.dataloader_num_workers = 2
    state.begin_task(0, scenario.bounds[0], train, default_data_collator)
    trainer = SeGPTrainer(model=model, args=config, train_dataset=train, data_collator=default_data_collator,
                          task_state=state)
    loader = trainer.get_train_dataloader()
    store = scenario._stores["train"][0]
    assert bool(store.filled.all())  # decoded by the 2 worker processes before the loader exists
    assert loader.num_workers == 0 and config.dataloader_num_workers == 2  # read here; the setting is restored
    assert trainer.get_eval_dataloader(test).num_workers == 0
    assert bool(scenario._stores["test"][0].filled[torch.as_tensor(test.slots)].all())
