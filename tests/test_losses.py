"""ACGD and TSGR losses against values worked out by hand (plain-Python softmax / KL, no torch kl_div),
plus the invariants SPEC.md states: zero at equality, temperature scaling, where gradients flow,
neighbour selection from the reference, k capping, the root never its own neighbour."""

from __future__ import annotations

import math

import pytest
import torch

from segp_hf.method.losses import acgd_loss, tsgr_loss

# --- plain-Python reference arithmetic (independent of torch) ---------------------------------------

def softmax(values):
    top = max(values)
    exps = [math.exp(v - top) for v in values]
    total = sum(exps)
    return [e / total for e in exps]


def kl(q, p):
    """KL(q || p) = sum_j q_j * (log q_j - log p_j)."""
    return sum(qj * (math.log(qj) - math.log(pj)) for qj, pj in zip(q, p))


def cos(u, v):
    dot = sum(a * b for a, b in zip(u, v))
    return dot / (math.sqrt(sum(a * a for a in u)) * math.sqrt(sum(b * b for b in v)))


# --- ACGD --------------------------------------------------------------------------------------------

def test_acgd_closed_form_two_classes():
    # student [1, 0], teacher [0, 1], T = 1.
    # q = softmax([0, 1]) = [1/(1+e), e/(1+e)],  p = softmax([1, 0]) = [e/(1+e), 1/(1+e)]
    # KL(q||p) = q0*log(q0/p0) + q1*log(q1/p1) = q0*(-1) + q1*(+1) = (e-1)/(e+1)
    expected = (math.e - 1.0) / (math.e + 1.0)
    loss = acgd_loss(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]]), temperature=1.0)
    assert loss.dim() == 0
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_acgd_hand_value_mean_over_rows_with_temperature_squared():
    student = [[1.0, 0.0, -1.0], [0.5, 2.0, 0.0]]
    teacher = [[0.0, 3.0, 1.0], [0.5, 2.0, 0.0]]  # second row identical -> contributes 0 to the mean
    T = 2.0
    row_kls = [kl(softmax([t / T for t in trow]), softmax([s / T for s in srow])) for srow, trow in zip(student, teacher)]
    assert row_kls[1] == pytest.approx(0.0, abs=1e-12)
    # mean over ROWS (2), not over all 6 elements, and not the sum; times T^2 = 4
    expected = T ** 2 * (row_kls[0] + row_kls[1]) / 2.0
    loss = acgd_loss(torch.tensor(student), torch.tensor(teacher), temperature=T)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    # direction of the KL: KL(teacher || student), which differs from KL(student || teacher) here
    reverse = T ** 2 * kl(softmax([s / T for s in student[0]]), softmax([t / T for t in teacher[0]])) / 2.0
    assert abs(expected - reverse) > 1e-3
    assert loss.item() != pytest.approx(reverse, rel=1e-3)


def test_acgd_default_temperature_is_20():
    student = torch.tensor([[10.0, -30.0, 5.0]])
    teacher = torch.tensor([[-20.0, 15.0, 0.0]])
    T = 20.0
    expected = T ** 2 * kl(softmax([v / T for v in teacher[0].tolist()]), softmax([v / T for v in student[0].tolist()]))
    assert acgd_loss(student, teacher).item() == pytest.approx(expected, rel=1e-5)


def test_acgd_zero_when_student_equals_teacher_positive_otherwise():
    torch.manual_seed(0)
    teacher = torch.randn(6, 5) * 30
    assert acgd_loss(teacher.clone(), teacher).item() == pytest.approx(0.0, abs=1e-5)
    student = teacher + torch.randn(6, 5) * 10
    assert acgd_loss(student, teacher).item() > 1e-4


def test_acgd_temperature_scaling_identity():
    # L(S, T_logits; tau) = tau^2 * L(S/tau, T_logits/tau; 1)
    torch.manual_seed(1)
    student, teacher = torch.randn(4, 7) * 50, torch.randn(4, 7) * 50
    for tau in (2.0, 20.0):
        lhs = acgd_loss(student, teacher, temperature=tau)
        rhs = tau ** 2 * acgd_loss(student / tau, teacher / tau, temperature=1.0)
        assert lhs.item() == pytest.approx(rhs.item(), rel=1e-4)


