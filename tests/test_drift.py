"""Hand-computed checks of the drift measures (segp_hf.drift): pure tensors, no model."""

from __future__ import annotations

import math

import pytest
import torch

from segp_hf.evaluation import drift
from segp_hf.method.losses import tsgr_loss

SQRT_HALF = math.sqrt(0.5)


def test_neighbourhood_kl_by_hand():
    # Reference: class 0 = (1, 0), class 1 = (0, 1), class 2 = (1, 1)/sqrt2. Class 0's 2 neighbours in the reference
    # geometry: 2 (cos 0.707) then 1 (cos 0). Current: class 2 moved onto class 1, so both cosines are 0 and p is uniform.
    reference = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    current = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    q0 = math.exp(SQRT_HALF) / (math.exp(SQRT_HALF) + 1.0)
    q = [q0, 1.0 - q0]
    expected = sum(qi * math.log(qi / 0.5) for qi in q)  # 0.0588
    kl = drift.neighbourhood_kl(reference, current, [0], k=2, temperature=1.0)
    assert kl.shape == (1,)
    assert kl.item() == pytest.approx(expected, rel=1e-5)
    assert expected == pytest.approx(0.0588, abs=1e-4)
    neighbours, log_q, log_p = drift.neighbourhood_log_distributions(reference, current, [0], k=2, temperature=1.0)
    assert neighbours.tolist() == [[2, 1]]
    assert log_q.exp()[0].tolist() == pytest.approx(q, rel=1e-5)
    assert log_p.exp()[0].tolist() == pytest.approx([0.5, 0.5], rel=1e-6)


def test_neighbourhood_kl_zero_without_drift_and_scale_free():
    torch.manual_seed(0)
    reference = torch.randn(6, 4)
    assert drift.neighbourhood_kl(reference, reference, [0, 3], k=3).abs().max().item() < 1e-6
    # embeddings are compared by cosine: a rescaled copy has not drifted
    assert drift.neighbourhood_kl(reference, 5.0 * reference, [0, 3], k=3).abs().max().item() < 1e-6
    assert drift.neighbourhood_kl(reference, reference, [], k=3).numel() == 0


def test_neighbourhood_kl_is_tsgr_per_root():
    """Same q and p as TSGR: averaged over the new classes it is exactly losses.tsgr_loss."""
    torch.manual_seed(1)
    reference, current = torch.randn(8, 5), torch.randn(8, 5)
    roots = [5, 6, 7]
    per_root = drift.neighbourhood_kl(reference, current, roots, k=4, temperature=0.05)
    assert per_root.mean().item() == pytest.approx(tsgr_loss(current, reference, roots, k=4, temperature=0.05).item(),
                                                   rel=1e-6)


def test_cosine_distance_by_hand():
    a = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [1.0, 1.0]])
    b = torch.tensor([[0.0, 1.0], [2.0, 0.0], [-1.0, 0.0], [1.0, 0.0]])
    assert drift.cosine_distance(a, b).tolist() == pytest.approx([1.0, 0.0, 2.0, 1.0 - SQRT_HALF], abs=1e-6)


def test_correct_class_margin_by_hand():
    logits = torch.tensor([[3.0, 1.0, 2.0], [3.0, 1.0, 2.0], [0.0, 5.0, 5.0]])
    labels = torch.tensor([0, 1, 2])
    # 3 - 2; 1 - 3; 5 - 5 (a tie is a zero margin)
    assert drift.correct_class_margin(logits, labels).tolist() == [1.0, -2.0, 0.0]


def test_cross_modal_change_by_hand():
    # Two classes with texts (1, 0) and (0, 1); two images of class 0 and one of class 1; logit scale 10.
    text = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    ref_images = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    # current: the first image turned 45 degrees toward class 1, the others unchanged; the texts unchanged
    cur_images = torch.tensor([[SQRT_HALF, SQRT_HALF], [1.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, 0, 1])
    change = drift.cross_modal_change((ref_images, text), (cur_images, text), labels, [0, 1], logit_scale=10.0)
    # image 0: margin 10 -> 0 (change -10), cosine 1 -> 0.707 (change -0.293); image 1: no change. Class 0 means:
    assert change["margin_change"].tolist() == pytest.approx([-5.0, 0.0], abs=1e-5)
    assert change["cosine_change"].tolist() == pytest.approx([(SQRT_HALF - 1.0) / 2, 0.0], abs=1e-6)
    # the texts moving counts too: class 1's text turned onto class 0's makes image 2's margin 10 - 0 -> 0 - 0
    cur_text = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    change = drift.cross_modal_change((ref_images, text), (ref_images, cur_text), labels, [1], logit_scale=10.0)
    assert change["margin_change"].tolist() == pytest.approx([-10.0], abs=1e-5)
    assert change["cosine_change"].tolist() == pytest.approx([-1.0], abs=1e-6)


def test_class_means_and_confusion_by_hand():
    feats = torch.tensor([[1.0, 0.0], [3.0, 2.0], [0.0, 4.0]])
    labels = torch.tensor([0, 0, 2])
    means = drift.class_means(feats, labels, [0, 1, 2])
    assert means[0].tolist() == [2.0, 1.0]
    assert torch.isnan(means[1]).all()  # class 1 has no image
    assert means[2].tolist() == [0.0, 4.0]
    logits = torch.tensor([[5.0, 0.0, 9.0], [5.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    # class 0: one of its two images goes to new class 2; class 2 (itself new here) goes to 2
    assert drift.new_class_confusion(logits, labels, [0, 2], new_classes=[2]).tolist() == [0.5, 1.0]


def test_prototype_error_by_hand():
    prototypes = torch.tensor([[2.0, 0.0], [1.0, 1.0]])
    means = torch.tensor([[5.0, 0.0], [0.0, 3.0]])
    assert drift.prototype_error(prototypes, means).tolist() == pytest.approx([0.0, 1.0 - SQRT_HALF], abs=1e-6)


def test_interface_by_text_by_hand():
    # Classes on the unit circle at 0, 10, 90 and 20 degrees; class 3 is new. Its nearest (k=1) is class 1
    # (10 degrees away), then class 0 (20): k=1 -> interface [1]; k=2 -> [0, 1]; class 2 is never reached.
    angles = torch.tensor([0.0, 10.0, 90.0, 20.0]) * math.pi / 180
    text = torch.stack([angles.cos(), angles.sin()], dim=1)
    assert drift.interface_by_text(text, [3], [0, 1, 2], k=1) == [1]
    assert drift.interface_by_text(text, [3], [0, 1, 2], k=2) == [0, 1]
    assert drift.interface_by_text(text, [], [0, 1, 2], k=2) == []
    assert drift.interface_by_confusion(torch.tensor([0.05, 0.1, 0.5]), [0, 1, 2], threshold=0.1) == [1, 2]


def test_group_summary_by_hand():
    per_class = {"shift": [1.0, 3.0, 0.5, float("nan")], "change": [-2.0, -4.0, -1.0, -1.0]}
    summary = drift.group_summary(per_class, classes=[0, 1, 2, 3], interface=[0, 1])
    assert summary["interface"]["classes"] == [0, 1] and summary["core"]["classes"] == [2, 3]
    assert summary["interface"]["shift"] == 2.0
    assert summary["core"]["shift"] == 0.5  # the NaN is left out
    assert summary["ratio"]["shift"] == 4.0
    assert summary["ratio"]["change"] == 3.0  # -3 / -1
    empty_core = drift.group_summary(per_class, classes=[0, 1, 2, 3], interface=[0, 1, 2, 3])
    assert empty_core["core"]["shift"] is None and empty_core["ratio"]["shift"] is None
