"""Stage `trajectories`: run the teacher's full ODE for every training prompt and noise seed and cache every
grid point, so distillation reads the teacher's step of Eq. 5 instead of recomputing it."""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from dcm.config import config_hash
from dcm.data.prompts import load_captions
from dcm.io import save_tensors, sha256, write_json
from dcm.sampling import euler_sample, seeded_noise
from dcm.stages.common import grid, load_teacher, require, stage_dir, stage_output
from dcm.trajectories import MANIFEST

TRAJECTORY_SEED_OFFSET = 1_000_000  # keeps training noise apart from the evaluation seeds
HASHED_SECTIONS = ("seed", "backbone", "data", "teacher", "schedule", "trajectories")


def trajectory_hash(cfg: dict) -> str:
    """Hash of every config section the cached trajectories depend on; the schedule's kappa is left out, since
    the teacher's ODE does not depend on where the experts split it (the kappa sweep shares one cache)."""
    schedule = {k: v for k, v in cfg["schedule"].items() if k != "kappa"}
    return config_hash({**cfg, "schedule": schedule}, *HASHED_SECTIONS)


def run(cfg: dict) -> None:
    backbone, teacher = load_teacher(cfg)
    captions = load_captions(require(stage_dir(cfg, "dataset"), "dataset"), "train")
    tcfg, n = cfg["trajectories"], cfg["schedule"]["num_steps"]
    jobs = [(caption, TRAJECTORY_SEED_OFFSET + k * tcfg["seeds_per_prompt"] + s)
            for k, caption in enumerate(captions) for s in range(tcfg["seeds_per_prompt"])]
    sigmas, schedule, denoise = grid(cfg), list(range(n, -1, -1)), lambda x, s, c: backbone.predict(teacher, x, s, c)
    shards = []
    with stage_output(stage_dir(cfg, "trajectories"), cfg) as work:
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
            "dtype": "float16", "count": len(jobs), "sigmas": grid(cfg).tolist(), "shards": shards})
