"""Stage `vbench_sample`: VBench's videos of one method at one step count: its prompt suite (evaluate.vbench_prompt_file,
default the VBench package's own), 5 recorded seeds per prompt, mp4s at the backbone's frame rate, sampled in
chunks of evaluate.vbench_batch_size with tiled VAE decoding, sharded over torchrun ranks, and resumable: a killed
run keeps every finished mp4 and the rerun samples only the rest. Writes vbench/<method>-<steps>/{videos/, manifest.json}."""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

from dcm import distributed, layout, methods
from dcm.backbone_specs import backbone_spec
from dcm.backbones import load_backbone, teacher_network_dir
from dcm.config import config_hash
from dcm.errors import DCMError
from dcm.eval import vbench
from dcm.eval.vbench_videos import (VIDEOS_PER_PROMPT, check_prompt_file, load_suite, shard, suite_videos,
                                    vbench_mode, write_videos)
from dcm.io import read_json, sha256, write_json
from dcm.pipelines import guidance, pipeline
from dcm.method_samplers import SamplerRequest, build_sampler
from dcm.outputs import stage_output
from dcm.sampling import seeded_noise
from dcm.schedule import PhaseSchedule

log = logging.getLogger("dcm")
SUITE = "suite.json"  # what the videos in a resumed work directory were sampled for
HASHED_SECTIONS = ("seed", "backbone", "schedule")


def videos_dir(point: str | Path, name: str) -> Path:
    """The VBench videos of sample set `name` under a run or kappa-sweep point: <point>/vbench/<name>."""
    return Path(point) / "vbench" / name


def vbench_python(cfg: dict) -> str:
    """evaluate.vbench_python, or a clear error for a backbone VBench does not score or without it."""
    if backbone_spec(cfg).benchmark != "vbench":
        raise DCMError("the tiny backbone is scored with tinybench (the evaluate stage), not VBench")
    python = cfg["evaluate"]["vbench_python"]
    if not python:
        raise DCMError(f"evaluate.vbench_python is not set: backbone.name={cfg['backbone']['name']} is scored with "
                       "VBench, which needs its own interpreter (scripts/vbench/README.md)")
    return python


def prompt_file(cfg: dict, python: str) -> Path:
    """evaluate.vbench_prompt_file, else VBench's own VBench_full_info.json."""
    path = cfg["evaluate"]["vbench_prompt_file"]
    return Path(path) if path else vbench.package_prompt_file(python)


def suite(cfg: dict, method: str, steps: int, python: str) -> dict:
    """What the videos of this method and step count are sampled for: prompt file and checksum, dimensions, mode."""
    path = prompt_file(cfg, python)
    if not path.is_file():
        raise DCMError(f"evaluate.vbench_prompt_file={str(path)!r} does not exist")
    dimensions = cfg["evaluate"]["vbench_dimensions"]
    check_prompt_file(path, dimensions)
    frames, fps = cfg["backbone"]["frames"], pipeline(cfg["backbone"]["name"]).fps
    return {"method": method, "steps": steps, "prompt_file": str(path.resolve()), "prompt_file_sha256": sha256(path),
            "dimensions": dimensions, "videos_per_prompt": VIDEOS_PER_PROMPT, "frames": frames, "fps": fps,
            "seconds": frames / fps, "mode": vbench_mode(frames, fps),
            "config_hash": config_hash(cfg, *HASHED_SECTIONS)}


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
    request = SamplerRequest(cfg, entry, steps, PhaseSchedule.from_config(cfg), backbone, layout.run_dir(cfg),
                             layout.own_point(cfg))
    sampler, schedule = build_sampler(request), request.schedule

    def sample(chunk):
        seeds = [v.seed for v in chunk]
        cond = backbone.encode_prompts([v.prompt for v in chunk])
        return backbone.decode(sampler(seeded_noise(backbone.latent_shape, seeds), cond, seeds)).numpy()

    with stage_output(videos_dir(request.point, layout.sample_set(method, steps)), cfg) as work:
        kept = work / "checkpoint"  # survives a kill (dcm.outputs.stage_output)
        kept.mkdir(exist_ok=True)
        if (kept / SUITE).is_file() and read_json(kept / SUITE) != spec:
            raise DCMError(f"{kept} holds videos sampled for another config or prompt file ({kept / SUITE}): "
                           "delete it to start over")
        distributed.barrier()
        if distributed.is_main():
            write_json(kept / SUITE, spec)
        mine = shard(videos, distributed.rank(), distributed.world_size())
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
