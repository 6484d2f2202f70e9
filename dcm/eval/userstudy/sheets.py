"""Blinded rater sheets from sample sets: pairs of videos from the same prompt and noise, shown left/right in a
seeded random order under opaque ids, and the key that un-blinds them, written outside the sheets."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dcm.errors import DCMError
from dcm.eval.userstudy.page import SheetPair, render_page
from dcm.eval.userstudy.protocol import CHOICES, QUESTIONS, rater_id
from dcm.io import atomic_path, load_tensors, read_json, sha256, write_json
from dcm.video import grid_frames

VIDEO_DIR = "videos"
DISPLAY_PX = 256  # clips are upscaled (nearest neighbour) in the GIF itself to about this many pixels a side
GIF_FPS = 4


@dataclass(frozen=True)
class SampleSet:
    """One method's sample set: uint8 videos (B, T, H, W, 3), the prompt and noise seed of each video."""

    path: Path
    videos: torch.Tensor
    prompts: list[str]
    seeds: list[int]


def load_sample_set(directory: Path) -> SampleSet:
    """Read samples.safetensors and meta.json (seed-major: video k*P+i is prompt i under sampling seed k)."""
    directory = Path(directory)
    videos = load_tensors(directory / "samples.safetensors").get("videos")
    if videos is None or videos.dtype != torch.uint8 or videos.ndim != 5 or videos.shape[-1] != 3:
        raise DCMError(f"{directory / 'samples.safetensors'}: needs uint8 `videos` of shape (B, T, H, W, 3)")
    meta = read_json(directory / "meta.json")
    prompts, seed_rows = meta.get("prompts"), meta.get("seeds")
    if not prompts or not seed_rows:
        raise DCMError(f"{directory / 'meta.json'}: needs non-empty `prompts` and `seeds`")
    # `seeds` is one row of noise seeds per sampling seed (dcm/stages/sample.py), or one sampling seed per row
    seeds = [s for row in seed_rows for s in (row if isinstance(row, list) else [row] * len(prompts))]
    if len(seeds) != len(videos) or len(videos) % len(prompts):
        raise DCMError(f"{directory}: {len(videos)} videos do not match {len(prompts)} prompts x "
                       f"{len(seed_rows)} sampling seeds in meta.json")
    return SampleSet(directory, videos, [prompts[k % len(prompts)] for k in range(len(videos))], seeds)


def _check_paired(sets: dict[str, SampleSet], comparisons: list[tuple[str, str]]) -> None:
    """Both sides of every comparison must hold the same prompts from the same noise, in the same shape."""
    if len(comparisons) != len(set(comparisons)) or any(a == b for a, b in comparisons):
        raise DCMError(f"comparisons {comparisons}: each must name two different methods, once")
    for ours, theirs in comparisons:
        for method in (ours, theirs):
            if method not in sets:
                raise DCMError(f"comparison {ours} vs {theirs}: no sample set given for method {method!r}")
        a, b = sets[ours], sets[theirs]
        if a.prompts != b.prompts or a.seeds != b.seeds or a.videos.shape != b.videos.shape:
            raise DCMError(f"{a.path} and {b.path} are not paired (prompts, noise seeds or video shape differ): "
                           "sample both with the same config")


def assign_pairs(items: int, raters: int, pairs_per_rater: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Item indices per rater: consecutive windows of one seeded permutation, taken cyclically, so every item is
    shown floor or ceil(raters * pairs_per_rater / items) times; each rater's order is shuffled again."""
    order = rng.permutation(items)
    return [rng.permutation(order[(r * pairs_per_rater + np.arange(pairs_per_rater)) % items]) for r in range(raters)]


def ours_on_left(count: int, rng: np.random.Generator) -> np.ndarray:
    """Seeded left/right sides for one rater's pairs: half each (the odd one out random), in random order."""
    return rng.permutation(np.arange(count) % 2 == rng.integers(2))


def _tokens(count: int, rng: np.random.Generator) -> list[str]:
    """`count` distinct opaque hex tokens."""
    tokens: list[str] = []
    while len(tokens) < count:
        token = rng.bytes(6).hex()
        if token not in tokens:
            tokens.append(token)
    return tokens


def write_gif(video: torch.Tensor, path: Path) -> tuple[int, int]:
    """One uint8 clip (T, H, W, 3) as a looping GIF upscaled to about DISPLAY_PX; returns (width, height)."""
    scale = max(1, round(DISPLAY_PX / max(video.shape[1:3])))
    frames = grid_frames(video[None], columns=1, scale=scale, pad=0)
    with atomic_path(path) as tmp:
        frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:], duration=1000 // GIF_FPS, loop=0)
    return frames[0].size


