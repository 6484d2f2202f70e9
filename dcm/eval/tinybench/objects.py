"""The one object of a procedural frame: its 8-connected components, soft coverage, centroid and colour, read off
the pixels with the known background (dcm.data.procedural.BACKGROUND)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from dcm.data.procedural import BACKGROUND
from dcm.eval.prompt_following import object_masks

EIGHT_NEIGHBOURS = np.ones((3, 3), dtype=bool)
NOISE_FLOOR = 0.05  # RGB distance to the background below which a pixel counts as background (uint8 rounding < 0.004)
CORE = 0.9  # pixels within this share of the frame's largest background distance are the object's core


@dataclass(frozen=True)
class FrameObject:
    """What one frame shows: how many object components, and the largest one's soft coverage, colour, centroid."""

    components: int
    tracked: bool  # a largest component exists and covers at most max_object_fraction of the frame
    coverage: np.ndarray  # (H, W) estimated share of each pixel the object covers, in [0, 1]; zeros if untracked
    colour: np.ndarray | None  # RGB in [0, 1] of the object's core pixels
    centroid: np.ndarray | None  # (x, y) in pixels, coverage-weighted, pixel centres at +0.5

    @property
    def area(self) -> float:
        """Soft area in pixels: the sum of the coverage (the shape's exact area for an anti-aliased render)."""
        return float(self.coverage.sum())


def background_distance(frame: np.ndarray) -> np.ndarray:
    """(H, W) Euclidean RGB distance of each pixel of a [0, 1] frame from the known background."""
    return np.linalg.norm(frame - np.array(BACKGROUND), axis=-1)


def find_object(frame: np.ndarray, max_object_fraction: float) -> FrameObject:
    """The object of one (H, W, 3) frame in [0, 1]. Coverage of a pixel is d / |colour - background| (d its
    background distance), which inverts the renderer's blend p = background + coverage (colour - background);
    it is read inside the largest component dilated by one pixel, so faint anti-aliased edges count."""
    mask = object_masks(frame[None])[0]
    labels, count = ndimage.label(mask, structure=EIGHT_NEIGHBOURS)
    empty = FrameObject(count, False, np.zeros(mask.shape), None, None)
    if count == 0:
        return empty
    sizes = np.bincount(labels.ravel())[1:]
    largest = labels == 1 + int(np.argmax(sizes))
    if largest.sum() > max_object_fraction * mask.size:
        return empty
    region = ndimage.binary_dilation(largest, structure=EIGHT_NEIGHBOURS)
    distance = background_distance(frame) * region
    core = distance >= CORE * distance.max()
    colour = frame[core].mean(axis=0)
    coverage = np.clip(distance / np.linalg.norm(colour - np.array(BACKGROUND)), 0.0, 1.0)
    coverage[distance < NOISE_FLOOR] = 0.0
    ys, xs = np.indices(mask.shape) + 0.5
    centroid = np.array([(coverage * xs).sum(), (coverage * ys).sum()]) / coverage.sum()
    return FrameObject(count, True, coverage, colour, centroid)


def find_objects(video: np.ndarray, max_object_fraction: float) -> list[FrameObject]:
    """find_object for every frame of a (T, H, W, 3) video in [0, 1]."""
    return [find_object(frame, max_object_fraction) for frame in video]
