"""Hand-computed checks of the competitors' tensor math (segp_hf.variants; docs/variants.md R*, M*, S*).

Every expected number is worked out in the comment next to it, never by calling the code under test.
"""

import math

import pytest
import torch

from segp_hf.variants import schedules
from segp_hf.variants.mg_clip import math as mg_clip
from segp_hf.variants.rapf import math as rapf


def close(actual, expected, atol=1e-5):
    torch.testing.assert_close(torch.as_tensor(actual, dtype=torch.float32),
                               torch.as_tensor(expected, dtype=torch.float32), atol=atol, rtol=0)


# ---------------------------------------------------------------- schedules (S1, S2)

def test_multistep_factor_by_hand():
    # milestones [4, 10], gamma 0.1: epochs 0-3 -> 1, 4-9 -> 0.1, 10-14 -> 0.01
    assert [schedules.multistep_factor(e) for e in (0, 3)] == [1.0, 1.0]
    assert [schedules.multistep_factor(e) for e in (4, 9)] == [0.1, 0.1]
    assert schedules.multistep_factor(10) == pytest.approx(0.01)
    assert schedules.multistep_factor(14) == pytest.approx(0.01)


def test_multistep_factor_matches_torch_multisteplr():
    # the authors' scheduler, stepped once per epoch
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [4, 10], gamma=0.1)
    for epoch in range(15):
        assert opt.param_groups[0]["lr"] == pytest.approx(schedules.multistep_factor(epoch))
        opt.step()
        sched.step()


def test_cosine_factor_by_hand():
    # total 2, min 0.01: step 0 -> 1; step 1 -> 0.01 + 0.99 * (1 + cos(pi/2)) / 2 = 0.505; step 2 -> 0.01
    assert schedules.cosine_factor(0, 2) == pytest.approx(1.0)
    assert schedules.cosine_factor(1, 2) == pytest.approx(0.505)
    assert schedules.cosine_factor(2, 2) == pytest.approx(0.01)
    # one epoch (MG-CLIP CIFAR-100): the whole epoch runs at the base lr
    assert schedules.cosine_factor(0, 1) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        schedules.cosine_factor(0, 0)


def test_cosine_factor_matches_torch_cosineannealing():
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 5, eta_min=0.01)
    for step in range(6):
        assert opt.param_groups[0]["lr"] == pytest.approx(schedules.cosine_factor(step, 5))
        opt.step()
        sched.step()


# ---------------------------------------------------------------- RAPF (R1-R9)

def test_init_adapter_is_nn_linear_default_range():
    # Kaiming-uniform with a = sqrt(5): bound = sqrt(6 / ((1 + 5) d)) = 1 / sqrt(d); d = 256 -> 0.0625,
    # std = bound / sqrt(3) = 0.036084
    w = rapf.init_adapter(256, torch.Generator().manual_seed(0))
    assert w.shape == (256, 256)
    assert w.abs().max() <= 0.0625
    assert w.abs().max() > 0.0625 * 0.99  # fills the range, not a narrower one
    assert w.std().item() == pytest.approx(0.036084, rel=0.02)
    again = rapf.init_adapter(256, torch.Generator().manual_seed(0))
    assert torch.equal(w, again)


def test_adapter_logits_by_hand():
    # W = [[1,0],[1,1]] (not symmetric, so W f and W^T f differ): W f = [1, 1]; u = [1, 0] and [0, 2]:
    # cos = 1/sqrt2 each -> logits 70.7107, 70.7107 (W^T f = [1, 0] would give 100, 0)
    feats = torch.tensor([[1.0, 0.0]])
    w = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    text = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    close(rapf.adapter_logits(feats, w, text), [[70.7107, 70.7107]], atol=1e-3)


