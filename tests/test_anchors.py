"""DPGD anchors: seed selection on hand-built embeddings, and the signed-gradient attack on tiny
deterministic encoders (one whose steps can be worked out by hand, one random linear one)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from segp_hf.method.anchors import dpgd_attack, select_seeds

# --- select_seeds ------------------------------------------------------------------------------------

# images (deliberately not unit-norm: a dot-product ranking would pick image 0 first for both classes)
IMAGES = torch.tensor([
    [10.0, 5.0],   # cos to class0 = 10/sqrt(125) = 0.894, class1 = 0.447
    [1.0, 0.1],    # 0.995, 0.0995
    [0.2, 1.0],    # 0.196, 0.981
    [0.6, 0.8],    # 0.600, 0.800
])
OLD_TEXT = torch.tensor([[1.0, 0.0], [0.0, 7.0]])


def test_select_seeds_top_k_by_cosine_class_major():
    indices, targets = select_seeds(IMAGES, OLD_TEXT, k=2)
    assert indices.dtype == torch.long and targets.dtype == torch.long
    assert indices.tolist() == [1, 0, 2, 3]
    assert targets.tolist() == [0, 0, 1, 1]


def test_select_seeds_image_can_seed_several_classes():
    indices, targets = select_seeds(IMAGES, OLD_TEXT, k=3)
    # class 0: 0.995 (1), 0.894 (0), 0.600 (3);  class 1: 0.981 (2), 0.800 (3), 0.447 (0)
    assert indices.tolist() == [1, 0, 3, 2, 3, 0]
    assert targets.tolist() == [0, 0, 0, 1, 1, 1]


def test_select_seeds_k_capped_at_number_of_images():
    indices, targets = select_seeds(IMAGES, OLD_TEXT, k=10)
    assert len(indices) == len(targets) == 2 * 4
    assert indices.tolist() == [1, 0, 3, 2, 2, 3, 0, 1]
    assert targets.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]


def test_select_seeds_default_k_is_5_and_three_classes():
    torch.manual_seed(0)
    images = torch.randn(12, 4)
    text = torch.randn(3, 4)
    indices, targets = select_seeds(images, text)
    assert len(indices) == len(targets) == 15
    sims = torch.nn.functional.normalize(images, dim=-1) @ torch.nn.functional.normalize(text, dim=-1).T
    for c in range(3):
        block = indices[5 * c:5 * (c + 1)]
        assert targets[5 * c:5 * (c + 1)].tolist() == [c] * 5
        assert set(block.tolist()) == set(sims[:, c].topk(5).indices.tolist())
        assert torch.all(sims[block, c][:-1] >= sims[block, c][1:])  # highest-cosine first


# --- dpgd_attack: hand-worked case ---------------------------------------------------------------------

class IdentityEncoder(nn.Module):
    """projected = raw = x (via an identity linear layer, so there are parameters to watch)."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 2, bias=False)
        with torch.no_grad():
            self.linear.weight.copy_(torch.eye(2))

    def forward(self, pixels):
        y = self.linear(pixels)
        return y, y


TEXT_2D = torch.tensor([[1.0, 0.0], [0.0, 1.0]])


