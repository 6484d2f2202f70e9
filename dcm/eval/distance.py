"""How far a few-step sample is from the teacher's 50-step sample from the same noise."""

from __future__ import annotations

import numpy as np
import torch

from dcm.eval.prompt_following import centroids, object_masks


def pixel_rmse(videos: torch.Tensor, reference: torch.Tensor) -> float:
    """Root-mean-square per-pixel error of uint8 videos, in [0, 1] units."""
    return float(((videos.float() - reference.float()) / 255.0).pow(2).mean().sqrt())


def per_video_rmse(videos: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """(B,) RMSE of each uint8 video against its reference, in [0, 1] units."""
    return ((videos.float() - reference.float()) / 255.0).pow(2).flatten(1).mean(1).sqrt()


def feature_distance(features: list[torch.Tensor], reference: list[torch.Tensor]) -> float:
    """Mean over feature levels of ||f - f_ref||^2 / ||f_ref||^2: a perceptual-style distance in the frozen
    teacher's feature space (the same features the discriminator of Eq. 10 reads)."""
    ratios = [(f - r).pow(2).sum() / r.pow(2).sum() for f, r in zip(features, reference)]
    return float(torch.stack(ratios).mean())


def centroid_distance(videos: torch.Tensor, reference: torch.Tensor) -> float:
    """Mean distance in pixels between the object centroids of matching frames (motion-level error);
    a frame where one video shows an object and the other none counts as the frame diagonal, a frame
    where neither does as 0."""
    diagonal = float(np.hypot(*videos.shape[2:4]))
    dists = []
    for v, r in zip(videos.numpy() / 255.0, reference.numpy() / 255.0):
        a, b = centroids(object_masks(v)), centroids(object_masks(r))
        d = np.linalg.norm(a - b, axis=1)
        missing_a, missing_b = np.isnan(a[:, 0]), np.isnan(b[:, 0])
        dists.append(np.where(missing_a & missing_b, 0.0, np.where(missing_a | missing_b, diagonal, d)))
    return float(np.mean(dists))
