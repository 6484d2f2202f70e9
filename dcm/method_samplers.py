"""How each method's sampler is built (the `sampler` of its registry entry in dcm/methods.py): load its networks
from the run's outputs and return sampler(noise, cond, seeds) -> latents on its few-step schedule; and the prompts
and noise seeds that every method's sample set shares."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Callable

import torch

from dcm import layout, methods
from dcm.backbones.base import Backbone
from dcm.baselines.lcm import LCMFunction
from dcm.data.prompts import load_captions
from dcm.errors import DCMError
from dcm.experts import Expert, attach_detail_expert, detail_state_dict
from dcm.io import load_tensors, read_json
from dcm.sampling import euler_sample, lcm_sample, two_expert_sample
from dcm.schedule import PhaseSchedule
from dcm.trajectories import teacher_velocity

Sampler = Callable[[torch.Tensor, torch.Tensor, list[int]], torch.Tensor]


@dataclass
class SamplerRequest:
    """What a sampler builder gets: the method, its step count and schedule, the teacher and the run's outputs."""

    cfg: dict  # the resolved run config
    method: methods.Method  # the registry entry
    steps: int  # sampling steps
    phases: PhaseSchedule  # grid, phase edges and kappa of this run (or kappa-sweep point)
    backbone: Backbone
    run: Path  # the run directory
    point: Path  # the run, the kappa-sweep point or the training seed whose experts are sampled
    held: list[torch.nn.Module] = field(default_factory=list)  # the networks its sampler runs (see `hold`)

    @cached_property
    def schedule(self) -> list[int]:
        """The grid indices the sampler visits."""
        return self.phases.few_step(self.method.cut, self.steps)

    def networks(self) -> list[Path]:
        """The training outputs the method samples from at this step count."""
        return methods.networks(self.cfg, self.method, layout.trained_dir(self.cfg), self.point, self.steps)

    def teacher(self) -> torch.nn.Module:
        """The frozen teacher network, loaded only by the samplers that run it (it is not on the GPU otherwise)."""
        return self.load(self.run / "teacher")

    def load(self, directory: Path) -> torch.nn.Module:
        """A frozen network saved under `directory`/network, or an error naming the stage that makes it."""
        own = directory.parent in (self.run, layout.trained_dir(self.cfg))  # <trainer>/, else <stage>/<name>/
        made_by = directory.name if own else directory.parent.name
        net = self.backbone.load_network(layout.require(directory / layout.NETWORK, made_by))
        return self.hold(net.eval().requires_grad_(False))

    def hold(self, net: torch.nn.Module) -> torch.nn.Module:
        """`net`, recorded as one the sampler runs, so that a caller can move the sampler's networks as a whole."""
        self.held.append(net)
        return net

    def euler(self, velocity_fn) -> Sampler:
        """Few-step Euler sampling of `velocity_fn` on this request's schedule."""
        sigmas, schedule = self.phases.sigmas, self.schedule
        return lambda noise, cond, seeds: euler_sample(velocity_fn, noise, cond, sigmas, schedule)

    def two_experts(self, semantic: Expert, detail: Expert) -> Sampler:
        """Few-step Euler sampling with `semantic` above kappa and `detail` at and below it, the detail expert
        switched in once for its whole phase."""
        sigmas, schedule, kappa = self.phases.sigmas, self.schedule, self.phases.sigma_kappa
        semantic_fn, detail_fn = semantic.velocity_fn(self.backbone), detail.velocity_fn(self.backbone)
        return lambda noise, cond, seeds: two_expert_sample(semantic_fn, detail_fn, noise, cond, sigmas, schedule,
                                                            kappa, lambda: detail.semantic_phase(semantic),
                                                            detail.phase)


def sample_seeds(cfg: dict, count: int) -> list[list[int]]:
    """Noise seed of each (prompt, seed) pair, the same for every method."""
    return [[seed * 10_000 + k for k in range(count)] for seed in cfg["sampling"]["seeds"]]


