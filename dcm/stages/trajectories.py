"""Stage `trajectories`: run the teacher's full ODE for every training prompt and noise seed and cache every
grid point, so distillation reads the teacher's step of Eq. 5 instead of recomputing it."""

from __future__ import annotations

from functools import partial

import torch
from tqdm.auto import tqdm

from dcm import layout
from dcm.backbones import load_teacher
from dcm.data.prompts import load_captions
from dcm.io import save_tensors, sha256, write_json
from dcm.sampling import euler_sample, seeded_noise
from dcm.outputs import stage_output
from dcm.schedule import PhaseSchedule
from dcm.trajectories import MANIFEST, trajectory_hash

TRAJECTORY_SEED_OFFSET = 1_000_000  # keeps training noise apart from the evaluation seeds
def run(cfg: dict) -> None:
    backbone, teacher = load_teacher(cfg)
    captions = load_captions(layout.require(layout.run_dir(cfg) / "dataset", "dataset"), "train")
    tcfg, phases = cfg["trajectories"], PhaseSchedule.from_config(cfg)
    jobs = [(caption, TRAJECTORY_SEED_OFFSET + k * tcfg["seeds_per_prompt"] + s)
            for k, caption in enumerate(captions) for s in range(tcfg["seeds_per_prompt"])]
    n, sigmas = phases.num_steps, phases.sigmas
    schedule, denoise = list(range(n, -1, -1)), partial(backbone.guided_predict, teacher)
    shards = []
    with stage_output(layout.run_dir(cfg) / "trajectories", cfg) as work:
        for first in tqdm(range(0, len(jobs), tcfg["shard_size"]), desc="trajectory shards"):
            chunk = jobs[first:first + tcfg["shard_size"]]
            latents, cond = [], []
            for b in range(0, len(chunk), tcfg["batch_size"]):
                prompts, seeds = zip(*chunk[b:b + tcfg["batch_size"]])
                c = backbone.encode_prompts(list(prompts))
                _, states = euler_sample(denoise, seeded_noise(backbone.latent_shape, list(seeds)), c, sigmas,
                                         schedule, return_trajectory=True)
                latents.append(states.flip(0).transpose(0, 1))  # (B, N+1, ...), index i holds x_{t_i}
                cond.append(c)
            name = f"shard-{len(shards):05d}.safetensors"
            save_tensors(work / name, {"latents": torch.cat(latents).half(), "cond": torch.cat(cond).half()})
            shards.append({"file": name, "sha256": sha256(work / name), "count": len(chunk),
                           "prompts": [p for p, _ in chunk], "seeds": [s for _, s in chunk]})
        write_json(work / MANIFEST, {
            "config_hash": trajectory_hash(cfg), "num_steps": n, "latent_shape": list(backbone.latent_shape),
            "dtype": "float16", "count": len(jobs), "sigmas": sigmas.tolist(), "shards": shards})
