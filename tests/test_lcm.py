"""LCM baseline: boundary scalings and the multistep sampler."""

import pytest
import torch

from dcm.baselines.lcm import LCMFunction, boundary_scalings, lcm_sample
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
    out = lcm_sample(LCMFunction(oracle, 0.5, 10.0), noise, None, sigmas, [10, 5, 0], seed=0)
    assert torch.allclose(out, x0, atol=1e-4)