def test_acgd_invariant_to_per_row_logit_shift():
    torch.manual_seed(2)
    student, teacher = torch.randn(3, 4) * 20, torch.randn(3, 4) * 20
    shift = torch.tensor([[5.0], [-100.0], [33.0]])
    base = acgd_loss(student, teacher)
    assert acgd_loss(student + shift, teacher - shift).item() == pytest.approx(base.item(), rel=1e-4)


def test_acgd_gradient_reaches_student_not_teacher():
    torch.manual_seed(3)
    student = (torch.randn(3, 4) * 10).requires_grad_(True)
    teacher = (torch.randn(3, 4) * 10).requires_grad_(True)
    acgd_loss(student, teacher).backward()
    assert teacher.grad is None
    assert student.grad is not None and student.grad.abs().sum().item() > 0


# --- TSGR --------------------------------------------------------------------------------------------

# reference (pretrained) text rows, deliberately not unit-norm
REF = [
    [2.0, 0.0, 0.0],   # 0: root
    [1.0, 1.0, 0.0],   # 1: cos(0,1) = 0.7071  (nearest to 0)
    [1.0, 0.0, 2.0],   # 2: cos(0,2) = 0.4472  (second nearest)
    [0.0, 3.0, 0.0],   # 3: cos(0,3) = 0        (far)
]
STUDENT = [
    [1.0, 0.0, 0.0],
    [0.0, 1.0, 0.0],   # cos(0,1) = 0
    [1.0, 0.0, 1.0],   # cos(0,2) = 0.7071
    [1.0, 0.1, 0.0],   # cos(0,3) = 0.995 -- close to the root under the student, but not a reference neighbour
]


def _tsgr_hand(ref, stu, root, neighbours, tau):
    q = softmax([cos(ref[root], ref[j]) / tau for j in neighbours])
    p = softmax([cos(stu[root], stu[j]) / tau for j in neighbours])
    return kl(q, p)


def test_tsgr_hand_value_neighbours_from_reference():
    tau = 0.5
    # k=2 neighbours of root 0 by REFERENCE cosine: {1 (0.707), 2 (0.447)}; never 0 itself, not 3.
    # q = softmax([0.7071/0.5, 0.4472/0.5]); p = softmax([0/0.5, 0.7071/0.5])
    q = softmax([(1 / math.sqrt(2)) / tau, (1 / math.sqrt(5)) / tau])
    p = softmax([0.0 / tau, (1 / math.sqrt(2)) / tau])
    expected = kl(q, p)
    assert expected == pytest.approx(_tsgr_hand(REF, STUDENT, 0, [1, 2], tau))
    loss = tsgr_loss(torch.tensor(STUDENT), torch.tensor(REF), [0], k=2, temperature=tau)
    assert loss.dim() == 0
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    # had neighbours been taken from the student ({3, 2}) or included the root ({0, 1}), the value differs
    assert abs(expected - _tsgr_hand(REF, STUDENT, 0, [3, 2], tau)) > 1e-3
    assert abs(expected - _tsgr_hand(REF, STUDENT, 0, [0, 1], tau)) > 1e-3


def test_tsgr_non_neighbour_rows_do_not_matter():
    tau = 0.5
    base = tsgr_loss(torch.tensor(STUDENT), torch.tensor(REF), [0], k=2, temperature=tau)
    moved = torch.tensor(STUDENT)
    moved[3] = torch.tensor([-4.0, 7.0, 1.0])  # class 3 is not in N_2(0) under the reference
    assert tsgr_loss(moved, torch.tensor(REF), [0], k=2, temperature=tau).item() == pytest.approx(base.item(), rel=1e-6)
    moved2 = torch.tensor(STUDENT)
    moved2[2] = torch.tensor([-4.0, 7.0, 1.0])  # class 2 is a neighbour: the loss must change
    assert abs(tsgr_loss(moved2, torch.tensor(REF), [0], k=2, temperature=tau).item() - base.item()) > 1e-3


