"""Tinybench dimensions: one score in [0, 1] per video, each the procedural-data analogue of a VBench dimension,
computed from the known background, palette and shapes instead of networks."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from dcm.data.procedural import SHAPES, Factors
from dcm.eval.prompt_following import measure, object_masks
from dcm.eval.tinybench.objects import EIGHT_NEIGHBOURS, FrameObject, background_distance
from dcm.eval.tinybench.truth import true_coverage

MAX_COLOUR_DISTANCE = np.sqrt(3.0)  # diagonal of the RGB cube
BACKGROUND_TOLERANCE = 0.25  # the object-mask threshold of prompt_following.object_masks
SMOOTHNESS_SCALE = 1.0  # px / frame^2: an RMS acceleration of 1 px per frame^2 scores exp(-1)


def temporal_flickering(video: np.ndarray) -> float:
    """VBench's formula: (255 - mean |frame_{t+1} - frame_t|) / 255 over a uint8 (T, H, W, 3) video."""
    return float((255.0 - np.abs(np.diff(video.astype(np.float64), axis=0)).mean()) / 255.0)


def _similarity(a: FrameObject, b: FrameObject) -> float:
    """(1 - |colour_a - colour_b| / sqrt(3)) x min(area) / max(area); 0 if either frame has no tracked object."""
    if not (a.tracked and b.tracked):
        return 0.0
    colour = 1.0 - np.linalg.norm(a.colour - b.colour) / MAX_COLOUR_DISTANCE
    return float(colour * min(a.area, b.area) / max(a.area, b.area))


def subject_consistency(objects: list[FrameObject]) -> float:
    """Mean over frames t >= 1 of (sim(t, 0) + sim(t, t-1)) / 2, VBench's first-and-previous-frame average,
    with sim the object's colour and soft-area agreement (_similarity) in place of DINO features."""
    if len(objects) == 1:
        return float(objects[0].tracked)
    return float(np.mean([(_similarity(o, objects[0]) + _similarity(o, objects[t - 1])) / 2
                          for t, o in enumerate(objects) if t]))


def background_consistency(video: np.ndarray) -> float:
    """Mean over frames of the mean over background pixels (outside every object-mask pixel dilated by one pixel)
    of max(0, 1 - d / 0.25), d the pixel's RGB distance from the known background; a frame whose background is
    under half the frame (one small object was prompted) scores 0. `video` is (T, H, W, 3) in [0, 1]."""
    scores = []
    for frame, mask in zip(video, object_masks(video)):
        background = ~ndimage.binary_dilation(mask, structure=EIGHT_NEIGHBOURS)
        if background.sum() < mask.size / 2:
            scores.append(0.0)
            continue
        closeness = np.clip(1.0 - background_distance(frame)[background] / BACKGROUND_TOLERANCE, 0.0, 1.0)
        scores.append(float(closeness.mean()))
    return float(np.mean(scores))


def motion_smoothness(objects: list[FrameObject]) -> float:
    """(tracked frames / T) x exp(-RMS |c_{t+1} - 2 c_t + c_{t-1}| / 1 px) over triples of consecutive tracked
    frames, c the coverage-weighted centroid: 1 for a constant-velocity (or static) path; 0 without any triple."""
    tracked = np.array([o.tracked for o in objects])
    triples = [t for t in range(1, len(objects) - 1) if tracked[t - 1:t + 2].all()]
    if not triples:
        return 0.0
    c = [o.centroid for o in objects]
    accelerations = np.array([np.linalg.norm(c[t + 1] - 2 * c[t] + c[t - 1]) for t in triples])
    return float(tracked.mean() * np.exp(-np.sqrt((accelerations ** 2).mean()) / SMOOTHNESS_SCALE))


def _sharpness(coverage: np.ndarray) -> float:
    """sum(a^2) / sum(a) over coverages a: 1 for a hard-edged object, lower the more of it is partial edge."""
    return float((coverage ** 2).sum() / coverage.sum())


def imaging_quality(objects: list[FrameObject], shape: str, object_size: float) -> float:
    """Mean over frames of min(1, S / S_gt), S = sum(a^2) / sum(a) of the object's coverages a and S_gt the same
    for the prompted shape rendered anti-aliased at the measured centroid (blur spreads coverage into partial
    edge pixels and lowers S); an untracked frame scores 0."""
    scores = []
    for o in objects:
        if not o.tracked:
            scores.append(0.0)
            continue
        truth = true_coverage(shape, o.centroid, object_size, *o.coverage.shape)
        scores.append(min(1.0, _sharpness(o.coverage) / _sharpness(truth)) if truth.sum() else 0.0)
    return float(np.mean(scores))


def object_class(objects: list[FrameObject], shape: str, object_size: float) -> float:
    """1 if the prompted shape is the one whose anti-aliased render at each tracked frame's centroid has the
    least summed L1 distance to the measured coverages (template matching with the dataset's renderer), else 0."""
    tracked = [o for o in objects if o.tracked]
    if not tracked:
        return 0.0
    error = {s: sum(np.abs(o.coverage - true_coverage(s, o.centroid, object_size, *o.coverage.shape)).sum()
                    for o in tracked) for s in SHAPES}
    return float(min(error, key=error.get) == shape)


def multiple_objects(objects: list[FrameObject]) -> float:
    """Share of frames showing exactly one object (one 8-connected component, tracked), as every prompt asks."""
    return float(np.mean([o.tracked and o.components == 1 for o in objects]))


def prompted(video: np.ndarray, factors: Factors, min_displacement: float) -> dict[str, float]:
    """color, motion_direction (right and moved >= min_displacement px) and dynamic_degree (moved
    >= min_displacement px, first to last frame) of one (T, H, W, 3) video in [0, 1], each 0 or 1, read with
    dcm.eval.prompt_following.measure."""
    m = measure(video)
    moved = m["displacement"] >= min_displacement
    return {"color": float(m["colour"] == factors.colour),
            "motion_direction": float(moved and m["direction"] == factors.direction), "dynamic_degree": float(moved)}
