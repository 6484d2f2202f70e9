"""Flow-matching pretraining of the tiny teacher: v = noise - x0 regressed at x_t = sigma noise + (1 - sigma) x0."""

from __future__ import annotations

from dataclasses import dataclass

import torch

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
    """Rectified-flow loss at noise levels drawn from a mixture: sigma = sigmoid(N(mean, std)), or with
    probability `uniform_fraction` sigma ~ U(0, 1), so that the low noise levels where a many-step solve ends are
    trained too."""

    velocity_fn: VelocityFn
    logit_mean: float
    logit_std: float
    uniform_fraction: float = 0.0

    def sample_sigma(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n noise levels from the mixture (no extra draws at fraction 0: earlier runs' noise is kept)."""
        logit_normal = torch.sigmoid(self.logit_mean + self.logit_std * torch.randn(n, generator=generator))
        if self.uniform_fraction == 0:
            return logit_normal
        uniform = torch.rand(n, generator=generator)
        return torch.where(torch.rand(n, generator=generator) < self.uniform_fraction, uniform, logit_normal)

    def loss_at(self, x0: torch.Tensor, cond: torch.Tensor, sigma: torch.Tensor,
                generator: torch.Generator) -> torch.Tensor:
        """Per-sample flow-matching loss |v(x_sigma) - (noise - x0)|^2, averaged over each sample's elements."""
        noise = torch.randn(x0.shape, generator=generator)
        error = self.velocity_fn(add_noise(x0, noise, sigma), sigma, cond) - (noise - x0)
        return error.pow(2).flatten(1).mean(1)

    def generator_loss(self, batch, generator):
        x0, cond = batch
        sigma = self.sample_sigma(len(x0), generator)
        return self.loss_at(x0, cond, sigma, generator).mean(), {"sigma": sigma.mean()}

    @torch.no_grad()
    def loss_by_sigma(self, x0: torch.Tensor, cond: torch.Tensor, edges: list[float], seed: int,
                      batch_size: int) -> list[float]:
        """Mean loss over all of `x0`, `batch_size` samples at a time, in each noise bucket [edges[i], edges[i+1])
        with sigma uniform inside it, from seeded noise: where along the trajectory the velocity is learned."""
        generator = torch.Generator().manual_seed(seed)
        losses = []
        for low, high in zip(edges[:-1], edges[1:]):
            total = 0.0
            for start in range(0, len(x0), batch_size):
                batch, batch_cond = x0[start:start + batch_size].float(), cond[start:start + batch_size].float()
                sigma = low + (high - low) * torch.rand(len(batch), generator=generator)
                total += float(self.loss_at(batch, batch_cond, sigma, generator).sum())
            losses.append(total / len(x0))
        return losses
