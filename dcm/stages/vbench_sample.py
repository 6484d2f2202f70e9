"""Stage `vbench_sample`: VBench's videos of one method at one step count: its prompt suite (evaluate.vbench_prompt_file,
default the VBench package's own), 5 recorded seeds per prompt, the prompts encoded first and the text encoders then
moved off the GPU, mp4s at the backbone's frame rate, sampled in chunks of evaluate.vbench_batch_size with tiled VAE
decoding, sharded over torchrun ranks, and resumable: a killed run keeps every finished mp4 and the rerun samples only
the rest. Writes vbench/<method>-<steps>/{videos/, manifest.json}."""

from __future__ import annotations

import logging
from functools import partial

import torch

from dcm import distributed, layout, methods
from dcm.backbones import load_backbone, teacher_network_dir
from dcm.errors import DCMError
from dcm.eval import vbench
from dcm.eval.vbench_videos import SUITE, load_suite, shard, suite, suite_videos, vbench_python, write_videos
from dcm.io import read_json, write_json
from dcm.method_samplers import SamplerRequest, build_sampler
from dcm.outputs import stage_output
from dcm.pipelines import guidance
from dcm.sampling import seeded_noise
from dcm.schedule import PhaseSchedule

log = logging.getLogger("dcm")


def encode_all(backbone, prompts: list[str], batch_size: int) -> dict[str, torch.Tensor]:
    """Embedding (1, L, D) of each prompt, encoded `batch_size` at a time."""
    rows = torch.cat([backbone.encode_prompts(prompts[i:i + batch_size]) for i in range(0, len(prompts), batch_size)])
    return {prompt: rows[k:k + 1] for k, prompt in enumerate(prompts)}


def run(cfg: dict, method: str, steps: int) -> None:
    python = vbench_python(cfg)
    spec = suite(cfg, method, steps, python)
    if distributed.world_size() > 1:  # the process group behind distributed.barrier (nccl on GPUs, gloo on CPUs)
        from accelerate import PartialState

        PartialState(cpu=cfg["backbone"]["device"] == "cpu")
    all_prompts, prompts = load_suite(spec["prompt_file"]), load_suite(spec["prompt_file"], spec["dimensions"])
    videos = suite_videos(all_prompts, prompts)
    entry = methods.check_request(cfg, method, steps)
    backbone = load_backbone(cfg, layout.require(teacher_network_dir(cfg), "teacher"))
    backbone.tile_decoding()
    mine = shard(videos, distributed.rank(), distributed.world_size())
    cond = encode_all(backbone, list(dict.fromkeys(v.prompt for v in mine)), cfg["evaluate"]["vbench_batch_size"])
    backbone.release_text_encoders()  # before the sampler's networks arrive
    request = SamplerRequest(cfg, entry, steps, PhaseSchedule.from_config(cfg), backbone, layout.run_dir(cfg),
                             layout.own_point(cfg))
    sampler, schedule = build_sampler(request), request.schedule

    def sample(chunk):
        seeds = [v.seed for v in chunk]
        return backbone.decode(sampler(seeded_noise(backbone.latent_shape, seeds),
                                       torch.cat([cond[v.prompt] for v in chunk]), seeds)).numpy()

    with stage_output(layout.vbench_dir(request.point, layout.sample_set(method, steps)), cfg) as work:
        kept = work / "checkpoint"  # survives a kill (dcm.outputs.stage_output)
        kept.mkdir(exist_ok=True)
        if (kept / SUITE).is_file() and read_json(kept / SUITE) != spec:
            raise DCMError(f"{kept} holds videos sampled for another config or prompt file ({kept / SUITE}): "
                           "delete it to start over")
        distributed.barrier()
        if distributed.is_main():
            write_json(kept / SUITE, spec)
        made = write_videos(mine, sample, partial(vbench.encode_mp4, python, fps=spec["fps"]), kept / "videos",
                            kept / f"scratch-rank{distributed.rank()}", cfg["evaluate"]["vbench_batch_size"],
                            lambda done, total: log.info("vbench videos %d/%d (rank %d)", done, total,
                                                         distributed.rank()))
        log.info("rank %d sampled %d of its %d VBench videos (the rest were already there)", distributed.rank(),
                 made, len(mine))
        distributed.barrier()
        if distributed.is_main():
            (kept / "videos").rename(work / "videos")
            write_json(work / "manifest.json", {
                **spec, "schedule": schedule, "prompts": len(prompts), "videos": len(videos),
                "guidance": guidance(cfg["backbone"]) if method == "teacher" else {"kind": "none"},
                "seeds": {v.file: v.seed for v in videos}, "world_size": distributed.world_size()})
