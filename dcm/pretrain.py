"""Flow-matching pretraining of the tiny teacher: v = noise - x0 regressed at x_t = sigma noise + (1 - sigma) x0."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from dcm.experts import VelocityFn
from dcm.solvers import add_noise


@dataclass
class ClipSampler:
    """Random batches of (clip, prompt embedding) from an in-memory dataset."""

    clips: torch.Tensor  # (K, C, T, H, W)
    cond: torch.Tensor  # (K, L, D)
    batch_size: int

    def __call__(self, generator: torch.Generator):
        k = torch.randint(len(self.clips), (self.batch_size,), generator=generator)
        return self.clips[k].float(), self.cond[k].float()


@dataclass
class FlowMatching:
    """Rectified-flow loss with logit-normal noise levels, sigma = sigmoid(N(mean, std))."""

    velocity_fn: VelocityFn
    logit_mean: float
    logit_std: float

    def generator_loss(self, batch, generator):
        x0, cond = batch
        sigma = torch.sigmoid(self.logit_mean + self.logit_std * torch.randn(len(x0), generator=generator))
        noise = torch.randn(x0.shape, generator=generator)
        loss = F.mse_loss(self.velocity_fn(add_noise(x0, noise, sigma), sigma, cond), noise - x0)
        return loss, {"sigma": sigma.mean()}
