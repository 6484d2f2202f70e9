"""Discriminator heads on frozen-teacher features (Sec. 3.4): 1x1 convolutions over tokens, so they take
any resolution, frame count or token grid."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint


def _group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(32, channels), channels)


class DiscriminatorHead(nn.Module):
    """1x1 conv -> GroupNorm -> LeakyReLU, a residual 1x1 block, then a 1x1 conv to one logit per token."""

    def __init__(self, dim: int):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv1d(dim, dim, 1), _group_norm(dim), nn.LeakyReLU(0.2))
        self.residual = nn.Sequential(nn.Conv1d(dim, dim, 1), _group_norm(dim), nn.LeakyReLU(0.2))
        self.logits = nn.Conv1d(dim, 1, 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Features (B, tokens, dim) -> logits (B, 1, tokens)."""
        h = self.stem(features.transpose(1, 2))
        return self.logits(h + self.residual(h))


class Discriminator(nn.Module):
    """One head per feature level of the teacher; with `checkpointing`, each head keeps only its input for
    backward and recomputes the rest (backbone.gradient_checkpointing)."""

    def __init__(self, dim: int, levels: int, checkpointing: bool = False):
        super().__init__()
        self.heads = nn.ModuleList(DiscriminatorHead(dim) for _ in range(levels))
        self.checkpointing = checkpointing

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        """Logits per level; features are moved to the heads' device (the teacher may sit elsewhere)."""
        device = self.heads[0].logits.weight.device
        if self.checkpointing and torch.is_grad_enabled():
            return [checkpoint(head, f.to(device), use_reentrant=False) for head, f in zip(self.heads, features)]
        return [head(f.to(device)) for head, f in zip(self.heads, features)]
