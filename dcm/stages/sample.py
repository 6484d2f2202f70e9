"""Stage `sample`: generate the evaluation videos of one method at one step count from fixed noise, so every
method starts from the same noise as the teacher."""

from __future__ import annotations

from typing import Callable

import torch

from dcm.backbones.base import Backbone
from dcm.baselines.lcm import LCMFunction, lcm_sample
from dcm.data.procedural import Factors
from dcm.data.prompts import load_captions
from dcm.errors import DCMError
from dcm.eval.latency import measure_latency
from dcm.eval.prompt_following import prompt_following
from dcm.expert_mix import mixed_denoiser
from dcm.experts import Expert, attach_detail_expert, detail_state_dict, switch_experts
from dcm.io import load_tensors, read_json, save_tensors, write_json
from dcm.naming import parse_mixed_method
from dcm.sampling import euler_sample, seeded_noise
from dcm.solvers import dcm_edges, phased_schedule, uniform_edges
from dcm.stages.common import grid, kappa_dir, load_teacher, require, stage_dir, stage_output
from dcm.stages.dete import DETAIL_CONFIG, DETAIL_WEIGHTS
from dcm.stages.distill import seme_dir, variant_flags
from dcm.video import save_filmstrip, save_gif

Sampler = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def sample_seeds(cfg: dict, count: int) -> list[list[int]]:
    """Noise seed of each (prompt, seed) pair, the same for every method."""
    return [[seed * 10_000 + k for k in range(count)] for seed in cfg["sampling"]["seeds"]]


def _load_net(backbone: Backbone, directory, made_by: str):
    return backbone.load_network(require(directory, made_by)).eval().requires_grad_(False)


def _detail_expert(cfg: dict, backbone: Backbone, variant: str, flags: dict, semantic_net) -> Expert:
    directory = require(kappa_dir(cfg, "dete", variant), "dete")
    if not flags["parameter_efficient"]:
        return Expert(_load_net(backbone, directory / "network", "dete"))
    meta = read_json(directory / DETAIL_CONFIG)
    expert = attach_detail_expert(semantic_net, backbone, meta["lora_rank"], meta["lora_alpha"])
    state = load_tensors(directory / DETAIL_WEIGHTS)
    mismatch = set(state) ^ set(detail_state_dict(expert))
    if mismatch:
        raise DCMError(f"{directory / DETAIL_WEIGHTS} does not match the detail expert: keys {sorted(mismatch)[:4]}")
    expert.load_state_dict(state, strict=False)
    return expert.eval().requires_grad_(False)


def method_sampler(cfg: dict, method: str, steps: int, backbone: Backbone, teacher) -> tuple[Sampler, list[int]]:
    """(sampler(noise, cond) -> latents, grid schedule) for `method` at `steps` steps."""
    sigmas, n, kappa = grid(cfg), cfg["schedule"]["num_steps"], cfg["schedule"]["kappa"]
    if method == "teacher":
        schedule = phased_schedule([n, 0], steps)
        return (lambda z, c: euler_sample(Expert(teacher).denoiser(backbone), z, c, sigmas, schedule)), schedule
    if method == "lcm":
        function = LCMFunction(Expert(_load_net(backbone, stage_dir(cfg, "lcm", "network"), "lcm")).denoiser(backbone),
                               cfg["lcm"]["sigma_data"], cfg["lcm"]["timestep_scaling"])
        schedule = phased_schedule([n, 0], steps)
        return (lambda z, c: lcm_sample(function, z, c, sigmas, schedule, cfg["seed"])), schedule
    if method == "pcm":
        net = _load_net(backbone, stage_dir(cfg, "pcm", "network"), "pcm")
        schedule = phased_schedule(uniform_edges(n, cfg["pcm"]["phases"]), steps)
        return (lambda z, c: euler_sample(Expert(net).denoiser(backbone), z, c, sigmas, schedule)), schedule
    schedule = phased_schedule(dcm_edges(n, kappa), steps)
    mix = parse_mixed_method(method)
    if mix is not None:
        denoiser = _mixed_denoiser(cfg, mix, backbone, float(sigmas[kappa]))
    elif not (flags := variant_flags(cfg, method))["decouple"]:
        denoiser = _vcm_denoiser(cfg, backbone)
    else:
        semantic_net = _semantic_net(cfg, backbone, flags)
        detail = _detail_expert(cfg, backbone, method, flags, semantic_net)
        denoiser = switch_experts(Expert(semantic_net).denoiser(backbone), detail.denoiser(backbone),
                                  float(sigmas[kappa]))
    return (lambda z, c: euler_sample(denoiser, z, c, sigmas, schedule)), schedule


