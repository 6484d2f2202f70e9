"""Distilled students as stock diffusers pipelines that load with `from_pretrained` and sample in a few steps.

Wan: WanPipeline with `transformer` = SemE and `transformer_2` = DetE (LoRA merged into the attention weights,
copied timestep layers in place), switched by `boundary_ratio` at kappa, and FewStepFlowMatchScheduler, a
FlowMatchEulerDiscreteScheduler whose `set_timesteps(k)` visits the same teacher-grid points as the project's
sampler (phased_schedule). Single-network students (PCM) take only `transformer`.

HunyuanVideo: HunyuanVideoPipeline has one transformer and takes `sigmas`: the directory holds SemE as
`transformer`, a stock shift-1 Euler scheduler, DetE in `transformer_2/` and `few_step.json` (the grid sigmas of
each step count, and kappa's boundary timestep); ExpertSwitch, passed as `callback_on_step_end`, runs DetE on
the steps at or below kappa.

CogVideoX: CogVideoXPipeline (one transformer, DDIM on integer DDPM timesteps) with FewStepCogVideoXDDIMScheduler,
whose steps land on the grid's own trailing timesteps, SemE as `transformer`, DetE in `transformer_2/` and
`few_step.json` with kappa's boundary timestep for ExpertSwitch. A deterministic DDIM step between two DDPM times
is the flow Euler step between their flow levels (dcm/backbones/cogvideox.py), so the pipeline samples the
project's trajectory."""

from __future__ import annotations

from fractions import Fraction

import torch
from diffusers import CogVideoXDDIMScheduler, FlowMatchEulerDiscreteScheduler
from diffusers import SchedulerMixin  # noqa: F401  diffusers' loader finds a component's base class on its module
from diffusers.configuration_utils import register_to_config
from torch import nn

from dcm.errors import DCMError
from dcm.experts import DETAIL_ADAPTER, Expert
from dcm.pipelines import pipeline
from dcm.schedule import PhaseSchedule


def phase_schedule_config(phases: PhaseSchedule) -> dict:
    """The fields of a PhaseSchedule, as a scheduler config stores them."""
    return {"num_steps": phases.num_steps, "kappa": phases.kappa, "shift": phases.shift,
            "pcm_phases": phases.pcm_phases, "expert_phases": phases.expert_phases}


def scheduled_indices(scheduler, num_inference_steps: int) -> list[int]:
    """The grid indices a few-step scheduler's `phase_schedule` and `cut` visit in `num_inference_steps` steps."""
    config = scheduler.config
    if not config.phase_schedule:
        raise DCMError(f"{type(scheduler).__name__} needs phase_schedule (the run's PhaseSchedule fields)")
    return PhaseSchedule(**config.phase_schedule).few_step(config.cut, num_inference_steps)


class FewStepFlowMatchScheduler(FlowMatchEulerDiscreteScheduler):
    """Flow-matching Euler steps on points of the teacher grid: `grid_sigmas` (index 0..N, sigma_0 = 0), the run's
    phase schedule and the student's cut of it; `set_timesteps(k)` visits the grid points of the project's
    k-step sampler (PhaseSchedule.few_step), so the last step of a phase lands on its edge; `grid_timesteps`, when
    given, are the network's timestep inputs at those points (Backbone.model_timestep: Wan's are integers)."""

    @register_to_config
    def __init__(self, grid_sigmas: list[float] | None = None, phase_schedule: dict | None = None,
                 cut: str = "experts", num_train_timesteps: int = 1000, grid_timesteps: list[float] | None = None):
        super().__init__(num_train_timesteps=num_train_timesteps, shift=1.0)

    def set_timesteps(self, num_inference_steps: int | None = None, device=None, **kwargs):
        """Sigmas of the grid points of a `num_inference_steps`-step schedule, then diffusers' Euler set-up."""
        grid = self.config.grid_sigmas
        if not grid or grid[0] != 0:
            raise DCMError("FewStepFlowMatchScheduler needs grid_sigmas (with sigma_0 = 0)")
        schedule = scheduled_indices(self, num_inference_steps)
        super().set_timesteps(sigmas=[grid[i] for i in schedule[:-1]], device=device)
        if self.config.grid_timesteps:
            self.timesteps = torch.tensor([self.config.grid_timesteps[i] for i in schedule[:-1]],
                                          dtype=self.timesteps.dtype, device=self.timesteps.device)


