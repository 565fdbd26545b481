"""Prototype transfer by anchor drift (weighted default and ADC-style mean) and dual-path logits,
against values worked out by hand in plain Python."""

from __future__ import annotations

import math

import pytest
import torch

from segp_hf.method.prototypes import dual_path_logits, transfer_prototypes


def cos(u, v):
    dot = sum(a * b for a, b in zip(u, v))
    return dot / (math.sqrt(sum(a * a for a in u)) * math.sqrt(sum(b * b for b in v)))


def softmax(values):
    top = max(values)
    exps = [math.exp(v - top) for v in values]
    return [e / sum(exps) for e in exps]


# --- transfer_prototypes -------------------------------------------------------------------------------

def test_transfer_hand_two_anchors_two_classes_default_temperature():
    teacher = [[3.0, 0.0], [0.0, 1.0]]     # anchor 0 -> class 0, anchor 1 -> class 1 (not unit-norm)
    drift = [[0.5, -1.0], [2.0, 1.0]]
    student = [[t + d for t, d in zip(tr, dr)] for tr, dr in zip(teacher, drift)]
    protos = [[2.0, 0.0], [1.0, 2.0]]
    tau = 0.1
    # class 0: cos(a0, p0) = 1, cos(a1, p0) = 0 -> w_0 = [e^10, e^0] / (e^10 + 1); rho_0 = clip(1) = 1
    w0 = [math.exp(10.0) / (math.exp(10.0) + 1.0), 1.0 / (math.exp(10.0) + 1.0)]
    assert w0 == pytest.approx(softmax([cos(teacher[0], protos[0]) / tau, cos(teacher[1], protos[0]) / tau]))
    rho0 = 1.0
    # class 1: cos(a0, p1) = 1/sqrt(5), cos(a1, p1) = 2/sqrt(5) -> w_1 = softmax([10/sqrt5, 20/sqrt5]); rho_1 = 2/sqrt5
    e_lo, e_hi = math.exp(10 / math.sqrt(5)), math.exp(20 / math.sqrt(5))
    w1 = [e_lo / (e_lo + e_hi), e_hi / (e_lo + e_hi)]
    rho1 = 2 / math.sqrt(5)
    expected = [
        [protos[0][i] + rho0 * (w0[0] * drift[0][i] + w0[1] * drift[1][i]) for i in range(2)],
        [protos[1][i] + rho1 * (w1[0] * drift[0][i] + w1[1] * drift[1][i]) for i in range(2)],
    ]
    out = transfer_prototypes(torch.tensor(protos), torch.tensor(teacher), torch.tensor(student), torch.tensor([0, 1]))
    assert out.shape == (2, 2)
    assert torch.allclose(out, torch.tensor(expected), atol=1e-5), (out, expected)
    # explicit default mode gives the same
    out_w = transfer_prototypes(torch.tensor(protos), torch.tensor(teacher), torch.tensor(student), torch.tensor([0, 1]),
                                mode="weighted")
    assert torch.allclose(out_w, out)


def test_transfer_hand_temperature_and_negative_rho_clipped_to_zero():
    teacher = [[1.0, 0.0], [1.0, 1.0], [0.0, -1.0]]
    drift = [[1.0, 0.0], [0.0, 2.0], [-1.0, 1.0]]
    student = [[t + d for t, d in zip(tr, dr)] for tr, dr in zip(teacher, drift)]
    targets = [0, 0, 1]
    protos = [[1.0, 0.5], [0.0, 1.0]]
    tau = 0.5
    # class 0: rho = mean(cos(a0,p0), cos(a1,p0)) (both anchors target class 0)
    sims0 = [cos(a, protos[0]) for a in teacher]
    w0 = softmax([s / tau for s in sims0])
    rho0 = min(max((sims0[0] + sims0[1]) / 2, 0.0), 1.0)
    assert 0 < rho0 < 1
    # class 1: its only anchor (0, -1) has cos -1 with p1 = (0, 1) -> rho clipped to 0 -> unchanged
    assert cos(teacher[2], protos[1]) == pytest.approx(-1.0)
    expected0 = [protos[0][i] + rho0 * sum(w0[a] * drift[a][i] for a in range(3)) for i in range(2)]
    out = transfer_prototypes(torch.tensor(protos), torch.tensor(teacher), torch.tensor(student), torch.tensor(targets),
                              temperature=tau)
    assert torch.allclose(out[0], torch.tensor(expected0), atol=1e-5)
    assert torch.allclose(out[1], torch.tensor(protos[1]), atol=1e-6)


def test_transfer_zero_drift_leaves_prototypes_unchanged_both_modes():
    torch.manual_seed(0)
    protos = torch.randn(4, 6)
    teacher = torch.randn(7, 6)
    targets = torch.tensor([0, 0, 1, 2, 3, 3, 1])
    for mode in ("weighted", "mean"):
        out = transfer_prototypes(protos, teacher, teacher.clone(), targets, mode=mode)
        assert torch.allclose(out, protos, atol=1e-6), mode


