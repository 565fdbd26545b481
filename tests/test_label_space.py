"""benchmarks/label_space.py in its tiny mode: the FLOP split of the real SeGP-CL step against the seen classes."""

import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


def test_label_space_tiny_counts_a_text_tower_linear_in_the_classes(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import label_space

    report = label_space.main(["--tiny", "--classes", "10", "20", "40", "--project", "80", "--timed_classes", "10",
                               "--timed_batch", "2", "--repeats", "1", "--out", str(tmp_path / "ls.json")])
    rows = {row["classes"]: row for row in report["flops"]}
    assert all(row["images"] == 160 for row in rows.values())  # the paper's 128 + 32 anchors
    assert len({row["vision_flops"] for row in rows.values()}) == 1  # the image side does not see the classes
    assert rows[20]["text_flops"] == 2 * rows[10]["text_flops"] and rows[80]["text_flops"] == 8 * rows[10]["text_flops"]
    # logits and losses, counted on the step itself: small, so the step's towers are the ones counted in isolation
    assert all(0 < row["rest_flops"] < 0.02 * row["step_flops"] for row in rows.values())
    assert rows[10]["text_share"] < rows[40]["text_share"] < rows[80]["text_share"]
    assert report["wall"][0]["median_s"]["step"] > 0 and 0 < report["wall"][0]["text_share_at_160"] < 1


def test_fake_tensor_count_equals_the_count_of_the_computed_step(tmp_path, monkeypatch):
    # FlopCounterMode under FakeTensorMode computes nothing: its count must be that of the real step
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import label_space
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from segp_hf.modeling.student import logit_scale_of

    model, size, width = label_space.build(tmp_path, tiny=True)
    fake = label_space.count_flops(model, 20, 8, tmp_path / "out", size, width)
    generator = torch.Generator().manual_seed(20)
    state = label_space.last_task_state(20, 8, logit_scale_of(model), size, width, generator)
    closures = label_space.pieces(label_space.trainer_for(model, state, tmp_path / "out"), state, 128, size, generator)
    model.base_model.model.set_attn_implementation("eager")  # as count_flops counts (CPU SDPA has no formula)
    for name in ("step", "text", "vision"):
        counter = FlopCounterMode(display=False)
        with counter:
            closures[name]()
        assert counter.get_total_flops() == fake[f"{name}_flops"]


def test_projection_of_a_whole_run_weights_every_task_alike():
    sys.path.insert(0, str(BENCHMARKS))
    import label_space

    rows = [{"classes": c, "text_flops": 2 * c, "step_flops": 2 * c + 1000} for c in (100, 1000)]
    p = label_space.projections(rows)
    assert p["text_flops_per_class"] == 2 and p["non_text_flops"] == 1000 and p["classes_where_text_is_half"] == 500
    assert p["imagenet1k_10_tasks_last_task"] == pytest.approx(2000 / 3000)
    seen = [100 * k for k in range(1, 11)]
    assert p["imagenet1k_10_tasks_whole_run"] == pytest.approx(2 * sum(seen) / (2 * sum(seen) + 10_000))
