"""Wiring shared by the distillation stages: load the cache, build target network and optimiser, train."""

from __future__ import annotations

from pathlib import Path

import torch

from dcm.backbones.base import Backbone
from dcm.consistency import Adversarial, PhasedConsistency
from dcm.errors import DCMError
from dcm.experts import Expert
from dcm.naming import seme_name
from dcm.noise_probe import PROBE_FILE, training_probe
from dcm.stages.common import grid, kappa_dir, require, stage_dir
from dcm.stages.trajectories import trajectory_hash
from dcm.training import Discriminator as DiscriminatorStep
from dcm.training import TrainLoop, adamw, make_ema
from dcm.trajectories import PairSampler, TrajectoryCache


def load_cache(cfg: dict) -> TrajectoryCache:
    """The trajectory cache of this config, checked against the config hash."""
    return TrajectoryCache.load(require(stage_dir(cfg, "trajectories"), "trajectories"), trajectory_hash(cfg))


def variant_flags(cfg: dict, variant: str) -> dict:
    """The Table 3 switches of `variant`, or an error listing the configured variants."""
    if variant not in cfg["variants"]:
        raise DCMError(f"unknown variant {variant!r}; the config's `variants` defines {sorted(cfg['variants'])}")
    return cfg["variants"][variant]


def seme_dir(cfg: dict, flags: dict) -> Path:
    """SemE output directory: one per temporal-coherence setting, shared by the variants that agree on it."""
    return kappa_dir(cfg, "seme", seme_name(flags))


def train_consistency(cfg: dict, section: str, backbone: Backbone, student: Expert, edges: list[int],
                      index_range: tuple[int, int], work: Path, tc: bool = False,
                      adversarial: Adversarial | None = None, probe: bool = False) -> list[dict]:
    """Phased consistency distillation of `student` on cached pairs with n in index_range (Eq. 6/7); with
    `probe`, the Fig. 2 noise-level probe (`<section>.probe_*`) writes noise_probe.json into `work`."""
    scfg, dcfg, cache = cfg[section], cfg["distill"], load_cache(cfg)
    ema = make_ema(student, dcfg["ema_decay"]) if dcfg["target"] == "ema" else None
    target = (ema.module if ema is not None else student).denoiser(backbone)
    objective = PhasedConsistency(
        student=student.denoiser(backbone), target=target, sigmas=grid(cfg), edges=edges, loss=dcfg["loss"],
        huber_c=dcfg["huber_c"], tc_stride=scfg["tc_stride"] if tc else None,
        tc_weight=scfg.get("tc_weight", 1.0), adversarial=adversarial)
    discriminator = None
    if adversarial is not None:
        d_opt = adamw(adversarial.discriminator.parameters(), scfg["d_lr"], dcfg["weight_decay"], betas=(0.0, 0.999))
        discriminator = DiscriminatorStep(adversarial.discriminator, d_opt, adversarial.discriminator_loss)
    on_step = training_probe(cfg, section, cache, lambda b: objective.generator_loss(b, None)[1]["consistency"],
                             list(student.parameters()), grid(cfg), work / PROBE_FILE) if probe else None
    if on_step is not None:
        on_step(0)
    loop = TrainLoop(
        student=student, optimizer=adamw(student.parameters(), scfg["lr"], dcfg["weight_decay"]),
        objective=objective,
        sample_batch=PairSampler(cache, index_range[0], index_range[1], scfg["batch_size"]),
        out_dir=work, steps=scfg["steps"], seed=cfg["seed"], checkpoint_every=scfg["checkpoint_every"],
        grad_clip=dcfg["grad_clip"], ema=ema, discriminator=discriminator, description=section, on_step=on_step)
    return loop.run()


def fresh_student(backbone: Backbone, directory: Path) -> Expert:
    """A trainable copy of the network saved in `directory`."""
    net = backbone.load_network(directory)
    net.train().requires_grad_(True)
    return Expert(net)


def feature_levels(backbone: Backbone, teacher: torch.nn.Module, cond: torch.Tensor, stride: int) -> tuple[int, int]:
    """(feature width, number of feature levels) of `teacher` at `stride`, read off one probe forward."""
    with torch.no_grad():
        features = backbone.features(teacher, torch.zeros(1, *backbone.latent_shape), torch.ones(1), cond[:1], stride)
    if not features:
        raise DCMError(f"dete.feature_stride={stride} leaves no teacher block to take features from")
    return features[0].shape[-1], len(features)
