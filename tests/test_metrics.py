"""Continual-learning metrics on a hand-worked accuracy matrix, and the evaluate-based accuracy metric."""

from __future__ import annotations

import math

import evaluate
import numpy as np
import pytest

from segp_hf.evaluation.metrics import AccuracyMetric, continual_metrics

# R[i][j] = accuracy on task j after training task i (row i = after task i; entries above the diagonal are
# zero-shot accuracies on tasks not yet learned).
R = [
    [0.90, 0.30, 0.20],
    [0.95, 0.85, 0.40],
    [0.70, 0.75, 0.80],
]
# A_0 = 0.90
# A_1 = (0.95 + 0.85) / 2         = 0.90
# A_2 = (0.70 + 0.75 + 0.80) / 3  = 0.75
# avg  = (0.90 + 0.90 + 0.75) / 3 = 0.85;   last = 0.75
# forgetting: j=0: max(R00, R10) - R20 = 0.95 - 0.70 = 0.25;  j=1: R11 - R21 = 0.85 - 0.75 = 0.10  -> 0.175
#   (note: max uses R10 = 0.95, not R00: forgetting != -bwt here)
# bwt: j=0: R20 - R00 = -0.20;  j=1: R21 - R11 = -0.10  -> -0.15
# fwt: R01 = 0.30, R12 = 0.40 -> 0.35
HAND = dict(avg=0.85, last=0.75, forgetting=0.175, bwt=-0.15, fwt=0.35)


def test_continual_metrics_hand_worked_3x3():
    out = continual_metrics(R)
    for key, value in HAND.items():
        assert out[key] == pytest.approx(value, abs=1e-9), key


def test_continual_metrics_accepts_numpy_and_returns_floats():
    out = continual_metrics(np.array(R))
    for key, value in HAND.items():
        assert isinstance(out[key], float), key
        assert out[key] == pytest.approx(value, abs=1e-9), key


@pytest.mark.parametrize("blank", [float("nan"), None])
def test_unknown_upper_triangle_makes_only_fwt_nan(blank):
    lower = [[row[j] if j <= i else blank for j, _ in enumerate(row)] for i, row in enumerate(R)]
    out = continual_metrics(lower)
    assert math.isnan(out["fwt"])
    for key in ("avg", "last", "forgetting", "bwt"):
        assert math.isfinite(out[key]), key
        assert out[key] == pytest.approx(HAND[key], abs=1e-9), key


def test_task_weights_change_avg_and_last():
    # weights [3, 1, 1] (e.g. test-image counts):
    # A_0 = 0.90;  A_1 = (3*0.95 + 0.85) / 4 = 3.70/4 = 0.925;  A_2 = (3*0.70 + 0.75 + 0.80) / 5 = 3.65/5 = 0.73
    # avg = (0.90 + 0.925 + 0.73) / 3 = 2.555/3 = 0.851666...;  last = 0.73
    out = continual_metrics(R, task_weights=[3, 1, 1])
    assert out["avg"] == pytest.approx(2.555 / 3, abs=1e-9)
    assert out["last"] == pytest.approx(0.73, abs=1e-9)
    assert out["avg"] != pytest.approx(HAND["avg"], abs=1e-6)
    # equal weights are the unweighted result
    same = continual_metrics(R, task_weights=[7, 7, 7])
    assert same["avg"] == pytest.approx(HAND["avg"], abs=1e-9)
    assert same["last"] == pytest.approx(HAND["last"], abs=1e-9)


def test_single_task():
    out = continual_metrics([[0.6]])
    assert out["avg"] == pytest.approx(0.6)
    assert out["last"] == pytest.approx(0.6)
    for key in ("forgetting", "bwt", "fwt"):
        assert math.isnan(out[key]), key


def test_two_tasks_no_forgetting_when_accuracy_rises():
    # forgetting = max(R00) - R10 = 0.5 - 0.7 = -0.2 (can be negative when accuracy rises); bwt = +0.2
    out = continual_metrics([[0.5, 0.1], [0.7, 0.9]])
    assert out["forgetting"] == pytest.approx(-0.2, abs=1e-9)
    assert out["bwt"] == pytest.approx(0.2, abs=1e-9)
    assert out["fwt"] == pytest.approx(0.1, abs=1e-9)
    assert out["avg"] == pytest.approx((0.5 + 0.8) / 2, abs=1e-9)
    assert out["last"] == pytest.approx(0.8, abs=1e-9)


def test_accuracy_metric_value():
    metric = AccuracyMetric()
    assert isinstance(metric, evaluate.Metric)
    result = metric.compute(predictions=[0, 1, 2, 1], references=[0, 1, 1, 1])
    assert set(result) == {"accuracy"}
    assert result["accuracy"] == pytest.approx(0.75)
    assert AccuracyMetric().compute(predictions=[3, 3], references=[3, 3])["accuracy"] == pytest.approx(1.0)
    assert AccuracyMetric().compute(predictions=[0, 1, 0], references=[1, 0, 2])["accuracy"] == pytest.approx(0.0)


# ------------------------------------------------------------------ the continuum library's convention
# (its Logger's definitions; RAPF and MG-CLIP report these). T = 4, T(T-1)/2 = 6.
R4 = [
    [80, 10, 20, 30],
    [70, 90, 15, 25],
    [85, 85, 70, 35],
    [50, 75, 65, 95],
]
# bwt: i=2, j=0: 85-80 = 5;  i=3, j=0: 50-80 = -30;  i=3, j=1: 75-90 = -15   -> -40 / 6
#   (i=1 has no j <= i-2; the last task's own column never enters)
# fwt: the lower triangle 70 + 85 + 85 + 50 + 75 + 65 = 430                     -> 430 / 6
# forgetting: j=0: max(R00, R10) - R30 = 80 - 50 = 30;  j=1: R11 - R31 = 90 - 75 = 15 -> 45 / (T-1) = 15
#   (the max stops at row T-3: R20 = 85 is not looked at; task T-2 = 2 is not counted)
# avg: (80 + 80 + 80 + 71.25) / 4 = 77.8125;  last: (50 + 75 + 65 + 95) / 4 = 71.25
HAND_CONTINUUM = dict(avg=77.8125, last=71.25, forgetting=15.0, bwt=-40 / 6, fwt=430 / 6)


def test_continuum_convention_hand_worked_4x4():
    out = continual_metrics(R4, convention="continuum")
    for key, value in HAND_CONTINUUM.items():
        assert out[key] == pytest.approx(value, abs=1e-9), key


def test_continuum_convention_differs_from_textbook_and_ignores_the_upper_triangle():
    textbook = continual_metrics(R4)
    # textbook on the same matrix: forgetting (85-50 + 90-75 + 70-65) / 3 = 55/3; bwt -50/3; fwt (10+15+35)/3 = 20
    assert textbook["forgetting"] == pytest.approx(55 / 3)
    assert textbook["bwt"] == pytest.approx(-50 / 3)
    assert textbook["fwt"] == pytest.approx(20.0)
    blank_upper = [[v if j <= i else math.nan for j, v in enumerate(row)] for i, row in enumerate(R4)]
    assert continual_metrics(blank_upper, convention="continuum") == continual_metrics(R4, convention="continuum")


def test_continuum_convention_single_task_and_unknown_convention():
    out = continual_metrics([[42.0]], convention="continuum")
    assert out["last"] == 42.0 and math.isnan(out["bwt"]) and math.isnan(out["forgetting"])
    with pytest.raises(ValueError, match="convention"):
        continual_metrics(R4, convention="paper")
