"""Procedural clips: one coloured shape moving on a dark background, captioned from its factors."""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass

import numpy as np

COLOURS = {"red": (0.9, 0.15, 0.15), "green": (0.15, 0.8, 0.25), "blue": (0.2, 0.35, 0.95),
           "yellow": (0.95, 0.85, 0.15)}
SHAPES = ("circle", "square", "triangle")
DIRECTIONS = {"left": (-1.0, 0.0), "right": (1.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0)}
BACKGROUND = (0.1, 0.1, 0.12)
SUPERSAMPLE = 4


@dataclass(frozen=True)
class Factors:
    """What a clip shows; its caption is derived from it."""

    colour: str
    shape: str
    direction: str

    @property
    def caption(self) -> str:
        return f"a {self.colour} {self.shape} moving {self.direction}"

    @classmethod
    def from_caption(cls, caption: str) -> "Factors | None":
        """The factors a caption names, or None if it is not of the form 'a <colour> <shape> moving <dir>'."""
        words = caption.lower().split()
        if (len(words) == 5 and words[0] == "a" and words[3] == "moving" and words[1] in COLOURS
                and words[2] in SHAPES and words[4] in DIRECTIONS):
            return cls(words[1], words[2], words[4])
        return None


def all_factors() -> list[Factors]:
    """Every colour x shape x direction combination, in a fixed order."""
    return [Factors(c, s, d) for c, s, d in itertools.product(COLOURS, SHAPES, DIRECTIONS)]


def vocabulary() -> list[str]:
    """Every word a caption can use."""
    return ["a", "moving", *COLOURS, *SHAPES, *DIRECTIONS]


def split_factors(holdout: int, seed: int) -> tuple[list[Factors], list[Factors]]:
    """(train, eval) prompts: `holdout` combinations drawn with `seed` are kept out of training."""
    factors = all_factors()
    order = np.random.default_rng(seed).permutation(len(factors))
    held = {int(i) for i in order[:holdout]}
    return ([f for i, f in enumerate(factors) if i not in held], [f for i, f in enumerate(factors) if i in held])


def _shape_mask(shape: str, dx: np.ndarray, dy: np.ndarray, radius: float) -> np.ndarray:
    if shape == "circle":
        return dx**2 + dy**2 <= radius**2
    if shape == "square":
        return (np.abs(dx) <= radius) & (np.abs(dy) <= radius)
    if shape == "triangle":  # apex up, base at +radius
        return (dy <= radius) & (dy >= -radius) & (np.abs(dx) <= (dy + radius) / 2)
    raise ValueError(f"unknown shape {shape!r}")


def render_clip(factors: Factors, start: tuple[float, float], frames: int, height: int, width: int,
                size: float, speed: float) -> np.ndarray:
    """Anti-aliased clip (3, T, H, W) in [-1, 1]: the shape's centre moves `speed` px per frame."""
    sub = (np.arange(height * SUPERSAMPLE) + 0.5) / SUPERSAMPLE
    ys, xs = np.meshgrid(sub, (np.arange(width * SUPERSAMPLE) + 0.5) / SUPERSAMPLE, indexing="ij")
    step = np.array(DIRECTIONS[factors.direction]) * speed
    colour = np.array(COLOURS[factors.colour])[:, None, None]
    background = np.array(BACKGROUND)[:, None, None]
    clip = np.empty((3, frames, height, width), dtype=np.float32)
    for t in range(frames):
        cx, cy = start[0] + step[0] * t, start[1] + step[1] * t
        mask = _shape_mask(factors.shape, xs - cx, ys - cy, size / 2).astype(np.float32)
        coverage = mask.reshape(height, SUPERSAMPLE, width, SUPERSAMPLE).mean(axis=(1, 3))
        clip[:, t] = background * (1 - coverage) + colour * coverage
    return clip * 2 - 1


def path_length(frames: int, size: float, speed: float) -> float:
    """Pixels a clip's object covers along its direction of motion: its size, a half-pixel margin each side,
    and its travel; every direction fits in a frame at least this long on both sides."""
    return size + 1.0 + speed * (frames - 1)


def random_start(rng: np.random.Generator, direction: str, frames: int, height: int, width: int,
                 size: float, speed: float) -> tuple[float, float]:
    """A start centre such that the whole path stays inside the frame, drawn uniformly."""
    travel = speed * (frames - 1)
    margin = size / 2 + 0.5
    dx, dy = DIRECTIONS[direction]
    x_lo, x_hi = margin + max(0.0, -dx * travel), width - margin - max(0.0, dx * travel)
    y_lo, y_hi = margin + max(0.0, -dy * travel), height - margin - max(0.0, dy * travel)
    if x_lo > x_hi or y_lo > y_hi:
        raise ValueError(f"a {size}px shape moving {speed}px/frame for {frames} frames does not fit "
                         f"in {height}x{width}: it needs {path_length(frames, size, speed):g} px")
    return float(rng.uniform(x_lo, x_hi)), float(rng.uniform(y_lo, y_hi))


def make_clips(factors: list[Factors], clips_per_prompt: int, seed: int, frames: int, height: int, width: int,
               size: float, speed: float) -> tuple[np.ndarray, list[dict]]:
    """`clips_per_prompt` clips of each prompt, (K, 3, T, H, W), and each clip's factors and start point."""
    rng = np.random.default_rng(seed)
    clips, records = [], []
    for f in factors:
        for _ in range(clips_per_prompt):
            start = random_start(rng, f.direction, frames, height, width, size, speed)
            clips.append(render_clip(f, start, frames, height, width, size, speed))
            records.append({**asdict(f), "caption": f.caption, "start": list(start)})
    return np.stack(clips), records
