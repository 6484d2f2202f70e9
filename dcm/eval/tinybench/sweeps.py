"""Tinybench against graded corruptions of real procedural clips (the dataset stage's make_clips): Gaussian blur,
additive noise, faint specks (size and count), dropped frames and motion rotated off the prompted direction. A
benchmark that ranks videos should score each corruption lower the stronger it is; sweep() measures that."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from scipy import ndimage

from dcm.data.procedural import (BACKGROUND, COLOURS, DIRECTIONS, SUPERSAMPLE, Factors, all_factors, make_clips,
                                  render_clip)
from dcm.eval import tinybench
from dcm.eval.tinybench.objects import NOISE_FLOOR, background_distance
from dcm.video import to_uint8_video

PROMPTS = tuple(all_factors()[::7])  # 7 prompts: every colour, shape and direction
SEEDS = (0, 1)  # make_clips seeds: two start points per prompt
BLUR_SIGMAS = (0.0, 0.5, 0.75, 1.0, 1.5, 2.0)  # px; sigma < 0.4 changes no uint8 pixel by more than rounding
NOISE_STDS = (0.0, 4.0, 8.0, 16.0, 32.0)  # of 255
SPECK_SIDES = (0, 1, 2, 3, 4)  # px, one speck
SPECK_COUNTS = (0, 1, 2, 3, 4)  # specks of SPECK_SIDE px
SPECK_SIDE = 2
SPECK_CONTRAST = 0.5  # a speck's distance from the background, as a share of the prompted object's
MOTION_ANGLES = (0.0, 45.0, 90.0, 135.0, 180.0)  # degrees between the drawn and the prompted direction
NOISE_SEED = 0
UNITS = {"blur": "Gaussian sigma (px)", "noise": "noise std (of 255)", "speck_size": "speck side (px)",
         "speck_count": f"{SPECK_SIDE}x{SPECK_SIDE} specks", "frame_drops": "frames dropped",
         "motion_angle": "degrees off the prompted direction"}


def clean_clips(frames: int, height: int, width: int, size: float, speed: float) -> tuple[np.ndarray, list, list]:
    """(uint8 videos (B, T, H, W, 3), their factors, their start points): PROMPTS drawn once with each of SEEDS."""
    drawn = [make_clips(list(PROMPTS), 1, seed, frames, height, width, size, speed) for seed in SEEDS]
    videos = to_uint8_video(torch.from_numpy(np.concatenate([clips for clips, _ in drawn]))).numpy()
    records = [r for _, rs in drawn for r in rs]
    return videos, [Factors(r["colour"], r["shape"], r["direction"]) for r in records], [r["start"] for r in records]


def _to_uint8(pixels: np.ndarray) -> np.ndarray:
    """Float pixels on the 0-255 scale, rounded and clipped to uint8."""
    return np.clip(np.round(pixels), 0, 255).astype(np.uint8)


def blur(videos: np.ndarray, sigma: float) -> np.ndarray:
    """uint8 (B, T, H, W, 3) videos with every frame Gaussian-blurred spatially by `sigma` px."""
    return _to_uint8(ndimage.gaussian_filter(videos.astype(np.float64), sigma=(0, 0, sigma, sigma, 0), mode="nearest"))


def add_noise(videos: np.ndarray, std: float, seed: int = NOISE_SEED) -> np.ndarray:
    """uint8 videos plus i.i.d. Gaussian noise of `std` (of 255), one draw per seed scaled to each std."""
    return _to_uint8(videos + std * np.random.default_rng(seed).standard_normal(videos.shape))


def _speck_corners(path: np.ndarray, side: int, count: int) -> list[tuple[int, int]]:
    """Top-left corners of `count` side x side squares, each in turn the one farthest from `path` (an (H, W) mask
    of the object's pixels over the clip) and the squares already placed."""
    taken, corners = path.copy(), []
    for _ in range(count):
        distance = ndimage.distance_transform_edt(~taken)
        y, x = np.unravel_index(np.argmax(np.lib.stride_tricks.sliding_window_view(distance, (side, side))
                                          .min(axis=(-2, -1))), (path.shape[0] - side + 1, path.shape[1] - side + 1))
        taken[y:y + side, x:x + side] = True
        corners.append((int(y), int(x)))
    return corners


def _speck_colour(factors: Factors) -> np.ndarray:
    """The palette colour after the prompted one, at SPECK_CONTRAST of the prompted colour's background distance."""
    names = list(COLOURS)
    background = np.array(BACKGROUND)
    own = np.array(COLOURS[factors.colour]) - background
    other = np.array(COLOURS[names[(names.index(factors.colour) + 1) % len(names)]]) - background
    return background + SPECK_CONTRAST * np.linalg.norm(own) * other / np.linalg.norm(other)


def add_specks(videos: np.ndarray, factors: list[Factors], side: int, count: int) -> np.ndarray:
    """uint8 videos with `count` static side x side specks (_speck_colour) placed away from the object's path."""
    out = videos.copy()
    if side == 0:
        return out
    for video, f in zip(out, factors):
        path = (background_distance(video / 255.0) >= NOISE_FLOOR).any(axis=0)
        colour = _to_uint8(_speck_colour(f) * 255)
        for y, x in _speck_corners(path, side, count):
            video[:, y:y + side, x:x + side] = colour
    return out


def drop_frames(videos: np.ndarray, drops: int) -> np.ndarray:
    """uint8 videos with odd frames 1, 3, ... (the first `drops` of them) replaced by the frame before each."""
    out = videos.copy()
    for t in range(1, 2 * drops, 2):
        out[:, t] = out[:, t - 1]
    return out


def _rotated_clip(factors: Factors, start, angle: float, frames: int, height: int, width: int, size: float,
                  speed: float) -> np.ndarray:
    """(3, T, H, W) clip of the prompt's object moving about `speed` px per frame at `angle` degrees (clockwise on
    screen) off its prompted direction, along the path of make_clips' `start` turned about its midpoint, the
    midpoint moved just enough to keep the turned path in frame."""
    direction, turn = np.array(DIRECTIONS[factors.direction]), np.deg2rad(angle)
    step = speed * np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]]) @ direction
    step = np.round(step * SUPERSAMPLE) / SUPERSAMPLE  # on the renderer's sub-pixel grid, as the dataset's speeds are
    reach = np.abs(step) * (frames - 1) / 2 + size / 2 + 0.5
    middle = np.clip(np.asarray(start) + direction * speed * (frames - 1) / 2, reach, np.array([width, height]) - reach)
    positions = [middle + step * (t - (frames - 1) / 2) for t in range(frames)]
    return np.concatenate([render_clip(factors, tuple(p), 1, height, width, size, 0.0) for p in positions], axis=1)


