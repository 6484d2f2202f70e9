"""Stage `latents`: encode the training videos of `trajectories.videos` once with the backbone's VAE, with their
captions' embeddings, into a sharded latent store (a trajectory cache of one point per video, the data end
x_0), which the online mode (`trajectories.mode: online`) noises and steps with the teacher during training.

Shards are written atomically into `<run>/latents.partial/checkpoint/` and a rerun skips complete ones. Videos in
containers (.mp4, ...) need PyAV; without it the stage refuses before loading anything."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from dcm import layout
from dcm.backbones import load_backbone, teacher_network_dir
from dcm.errors import DCMError
from dcm.outputs import stage_output
from dcm.trajectories import SHARD_DIR, complete_shard, finish_shards, latents_hash, shard_jobs, write_shard
from dcm.video import CONTAINER_SUFFIXES, read_video, require_pyav

log = logging.getLogger("dcm")

VIDEO_SUFFIXES = (".gif", *CONTAINER_SUFFIXES)


def training_videos(folder: str | Path) -> list[tuple[Path, str]]:
    """(video, caption) of every video in `folder` (files with a video suffix and frame folders), by name, each
    captioned by NAME.txt beside it."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DCMError(f"trajectories.videos={str(folder)!r} is not a folder of training videos")
    videos = sorted(p for p in folder.iterdir() if p.is_dir() or p.suffix.lower() in VIDEO_SUFFIXES)
    if not videos:
        raise DCMError(f"trajectories.videos={str(folder)!r} holds no videos (folders of frames, .gif or "
                       f"{', '.join(CONTAINER_SUFFIXES)})")
    pairs = []
    for video in videos:
        caption = video.with_suffix(".txt") if video.is_file() else video.with_name(video.name + ".txt")
        if not caption.is_file():
            raise DCMError(f"training video {video} has no caption file {caption}")
        pairs.append((video, caption.read_text().strip()))
    return pairs


def run(cfg: dict) -> None:
    if not cfg["trajectories"].get("videos"):
        raise DCMError("the latents stage needs trajectories.videos: a folder of training videos with captions")
    videos = training_videos(cfg["trajectories"]["videos"])
    for path, _ in videos:  # before the VAE loads: a missing PyAV fails at once, not after some shards
        require_pyav(path)
    bcfg, key = cfg["backbone"], latents_hash(cfg)
    backbone = load_backbone(cfg, layout.require(teacher_network_dir(cfg), "teacher"))
    chunks = shard_jobs(videos, cfg["trajectories"]["shard_size"])
    with stage_output(layout.run_dir(cfg) / "latents", cfg) as work:
        parts = work / SHARD_DIR
        for i, chunk in enumerate(chunks):
            if complete_shard(parts, i, key) is not None:
                continue
            clips = torch.stack([read_video(path, bcfg["frames"], bcfg["height"], bcfg["width"]) for path, _ in chunk])
            captions = [caption for _, caption in chunk]
            write_shard(parts, i, backbone.encode_video(clips).unsqueeze(1), backbone.encode_prompts(captions),
                        captions, key, videos=[path.name for path, _ in chunk])
            log.info("encoded latent shard %d of %d", i + 1, len(chunks))
        finish_shards(parts, work, len(chunks), key, num_steps=0)