def test_transfer_uniform_drift_moves_along_drift_by_rho():
    a = [[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]]
    targets = [0, 0, 1, 2]
    protos = [
        [1.0, 0.0, 0.0],    # anchors 0, 1: cos 1 and 0.7071 -> rho = 0.8536
        [0.0, 0.0, -1.0],   # anchor 2: cos -1 -> rho = 0 -> unchanged
        [0.0, 1.0, 1.0],    # anchor 3: cos 0.7071 -> rho = 0.7071
        [1.0, 1.0, 1.0],    # no anchor -> rho = 0 -> unchanged
    ]
    rhos = [(1.0 + 1 / math.sqrt(2)) / 2, 0.0, 1 / math.sqrt(2), 0.0]
    for c, rho in enumerate(rhos):
        own = [cos(a[i], protos[c]) for i in range(4) if targets[i] == c]
        assert rho == pytest.approx(min(max(sum(own) / len(own), 0.0), 1.0) if own else 0.0)
    d = torch.tensor([0.3, -0.2, 0.5])
    teacher = torch.tensor(a)
    out = transfer_prototypes(torch.tensor(protos), teacher, teacher + d, torch.tensor(targets))
    moved = out - torch.tensor(protos)
    for c, rho in enumerate(rhos):
        assert moved[c].norm().item() == pytest.approx(rho * d.norm().item(), abs=1e-5), c
        if rho > 0:
            assert torch.nn.functional.cosine_similarity(moved[c], d, dim=0).item() == pytest.approx(1.0, abs=1e-5)
            assert torch.allclose(moved[c], rho * d, atol=1e-5)


def test_transfer_mean_mode_adc_style():
    teacher = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    drift = torch.tensor([[1.0, 2.0], [3.0, -2.0], [-1.0, 0.5]])
    targets = torch.tensor([0, 0, 1])
    protos = torch.tensor([[1.0, 1.0], [-1.0, -1.0], [5.0, 5.0]])  # class 1 anti-aligned with its anchor: rho is 1 anyway
    out = transfer_prototypes(protos, teacher, teacher + drift, targets, mode="mean")
    # class 0: (1,1) + mean((1,2),(3,-2)) = (1,1) + (2,0) = (3,1)
    # class 1: (-1,-1) + (-1,0.5) = (-2,-0.5)
    # class 2: no anchors -> unchanged (5,5)
    expected = torch.tensor([[3.0, 1.0], [-2.0, -0.5], [5.0, 5.0]])
    assert torch.allclose(out, expected, atol=1e-6)


def test_transfer_does_not_modify_inputs():
    torch.manual_seed(1)
    protos, teacher, student = torch.randn(3, 4), torch.randn(5, 4), torch.randn(5, 4)
    targets = torch.tensor([0, 1, 2, 0, 1])
    copies = [t.clone() for t in (protos, teacher, student, targets)]
    for mode in ("weighted", "mean"):
        out = transfer_prototypes(protos, teacher, student, targets, mode=mode)
        assert not torch.allclose(out, protos)
        for before, after in zip(copies, (protos, teacher, student, targets)):
            assert torch.equal(before, after)


# --- dual_path_logits ---------------------------------------------------------------------------------

IMG = [[3.0, 4.0], [1.0, 0.0], [0.0, -2.0]]      # 3 images
TEXT = [[1.0, 0.0], [1.0, 1.0]]                  # 2 classes
RAW = [[0.0, 1.0], [2.0, 2.0], [1.0, -1.0]]
PROTO = [[5.0, 0.0], [0.0, -1.0]]


def test_dual_path_hand_value():
    r2 = 1 / math.sqrt(2)
    # cos(img, text): [[0.6, 7/(5*sqrt2)], [1, r2], [0, -r2]]
    clip_cos = [[0.6, 7 / (5 * math.sqrt(2))], [1.0, r2], [0.0, -r2]]
    # cos(raw, proto): [[0, -1], [r2, -r2], [r2, r2]]
    vis_cos = [[0.0, -1.0], [r2, -r2], [r2, r2]]
    for row in range(3):
        for c in range(2):
            assert clip_cos[row][c] == pytest.approx(cos(IMG[row], TEXT[c]))
            assert vis_cos[row][c] == pytest.approx(cos(RAW[row], PROTO[c]))
    s, beta = 10.0, 0.3
    expected = [[s * clip_cos[i][c] + beta * s * vis_cos[i][c] for c in range(2)] for i in range(3)]
    out = dual_path_logits(torch.tensor(IMG), torch.tensor(TEXT), torch.tensor(RAW), torch.tensor(PROTO),
                           logit_scale=s, beta=beta)
    assert out.shape == (3, 2)
    assert torch.allclose(out, torch.tensor(expected), atol=1e-5)
    # defaults: s = 100, beta = 0.5
    expected_default = [[100 * clip_cos[i][c] + 50 * vis_cos[i][c] for c in range(2)] for i in range(3)]
    out_default = dual_path_logits(torch.tensor(IMG), torch.tensor(TEXT), torch.tensor(RAW), torch.tensor(PROTO))
    assert torch.allclose(out_default, torch.tensor(expected_default), atol=1e-4)


def test_dual_path_beta_zero_is_plain_clip_logits():
    torch.manual_seed(2)
    img, text, raw, proto = torch.randn(5, 8), torch.randn(3, 8), torch.randn(5, 6), torch.randn(3, 6)
    plain = 100.0 * torch.nn.functional.normalize(img, dim=-1) @ torch.nn.functional.normalize(text, dim=-1).T
    out = dual_path_logits(img, text, raw, proto, beta=0.0)
    assert out.shape == (5, 3)
    assert torch.allclose(out, plain, atol=1e-4)
    assert not torch.allclose(dual_path_logits(img, text, raw, proto), plain, atol=1e-2)