def test_dpgd_hand_worked_text_term():
    # x = (1, 1), equally close to both classes. For target 0:
    #   grad_x cos(x, e0) = (v^2, -uv)/|x|^3,  grad_x cos(x, e1) = (-uv, u^2)/|x|^3   (x = (u, v))
    #   dCE/dlogits = p - onehot = (p0 - 1, p1), p0 < 1
    #   grad_x CE = s*[(p0-1)(v^2, -uv) + p1(-uv, u^2)]/|x|^3  has sign (-, +) while u, v > 0
    # so every step is delta <- delta - gamma*(-1, +1): after K steps delta = (K*gamma, -K*gamma),
    # clipped at eps. Target 1 is the mirror image.
    enc = IdentityEncoder()
    x = torch.tensor([[1.0, 1.0], [1.0, 1.0]])
    targets = torch.tensor([0, 1])
    protos = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # visual term pulls the same way here
    gamma, eps = 1.5e-3, 4 / 255
    out = dpgd_attack(enc, x, targets, TEXT_2D, protos, steps=10, step_size=gamma, epsilon=eps)
    move = 10 * gamma  # 0.015 < 4/255 = 0.01569: not clipped
    expected = torch.tensor([[1 + move, 1 - move], [1 - move, 1 + move]])
    assert torch.allclose(out, expected, atol=1e-6)
    # 20 steps would move 0.03: clipped to eps
    out20 = dpgd_attack(enc, x, targets, TEXT_2D, protos, steps=20, step_size=gamma, epsilon=eps)
    expected20 = torch.tensor([[1 + eps, 1 - eps], [1 - eps, 1 + eps]])
    assert torch.allclose(out20, expected20, atol=1e-6)


def test_dpgd_hand_worked_visual_term_uses_prototype_of_target():
    # logit_scale = 0 -> the CE term is constant (zero gradient); only lambda*(1 - cos(raw, p_target)) acts.
    # Prototypes are SWAPPED relative to the text: p_0 = (0, 1), p_1 = (1, 0).
    # grad_x (1 - cos(x, e1)) = (uv, -u^2)/|x|^3 -> sign (+, -): target 0 moves by (-gamma, +gamma) per step.
    enc = IdentityEncoder()
    x = torch.tensor([[1.0, 1.0], [1.0, 1.0]])
    targets = torch.tensor([0, 1])
    protos = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    gamma = 1e-3
    out = dpgd_attack(enc, x, targets, TEXT_2D, protos, logit_scale=0.0, steps=3, step_size=gamma, epsilon=0.1)
    expected = torch.tensor([[1 - 3 * gamma, 1 + 3 * gamma], [1 + 3 * gamma, 1 - 3 * gamma]])
    assert torch.allclose(out, expected, atol=1e-6)


def test_dpgd_lambda_visual_weighs_the_prototype_term():
    # text term gradient: s*(-a, a) with a = 1/(2*sqrt(2)) (target 0, x = (1,1), p = (0.5, 0.5));
    # visual term toward the swapped prototype (0,1): lambda*(a, -a). With s = 100:
    # lambda = 1000 -> total sign (+, -) -> step (-gamma, +gamma); lambda = 0 -> step (+gamma, -gamma).
    enc = IdentityEncoder()
    x = torch.tensor([[1.0, 1.0]])
    targets = torch.tensor([0])
    protos = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    gamma = 1e-3
    strong = dpgd_attack(enc, x, targets, TEXT_2D, protos, steps=1, step_size=gamma, epsilon=0.1, lambda_visual=1000.0)
    none = dpgd_attack(enc, x, targets, TEXT_2D, protos, steps=1, step_size=gamma, epsilon=0.1, lambda_visual=0.0)
    assert torch.allclose(strong, torch.tensor([[1 - gamma, 1 + gamma]]), atol=1e-7)
    assert torch.allclose(none, torch.tensor([[1 + gamma, 1 - gamma]]), atol=1e-7)


# --- dpgd_attack: random tiny encoder ------------------------------------------------------------------

class TinyEncoder(nn.Module):
    def __init__(self, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.raw = nn.Linear(12, 6)
        self.proj = nn.Linear(6, 4, bias=False)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g))

    def forward(self, pixels):
        raw = torch.tanh(self.raw(pixels.flatten(1)))
        return self.proj(raw), raw


