"""Consistency distillation of one student on the cached teacher trajectories (Eq. 6/7): the trajectory cache
of a config, a trainable copy of a saved network, the teacher's feature levels, and the training call that
the SemE, DetE, VCM and PCM stages share."""

from __future__ import annotations

from pathlib import Path

import torch

from dcm import distributed, layout
from dcm.backbones.base import Backbone
from dcm.config import train_seed
from dcm.consistency import Adversarial, PhasedConsistency
from dcm.errors import DCMError
from dcm.experts import Expert
from dcm.noise_probe import PROBE_FILE, training_probe
from dcm.schedule import PhaseSchedule
from dcm.training import DiscriminatorStep, TrainLoop, adamw, check_batch_fits, make_ema, scale_options
from dcm.trajectories import OnlineTeacher, TrajectoryCache, latents_hash, teacher_velocity, trajectory_hash


def load_cache(cfg: dict) -> TrajectoryCache:
    """The trajectory cache of this config, checked against the config hash."""
    return TrajectoryCache.load(layout.require(layout.run_dir(cfg) / "trajectories", "trajectories"),
                                trajectory_hash(cfg))


def load_latents(cfg: dict) -> TrajectoryCache:
    """The online mode's latent store (stage latents), checked against its hash."""
    return TrajectoryCache.load(layout.require(layout.run_dir(cfg) / "latents", "latents"), latents_hash(cfg))


def pair_source(cfg: dict, backbone: Backbone, teacher: torch.nn.Module) -> TrajectoryCache | OnlineTeacher:
    """Where training pairs come from (`trajectories.mode`): the cache, or the teacher online on encoded videos."""
    if cfg["trajectories"]["mode"] == "cached":
        return load_cache(cfg)
    return OnlineTeacher(load_latents(cfg), teacher_velocity(backbone, teacher), PhaseSchedule.from_config(cfg).sigmas)


def train_consistency(cfg: dict, section: str, backbone: Backbone, student: Expert, edges: list[int],
                      index_range: tuple[int, int], work: Path, cache: TrajectoryCache | OnlineTeacher,
                      tc: bool = False, adversarial: Adversarial | None = None, probe: bool = False,
                      lr: float | None = None) -> list[dict]:
    """Phased consistency distillation of `student` on teacher pairs (from `pair_source`) with n in index_range
    (Eq. 6/7), at learning rate `lr` (default `<section>.lr`); with `probe`, the Fig. 2 noise-level probe
    (`<section>.probe_*`) writes noise_probe.json."""
    scfg, dcfg, sigmas = cfg[section], cfg["distill"], PhaseSchedule.from_config(cfg).sigmas
    check_batch_fits(section, scfg["batch_size"], backbone.latent_shape, tensors_per_sample=3)  # x_n, x_{n-1}, x_0
    ema = make_ema(student, dcfg["ema_decay"]) if dcfg["target"] == "ema" else None
    target = (ema.module if ema is not None else student).velocity_fn(backbone)
    share = tc and scfg.get("tc_share", False)
    if share and distributed.world_size() > 1:
        raise DCMError(f"{section}.tc_share: the gradient share is measured in one process only (on unsharded "
                       "gradients); run this stage on one GPU or set it to false")
    objective = PhasedConsistency(
        student=student.velocity_fn(backbone), target=target, sigmas=sigmas, edges=edges, loss=dcfg["loss"],
        huber_c=dcfg["huber_c"], tc_stride=scfg["tc_stride"] if tc else None,
        tc_weight=scfg.get("tc_weight", 1.0), adversarial=adversarial,
        share_params=[p for p in student.parameters() if p.requires_grad] if share else None)
    discriminator = None
    if adversarial is not None:
        d_opt = adamw(adversarial.discriminator.parameters(), scfg["d_lr"], dcfg["weight_decay"], betas=(0.0, 0.999))
        discriminator = DiscriminatorStep(adversarial.discriminator, d_opt, adversarial.discriminator_loss)
    if probe and cfg[section].get("probe_every") and distributed.world_size() > 1:
        raise DCMError(f"{section}.probe_every: the noise probe runs in one process only (it measures the unsharded "
                       "student on the main process); run this stage on one GPU or set it to null")
    on_step = training_probe(cfg, section, cache, lambda b: objective.generator_loss(b, None)[1]["consistency"],
                             list(student.parameters()), sigmas, work / PROBE_FILE) if probe else None
    if on_step is not None:
        on_step(0)
    loop = TrainLoop(
        student=student, optimizer=adamw(student.parameters(), scfg["lr"] if lr is None else lr, dcfg["weight_decay"]),
        objective=objective,
        sample_batch=cache.sampler(index_range[0], index_range[1], scfg["batch_size"]),
        out_dir=work, steps=scfg["steps"], seed=train_seed(cfg), checkpoint_every=scfg["checkpoint_every"],
        grad_clip=dcfg["grad_clip"], ema=ema, discriminator=discriminator, description=section, on_step=on_step,
        frozen=(adversarial.teacher,) if adversarial is not None else (), **scale_options(cfg, backbone))
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
