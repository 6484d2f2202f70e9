"""Frechet distance between Gaussian fits of per-video descriptors: generated clips against real clips of the
same prompts (the FVD recipe with a known, hand-chosen descriptor instead of a network's features)."""

from __future__ import annotations

import numpy as np

from dcm.data.procedural import BACKGROUND
from dcm.eval.tinybench.objects import FrameObject

DESCRIPTOR = ("red", "green", "blue", "area_px", "start_x", "start_y", "displacement_x", "displacement_y")


def descriptor(objects: list[FrameObject]) -> np.ndarray:
    """Per-video vector: mean object colour (RGB in [0, 1]), mean soft area (px), first tracked centroid (px) and
    displacement (px, first to last tracked frame). A video with no tracked object gets the background colour,
    area 0, the frame centre and displacement 0."""
    tracked = [o for o in objects if o.tracked]
    if not tracked:
        height, width = objects[0].coverage.shape
        return np.array([*BACKGROUND, 0.0, width / 2, height / 2, 0.0, 0.0])
    first, last = tracked[0], tracked[-1]
    return np.array([*np.mean([o.colour for o in tracked], axis=0), np.mean([o.area for o in tracked]),
                     *first.centroid, *(last.centroid - first.centroid)])


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix (negative round-off eigenvalues -> 0)."""
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def gaussian_frechet(mean_a: np.ndarray, cov_a: np.ndarray, mean_b: np.ndarray, cov_b: np.ndarray) -> float:
    """|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)) (Dowson & Landau 1982; FID, Heusel et al. 2017), with
    tr (S_a S_b)^(1/2) = tr (S_a^(1/2) S_b S_a^(1/2))^(1/2), which is symmetric and so numerically safe."""
    root_a = _psd_sqrt(cov_a)
    cross = np.trace(_psd_sqrt(root_a @ cov_b @ root_a))
    return float(np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2.0 * cross)


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted (mean, unbiased covariance) to two (N, D) feature samples."""
    a, b = np.atleast_2d(np.asarray(features_a, float)), np.atleast_2d(np.asarray(features_b, float))
    if len(a) < 2 or len(b) < 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"need two (N>=2, D) samples of one width, got {a.shape} and {b.shape}")
    return gaussian_frechet(a.mean(0), np.cov(a, rowvar=False).reshape(a.shape[1], -1),
                            b.mean(0), np.cov(b, rowvar=False).reshape(b.shape[1], -1))