def test_class_statistics_by_hand():
    # class 0: rows [1,2], [3,4]: mean [2,3]; deviations +-[1,1]: unbiased cov (1/1) * 2 * [[1,1],[1,1]]
    # class 5: rows [0,0], [0,2], [0,4]: mean [0,2]; deviations [0,-2],[0,0],[0,2]: cov (1/2) * [[0,0],[0,8]]
    # both + 1e-4 on the diagonal; classes come back sorted although the labels are interleaved
    feats = torch.tensor([[0.0, 0.0], [1.0, 2.0], [0.0, 2.0], [3.0, 4.0], [0.0, 4.0]])
    labels = torch.tensor([5, 0, 5, 0, 5])
    classes, means, covs = rapf.class_statistics(feats, labels)
    assert classes.tolist() == [0, 5]
    close(means, [[2.0, 3.0], [0.0, 2.0]])
    close(covs[0], [[2.0001, 2.0], [2.0, 2.0001]])
    close(covs[1], [[0.0001, 0.0], [0.0, 4.0001]])


def test_shrink_covariance_by_hand():
    # [[2,1],[1,4]]: mean diagonal 3, mean off-diagonal 1 -> [[2+3, 1+1], [1+1, 4+3]]
    close(rapf.shrink_covariance(torch.tensor([[2.0, 1.0], [1.0, 4.0]])), [[5.0, 2.0], [2.0, 7.0]])
    # 3x3: diagonal 1,2,3 (mean 2); off-diagonal 0.5 twice and 0 elsewhere: nonzero mean 0.5, applied to all 6
    cov = torch.tensor([[1.0, 0.5, 0.0], [0.5, 2.0, 0.0], [0.0, 0.0, 3.0]])
    close(rapf.shrink_covariance(cov), [[3.0, 1.0, 0.5], [1.0, 4.0, 0.5], [0.5, 0.5, 5.0]])


def test_gaussian_samples_by_hand():
    # cov diag(4, 9): L = diag(2, 3); z = [1, 1] -> [2, 3] + mean [1, -1] = [3, 2]; z = [0, -1] -> [0, -3] + mean
    mean = torch.tensor([1.0, -1.0])
    noise = torch.tensor([[1.0, 1.0], [0.0, -1.0]])
    close(rapf.gaussian_samples(mean, torch.diag(torch.tensor([4.0, 9.0])), noise), [[3.0, 2.0], [1.0, -4.0]])
    # cov [[4,2],[2,2]]: L = [[2,0],[1,1]] (L L^T = [[4,2],[2,2]]); z = [1, 1] -> L z = [2, 2]
    cov = torch.tensor([[4.0, 2.0], [2.0, 2.0]])
    close(rapf.gaussian_samples(torch.zeros(2), cov, torch.tensor([[1.0, 1.0]])), [[2.0, 2.0]])
    # shrunk: [[4+3, 2+2], [2+2, 2+3]] = [[7,4],[4,5]]: L = [[sqrt7, 0], [4/sqrt7, sqrt(19/7)]]; z = [1, 0]
    shrunk = rapf.gaussian_samples(torch.zeros(2), cov, torch.tensor([[1.0, 0.0]]), shrink=True)
    close(shrunk, [[math.sqrt(7), 4 / math.sqrt(7)]])


def test_gaussian_samples_have_the_class_covariance():
    cov = torch.tensor([[4.0, 2.0], [2.0, 2.0]])
    noise = torch.randn(200_000, 2, generator=torch.Generator().manual_seed(0))
    samples = rapf.gaussian_samples(torch.tensor([5.0, -5.0]), cov, noise)
    close(samples.mean(0), [5.0, -5.0], atol=0.02)
    close(torch.cov(samples.T), cov, atol=0.05)


def test_replay_classes_by_hand():
    perm = [3, 1, 4, 0, 2]
    # k = 2: batch 0 -> positions 0,1; batch 1 -> 2,3; batch 2 -> 4,0 (wraps); batch 7 -> 14,15 = 4,0 mod 5
    assert rapf.replay_classes(perm, 0, 2) == [3, 1]
    assert rapf.replay_classes(perm, 1, 2) == [4, 0]
    assert rapf.replay_classes(perm, 2, 2) == [2, 3]
    assert rapf.replay_classes(perm, 7, 2) == [2, 3]
    # an epoch of ceil(5/2) = 3 batches replays every old class at least once
    seen = {c for b in range(3) for c in rapf.replay_classes(perm, b, 2)}
    assert seen == set(perm)


