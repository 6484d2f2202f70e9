"""Fig. 10: adjacent-step L1 distances, the x0 predictions read off the cache, the kappa rule, and the stage."""

import json

import pytest
import torch
from PIL import Image

from dcm.config import load_config
from dcm.errors import DCMError
from dcm.eval.trajectory_distance import adjacent_l1, predicted_x0_path, suggest_kappa, trajectory_distance
from dcm.solvers import teacher_sigmas
from dcm.trajectories import trajectory_hash
from tests.helpers import SMOKE, write_cache

SHAPE = (3, 2, 4, 4)


def _scaled_paths(amplitudes: list[float], trajectories: int = 2) -> torch.Tensor:
    """Paths y_n = a_n * u with |u| = 1 everywhere: d_n = |a_n - a_{n-1}| / |a_0|."""
    u = torch.ones(SHAPE)
    u[0] = -1.0
    a = torch.tensor(amplitudes)
    return (a.reshape(1, -1, 1, 1, 1, 1) * u).expand(trajectories, -1, *SHAPE).clone()


def test_adjacent_l1_is_the_step_length_over_the_clean_size():
    d = adjacent_l1(_scaled_paths([2.0, 2.5, 3.5, 6.0]))
    assert d.shape == (2, 3)
    assert d[0].tolist() == pytest.approx([0.25, 0.5, 1.25])


def test_kappa_rule_on_a_curve_with_a_known_answer():
    # d = 0.1 for the four steps next to the clean end, 1.0 for the four next to the noise: total 4.4
    d = torch.tensor([0.1] * 4 + [1.0] * 4)
    assert suggest_kappa(d, 0.1) == 4  # 0.4 <= 0.44 < 1.4
    assert suggest_kappa(d, 0.05) == 2  # 0.2 <= 0.22 < 0.3
    assert suggest_kappa(d, 0.01) == 0
    assert suggest_kappa(torch.ones(10), 0.3) == 3  # uniform curve: the share is the index fraction
    with pytest.raises(DCMError, match="detail_share"):
        suggest_kappa(d, 1.0)
    with pytest.raises(DCMError, match="do not move"):
        suggest_kappa(torch.zeros(5), 0.2)


def _euler_trajectories(x0_predictions: torch.Tensor, noise: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """States x_N = noise, x_{n-1} = x_n + (sigma_{n-1} - sigma_n) v_n with v_n = (x_n - y_n) / sigma_n, so the
    x0 prediction at n is y_n (flow matching: x = sigma * noise + (1 - sigma) * x0, v = noise - x0)."""
    n_steps = len(sigmas) - 1
    states = [None] * (n_steps + 1)
    states[n_steps] = noise
    for n in range(n_steps, 0, -1):
        velocity = (states[n] - x0_predictions[:, n]) / sigmas[n]
        states[n - 1] = states[n] + (sigmas[n - 1] - sigmas[n]) * velocity
    return torch.stack(states, dim=1)


def test_x0_predictions_are_read_back_from_the_cached_states():
    torch.manual_seed(0)
    sigmas = teacher_sigmas(6, 3.0).float()
    y = torch.randn(2, 7, *SHAPE)
    x = _euler_trajectories(y, torch.randn(2, *SHAPE), sigmas)
    x0 = predicted_x0_path(x, sigmas)
    assert torch.allclose(x0[:, 1:], y[:, 1:], atol=1e-5)
    assert torch.allclose(x0[:, 0], y[:, 1], atol=1e-5)  # the last step lands on its own prediction


def test_straight_flow_has_constant_x0_and_no_distance():
    sigmas = torch.linspace(0, 1, 6)
    clean, noise = torch.randn(1, *SHAPE), torch.randn(1, *SHAPE)
    x = torch.stack([s * noise + (1 - s) * clean for s in sigmas], dim=1)
    assert torch.allclose(predicted_x0_path(x, sigmas), clean.unsqueeze(1).expand_as(x), atol=1e-5)
    state = trajectory_distance(x, sigmas, "state", 0.5)  # equal sigma steps along one line: equal distances
    assert state["mean"] == pytest.approx([state["mean"][0]] * 5, rel=1e-4) and state["suggested_kappa"] == 2
    with pytest.raises(DCMError, match="do not move"):
        trajectory_distance(torch.zeros_like(x), sigmas, "x0")


def test_trajectory_distance_in_state_space_and_chunking():
    x = torch.cat([_scaled_paths([1, 1.1, 1.2, 1.3, 1.4, 2.4, 3.4, 4.4, 5.4], 3)])
    sigmas = teacher_sigmas(8, 1.0)
    whole = trajectory_distance(x, sigmas, "state", detail_share=0.1)
    assert whole["mean"] == pytest.approx([0.1] * 4 + [1.0] * 4)
    assert whole["std"] == pytest.approx([0.0] * 8, abs=1e-6)
    assert whole["index"] == list(range(1, 9)) and whole["suggested_kappa"] == 4 and whole["trajectories"] == 3
    assert trajectory_distance(x, sigmas, "state", detail_share=0.1, chunk=1) == whole
    with pytest.raises(DCMError, match="trajdist.space"):
        trajectory_distance(x, sigmas, "pixels")
    with pytest.raises(DCMError, match="grid of 5 sigmas"):
        trajectory_distance(x, sigmas[:5], "state")


def test_trajdist_stage_writes_json_and_figure(tmp_path):
    from dcm.stages import trajdist

    cfg = load_config(SMOKE, [f"results_dir={tmp_path}", "trajdist.space=state", "trajdist.detail_share=0.1"])
    n = cfg["schedule"]["num_steps"]
    # n/2 steps of 0.125 next to the clean end, then steps of 1 (exact in half precision)
    amplitudes = [1 + 0.125 * i for i in range(n // 2 + 1)] + [1 + 0.125 * (n // 2) + i for i in range(1, n - n // 2 + 1)]
    cache = tmp_path / "smoke" / "trajectories"
    write_cache(cache, _scaled_paths(amplitudes).half(), torch.zeros(2, 3, 4), ["a", "b"], 1, trajectory_hash(cfg))
    trajdist.run(cfg)
    out = tmp_path / "smoke" / "trajdist"
    data = json.loads((out / "trajectory_distance.json").read_text())
    assert n == 10 and data["suggested_kappa"] == 4  # 0.5 <= 0.1 * 5.625 < 0.625
    assert data["configured_kappa"] == cfg["schedule"]["kappa"]
    assert Image.open(out / "fig10.png").format == "PNG"
