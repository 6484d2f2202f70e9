"""VBench's sampling protocol: its own prompt suite (a VBench_full_info.json: [{"prompt_en", "dimension"}, ...]),
five videos per prompt from recorded seeds named `<prompt>-<index>.mp4`, at the backbone's frame rate; VBench-Long
for clips of 5 s or more. Videos are sampled in chunks, sharded over ranks, and each is kept as soon as it is
encoded, so a rerun continues where a killed one stopped."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from dcm.backbone_specs import backbone_spec
from dcm.config import config_hash
from dcm.errors import DCMError
from dcm.eval import vbench
from dcm.io import read_json, sha256
from dcm.pipelines import pipeline

VIDEOS_PER_PROMPT = 5  # VBench's standard protocol (its prompt suite is scored on <prompt>-0 .. <prompt>-4)
LONG_SECONDS = 5.0  # VBench-Long is required for clips of 5 s or more (facts.md Sec. 5)
SEED_OFFSET = 2_000_000  # keeps VBench's noise apart from training (1e6 + ...) and sample-stage seeds
#: dimensions VBench scores against per-prompt annotations (the entries' auxiliary_info)
AUXILIARY_DIMENSIONS = ("object_class", "multiple_objects", "color", "spatial_relationship", "scene", "appearance_style")


@dataclass(frozen=True)
class Video:
    """One VBench video: prompt, its index 0..4, the noise seed it is sampled from."""

    prompt: str
    index: int
    seed: int

    @property
    def file(self) -> str:
        return f"{self.prompt}-{self.index}.mp4"


def load_suite(path: str | Path, dimensions: list[str] | None = None) -> list[str]:
    """Prompts of a VBench_full_info.json tagged with any of `dimensions` (all when None), each once, in file
    order; DCMError naming the file when it is not in VBench's format."""
    info = read_json(path)
    if not (isinstance(info, list) and info and all(
            isinstance(e, dict) and isinstance(e.get("prompt_en"), str) and isinstance(e.get("dimension"), list)
            for e in info)):
        raise DCMError(f"{path} is not a VBench prompt file: expected a list of "
                       '{"prompt_en": ..., "dimension": [...]} entries')
    wanted = set(dimensions) if dimensions else None
    prompts = list(dict.fromkeys(e["prompt_en"] for e in info if wanted is None or wanted & set(e["dimension"])))
    if not prompts:
        raise DCMError(f"{path} has no prompt for the dimensions {sorted(wanted)}")
    bad = [p for p in prompts if "/" in p or p.startswith(".") or len(f"{p}-0.mp4".encode()) > 255]
    if bad:
        raise DCMError(f"{path}: prompts {bad[:3]} cannot name video files <prompt>-<index>.mp4")
    return prompts


def suite_videos(all_prompts: list[str], prompts: list[str]) -> list[Video]:
    """Five videos per prompt; seed SEED_OFFSET + 5 k + i with k the prompt's place in the whole suite, so a
    subset of dimensions samples the same videos as the full run."""
    position = {p: k for k, p in enumerate(all_prompts)}
    return [Video(p, i, SEED_OFFSET + VIDEOS_PER_PROMPT * position[p] + i)
            for p in prompts for i in range(VIDEOS_PER_PROMPT)]


def vbench_mode(frames: int, fps: float) -> str:
    """`long_vbench_standard` (VBench-Long) for clips of LONG_SECONDS or more, else `vbench_standard`."""
    return "long_vbench_standard" if frames / fps >= LONG_SECONDS else "vbench_standard"


def shard(videos: list[Video], rank: int, world_size: int) -> list[Video]:
    """This rank's share: every world_size-th video, starting at `rank`."""
    return videos[rank::world_size]


def missing(videos: list[Video], directory: str | Path) -> list[Video]:
    """The videos of `videos` with no finished mp4 in `directory`."""
    return [v for v in videos if not (Path(directory) / v.file).is_file()]


def check_complete(prompts: list[str], directory: str | Path) -> None:
    """DCMError unless every prompt has its five mp4s in `directory`: VBench's standard mode scores only its own
    prompts, so a set sampled on other prompts (or unfinished) is refused rather than scored as empty lists."""
    absent = missing(suite_videos(prompts, prompts), directory)
    if absent:
        raise DCMError(f"{directory}: {len(absent)} of {len(prompts) * VIDEOS_PER_PROMPT} VBench videos are missing "
                       f"(first: {absent[0].file!r}); VBench scores only its own prompt suite, 5 videos each: run "
                       "the vbench_sample stage for this method and step count")


def check_prompt_file(path: str | Path, dimensions: list[str]) -> None:
    """DCMError unless every entry tagged with one of `dimensions` that VBench scores against per-prompt
    annotations carries them (`auxiliary_info[dimension]`, as in VBench_full_info.json)."""
    needs = set(dimensions) & set(AUXILIARY_DIMENSIONS)
    for entry in read_json(path):
        lacking = sorted(d for d in needs & set(entry["dimension"]) if d not in (entry.get("auxiliary_info") or {}))
        if lacking:
            raise DCMError(f"{path}: prompt {entry['prompt_en']!r} is tagged {lacking} without auxiliary_info for "
                           "them, so VBench's standard mode cannot score it; use VBench's own VBench_full_info.json "
                           "or drop those dimensions from evaluate.vbench_dimensions")


def write_videos(videos: list[Video], sample: Callable[[list[Video]], np.ndarray], encode: Callable[[Path, Path], None],
                 directory: str | Path, scratch: str | Path, batch_size: int,
                 progress: Callable[[int, int], None] | None = None) -> int:
    """Sample the videos of `videos` not yet in `directory`, `batch_size` at a time: `sample(chunk)` gives uint8
    (B, T, H, W, 3), which go as `.npy` frames to the folder `scratch` (one per process), `encode(frames_dir,
    out_dir)` turns them into mp4s, and each mp4 is moved into `directory` whole. Returns how many were made."""
    directory, scratch = Path(directory), Path(scratch)
    todo = missing(videos, directory)
    directory.mkdir(parents=True, exist_ok=True)
    for first in range(0, len(todo), batch_size):
        chunk = todo[first:first + batch_size]
        frames = sample(chunk)
        if len(frames) != len(chunk):
            raise DCMError(f"sampler returned {len(frames)} videos for a chunk of {len(chunk)}")
        shutil.rmtree(scratch, ignore_errors=True)
        (scratch / "frames").mkdir(parents=True)
        for video, pixels in zip(chunk, frames):
            np.save(scratch / "frames" / f"{Path(video.file).stem}.npy", np.ascontiguousarray(pixels, np.uint8),
                    allow_pickle=False)
        encode(scratch / "frames", scratch / "mp4")
        for video in chunk:
            (scratch / "mp4" / video.file).replace(directory / video.file)
        if progress is not None:
            progress(first + len(chunk), len(todo))
    shutil.rmtree(scratch, ignore_errors=True)
    return len(todo)


SUITE = "suite.json"  # what the videos in a resumed work directory were sampled for (the suite below)
SUITE_HASHED_SECTIONS = ("seed", "backbone", "schedule")


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
            "config_hash": config_hash(cfg, *SUITE_HASHED_SECTIONS)}