def sampling_prompts(cfg: dict, backbone: Backbone) -> tuple[list[str], torch.Tensor]:
    """The prompts to sample (sampling.prompts, else the configured split) and their embeddings."""
    prompts = cfg["sampling"].get("prompts") or load_captions(
        layout.require(layout.run_dir(cfg) / "dataset", "dataset"), cfg["sampling"]["split"])
    try:
        return prompts, backbone.encode_prompts(prompts)
    except DCMError as err:
        raise DCMError(f"sampling.prompts: {err}") from err


def build_sampler(request: SamplerRequest) -> Sampler:
    """The sampler of request.method, built by the function its registry entry names."""
    module, _, function = request.method.sampler.partition(":")
    return getattr(importlib.import_module(module), function)(request)


def teacher(request: SamplerRequest) -> Sampler:
    """The teacher's Euler ODE solve on `steps` uniform grid steps, guided as its pipeline guides it (students
    learn the guided flow and sample without guidance)."""
    return request.euler(teacher_velocity(request.backbone, request.teacher()))


def single_network(request: SamplerRequest) -> Sampler:
    """One trained student (PCM, or a variant without experts) on its few-step schedule."""
    (directory,) = request.networks()
    return request.euler(Expert(request.load(directory)).velocity_fn(request.backbone))


def lcm(request: SamplerRequest) -> Sampler:
    """LCM's multistep sampling: a consistency jump to the clean end, re-noised between steps."""
    (directory,) = request.networks()
    settings = request.cfg["lcm"]
    function = LCMFunction(Expert(request.load(directory)).velocity_fn(request.backbone), settings["sigma_data"],
                           settings["timestep_scaling"])
    sigmas, schedule = request.phases.sigmas, request.schedule
    return lambda noise, cond, seeds: lcm_sample(function, noise, cond, sigmas, schedule, seeds)


def detail_expert(request: SamplerRequest, directory: Path, semantic_net: torch.nn.Module) -> Expert:
    """The variant's DetE: a full network (OD), or LoRA and copied timestep layers on top of SemE (PE)."""
    flags = methods.variant_flags(request.cfg, request.method.variant)
    if not flags["parameter_efficient"]:
        return Expert(request.load(directory))
    meta = read_json(layout.require(directory / layout.DETAIL_CONFIG, "dete --variant " + request.method.variant))
    # outputs written before dete.timestep_layers existed copied all of the backbone's timestep layers
    expert = attach_detail_expert(semantic_net, request.backbone, meta["lora_rank"], meta["lora_alpha"],
                                  meta.get("timestep_layers"))
    state = load_tensors(directory / layout.DETAIL_WEIGHTS)
    mismatch = set(state) ^ set(detail_state_dict(expert))
    if mismatch:
        raise DCMError(f"{directory / layout.DETAIL_WEIGHTS} does not match the detail expert: keys "
                       f"{sorted(mismatch)[:4]}")
    expert.load_state_dict(state, strict=False)
    return request.hold(expert.eval().requires_grad_(False))  # SemE with the copied layers beside it


def experts(request: SamplerRequest) -> Sampler:
    """DCM: SemE above kappa, DetE at and below (Sec. 3.2-3.3)."""
    seme, dete = request.networks()
    semantic_net = request.load(seme)
    return request.two_experts(Expert(semantic_net), detail_expert(request, dete, semantic_net))


def mix(request: SamplerRequest) -> Sampler:
    """Fig. 3's mixtures: the semantic phase by SemE or VCM, the detail phase by DetE or VCM; each network loaded
    once (VCM even when it runs both phases, SemE even when a parameter-efficient DetE sits on it)."""
    vcm_dir, seme, dete = request.networks()
    m = request.method
    loaded: dict[str, Expert] = {}
    if "vcm" in (m.semantic, m.detail):
        loaded["vcm"] = Expert(request.load(vcm_dir))
    pe = m.detail == "dete" and methods.variant_flags(request.cfg, m.variant)["parameter_efficient"]
    semantic_net = request.load(seme) if m.semantic == "seme" or pe else None  # shared, as in `experts`
    if m.semantic == "seme":
        loaded["seme"] = Expert(semantic_net)
    if m.detail == "dete":
        loaded["dete"] = detail_expert(request, dete, semantic_net)
    return request.two_experts(loaded[m.semantic], loaded[m.detail])