def test_hard_pairs_by_hand():
    # old: [5,0] (-> [1,0]) and [0,1]; new 2: [1,1]/sqrt2, at distance sqrt(2 - 2 cos45) = 0.7654 from both;
    # new 3: [3, 0.3] -> cos with [1,0] = 3/sqrt(9.09) = 0.99504, distance sqrt(2 - 1.99007) = 0.0996;
    # from [0,1]: cos = 0.0995, distance sqrt(2 - 0.199) = 1.342
    text = torch.tensor([[5.0, 0.0], [0.0, 1.0], [1.0, 1.0], [3.0, 0.3]])
    assert rapf.hard_pairs(text, 2, 0.5).tolist() == [[0, 3]]
    assert rapf.hard_pairs(text, 2, 0.8).tolist() == [[0, 2], [0, 3], [1, 2]]
    assert rapf.hard_pairs(text, 2, 0.05).shape == (0, 2)


def test_hinge_loss_by_hand():
    # u_pos = [1,0], u_neg = [0.6,0.8]; g1 = [1,0]: relu(0.6 - 1 + 0.1) = 0; g2 = [0,2] -> [0,1]:
    # relu(0.8 - 0 + 0.1) = 0.9; mean 0.45. Margin 0.5: relu(0.1) = 0.1 and 1.3 -> 0.7
    text = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    adapted = torch.tensor([[1.0, 0.0], [0.0, 2.0]], requires_grad=True)
    pos, neg = torch.tensor([0, 0]), torch.tensor([1, 1])
    close(rapf.hinge_loss(adapted, text, pos, neg), 0.45)
    close(rapf.hinge_loss(adapted, text, pos, neg, margin=0.5), 0.7)


def test_hinge_loss_moves_the_adapter_not_the_text():
    text = torch.tensor([[1.0, 0.0], [0.6, 0.8]], requires_grad=True)
    adapted = torch.tensor([[0.0, 2.0]], requires_grad=True)
    rapf.hinge_loss(adapted, text, torch.tensor([0]), torch.tensor([1])).backward()
    assert text.grad is None
    assert adapted.grad.abs().sum() > 0


def test_rapf_loss_by_hand():
    # logits [0, ln 3], target 1: CE = -log(3/4) = 0.287682; + hinge 0.5 = 0.787682
    logits, targets = torch.tensor([[0.0, math.log(3.0)]]), torch.tensor([1])
    close(rapf.rapf_loss(logits, targets), 0.287682)
    close(rapf.rapf_loss(logits, targets, torch.tensor(0.5)), 0.787682)


def test_fuse_adapter_by_hand():
    # W_old = R diag(2,1) with R = [[0,-1],[1,0]] = [[0,-1],[2,0]]: U = R, S = (2,1), V = I (up to signs,
    # which cancel). W_new = W_old + R E, E = [[1, 0.5],[0, 0]] -> [[0,-1],[3,0.5]]. In U's basis the change is
    # E: |E| / max = [[1, 0.5],[0, 0]]; + b = 0.2 and capped at 1: M = [[1, 0.7],[0.2, 0.2]].
    # right = S V^T + M * E = [[3, 0.35],[0, 1]]; W = R right = [[0,-1],[3,0.35]]
    old = torch.tensor([[0.0, -1.0], [2.0, 0.0]])
    new = torch.tensor([[0.0, -1.0], [3.0, 0.5]])
    close(rapf.fuse_adapter(new, old, 0.2), [[0.0, -1.0], [3.0, 0.35]])
    # b = 0: the 0.5 change keeps half of itself -> 0.25
    close(rapf.fuse_adapter(new, old, 0.0), [[0.0, -1.0], [3.0, 0.25]])


