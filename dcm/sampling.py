"""Samplers with one signature, (denoiser, noise, cond, sigmas, schedule): the teacher's Euler ODE solver
and few-step consistency sampling on a sub-grid (Sec. 6 of the supplement)."""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from dcm.experts import Denoiser
from dcm.solvers import euler_step


@torch.no_grad()
def euler_sample(denoiser: Denoiser, noise: torch.Tensor, cond: torch.Tensor, sigmas: torch.Tensor,
                 schedule: list[int], return_trajectory: bool = False, progress: bool = False):
    """Integrate dx/dsigma = v from grid index schedule[0] down to schedule[-1] with Euler steps (Eq. 5).

    The teacher uses every grid point; a consistency student uses a few, each step landing on a grid
    point, so its last step inside a phase is the jump to the phase edge. With `return_trajectory`, also
    returns the states at every visited index, shape (len(schedule), B, ...).
    """
    x = noise
    states = [x]
    for i, j in tqdm(list(zip(schedule[:-1], schedule[1:])), desc="sampling", disable=not progress, leave=False):
        sigma = sigmas[i].to(x.dtype).expand(x.shape[0])
        x = euler_step(x, denoiser(x, sigma, cond), sigmas[i], sigmas[j])
        states.append(x)
    return (x, torch.stack(states)) if return_trajectory else x


def seeded_noise(shape: tuple[int, ...], seeds: list[int]) -> torch.Tensor:
    """One standard-normal latent per seed, (len(seeds), *shape), the same on every machine."""
    return torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(int(s))) for s in seeds])
