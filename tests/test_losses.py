"""Loss maths on small tensors, against hand-computed values."""

import math

import pytest
import torch

from dcm.consistency import consistency_pair
from dcm.losses import (consistency_distance, discriminator_accuracy, feature_matching, gradient_share,
                        hinge_discriminator, hinge_generator, pseudo_huber, temporal_coherence)
from dcm.solvers import add_noise, teacher_sigmas


def test_pseudo_huber_hand_value():
    pred, target = torch.tensor([0.0, 3.0]), torch.zeros(2)
    # (sqrt(0 + 1) - 1 + sqrt(9 + 1) - 1) / 2
    assert pseudo_huber(pred, target, c=1.0).item() == pytest.approx((math.sqrt(10) - 1) / 2)


def test_pseudo_huber_is_quadratic_small_and_linear_large():
    c = 1e-3
    small = torch.tensor([1e-5], dtype=torch.float64)
    assert pseudo_huber(small, torch.zeros_like(small), c).item() == pytest.approx(1e-10 / (2 * c), rel=1e-3)
    assert pseudo_huber(torch.tensor([2.0]), torch.zeros(1), c).item() == pytest.approx(2.0 - c, rel=1e-4)


def test_l2_distance():
    assert consistency_distance(torch.tensor([1.0, 3.0]), torch.zeros(2), "l2", 0.0).item() == 5.0


def _clip(values):
    return torch.tensor(values, dtype=torch.float32).reshape(1, 1, -1, 1, 1)


def test_temporal_coherence_hand_values():
    pred, target = _clip([0, 1, 3]), _clip([0, 0, 0])
    assert temporal_coherence(pred, target, 1).item() == pytest.approx((1 + 4) / 2)
    assert temporal_coherence(pred, target, 2).item() == pytest.approx(9.0)
    # equal motion, different content: no penalty
    assert temporal_coherence(_clip([5, 6, 8]), pred, 1).item() == 0.0


def test_temporal_coherence_skipped_when_clip_too_short():
    assert temporal_coherence(_clip([0, 1, 3]), _clip([0, 0, 0]), 3).item() == 0.0


def test_hinge_losses_hand_values():
    real, fake = [torch.tensor([2.0, 0.5])], [torch.tensor([-2.0, 0.5])]
    # real: relu(1-2)=0, relu(0.5)=0.5 -> 0.25; fake: relu(1-2)=0, relu(1.5)=1.5 -> 0.75
    assert hinge_discriminator(real, fake).item() == pytest.approx(1.0)
    assert hinge_generator(fake).item() == pytest.approx(0.75)


def test_discriminator_accuracy_hand_values():
    real = [torch.tensor([1.0, -1.0, 2.0, 0.5]), torch.tensor([[-0.1, 3.0]])]  # 3 of 4 right, then 1 of 2
    fake = [torch.tensor([-1.0, -2.0, 0.5, -0.5]), torch.tensor([[0.0, -4.0]])]  # 3 of 4, then 1 of 2 (0 is not < 0)
    accuracy = discriminator_accuracy(real, fake)
    assert accuracy["d_real_acc"].item() == pytest.approx((0.75 + 0.5) / 2)
    assert accuracy["d_fake_acc"].item() == pytest.approx((0.75 + 0.5) / 2)


def test_gradient_share_hand_values():
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    term, rest = 3 * w[0], (w ** 2).sum()  # gradients (3, 0) and (2, 4): norms 3 and sqrt(20)
    share = gradient_share(term, rest, [w])
    assert share.item() == pytest.approx(3 / (3 + math.sqrt(20)))
    (term + rest).backward()  # both graphs survive for the training step's own backward, which .grad holds alone
    assert w.grad.tolist() == [5.0, 4.0]
    unused = torch.tensor(1.0, requires_grad=True)
    assert gradient_share(2 * unused, (w ** 2).sum(), [w, unused]).item() == pytest.approx(2 / (2 + math.sqrt(20)))


def test_feature_matching_averages_levels():
    f = [torch.ones(2, 3), torch.zeros(2, 3)]
    r = [torch.zeros(2, 3), torch.zeros(2, 3)]
    assert feature_matching(f, r).item() == pytest.approx(0.5)


def test_consistency_target_is_teacher_point_at_the_boundary():
    sigmas = teacher_sigmas(10, 1.0)
    x_n, x_prev = torch.randn(2, 3, 2, 4, 4), torch.randn(2, 3, 2, 4, 4)
    n = torch.tensor([7, 9])  # with edges [10, 6, 0]: 7 -> 6 is the boundary, 9 -> 8 is not
    garbage = lambda x, s, c: torch.full_like(x, 1e3)
    pred, tgt = consistency_pair(garbage, garbage, x_n, x_prev, n, None, sigmas, [10, 6, 0])
    assert torch.equal(tgt[0], x_prev[0])
    assert not torch.allclose(tgt[1], x_prev[1])


def test_consistency_pair_vanishes_for_an_oracle_on_straight_paths():
    # one data point per sample: the exact velocity is noise - x0, so student and target meet at the edge
    sigmas = teacher_sigmas(10, 1.0).float()
    x0, noise = torch.randn(3, 3, 2, 4, 4), torch.randn(3, 3, 2, 4, 4)
    n = torch.tensor([10, 8, 3])
    oracle = lambda x, s, c: noise - x0
    pred, tgt = consistency_pair(oracle, oracle, add_noise(x0, noise, sigmas[n]), add_noise(x0, noise, sigmas[n - 1]),
                                 n, None, sigmas, [10, 6, 0])
    assert torch.allclose(pred, tgt, atol=1e-6)
    assert torch.allclose(pred[0], add_noise(x0, noise, sigmas[6])[0], atol=1e-6)
    assert torch.allclose(pred[2], x0[2], atol=1e-6)


def test_checkpointed_discriminator_heads_give_the_same_logits_and_gradients():
    """backbone.gradient_checkpointing recomputes each head in backward: same logits and gradients."""
    import copy

    from dcm.discriminator import Discriminator

    torch.manual_seed(0)
    plain = Discriminator(16, 2)
    checkpointed = copy.deepcopy(plain)
    checkpointed.checkpointing = True
    features = [torch.randn(2, 12, 16) for _ in range(2)]
    results = []
    for heads in (plain, checkpointed):
        logits = heads(features)
        sum(l.square().mean() for l in logits).backward()
        results.append((logits, [p.grad for p in heads.parameters()]))
    (a, ga), (b, gb) = results
    assert all(torch.allclose(x, y) for x, y in zip(a, b)) and all(torch.allclose(x, y) for x, y in zip(ga, gb))