def test_fuse_adapter_limits():
    g = torch.Generator().manual_seed(0)
    old, new = torch.randn(6, 6, generator=g), torch.randn(6, 6, generator=g)
    close(rapf.fuse_adapter(new, old, 1.0), new, atol=1e-4)  # b >= 1: the mask is all ones, nothing pulled back
    # nothing learnt: the change is exactly 0 (diagonal old weight, exact SVD), no 0/0, the weight is kept
    diagonal = torch.diag(torch.tensor([2.0, 1.0]))
    assert torch.equal(rapf.fuse_adapter(diagonal.clone(), diagonal, 0.5), diagonal)
    fused = rapf.fuse_adapter(new, old, 0.0)
    # every entry (in U's basis) lies between the old and the new value
    u = torch.linalg.svd(old)[0]
    p_new, p_old, p_fused = u.T @ new, u.T @ old, u.T @ fused
    assert bool(((p_fused - p_old) * (p_fused - p_new) <= 1e-5).all())


# ---------------------------------------------------------------- MG-CLIP (M1-M7)

def test_intra_task_ce_by_hand():
    # first_new = 1: columns [0, ln 3], target 2 -> 1: CE = -log(3/4) = 0.287682; column 0 plays no part
    logits = torch.tensor([[5.0, 0.0, math.log(3.0)]])
    close(mg_clip.intra_task_ce(logits, torch.tensor([2]), 1), 0.287682)
    logits[0, 0] = 100.0
    close(mg_clip.intra_task_ce(logits, torch.tensor([2]), 1), 0.287682)
    # first task: the ordinary CE over all columns: -log(3 / (e^5 + 1 + 3)) with column 0 = 5
    full = torch.tensor([[5.0, 0.0, math.log(3.0)]])
    close(mg_clip.intra_task_ce(full, torch.tensor([2]), 0), -math.log(3 / (math.exp(5) + 4)))


def test_negative_logit_mean_by_hand():
    # row 0 (target 0): (2 + 3) / 2 = 2.5; row 1 (target 2): (4 + 5) / 2 = 4.5; mean 3.5
    logits = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    close(mg_clip.negative_logit_mean(logits, torch.tensor([0, 2])), 3.5)


def test_gap_epoch_count_by_hand():
    # reference 20: changes 5%, 7.5%, 12.5% -> first over 10% at index 2 -> 2 epochs
    assert mg_clip.gap_epoch_count(20.0, [19.0, 18.5, 17.5]) == 2
    assert mg_clip.gap_epoch_count(20.0, [17.0]) == 1  # crossed after the first epoch: still one epoch
    assert mg_clip.gap_epoch_count(20.0, [21.0, 23.0]) == 1  # a growing gap counts too (|.|)
    assert mg_clip.gap_epoch_count(20.0, [18.0, 19.5]) is None  # exactly 10% is not more than 10%
    assert mg_clip.gap_epoch_count(20.0, [19.0, 18.5, 17.5], tolerance=0.2) is None


def test_class_mean_weights_by_hand():
    # class 2: [1,0]; class 7: mean of [3,4]/5 = [0.6,0.8] and [0,2]/2 = [0,1] -> [0.3, 0.9] (not renormalised)
    feats = torch.tensor([[3.0, 4.0], [0.0, 2.0], [1.0, 0.0]])
    close(mg_clip.class_mean_weights(feats, torch.tensor([7, 7, 2])), [[1.0, 0.0], [0.3, 0.9]])


def test_visual_logits_by_hand():
    # [0,2] vs [1,0]: 0; vs [0.3,0.9]: 0.9 / sqrt(0.9) = 0.948683 -- unscaled cosines
    close(mg_clip.visual_logits(torch.tensor([[0.0, 2.0]]), torch.tensor([[1.0, 0.0], [0.3, 0.9]])),
          [[0.0, 0.948683]])


