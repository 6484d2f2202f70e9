"""Does a tiny-setting video show what its prompt asks? Colour, shape and motion direction measured from
the pixels with the procedural data's known palette and background."""

from __future__ import annotations

import numpy as np
import torch

from dcm.data.procedural import BACKGROUND, COLOURS, DIRECTIONS, Factors

FILL_RATIO = {"circle": np.pi / 4, "square": 1.0, "triangle": 0.5}


def object_masks(video: np.ndarray, threshold: float = 0.25) -> np.ndarray:
    """(T, H, W) boolean masks of pixels farther than `threshold` (RGB in [0, 1]) from the background."""
    return np.linalg.norm(video - np.array(BACKGROUND), axis=-1) > threshold


def centroids(masks: np.ndarray) -> np.ndarray:
    """(T, 2) x, y centroid per frame; NaN where a frame has no object pixel."""
    out = np.full((len(masks), 2), np.nan)
    for t, mask in enumerate(masks):
        ys, xs = np.nonzero(mask)
        if len(xs):
            out[t] = xs.mean() + 0.5, ys.mean() + 0.5
    return out


def measure(video: np.ndarray) -> dict:
    """Colour, shape, displacement (px, first to last frame) and direction read off one (T, H, W, 3) video."""
    masks = object_masks(video)
    result = {"colour": None, "shape": None, "direction": None, "displacement": 0.0}
    if not masks.any():
        return result
    mean_rgb = video[masks].mean(axis=0)
    result["colour"] = min(COLOURS, key=lambda c: np.linalg.norm(mean_rgb - np.array(COLOURS[c])))
    fills = []
    for mask in masks:
        ys, xs = np.nonzero(mask)
        if len(xs):
            fills.append(mask.sum() / ((np.ptp(xs) + 1) * (np.ptp(ys) + 1)))
    result["shape"] = min(FILL_RATIO, key=lambda s: abs(FILL_RATIO[s] - np.mean(fills)))
    c = centroids(masks)
    if not np.isnan(c[0]).any() and not np.isnan(c[-1]).any():
        d = c[-1] - c[0]
        result["displacement"] = float(np.hypot(*d))
        result["direction"] = max(DIRECTIONS, key=lambda k: float(np.dot(DIRECTIONS[k], d)))
    return result


def prompt_following(videos: torch.Tensor, factors: list[Factors], min_displacement: float = 2.0) -> dict:
    """Accuracy of colour, shape and direction over uint8 videos (B, T, H, W, 3) against their prompts.

    A direction counts as right only if the object also moved at least `min_displacement` pixels, so a
    static blob placed where the motion would end does not pass.
    """
    rows = [measure(v.cpu().numpy().astype(np.float64) / 255.0) for v in videos]
    n = len(rows)
    return {
        "colour": sum(r["colour"] == f.colour for r, f in zip(rows, factors)) / n,
        "shape": sum(r["shape"] == f.shape for r, f in zip(rows, factors)) / n,
        "direction": sum(r["direction"] == f.direction and r["displacement"] >= min_displacement
                         for r, f in zip(rows, factors)) / n,
        "mean_displacement": float(np.mean([r["displacement"] for r in rows])),
        "count": n,
    }