def _vcm_denoiser(cfg: dict, backbone: Backbone):
    return Expert(_load_net(backbone, stage_dir(cfg, "vcm", "network"), "vcm")).denoiser(backbone)


def _semantic_net(cfg: dict, backbone: Backbone, flags: dict):
    return _load_net(backbone, seme_dir(cfg, flags) / "network", "seme")


def _mixed_denoiser(cfg: dict, mix, backbone: Backbone, sigma_kappa: float):
    """Fig. 3's mixtures: the semantic phase by SemE or VCM, the detail phase by DetE or VCM."""
    flags = variant_flags(cfg, mix.variant)
    if not flags["decouple"]:
        raise DCMError(f"mixed method {mix!r} needs experts: variant {mix.variant!r} has decouple: false")
    loaders = {
        "vcm": lambda: _vcm_denoiser(cfg, backbone),
        "seme": lambda: Expert(_semantic_net(cfg, backbone, flags)).denoiser(backbone),
        "dete": lambda: _detail_expert(cfg, backbone, mix.variant, flags,
                                       _semantic_net(cfg, backbone, flags)).denoiser(backbone),
    }
    return mixed_denoiser(mix, loaders, sigma_kappa)


def sampling_prompts(cfg: dict, backbone: Backbone) -> tuple[list[str], torch.Tensor]:
    """The prompts to sample (sampling.prompts, else the configured split) and their embeddings."""
    prompts = cfg["sampling"].get("prompts") or load_captions(require(stage_dir(cfg, "dataset"), "dataset"),
                                                              cfg["sampling"]["split"])
    try:
        return prompts, backbone.encode_prompts(prompts)
    except DCMError as err:
        raise DCMError(f"sampling.prompts: {err}") from err


def run(cfg: dict, method: str, steps: int) -> None:
    point = cfg["kappa_sweep"]["point"]
    if point is not None and not cfg["variants"].get(method, {}).get("decouple"):
        raise DCMError(f"--kappa {point} applies to methods made of SemE and DetE only (a variant with decouple: "
                       f"true), not {method!r}: its networks are trained at schedule.kappa alone")
    backbone, teacher = load_teacher(cfg)
    prompts, cond = sampling_prompts(cfg, backbone)
    sampler, schedule = method_sampler(cfg, method, steps, backbone, teacher)
    seeds = sample_seeds(cfg, len(prompts))
    latents = torch.cat([sampler(seeded_noise(backbone.latent_shape, s), cond) for s in seeds])
    videos = backbone.decode(latents)
    one_noise, one_cond = seeded_noise(backbone.latent_shape, seeds[0][:1]), cond[:1]
    timing = cfg["sampling"]["latency"]
    latency = measure_latency(lambda: backbone.decode(sampler(one_noise, one_cond)), timing["warmup"],
                              timing["repeats"])
    with stage_output(kappa_dir(cfg, "samples", f"{method}-{steps}"), cfg) as work:
        save_tensors(work / "samples.safetensors", {"latents": latents, "videos": videos})
        save_gif(videos, work / "samples.gif")
        save_filmstrip(videos, work / "filmstrip.png")
        write_json(work / "meta.json", {"method": method, "steps": steps, "schedule": schedule, "prompts": prompts,
                                        "seeds": seeds, "batch_size": len(prompts)})
        write_json(work / "latency.json", {"method": method, "steps": steps, "per_video": latency})
        factors = [Factors.from_caption(p) for p in prompts] * len(cfg["sampling"]["seeds"])
        known = [k for k, f in enumerate(factors) if f is not None]
        if known:
            write_json(work / "prompt_following.json",
                       prompt_following(videos[known], [factors[k] for k in known]))
