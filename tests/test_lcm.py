"""LCM baseline: boundary scalings and the multistep sampler."""

import pytest
import torch

from dcm.baselines.lcm import LCMFunction, boundary_scalings
from dcm.sampling import RENOISE_SEED_OFFSET, lcm_sample
from dcm.solvers import teacher_sigmas


def test_scalings_at_t0_make_f_the_identity():
    c_skip, c_out = boundary_scalings(torch.tensor(0.0))
    assert c_skip.item() == 1.0 and c_out.item() == 0.0


def test_scalings_hand_values():
    # timestep 1, scaling 10, sigma_data 0.5: c_skip = 0.25 / 100.25, c_out = 10 / sqrt(100.25)
    c_skip, c_out = boundary_scalings(torch.tensor(1.0), 0.5, 10.0)
    assert c_skip.item() == pytest.approx(0.25 / 100.25)
    assert c_out.item() == pytest.approx(10 / 100.25**0.5)


def test_consistency_function_at_sigma_zero_returns_input():
    f = LCMFunction(lambda x, s, c: torch.randn_like(x), 0.5, 10.0)
    x = torch.randn(2, 3, 2, 4, 4)
    assert torch.equal(f(x, torch.zeros(2), None), x)


def test_multistep_sampling_with_oracle_recovers_data():
    # straight paths: x0_pred is exact at every step, so re-noising and predicting again ends at x0
    sigmas = teacher_sigmas(10, 1.0).float()
    x0, noise = torch.randn(2, 3, 2, 4, 4), torch.randn(2, 3, 2, 4, 4)
    oracle = lambda x, s, c: (x - x0) / s.reshape(-1, 1, 1, 1, 1)  # v with x0 = x - s v
    out = lcm_sample(LCMFunction(oracle, 0.5, 10.0), noise, None, sigmas, [10, 5, 0], seeds=[0, 1])
    assert torch.allclose(out, x0, atol=1e-4)


def test_every_video_is_renoised_from_its_own_seeded_stream():
    """The fresh noise between steps depends on each video's noise seed only, never on the batch it sits in."""
    sigmas = teacher_sigmas(10, 1.0).float()
    to_zero = lambda x, s, c: torch.zeros_like(x)  # f(x, t) = 0: each step re-noises x0 = 0 to the next level
    out = lcm_sample(to_zero, torch.zeros(3, 1, 1, 2, 2), None, sigmas, [10, 5], seeds=[7, 8, 7])
    draws = [torch.randn((1, 1, 2, 2), generator=torch.Generator().manual_seed(RENOISE_SEED_OFFSET + s))
             for s in (7, 8, 7)]
    assert torch.allclose(out, sigmas[5] * torch.stack(draws))  # x_5 = sigma_5 * fresh noise of its own stream
    assert torch.equal(out[0], out[2]) and not torch.equal(out[0], out[1])
    alone = lcm_sample(to_zero, torch.zeros(1, 1, 1, 2, 2), None, sigmas, [10, 5], seeds=[7])
    assert torch.equal(alone[0], out[0])  # a video's noise does not depend on the batch it is sampled in
