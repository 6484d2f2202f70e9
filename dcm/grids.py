"""The teacher grid of a config: sigma_i and the model's timestep input t_i for grid index i = 0..N, as each
backbone's pipeline scheduler builds them (dcm/pipelines.py). Importing this module needs no torch; `grid`
imports diffusers' schedulers when called.

Flow backbones (HunyuanVideo, Wan): the scheduler's sigmas with schedule.shift applied once, exactly as the
pipeline calls set_timesteps. CogVideoX: the DDIM scheduler's trailing timesteps (999, 979, ..., 19 for N = 50),
each mapped to the flow level sigma = b / (a + b) with a = sqrt(ab_t), b = sqrt(1 - ab_t), the ray the CogVideoX
adapter integrates on (dcm/backbones/cogvideox.py). The tiny backbone has no pipeline: its grid is the one this
project always used, diffusers' FlowMatchEulerDiscreteScheduler(shift).set_timesteps(N).
Index N is the noise end; index 0 is the clean end (sigma 0, timestep 0), where no model is called.
"""

from __future__ import annotations

import numpy as np

from dcm.errors import DCMError
from dcm.pipelines import pipeline


def scheduler(name: str, shift: float):
    """The diffusers scheduler of backbone `name`'s pipeline, its shift set to `shift` (schedule.shift)."""
    import diffusers

    spec = pipeline(name)
    config = dict(spec.scheduler_config)
    if spec.shift_key is not None:
        config[spec.shift_key] = shift
    elif shift != 1.0:
        raise DCMError(f"schedule.shift={shift}: backbone.name={name} samples on its DDPM scheduler's timesteps, "
                       "which take no shift; leave schedule.shift out")
    return getattr(diffusers, spec.scheduler)(**config)


def backbone_grid(name: str, num_steps: int, shift: float) -> tuple[np.ndarray, np.ndarray]:
    """(sigmas, timesteps), float64 arrays over grid index 0..N: backbone `name`'s pipeline grid (module docstring)."""
    sched, spec = scheduler(name, shift), pipeline(name)
    if spec.set_timesteps == "sigmas":
        sched.set_timesteps(sigmas=np.linspace(1.0, 0.0, num_steps + 1)[:-1])
    else:
        sched.set_timesteps(num_steps)
    timesteps = sched.timesteps.double().numpy()
    if name == "cogvideox":
        ab = sched.alphas_cumprod.double().numpy()[sched.timesteps.long().numpy()]
        sigmas = np.sqrt(1 - ab) / (np.sqrt(ab) + np.sqrt(1 - ab))
        final = float(sched.final_alpha_cumprod)
        sigmas = np.append(sigmas, np.sqrt(1 - final) / (np.sqrt(final) + np.sqrt(1 - final)))
    else:
        sigmas = sched.sigmas.double().numpy()
    if len(sigmas) != num_steps + 1 or len(timesteps) != num_steps:
        raise DCMError(f"{spec.scheduler} gave {len(timesteps)} timesteps for schedule.num_steps={num_steps}")
    return sigmas[::-1].copy(), np.append(timesteps, 0.0)[::-1].copy()


def grid(cfg: dict) -> tuple[np.ndarray, np.ndarray]:
    """(sigmas[0..N] ascending, timesteps[0..N]) of the config's backbone at schedule.num_steps, schedule.shift."""
    return backbone_grid(cfg["backbone"]["name"], cfg["schedule"]["num_steps"], cfg["schedule"]["shift"])