def test_tsgr_mean_over_roots_and_index_types():
    tau = 0.5
    # roots 0 and 3, k=2, on a reference without cosine ties:
    # N_2(0): cos(0,1)=0.914, cos(0,2)=0.503, cos(0,3)=0     -> [1, 2]
    # N_2(3): cos(3,2)=0.788, cos(3,1)=0.080, cos(3,0)=0     -> [2, 1]
    ref = [
        [1.0, 0.0, 0.0],
        [0.9, 0.4, 0.0],
        [0.5, 0.5, 0.7],
        [0.0, 0.2, 1.0],
    ]
    stu = [
        [1.0, 0.2, 0.1],
        [0.3, 1.0, 0.0],
        [0.6, 0.1, 0.9],
        [0.1, 0.9, 0.5],
    ]

    def neighbours(root, k):
        others = [j for j in range(4) if j != root]
        return sorted(others, key=lambda j: -cos(ref[root], ref[j]))[:k]

    n0, n3 = neighbours(0, 2), neighbours(3, 2)
    assert n0 == [1, 2] and n3 == [2, 1]
    expected = (_tsgr_hand(ref, stu, 0, n0, tau) + _tsgr_hand(ref, stu, 3, n3, tau)) / 2.0
    as_list = tsgr_loss(torch.tensor(stu), torch.tensor(ref), [0, 3], k=2, temperature=tau)
    as_tensor = tsgr_loss(torch.tensor(stu), torch.tensor(ref), torch.tensor([0, 3], dtype=torch.long), k=2, temperature=tau)
    assert as_list.item() == pytest.approx(expected, rel=1e-5)
    assert as_tensor.item() == pytest.approx(expected, rel=1e-5)
    # a single root gives that root's own KL, not a mean with something else
    assert tsgr_loss(torch.tensor(stu), torch.tensor(ref), [3], k=2, temperature=tau).item() == pytest.approx(
        _tsgr_hand(ref, stu, 3, n3, tau), rel=1e-5)


def test_tsgr_k_capped_at_rows_minus_one():
    tau = 0.5
    ref, stu = REF[:3], STUDENT[:3]  # 3 rows -> at most 2 neighbours, the two non-root rows
    expected = _tsgr_hand(ref, stu, 0, [1, 2], tau)
    for k in (2, 3, 10):
        loss = tsgr_loss(torch.tensor(stu), torch.tensor(ref), [0], k=k, temperature=tau)
        assert torch.isfinite(loss)
        assert loss.item() == pytest.approx(expected, rel=1e-5), k
    # default k (10) on 3 rows is capped too
    assert tsgr_loss(torch.tensor(stu), torch.tensor(ref), [0], temperature=tau).item() == pytest.approx(expected, rel=1e-5)


def test_tsgr_two_rows_single_neighbour_is_zero():
    # with 2 rows each root has exactly one neighbour: both distributions are [1] -> KL = 0
    loss = tsgr_loss(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[1.0, 0.0], [1.0, 1.0]]), [1])
    assert torch.isfinite(loss) and loss.item() == pytest.approx(0.0, abs=1e-6)


def test_tsgr_default_temperature_is_005():
    tau = 0.05
    expected = _tsgr_hand(REF, STUDENT, 0, [1, 2], tau)
    assert tsgr_loss(torch.tensor(STUDENT), torch.tensor(REF), [0], k=2).item() == pytest.approx(expected, rel=1e-4)


def test_tsgr_zero_for_equal_or_row_rescaled_or_rotated_student():
    torch.manual_seed(4)
    ref = torch.randn(8, 6)
    roots = [5, 6, 7]
    assert tsgr_loss(ref.clone(), ref, roots).item() == pytest.approx(0.0, abs=1e-5)
    scales = torch.rand(8, 1) * 10 + 0.1
    assert tsgr_loss(ref * scales, ref, roots).item() == pytest.approx(0.0, abs=1e-5)
    rotation, _ = torch.linalg.qr(torch.randn(6, 6))
    assert tsgr_loss(ref @ rotation, ref, roots).item() == pytest.approx(0.0, abs=1e-4)
    assert tsgr_loss(ref + torch.randn(8, 6), ref, roots).item() > 1e-4


def test_tsgr_gradient_reaches_student_only():
    torch.manual_seed(5)
    ref = torch.randn(6, 4).requires_grad_(True)
    student = torch.randn(6, 4).requires_grad_(True)
    loss = tsgr_loss(student, ref, [4, 5], k=3)
    assert loss.item() > 0
    loss.backward()
    assert ref.grad is None
    assert student.grad is not None and student.grad.abs().sum().item() > 0
