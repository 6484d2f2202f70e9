"""Samplers with one signature, (model, noise, cond, sigmas, schedule, ...): the teacher's Euler ODE solver,
few-step consistency sampling on a sub-grid (Sec. 6 of the supplement), DCM's two-expert sampling and LCM's
multistep sampling."""

from __future__ import annotations

import contextlib
from typing import Callable

import torch
from tqdm.auto import tqdm

from dcm.experts import VelocityFn
from dcm.solvers import add_noise, euler_step

RENOISE_SEED_OFFSET = 1 << 32  # LCM's re-noising stream of a video: its noise seed plus this, apart from the noise


@torch.no_grad()
def euler_sample(velocity_fn: VelocityFn, noise: torch.Tensor, cond: torch.Tensor, sigmas: torch.Tensor,
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
        x = euler_step(x, velocity_fn(x, sigma, cond), sigmas[i], sigmas[j])
        states.append(x)
    return (x, torch.stack(states)) if return_trajectory else x


def two_expert_sample(semantic: VelocityFn, detail: VelocityFn, noise: torch.Tensor, cond: torch.Tensor,
                      sigmas: torch.Tensor, schedule: list[int], sigma_kappa: float,
                      semantic_phase: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
                      detail_phase: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext):
    """Euler sampling with `semantic` on the steps that start above sigma_kappa and `detail` on those that start at
    or below it (DCM's switch at the kappa boundary, Sec. 3.2), each phase inside one block of its context
    (`semantic_phase()`, `detail_phase()`), so that an expert switches in once per sampling run, not per step."""
    split = next(p for p, i in enumerate(schedule) if p == len(schedule) - 1 or sigmas[i] <= sigma_kappa)
    with semantic_phase():
        x = euler_sample(semantic, noise, cond, sigmas, schedule[:split + 1])
    with detail_phase():
        return euler_sample(detail, x, cond, sigmas, schedule[split:])


def seeded_noise(shape: tuple[int, ...], seeds: list[int]) -> torch.Tensor:
    """One standard-normal latent per seed, (len(seeds), *shape), the same on every machine."""
    return torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(int(s))) for s in seeds])


@torch.no_grad()
def lcm_sample(consistency_fn, noise: torch.Tensor, cond: torch.Tensor, sigmas: torch.Tensor, schedule: list[int],
               seeds: list[int]) -> torch.Tensor:
    """LCM multistep sampling (Luo et al. 2023, Alg. 1): x0 = f(x, t_i), then re-noise x0 to t_{i+1} with fresh
    noise drawn from each video's own stream (seeded by its noise seed), so every video and seed differs."""
    streams = [torch.Generator().manual_seed(RENOISE_SEED_OFFSET + int(s)) for s in seeds]
    x = noise
    for i, j in zip(schedule[:-1], schedule[1:]):
        x0 = consistency_fn(x, sigmas[i].to(x.dtype).expand(x.shape[0]), cond)
        if j == 0:
            return x0
        fresh = torch.stack([torch.randn(x.shape[1:], generator=g) for g in streams]).to(x)
        x = add_noise(x0, fresh, sigmas[j].to(x.dtype))
    return x