def test_visual_agent_loss_by_hand_and_old_rows_frozen():
    # cosines of [1,0] with rows [1,0],[0,1],[1,1]: 1, 0, 0.707107; current columns (first_new 1): [0, 0.707107],
    # target 2 -> 1: CE = log(1 + e^-0.707107) = log(1.493069) = 0.400830
    weights = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], requires_grad=True)
    loss = mg_clip.visual_agent_loss(torch.tensor([[1.0, 0.0]]), weights, torch.tensor([2]), 1)
    close(loss, 0.400830)
    loss.backward()
    assert weights.grad[0].abs().sum() == 0  # an old class's row learns nothing
    assert weights.grad[1:].abs().sum() > 0


def test_combined_log_probs_by_hand():
    # the single-softmax reading: clip softmax [0.25, 0.75], agent softmax [0.75, 0.25];
    # (1 * clip + 4 * agent) / 5 = [0.65, 0.35]
    clip = torch.tensor([[0.0, math.log(3.0)]])
    agent = torch.tensor([[math.log(3.0), 0.0]])
    out = mg_clip.combined_log_probs(clip, agent, clip_softmax="once")
    close(out.exp(), [[0.65, 0.35]])
    assert out.argmax(-1).item() == 0 and clip.argmax(-1).item() == 1  # the agent overrules CLIP here
    # equal weights: [0.5, 0.5]
    close(mg_clip.combined_log_probs(clip, agent, 1.0, 1.0, "once").exp(), [[0.5, 0.5]])
    with pytest.raises(ValueError, match="clip_softmax"):
        mg_clip.combined_log_probs(clip, agent, clip_softmax="thrice")


def test_combined_log_probs_applies_the_softmax_twice_by_default_as_the_authors_code():
    # 3 classes. CLIP logits [log 8, 0, 0]: softmax = [8, 1, 1] / 10 = [0.8, 0.1, 0.1] (CLIP prefers class 0).
    # Agent cosines [0, log 1.25, 0] = [0, 0.223144, 0]: softmax = [1, 1.25, 1] / 3.25 = [4, 5, 4] / 13
    #   = [0.307692, 0.384615, 0.307692] (the agent prefers class 1); 4 x that = [16, 20, 16] / 13
    #   = [1.230769, 1.538462, 1.230769].
    # once (the paper's formula): ([0.8, 0.1, 0.1] + [1.230769, 1.538462, 1.230769]) / 5
    #   = [2.030769, 1.638462, 1.330769] / 5 = [0.406154, 0.327692, 0.266154] -> argmax 0 (CLIP wins)
    # twice (the authors' code, softmax of CLIP's softmax): e^0.8 = 2.225541, e^0.1 = 1.105171,
    #   sum = 2.225541 + 2 x 1.105171 = 4.435883; softmax([0.8, 0.1, 0.1]) = [2.225541, 1.105171, 1.105171] / 4.435883
    #   = [0.501713, 0.249143, 0.249143]; mixture ([0.501713, 0.249143, 0.249143] + [1.230769, 1.538462, 1.230769]) / 5
    #   = [1.732482, 1.787605, 1.479912] / 5 = [0.346496, 0.357521, 0.295982] -> argmax 1 (the agent wins)
    clip = torch.tensor([[math.log(8.0), 0.0, 0.0]])
    agent = torch.tensor([[0.0, math.log(1.25), 0.0]])
    once = mg_clip.combined_log_probs(clip, agent, clip_softmax="once")
    close(once.exp(), [[0.406154, 0.327692, 0.266154]])
    assert once.argmax(-1).item() == 0
    twice = mg_clip.combined_log_probs(clip, agent)  # the default
    close(twice.exp(), [[0.346496, 0.357521, 0.295982]])
    assert twice.argmax(-1).item() == 1
    close(mg_clip.combined_log_probs(clip, agent, 1.0, 4.0, "twice"), twice)
