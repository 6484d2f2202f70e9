"""Ground truth for one frame: the prompted shape rendered anti-aliased by the dataset's own renderer, placed so
that its coverage-weighted centroid sits on a measured one."""

from __future__ import annotations

import numpy as np

from dcm.data.procedural import BACKGROUND, COLOURS, SHAPES, Factors, render_clip
from dcm.eval.tinybench.objects import FrameObject

_ANY_COLOUR, _ANY_DIRECTION = next(iter(COLOURS)), "right"  # coverage does not depend on either


def _coverage(shape: str, centre: np.ndarray, size: float, height: int, width: int) -> np.ndarray:
    """(H, W) exact coverage of `shape` with its box centre at `centre`, inverted from the renderer's blend."""
    factors = Factors(_ANY_COLOUR, shape, _ANY_DIRECTION)
    frame = (render_clip(factors, tuple(centre), 1, height, width, size, 0.0)[:, 0].transpose(1, 2, 0) + 1) / 2
    colour, background = np.array(COLOURS[_ANY_COLOUR]), np.array(BACKGROUND)
    return (frame - background) @ (colour - background) / np.sum((colour - background) ** 2)


def _centroid(coverage: np.ndarray) -> np.ndarray:
    ys, xs = np.indices(coverage.shape) + 0.5
    return np.array([(coverage * xs).sum(), (coverage * ys).sum()]) / coverage.sum()


def true_coverage(shape: str, centroid: np.ndarray, size: float, height: int, width: int) -> np.ndarray:
    """Coverage of `shape` (side or diameter `size` px) whose centroid is `centroid` (x, y): rendered once at the
    centroid, then shifted by the offset between its box centre and its centroid (r / 3 for the triangle)."""
    first = _coverage(shape, centroid, size, height, width)
    if first.sum() == 0:
        return first
    return _coverage(shape, 2 * np.asarray(centroid) - _centroid(first), size, height, width)


def templates(objects: list[FrameObject], size: float) -> dict[str, list[np.ndarray]]:
    """{shape: its true_coverage at each frame's tracked centroid} for every shape; zeros where a frame is untracked."""
    return {s: [true_coverage(s, o.centroid, size, *o.coverage.shape) if o.tracked else np.zeros(o.coverage.shape)
                for o in objects] for s in SHAPES}
