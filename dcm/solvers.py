"""Flow-matching teacher grid, the ODE step Phi and the phase edge of an index (paper Sec. 3.1-3.2); the phase
edges and few-step schedules of a run are dcm.schedule.PhaseSchedule.

Index convention (the paper's): grid index i = 0..N, x_{t_N} is pure noise (sigma_N = 1) and x_{t_0} the
clean end (sigma_0 = 0). The semantic phase is [kappa, N], the detail phase [0, kappa].
"""

from __future__ import annotations

import torch

from dcm.errors import DCMError
from dcm.grids import backbone_grid


def teacher_sigmas(num_steps: int, shift: float) -> torch.Tensor:
    """sigma_i for i = 0..N of the tiny backbone's grid, ascending in i; real backbones: dcm.grids.grid."""
    return torch.from_numpy(backbone_grid("tiny", num_steps, shift)[0])


def per_sample(sigma: torch.Tensor | float, x: torch.Tensor) -> torch.Tensor:
    """Broadcast a scalar or per-sample (B,) sigma against x of shape (B, ...)."""
    sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    return sigma.reshape(-1, *([1] * (x.ndim - 1))) if sigma.ndim else sigma


def euler_step(x: torch.Tensor, velocity: torch.Tensor, sigma_from, sigma_to) -> torch.Tensor:
    """Phi(x, v, t -> s) = x + (sigma_s - sigma_t) v: one Euler step of dx/dsigma = v (Eq. 5)."""
    return x + (per_sample(sigma_to, x) - per_sample(sigma_from, x)) * velocity


def add_noise(x0: torch.Tensor, noise: torch.Tensor, sigma) -> torch.Tensor:
    """Forward process of flow matching: x_t = sigma * noise + (1 - sigma) * x0 (the paper's Eq. 1)."""
    sigma = per_sample(sigma, x0)
    return sigma * noise + (1 - sigma) * x0


def predicted_x0(x: torch.Tensor, velocity: torch.Tensor, sigma) -> torch.Tensor:
    """Clean sample implied by velocity v at noise level sigma: x0 = x_t - sigma v."""
    return x - per_sample(sigma, x) * velocity


def edge_below(index: torch.Tensor, edges: list[int]) -> torch.Tensor:
    """For each start index n >= 1, the phase edge it jumps to: the largest edge strictly below n."""
    ascending = torch.tensor(sorted(edges), device=index.device)
    position = torch.searchsorted(ascending, index, right=False) - 1
    if (position < 0).any():
        raise DCMError(f"index {index.min().item()} has no phase edge below it in {edges}")
    return ascending[position]
