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
    """What one frame shows: the main object's soft coverage, colour and centroid, and the soft areas of the rest."""

    others: tuple[float, ...]  # soft area (px, coverage relative to the object's colour) of each other component
    tracked: bool  # a main component exists and covers at most max_object_fraction of the frame
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


def _coverage(distance: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """(H, W) d / |colour - background| clipped to [0, 1] (d each pixel's background distance), 0 under NOISE_FLOOR:
    the inverse of the renderer's blend p = background + coverage (colour - background)."""
    coverage = np.clip(distance / np.linalg.norm(colour - np.array(BACKGROUND)), 0.0, 1.0)
    coverage[distance < NOISE_FLOOR] = 0.0
    return coverage


def _other_areas(coverage: np.ndarray, mask: np.ndarray, region: np.ndarray) -> tuple[float, ...]:
    """Soft area of each component of the mask outside the main object's region, each dilated by one pixel."""
    others = ndimage.binary_dilation(mask & ~region, structure=EIGHT_NEIGHBOURS) & ~region
    labels, count = ndimage.label(others, structure=EIGHT_NEIGHBOURS)
    return tuple(float(a) for a in ndimage.sum(coverage, labels, range(1, count + 1)))


def find_object(frame: np.ndarray, max_object_fraction: float) -> FrameObject:
    """The object of one (H, W, 3) frame in [0, 1]: the 8-connected component with the most summed background
    distance (so a large faint speck does not displace a small bright object), its coverage (_coverage) read inside
    it dilated by one pixel, so faint anti-aliased edges count, and the other components' soft areas."""
    mask = object_masks(frame[None])[0]
    labels, count = ndimage.label(mask, structure=EIGHT_NEIGHBOURS)
    empty = FrameObject((), False, np.zeros(mask.shape), None, None)
    if count == 0:
        return empty
    distance = background_distance(frame)
    main = labels == 1 + int(np.argmax(ndimage.sum(distance, labels, range(1, count + 1))))
    if main.sum() > max_object_fraction * mask.size:
        return empty
    region = ndimage.binary_dilation(main, structure=EIGHT_NEIGHBOURS)
    inside = distance * region
    colour = frame[inside >= CORE * inside.max()].mean(axis=0)
    everywhere = _coverage(distance, colour)
    coverage = everywhere * region
    ys, xs = np.indices(mask.shape) + 0.5
    centroid = np.array([(coverage * xs).sum(), (coverage * ys).sum()]) / coverage.sum()
    return FrameObject(_other_areas(everywhere, mask, region), True, coverage, colour, centroid)


def find_objects(video: np.ndarray, max_object_fraction: float) -> list[FrameObject]:
    """find_object for every frame of a (T, H, W, 3) video in [0, 1]."""
    return [find_object(frame, max_object_fraction) for frame in video]
