"""The ODE step, the grid, phase edges and schedules, against values worked out by hand."""

import pytest
import torch

from dcm.errors import DCMError
from dcm.solvers import add_noise, edge_below, euler_step, predicted_x0, teacher_sigmas


def test_euler_step_on_linear_ode_matches_hand_value():
    # dx/dsigma = x at x = 2, one step sigma 1 -> 0.5: 2 + (0.5 - 1) * 2 = 1 (exact solution 2 e^-0.5)
    x = torch.tensor([2.0])
    assert euler_step(x, x, 1.0, 0.5).item() == pytest.approx(1.0)


def test_euler_is_exact_on_a_straight_flow_path():
    # for a single data point the flow velocity noise - x0 is constant, so one step lands exactly
    x0, noise = torch.tensor([[0.3, -0.7]]), torch.tensor([[1.2, 0.4]])
    x_t = add_noise(x0, noise, 0.8)
    assert torch.allclose(euler_step(x_t, noise - x0, 0.8, 0.3), add_noise(x0, noise, 0.3))
    assert torch.allclose(euler_step(x_t, noise - x0, 0.8, 0.0), x0)
    assert torch.allclose(predicted_x0(x_t, noise - x0, 0.8), x0)


def test_per_sample_sigmas_broadcast():
    x = torch.ones(2, 3)
    out = euler_step(x, torch.ones(2, 3), torch.tensor([1.0, 0.5]), torch.tensor([0.0, 0.25]))
    assert torch.allclose(out, torch.tensor([[0.0] * 3, [0.75] * 3]))


def test_teacher_grid_matches_diffusers_flow_matching_spacing():
    sigmas = teacher_sigmas(50, shift=1.0)
    assert len(sigmas) == 51 and sigmas[50] == 1.0 and sigmas[0] == 0.0
    # diffusers spaces timesteps linearly from 1000 to 1, so sigma_49 = 1 - 0.999 / 49
    assert sigmas[49].item() == pytest.approx(1 - 0.999 / 49, abs=1e-6)
    assert (sigmas[1:] > sigmas[:-1]).all()


def test_shift_moves_grid_to_high_noise():
    s1, s3 = teacher_sigmas(50, 1.0), teacher_sigmas(50, 3.0)
    assert s3[50] == 1.0 and s3[0] == 0.0
    assert (s3[1:50] > s1[1:50]).all()
    # the middle of the grid follows the shift map shift*s / (1 + (shift-1)*s) of an evenly spaced s
    s = s1[25].item()
    assert s3[25].item() == pytest.approx(3 * s / (1 + 2 * s), abs=2e-3)


def test_edge_below_is_the_largest_edge_strictly_below():
    n = torch.tensor([50, 38, 37, 36, 1])
    assert edge_below(n, [50, 37, 0]).tolist() == [37, 37, 0, 0, 0]
