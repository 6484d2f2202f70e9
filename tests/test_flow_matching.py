"""The teacher's flow-matching objective: its noise-level mixture against the closed form, and its per-bucket
loss on velocity fields whose loss is known exactly."""

import math

import pytest
import torch

from dcm.pretrain import FlowMatching

MEAN, STD = 1.5, 1.0  # config/config.yaml's logit-normal
C = 0.5  # every clip is the constant C: the exact velocity is known


def _normal_cdf(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


@pytest.mark.parametrize("fraction", [0.0, 0.25, 1.0])
def test_noise_levels_follow_the_mixture(fraction):
    sigma = FlowMatching(None, MEAN, STD, fraction).sample_sigma(200_000, torch.Generator().manual_seed(0))
    for level in (0.1, 0.3, 0.5, 0.9):
        # P(sigma < s) = (1 - f) Phi((logit s - mean) / std) + f s
        expected = (1 - fraction) * _normal_cdf((math.log(level / (1 - level)) - MEAN) / STD) + fraction * level
        assert (sigma < level).double().mean().item() == pytest.approx(expected, abs=4e-3), level
    assert 0 < sigma.min() and sigma.max() < 1


def test_the_logit_normal_alone_draws_no_more_than_before():
    generator, reference = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    sigma = FlowMatching(None, MEAN, STD).sample_sigma(16, generator)
    assert torch.equal(sigma, torch.sigmoid(MEAN + STD * torch.randn(16, generator=reference)))
    assert torch.equal(torch.rand(4, generator=generator), torch.rand(4, generator=reference))


def _constant_clips(n=6):
    return torch.full((n, 3, 2, 4, 4), C), torch.zeros(n, 1, 1)


def _broadcast(sigma, x):
    return sigma.view(-1, *[1] * (x.dim() - 1))


def test_the_exact_velocity_has_zero_loss_in_every_bucket():
    # x_sigma = sigma noise + (1 - sigma) C, so noise - x0 = (x_sigma - C) / sigma
    exact = FlowMatching(lambda x, sigma, cond: (x - C) / _broadcast(sigma, x), MEAN, STD)
    losses = exact.loss_by_sigma(*_constant_clips(), [0.1, 0.5, 1.0], seed=0, batch_size=4)
    assert losses == pytest.approx([0.0, 0.0], abs=1e-10)


def test_a_zero_velocity_costs_one_plus_c_squared_everywhere():
    zero = FlowMatching(lambda x, sigma, cond: torch.zeros_like(x), MEAN, STD)
    x0, cond = _constant_clips(n=4000)
    losses = zero.loss_by_sigma(x0, cond, [0.0, 0.3, 1.0], seed=1, batch_size=1024)
    # E|noise - C|^2 = 1 + C^2; 384k draws per bucket of a variance ~3: 1.5e-2 is about 5 standard errors
    assert losses == pytest.approx([1 + C ** 2] * 2, rel=1.5e-2)


def test_bucketed_noise_levels_stay_inside_their_bucket():
    seen = []
    probe = FlowMatching(lambda x, sigma, cond: seen.append(sigma) or torch.zeros_like(x), MEAN, STD)
    probe.loss_by_sigma(*_constant_clips(n=500), [0.2, 0.4, 0.9], seed=2, batch_size=500)
    assert 0.2 <= seen[0].min() and seen[0].max() < 0.4 and 0.4 <= seen[1].min() and seen[1].max() < 0.9
