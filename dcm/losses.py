"""Training objectives: consistency distance (Eq. 6-7), temporal coherence (Eq. 8), GAN hinge and
feature matching (Eq. 10)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pseudo_huber(pred: torch.Tensor, target: torch.Tensor, c: float) -> torch.Tensor:
    """Elementwise pseudo-Huber distance, mean(sqrt((pred - target)^2 + c^2) - c)."""
    return (torch.sqrt((pred - target) ** 2 + c**2) - c).mean()


def consistency_distance(pred: torch.Tensor, target: torch.Tensor, kind: str, huber_c: float) -> torch.Tensor:
    """The distance of Eq. 4/6/7: squared L2 ('l2') or pseudo-Huber ('huber', as the released code)."""
    if kind == "l2":
        return F.mse_loss(pred, target)
    if kind == "huber":
        return pseudo_huber(pred, target, huber_c)
    raise ValueError(f"unknown consistency loss {kind!r}")


def temporal_coherence(pred: torch.Tensor, target: torch.Tensor, stride: int) -> torch.Tensor:
    """Eq. 8: MSE between frame differences at `stride` on the time axis of (B, C, T, H, W); 0 if T <= stride."""
    if pred.shape[2] <= stride:
        return pred.new_zeros(())
    pred_motion = pred[:, :, stride:] - pred[:, :, :-stride]
    target_motion = target[:, :, stride:] - target[:, :, :-stride]
    return F.mse_loss(pred_motion, target_motion)


def hinge_discriminator(real_logits: list[torch.Tensor], fake_logits: list[torch.Tensor]) -> torch.Tensor:
    """Eq. 10, L_D with the hinge: mean relu(1 - D(real)) + mean relu(1 + D(fake)), summed over heads."""
    return sum(F.relu(1 - r).mean() + F.relu(1 + f).mean() for r, f in zip(real_logits, fake_logits))


def discriminator_accuracy(real_logits: list[torch.Tensor], fake_logits: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Share of real samples the heads score above 0 and of fake ones below 0, averaged over heads (0.5: chance)."""
    real = torch.stack([(r > 0).float().mean() for r in real_logits]).mean()
    fake = torch.stack([(f < 0).float().mean() for f in fake_logits]).mean()
    return {"d_real_acc": real, "d_fake_acc": fake}


def gradient_share(term: torch.Tensor, rest: torch.Tensor, params: list[torch.Tensor]) -> torch.Tensor:
    """|grad term| / (|grad term| + |grad rest|) over `params`: how much of the update's magnitude `term` drives
    (0: none, 0.5: as much as the rest); both graphs are kept for the step's own backward."""
    def norm(loss):
        grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        return torch.sqrt(sum(g.float().square().sum() for g in grads if g is not None))

    own, other = norm(term), norm(rest)
    return own / (own + other).clamp_min(torch.finfo(torch.float32).tiny)


def hinge_generator(fake_logits: list[torch.Tensor]) -> torch.Tensor:
    """Eq. 10, adversarial part of L_G with the hinge: -mean D(fake), summed over heads."""
    return sum(-f.mean() for f in fake_logits)


def feature_matching(fake_features: list[torch.Tensor], real_features: list[torch.Tensor]) -> torch.Tensor:
    """Eq. 10, L_FM: mean over levels of the MSE between teacher features of fake and real samples."""
    return sum(F.mse_loss(f, r) for f, r in zip(fake_features, real_features)) / len(fake_features)
