"""Phased consistency distillation on cached teacher pairs: the student jumps from x_{t_n} to the edge of
its phase, the target jumps there from the teacher's next point x_{t_{n-1}} (Eq. 4, 6, 7); with the
temporal coherence term (Eq. 8) and the GAN + feature-matching terms (Eq. 9-10) as options.

One objective serves SemE (edges [N, kappa]), DetE ([kappa, 0]), VCM ([N, kappa, 0], one model) and
PCM (k uniform phases)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import torch

from dcm.backbones.base import Backbone
from dcm.discriminator import Discriminator
from dcm.experts import VelocityFn
from dcm.losses import (consistency_distance, discriminator_accuracy, feature_matching, gradient_share,
                        hinge_discriminator, hinge_generator, temporal_coherence)
from dcm.solvers import add_noise, edge_below, euler_step


def consistency_pair(student: VelocityFn, target: VelocityFn, x_n: torch.Tensor, x_prev: torch.Tensor,
                     n: torch.Tensor, cond: torch.Tensor, sigmas: torch.Tensor, edges: list[int]):
    """(prediction, target) at each sample's phase edge: Phi(x_n, F_S, t_edge) and
    Phi(x_{n-1}, F_S^-, t_edge), where the target is x_{n-1} itself when n-1 is the edge (boundary condition)."""
    edge = edge_below(n, edges)
    s_n, s_prev, s_edge = (sigmas[i].to(x_n.dtype) for i in (n, n - 1, edge))
    pred = euler_step(x_n, student(x_n, s_n, cond), s_n, s_edge)
    with torch.no_grad():
        jumped = euler_step(x_prev, target(x_prev, s_prev, cond), s_prev, s_edge)
        at_edge = (n - 1 == edge).reshape(-1, *([1] * (x_n.ndim - 1)))
        tgt = torch.where(at_edge, x_prev, jumped)
    return pred, tgt


@dataclass
class Adversarial:
    """GAN + feature matching on frozen-teacher features of re-noised prediction and target (Eq. 9-10)."""

    backbone: Backbone
    teacher: torch.nn.Module
    discriminator: Discriminator
    feature_stride: int
    noise_index_range: tuple[int, int]  # re-noise to a grid level in (lo, hi], inside the detail phase
    sigmas: torch.Tensor
    gan_weight: float
    fm_weight: float

    def __post_init__(self):
        self._pending = deque()  # (fake, real, sigma, cond) of each generator micro-batch, for its D step

    def _renoise(self, pred, tgt, generator):
        lo, hi = self.noise_index_range
        idx = torch.randint(lo + 1, hi + 1, (pred.shape[0],), generator=generator)
        sigma = self.sigmas[idx].to(pred.dtype)
        noise = torch.randn(pred.shape, generator=generator).to(pred)
        return add_noise(pred, noise, sigma), add_noise(tgt, noise, sigma), sigma

    def generator_terms(self, pred, tgt, cond, generator) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        fake, real, sigma = self._renoise(pred, tgt, generator)
        fake_features = self.backbone.features(self.teacher, fake, sigma, cond, self.feature_stride)
        with torch.no_grad():
            real_features = self.backbone.features(self.teacher, real, sigma, cond, self.feature_stride)
        adv = hinge_generator(self._logits(fake_features))
        fm = feature_matching([f.float() for f in fake_features], [f.float() for f in real_features])
        if torch.is_grad_enabled():  # a training step: its discriminator step follows
            self._pending.append((fake.detach(), real, sigma, cond))
        return self.gan_weight * adv + self.fm_weight * fm, {"g_adv": adv, "fm": fm}

    def _logits(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        """Discriminator logits in float32, the heads run under the backbone's autocast like the teacher."""
        with self.backbone.autocast(features[0].device):
            return [logits.float() for logits in self.discriminator(features)]

    def discriminator_loss(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """L_D of Eq. 10 (hinge) on the samples of the oldest generator micro-batch not yet used, and the heads'
        accuracy on them (discriminator_accuracy)."""
        fake, real, sigma, cond = self._pending.popleft()
        with torch.no_grad():
            fake_features = self.backbone.features(self.teacher, fake, sigma, cond, self.feature_stride)
            real_features = self.backbone.features(self.teacher, real, sigma, cond, self.feature_stride)
        real_logits, fake_logits = self._logits(real_features), self._logits(fake_features)
        with torch.no_grad():
            accuracy = discriminator_accuracy(real_logits, fake_logits)
        return hinge_discriminator(real_logits, fake_logits), accuracy


@dataclass
class PhasedConsistency:
    """Generator objective of one consistency-distillation stage."""

    student: VelocityFn
    target: VelocityFn
    sigmas: torch.Tensor
    edges: list[int]
    loss: str
    huber_c: float
    tc_stride: int | None = None  # temporal coherence (Eq. 8) when set
    tc_weight: float = 1.0
    adversarial: Adversarial | None = None
    share_params: list[torch.Tensor] | None = None  # when set, each training step logs TC's share of the gradient

    def generator_loss(self, batch, generator):
        x_n, x_prev, n, cond = batch
        pred, tgt = consistency_pair(self.student, self.target, x_n, x_prev, n, cond, self.sigmas, self.edges)
        cd = consistency_distance(pred, tgt, self.loss, self.huber_c)
        total, logs = cd, {"consistency": cd, "index": n.float().mean()}
        if self.tc_stride is not None:
            tc = temporal_coherence(pred, tgt, self.tc_stride)
            if self.share_params is not None and torch.is_grad_enabled():
                logs["tc_share"] = gradient_share(self.tc_weight * tc, cd, self.share_params).detach()
            total = total + self.tc_weight * tc
            logs["temporal_coherence"] = tc
        if self.adversarial is not None:
            gan, gan_logs = self.adversarial.generator_terms(pred, tgt, cond, generator)
            total = total + gan
            logs.update(gan_logs)
        return total, logs