class FewStepCogVideoXDDIMScheduler(CogVideoXDDIMScheduler):
    """CogVideoX-2B's published DDIM scheduler (dcm/pipelines.py) on the teacher grid's integer timesteps
    `grid_timesteps` (index 0..N): `set_timesteps(k)` visits the grid points of the project's k-step sampler for the
    run's `phase_schedule` and `cut`, and each DDIM step (eta 0) lands on the next of them."""

    @register_to_config
    def __init__(self, grid_timesteps: list[int] | None = None, phase_schedule: dict | None = None,
                 cut: str = "experts"):
        super().__init__(**pipeline("cogvideox").scheduler_config)

    def set_timesteps(self, num_inference_steps: int, device=None):
        """The grid timesteps of a `num_inference_steps`-step schedule, highest first."""
        if not self.config.grid_timesteps:
            raise DCMError("FewStepCogVideoXDDIMScheduler needs grid_timesteps")
        schedule = scheduled_indices(self, num_inference_steps)
        self.num_inference_steps = num_inference_steps
        self.timesteps = torch.tensor([self.config.grid_timesteps[i] for i in schedule[:-1]], dtype=torch.int64,
                                      device=device)

    def step(self, model_output, timestep, sample, **kwargs):
        """The parent's DDIM step to the next scheduled timestep (-1: the clean end). The parent steps
        num_train_timesteps // num_inference_steps below `timestep`; for this step the count is the Fraction
        whose floor division gives that stride."""
        later = self.timesteps[self.timesteps < timestep]
        stride = int(timestep) - (int(later[0]) if len(later) else -1)
        steps, self.num_inference_steps = self.num_inference_steps, Fraction(self.config.num_train_timesteps, stride)
        try:
            return super().step(model_output, timestep, sample, **kwargs)
        finally:
            self.num_inference_steps = steps


def merged_detail_network(expert: Expert) -> nn.Module:
    """The parameter-efficient DetE as one plain network, made in place from `expert.net`: its copied
    timestep-dependent layers instead of the originals, its LoRA merged into the attention weights (Sec. 3.3)."""
    if expert.detail is None:
        raise DCMError("merged_detail_network needs a parameter-efficient detail expert (LoRA + copied layers)")
    net = expert.net
    expert.detail.install()
    net.enable_adapters()
    net.fuse_lora(adapter_names=[DETAIL_ADAPTER])
    net.unload_lora()
    return net.requires_grad_(False)


def boundary_ratio(sigmas: torch.Tensor, kappa: int) -> float:
    """WanPipeline's boundary (a share of its 1000 training timesteps) that sends grid points at or below kappa
    to transformer_2 (DetE) and those above it to transformer (SemE): midway between sigma_kappa and the next."""
    return float((sigmas[kappa] + sigmas[kappa + 1]) / 2)


def few_step_plan(phases: PhaseSchedule, cut: str, experts: bool, steps: tuple[int, ...], sigmas: bool) -> dict:
    """few_step.json: the pipeline timestep below which DetE runs (midway between kappa's grid timestep and the
    next; None for one network) and, for a pipeline called with `sigmas`, those of each step count (the
    schedule's grid points, the final 0 left to the scheduler)."""
    timesteps = phases.timesteps
    plan = {"boundary_timestep": (timesteps[phases.kappa] + timesteps[phases.kappa + 1]) / 2 if experts else None}
    if sigmas:
        plan["sigmas"] = {str(k): [float(phases.sigmas[i]) for i in phases.few_step(cut, k)[:-1]] for k in steps}
    return plan


class ExpertSwitch:
    """`callback_on_step_end` of a one-transformer pipeline: after each step, the pipeline's transformer for the
    next one is `detail` when that step's timestep is below `boundary_timestep`, the original one otherwise."""

    def __init__(self, detail: nn.Module, boundary_timestep: float):
        self.detail, self.boundary, self.semantic = detail, boundary_timestep, None

    def __call__(self, pipe, step: int, timestep, callback_kwargs: dict) -> dict:
        if self.semantic is None:
            self.semantic = pipe.transformer
        timesteps = pipe.scheduler.timesteps
        last = step + 1 == len(timesteps)
        pipe.transformer = self.detail if not last and timesteps[step + 1] < self.boundary else self.semantic
        if last:
            self.semantic = None
        return {}


def hunyuan_pipeline(backbone, transformer: nn.Module):
    """A HunyuanVideoPipeline of the backbone's encoders and VAE with `transformer` and a shift-1 Euler scheduler,
    so the `sigmas` of a call are the grid's own."""
    from diffusers import HunyuanVideoPipeline

    keep = ("text_encoder", "tokenizer", "vae", "text_encoder_2", "tokenizer_2")
    return HunyuanVideoPipeline(**{k: backbone.pipeline.components[k] for k in keep}, transformer=transformer,
                                scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0))


def cogvideox_pipeline(backbone, transformer: nn.Module, scheduler: FewStepCogVideoXDDIMScheduler):
    """A CogVideoXPipeline of the backbone's tokenizer, text encoder and VAE with `transformer` and `scheduler`."""
    from diffusers import CogVideoXPipeline

    return CogVideoXPipeline(tokenizer=backbone.tokenizer, text_encoder=backbone.text_encoder, vae=backbone.vae,
                             transformer=transformer, scheduler=scheduler)


def wan_pipeline(backbone, transformer: nn.Module, scheduler: FewStepFlowMatchScheduler,
                 transformer_2: nn.Module | None = None, boundary: float | None = None):
    """A WanPipeline of the backbone's text encoder, tokenizer and VAE with the given students and scheduler."""
    from diffusers import WanPipeline

    keep = ("tokenizer", "text_encoder", "vae")
    return WanPipeline(**{k: backbone.pipeline.components[k] for k in keep}, transformer=transformer,
                       transformer_2=transformer_2, boundary_ratio=boundary, scheduler=scheduler)