def rotated_motion(factors: list[Factors], starts: list, angle: float, frames: int, height: int, width: int,
                   size: float, speed: float) -> np.ndarray:
    """uint8 videos (B, T, H, W, 3) of each prompt's object moving `angle` degrees off its prompted direction."""
    clips = np.stack([_rotated_clip(f, s, angle, frames, height, width, size, speed) for f, s in zip(factors, starts)])
    return to_uint8_video(torch.from_numpy(clips)).numpy()


def score(videos: np.ndarray, factors: list[Factors], size: float, min_displacement: float,
          max_object_fraction: float) -> dict[str, float]:
    """Total, Quality, Semantic (%) and every dimension's mean score of uint8 videos against their prompts."""
    per_video, _ = tinybench.score_videos(torch.from_numpy(videos), factors, size, min_displacement,
                                          max_object_fraction)
    summary = tinybench.summarise(per_video)
    return {**{k: 100 * summary[k] for k in ("total", "quality", "semantic")}, **summary["dimensions"]}


def corrupted(frames: int, height: int, width: int, size: float, speed: float):
    """(corruption, level, uint8 videos, factors) for every level of every corruption of clean_clips."""
    videos, factors, starts = clean_clips(frames, height, width, size, speed)
    for sigma in BLUR_SIGMAS:
        yield "blur", sigma, blur(videos, sigma), factors
    for std in NOISE_STDS:
        yield "noise", std, add_noise(videos, std), factors
    for side in SPECK_SIDES:
        yield "speck_size", side, add_specks(videos, factors, side, 1), factors
    for count in SPECK_COUNTS:
        yield "speck_count", count, add_specks(videos, factors, SPECK_SIDE, count), factors
    for drops in range(frames // 2 + 1):
        yield "frame_drops", drops, drop_frames(videos, drops), factors
    for angle in MOTION_ANGLES:
        yield "motion_angle", angle, rotated_motion(factors, starts, angle, frames, height, width, size, speed), factors


def sweep(frames: int, height: int, width: int, size: float, speed: float, min_displacement: float = 2.0,
          max_object_fraction: float = 0.25) -> pd.DataFrame:
    """One row per corruption and level: its unit, Total, Quality, Semantic (%) and the dimension means (0-1)
    over clean_clips corrupted that much, at one clip shape (frames, height, width) and object size and speed;
    identical video sets (every level 0 but the re-rendered motion_angle's) are scored once."""
    scored, rows = {}, []
    for name, level, videos, factors in corrupted(frames, height, width, size, speed):
        key = videos.tobytes()
        if key not in scored:
            scored[key] = score(videos, factors, size, min_displacement, max_object_fraction)
        rows.append({"corruption": name, "unit": UNITS[name], "level": float(level), **scored[key]})
    return pd.DataFrame(rows)
