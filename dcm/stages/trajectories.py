"""Stage `trajectories`: run the teacher's full ODE for every training prompt and noise seed and cache every
grid point, so distillation reads the teacher's step of Eq. 5 instead of recomputing it.

Generation is split into shards of `trajectories.shard_size` (prompt, seed) jobs, each written atomically
into `<run>/trajectories.partial/checkpoint/`; a rerun skips complete shards, so a killed job loses at most
the shard it was writing. `--shard K --shards N` generates only the shards i with i mod N = K (one of N
parallel GPU jobs) and stops there; the stage without them generates whatever is still missing, then writes
the manifest and moves the finished cache into place. Under torchrun the processes split the shards."""

from __future__ import annotations

import logging

import torch

from dcm import distributed, layout
from dcm.backbones import load_teacher
from dcm.data.prompts import load_captions
from dcm.errors import DCMError
from dcm.outputs import stage_output
from dcm.sampling import euler_sample, seeded_noise
from dcm.schedule import PhaseSchedule
from dcm.trajectories import (SHARD_DIR, complete_shard, finish_shards, shard_jobs, teacher_velocity, trajectory_hash,
                              write_shard)

log = logging.getLogger("dcm")

TRAJECTORY_SEED_OFFSET = 1_000_000  # keeps training noise apart from the evaluation seeds
def trajectory_jobs(cfg: dict) -> list[tuple[str, int]]:
    """(caption, noise seed) of every cached trajectory, in cache order."""
    captions = load_captions(layout.require(layout.run_dir(cfg) / "dataset", "dataset"), "train")
    per_prompt = cfg["trajectories"]["seeds_per_prompt"]
    return [(caption, TRAJECTORY_SEED_OFFSET + k * per_prompt + s)
            for k, caption in enumerate(captions) for s in range(per_prompt)]


def own_shards(count: int, shard: int, shards: int) -> list[int]:
    """Shard indices this process generates: i mod `shards` = `shard`, split further over torchrun ranks."""
    if not 0 <= shard < shards:
        raise DCMError(f"--shard {shard} must lie in 0..{shards - 1} (--shards {shards})")
    mine = list(range(shard, count, shards))
    return mine[distributed.rank()::distributed.world_size()]


def generate(cfg: dict, chunks: list[list], indices: list[int], directory) -> None:
    """Write every shard of `indices` that is not already complete in `directory`."""
    key = trajectory_hash(cfg)
    todo = [i for i in indices if complete_shard(directory, i, key) is None]
    log.info("trajectory shards: %d of %d assigned here are complete, %d to generate",
             len(indices) - len(todo), len(indices), len(todo))
    if not todo:
        return
    backbone, teacher = load_teacher(cfg)
    tcfg, phases = cfg["trajectories"], PhaseSchedule.from_config(cfg)
    sigmas, schedule = phases.sigmas, list(range(phases.num_steps, -1, -1))
    velocity = teacher_velocity(backbone, teacher)

    for i in todo:
        latents, cond = [], []
        for b in range(0, len(chunks[i]), tcfg["batch_size"]):
            prompts, seeds = zip(*chunks[i][b:b + tcfg["batch_size"]])
            c = backbone.encode_prompts(list(prompts))
            _, states = euler_sample(velocity, seeded_noise(backbone.latent_shape, list(seeds)), c, sigmas,
                                     schedule, return_trajectory=True)
            latents.append(states.flip(0).transpose(0, 1))  # (B, N+1, ...), index i holds x_{t_i}
            cond.append(c)
        write_shard(directory, i, torch.cat(latents), torch.cat(cond), [p for p, _ in chunks[i]], key,
                    seeds=[s for _, s in chunks[i]])
        log.info("wrote trajectory shard %d of %d", i + 1, len(chunks))


def run(cfg: dict, shard: int | None = None, shards: int | None = None) -> None:
    if (shard is None) != (shards is None):
        raise DCMError("--shard and --shards go together: --shard K --shards N runs one of N generation jobs")
    chunks = shard_jobs(trajectory_jobs(cfg), cfg["trajectories"]["shard_size"])
    out = layout.run_dir(cfg) / "trajectories"
    if shards is not None:
        if shards > len(chunks):
            raise DCMError(f"--shards {shards} exceeds the {len(chunks)} shards of this cache "
                           f"({sum(map(len, chunks))} trajectories, trajectories.shard_size="
                           f"{cfg['trajectories']['shard_size']})")
        generate(cfg, chunks, own_shards(len(chunks), shard, shards), out.with_name(out.name + ".partial") / SHARD_DIR)
        return
    if distributed.world_size() > 1:
        from accelerate import PartialState

        PartialState()  # the process group of torchrun, for the barrier before the manifest
    key = trajectory_hash(cfg)
    with stage_output(out, cfg) as work:
        parts = work / SHARD_DIR
        generate(cfg, chunks, own_shards(len(chunks), 0, 1), parts)
        distributed.barrier()
        if not distributed.is_main():
            return
        phases = PhaseSchedule.from_config(cfg)
        finish_shards(parts, work, len(chunks), key, num_steps=phases.num_steps, sigmas=phases.sigmas.tolist())