def make_sheets(sample_sets: dict[str, Path], comparisons: list[tuple[str, str]], raters: int,
                pairs_per_rater: int | None, seed: int, out_dir: Path, key_path: Path) -> dict:
    """Write `<out_dir>/rater-XX/index.html` per rater and the shared `<out_dir>/videos/*.gif` (opaque names),
    and the un-blinding key to `key_path` (outside `out_dir`); returns the key. A comparison (ours, theirs) pairs
    video k of both sets: same prompt, same noise. `pairs_per_rater=None` shows every pair to every rater."""
    out_dir, key_path = Path(out_dir).resolve(), Path(key_path).resolve()
    if out_dir in key_path.parents:
        raise DCMError(f"the key {key_path} must not lie inside the sheets directory {out_dir}")
    if raters < 1:
        raise DCMError(f"raters={raters}: at least one rater is needed")
    comparisons = [tuple(c) for c in comparisons]
    sets = {m: load_sample_set(p) for m, p in sample_sets.items()}
    _check_paired(sets, comparisons)
    videos_per_set = len(sets[comparisons[0][0]].videos)
    items = [(c, k) for c in range(len(comparisons)) for k in range(videos_per_set)]
    shown = pairs_per_rater or len(items)
    if not 1 <= shown <= len(items):
        raise DCMError(f"pairs_per_rater={pairs_per_rater} must lie in 1..{len(items)} "
                       f"({len(comparisons)} comparisons x {videos_per_set} videos)")
    rng = np.random.default_rng(seed)
    study = rng.bytes(8).hex()
    methods = sorted({m for c in comparisons for m in c})
    video_names = dict(zip([(m, k) for m in methods for k in range(videos_per_set)],
                           (f"{t}.gif" for t in _tokens(len(methods) * videos_per_set, rng))))
    key = {"study": study, "seed": seed, "questions": list(QUESTIONS), "choices": list(CHOICES),
           "comparisons": [list(c) for c in comparisons],
           "sample_sets": {m: {"path": str(sets[m].path), "sha256": sha256(sets[m].path / "samples.safetensors")}
                           for m in methods},
           "raters": {}}
    sizes = {}
    for r, chosen in enumerate(assign_pairs(len(items), raters, shown, rng)):
        rater, sheet_pairs, key_pairs = rater_id(r, raters), [], {}
        for j, (item, left_is_ours) in enumerate(zip(chosen, ours_on_left(shown, rng))):
            c, k = items[item]
            left, right = comparisons[c] if left_is_ours else comparisons[c][::-1]
            for method in (left, right):
                if (method, k) not in sizes:
                    sizes[method, k] = write_gif(sets[method].videos[k], out_dir / VIDEO_DIR / video_names[method, k])
            pair_id = f"pair-{j:03d}"
            sheet_pairs.append(SheetPair(pair_id, sets[left].prompts[k], f"../{VIDEO_DIR}/{video_names[left, k]}",
                                         f"../{VIDEO_DIR}/{video_names[right, k]}", sizes[left, k]))
            key_pairs[pair_id] = {"comparison": c, "left": left, "right": right, "video": k,
                                  "prompt": sets[left].prompts[k], "noise_seed": sets[left].seeds[k],
                                  "left_file": f"{VIDEO_DIR}/{video_names[left, k]}",
                                  "right_file": f"{VIDEO_DIR}/{video_names[right, k]}"}
        with atomic_path(out_dir / rater / "index.html") as tmp:
            tmp.write_text(render_page(study, rater, sheet_pairs), encoding="utf-8")
        key["raters"][rater] = key_pairs
    write_json(key_path, key)
    return key