def _setup(seed=0):
    g = torch.Generator().manual_seed(seed + 100)
    enc = TinyEncoder(seed)
    pixels = torch.randn(5, 3, 2, 2, generator=g) * 2.0  # normalised-pixel range, includes values < 0 and > 1
    text = torch.randn(3, 4, generator=g)
    protos = torch.randn(3, 6, generator=g)
    with torch.no_grad():
        emb, _ = enc(pixels)
        sims = torch.nn.functional.normalize(emb, dim=-1) @ torch.nn.functional.normalize(text, dim=-1).T
    targets = sims.argmin(dim=1)  # the currently LEAST likely class: room for the probability to rise
    return enc, pixels, targets, text, protos


def _per_sample_objective(enc, pixels, targets, text, protos, scale, lam):
    emb, raw = enc(pixels)
    logits = scale * torch.nn.functional.normalize(emb, dim=-1) @ torch.nn.functional.normalize(text, dim=-1).T
    ce = torch.nn.functional.cross_entropy(logits, targets, reduction="none")
    visual = 1 - torch.nn.functional.cosine_similarity(raw, protos[targets], dim=-1)
    return ce + lam * visual, logits


def test_dpgd_stays_in_linf_ball_and_leaves_input_and_params_alone():
    enc, pixels, targets, text, protos = _setup()
    original = pixels.clone()
    eps = 4 / 255
    out = dpgd_attack(enc, pixels, targets, text, protos, steps=10, step_size=0.01, epsilon=eps)  # 0.1 total: must clip
    assert out.shape == pixels.shape
    assert not out.requires_grad and out.grad_fn is None
    assert torch.equal(pixels, original)
    assert (out - pixels).abs().max().item() <= eps + 1e-6
    assert (out - pixels).abs().max().item() == pytest.approx(eps, abs=1e-6)  # the clip binds somewhere
    # no clamp to [0, 1]: values far outside stay there
    assert torch.allclose(out[pixels < -1], pixels[pixels < -1], atol=eps + 1e-6)
    assert (out < 0).any() and (out > 1).any()
    for name, param in enc.named_parameters():
        assert param.grad is None, name


def test_dpgd_one_step_matches_signed_gradient_of_the_objective():
    enc, pixels, targets, text, protos = _setup(seed=1)
    gamma = 1e-3
    x = pixels.clone().requires_grad_(True)
    obj, _ = _per_sample_objective(enc, x, targets, text, protos, 100.0, 1.0)
    (grad,) = torch.autograd.grad(obj.sum(), x)
    expected = pixels - gamma * grad.sign()
    out = dpgd_attack(enc, pixels, targets, text, protos, steps=1, step_size=gamma, epsilon=4 / 255)
    assert torch.allclose(out, expected, atol=1e-7)
    for param in enc.parameters():
        assert param.grad is None


def test_dpgd_raises_target_probability_and_lowers_objective():
    enc, pixels, targets, text, protos = _setup(seed=2)
    out = dpgd_attack(enc, pixels, targets, text, protos, lambda_visual=0.0)
    with torch.no_grad():
        _, before = _per_sample_objective(enc, pixels, targets, text, protos, 100.0, 0.0)
        _, after = _per_sample_objective(enc, out, targets, text, protos, 100.0, 0.0)
    p_before = before.softmax(-1).gather(1, targets[:, None]).squeeze(1)
    p_after = after.softmax(-1).gather(1, targets[:, None]).squeeze(1)
    assert torch.all(p_after > p_before), (p_before, p_after)
    # combined objective (default lambda_visual = 1) goes down too
    out = dpgd_attack(enc, pixels, targets, text, protos)
    with torch.no_grad():
        obj_before, _ = _per_sample_objective(enc, pixels, targets, text, protos, 100.0, 1.0)
        obj_after, _ = _per_sample_objective(enc, out, targets, text, protos, 100.0, 1.0)
    assert obj_after.sum() < obj_before.sum()
    for param in enc.parameters():
        assert param.grad is None


def test_dpgd_zero_steps_returns_input():
    enc, pixels, targets, text, protos = _setup()
    out = dpgd_attack(enc, pixels, targets, text, protos, steps=0)
    assert torch.equal(out, pixels)
    assert not out.requires_grad
