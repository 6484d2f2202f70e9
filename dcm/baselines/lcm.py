"""Latent Consistency Model baseline (Luo et al. 2023), following diffusers' consistency-distillation
example: boundary-condition scalings, EMA target, mapping every grid point to the clean end (its multistep
sampler, which re-noises between steps, is dcm.sampling.lcm_sample). Adapted to flow matching:
x0 = x_t - sigma v, timestep = 1000 sigma."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dcm.experts import VelocityFn
from dcm.losses import consistency_distance
from dcm.solvers import per_sample, predicted_x0


def boundary_scalings(timestep: torch.Tensor, sigma_data: float = 0.5, timestep_scaling: float = 10.0):
    """(c_skip, c_out) with c_skip = sd^2 / ((s t)^2 + sd^2), c_out = s t / sqrt((s t)^2 + sd^2):
    c_skip(0) = 1 and c_out(0) = 0, so f(x, 0) = x."""
    scaled = timestep * timestep_scaling
    c_skip = sigma_data**2 / (scaled**2 + sigma_data**2)
    c_out = scaled / (scaled**2 + sigma_data**2) ** 0.5
    return c_skip, c_out


@dataclass
class LCMFunction:
    """The consistency function f(x_t, t) = c_skip(t) x_t + c_out(t) x0_pred(x_t, t)."""

    velocity_fn: VelocityFn
    sigma_data: float
    timestep_scaling: float

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        c_skip, c_out = boundary_scalings(sigma * 1000, self.sigma_data, self.timestep_scaling)
        x0 = predicted_x0(x, self.velocity_fn(x, sigma, cond), sigma)
        return per_sample(c_skip, x) * x + per_sample(c_out, x) * x0


@dataclass
class LCMObjective:
    """|| f_theta(x_{t_n}, t_n) - f_ema(x_{t_{n-1}}, t_{n-1}) || on cached teacher pairs (Eq. 4 with t_end = 0)."""

    student: LCMFunction
    target: LCMFunction
    sigmas: torch.Tensor
    loss: str
    huber_c: float

    def generator_loss(self, batch, generator):
        x_n, x_prev, n, cond = batch
        pred = self.student(x_n, self.sigmas[n].to(x_n.dtype), cond)
        with torch.no_grad():
            tgt = self.target(x_prev, self.sigmas[n - 1].to(x_n.dtype), cond)
        loss = consistency_distance(pred, tgt, self.loss, self.huber_c)
        return loss, {"consistency": loss, "index": n.float().mean()}
