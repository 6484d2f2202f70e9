"""Stage `sample`: generate the evaluation videos of one method at one step count from fixed noise, so every
method starts from the same noise as the teacher."""

from __future__ import annotations

import torch

from dcm import layout, methods
from dcm.backbones import load_backbone, teacher_network_dir
from dcm.data.procedural import Factors
from dcm.eval.prompt_following import prompt_following
from dcm.io import save_tensors, write_json
from dcm.method_samplers import SamplerRequest, build_sampler, sample_seeds, sampling_prompts
from dcm.outputs import stage_output
from dcm.sampling import seeded_noise
from dcm.schedule import PhaseSchedule
from dcm.video import save_filmstrip, save_gif


def run(cfg: dict, method: str, steps: int) -> None:
    entry = methods.check_request(cfg, method, steps)
    backbone = load_backbone(cfg, layout.require(teacher_network_dir(cfg), "teacher"))
    prompts, cond = sampling_prompts(cfg, backbone)
    backbone.release_text_encoders()  # before the sampler's networks arrive
    request = SamplerRequest(cfg, entry, steps, PhaseSchedule.from_config(cfg), backbone, layout.run_dir(cfg),
                             layout.own_point(cfg))
    sampler = build_sampler(request)
    seeds, chunk = sample_seeds(cfg, len(prompts)), cfg["sampling"]["batch_size"] or len(prompts)
    latents = torch.cat([sampler(seeded_noise(backbone.latent_shape, s[i:i + chunk]), cond[i:i + chunk], s[i:i + chunk])
                         for s in seeds for i in range(0, len(prompts), chunk)])
    videos = backbone.decode(latents)
    with stage_output(layout.samples_dir(request.point, layout.sample_set(method, steps)), cfg) as work:
        save_tensors(work / layout.SAMPLES, {"latents": latents, "videos": videos})
        save_gif(videos, work / "samples.gif")
        save_filmstrip(videos, work / "filmstrip.png")
        write_json(work / "meta.json", {"method": method, "steps": steps, "schedule": request.schedule,
                                        "prompts": prompts, "seeds": seeds, "batch_size": len(prompts)})
        factors = [Factors.from_caption(p) for p in prompts] * len(cfg["sampling"]["seeds"])
        known = [k for k, f in enumerate(factors) if f is not None]
        if known:
            write_json(work / "prompt_following.json",
                       prompt_following(videos[known], [factors[k] for k in known]))
