"""Tinybench: VBench's structure (quality and semantic dimensions, normalised, weighted, aggregated the same way) on
the procedural dataset, scored with its known ground truth instead of networks. Each dimension's formula is in
dcm/eval/tinybench/dimensions.py; the aggregation is dcm.eval.vbench.aggregate with tinybench's own ranges."""

from __future__ import annotations

import numpy as np
import torch

from dcm.data.procedural import Factors
from dcm.eval import vbench
from dcm.eval.tinybench import dimensions as dims
from dcm.eval.tinybench.frechet import DESCRIPTOR, descriptor, frechet_distance
from dcm.eval.tinybench.objects import find_objects
from dcm.eval.tinybench.truth import templates

QUALITY_DIMENSIONS = ("subject_consistency", "background_consistency", "temporal_flickering", "motion_smoothness",
                      "imaging_quality", "dynamic_degree")
SEMANTIC_DIMENSIONS = ("object_class", "multiple_objects", "color", "motion_direction")
RANGES = {d: (0.0, 1.0) for d in (*QUALITY_DIMENSIONS, *SEMANTIC_DIMENSIONS)}  # every score is already in [0, 1]
WEIGHTS = {d: vbench.WEIGHTS.get(d, 1.0) for d in RANGES}  # VBench's: 1, dynamic_degree 0.5


def score_video(video: np.ndarray, factors: Factors, object_size: float, min_displacement: float,
                max_object_fraction: float) -> tuple[dict[str, float], np.ndarray]:
    """(every dimension's score, the Frechet descriptor) of one uint8 (T, H, W, 3) video prompted with `factors`."""
    pixels = video.astype(np.float64) / 255.0
    objects = find_objects(pixels, max_object_fraction)
    renders = templates(objects, object_size)
    scores = {"subject_consistency": dims.subject_consistency(objects),
              "background_consistency": dims.background_consistency(pixels),
              "temporal_flickering": dims.temporal_flickering(video),
              "motion_smoothness": dims.motion_smoothness(objects),
              "imaging_quality": dims.imaging_quality(pixels, objects, renders[factors.shape]),
              "object_class": dims.object_class(objects, renders, factors.shape),
              "multiple_objects": dims.multiple_objects(objects, factors.shape, object_size),
              **dims.prompted(pixels, objects, factors, min_displacement)}
    return scores, descriptor(objects)


def score_videos(videos: torch.Tensor, factors: list[Factors], object_size: float, min_displacement: float = 2.0,
                 max_object_fraction: float = 0.25) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """({dimension: (B,) per-video scores}, (B, D) descriptors) of uint8 videos (B, T, H, W, 3) and their prompts."""
    if len(videos) != len(factors):
        raise ValueError(f"{len(videos)} videos but {len(factors)} prompts")
    rows = [score_video(v, f, object_size, min_displacement, max_object_fraction)
            for v, f in zip(videos.cpu().numpy(), factors)]
    return {d: np.array([r[0][d] for r in rows]) for d in RANGES}, np.stack([r[1] for r in rows])


def summarise(per_video: dict[str, np.ndarray]) -> dict:
    """Mean of each dimension over the videos, then Quality, Semantic and Total as VBench aggregates them."""
    means = {d: float(np.mean(v)) for d, v in per_video.items()}
    return {"dimensions": means,
            **vbench.aggregate(means, QUALITY_DIMENSIONS, SEMANTIC_DIMENSIONS, RANGES, WEIGHTS)}


def per_video_totals(per_video: dict[str, np.ndarray]) -> list[float]:
    """Each video's Total on its own: Total is affine in the dimension means, so these average to the set's
    Total, and two sets scored on the same prompts and noise can be compared video by video."""
    videos = len(next(iter(per_video.values())))
    return [summarise({d: v[i:i + 1] for d, v in per_video.items()})["total"] for i in range(videos)]


__all__ = ["QUALITY_DIMENSIONS", "SEMANTIC_DIMENSIONS", "RANGES", "WEIGHTS", "score_video", "score_videos",
           "summarise", "per_video_totals", "frechet_distance", "descriptor", "DESCRIPTOR"]
