"""Tinybench dimensions: one score in [0, 1] per video, each the procedural-data analogue of a VBench dimension,
computed from the known background, palette and shapes instead of networks."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from dcm.data.procedural import BACKGROUND, COLOURS, DIRECTIONS, SHAPES, Factors
from dcm.eval.prompt_following import FILL_RATIO, measure, object_masks
from dcm.eval.tinybench.objects import EIGHT_NEIGHBOURS, FrameObject, background_distance

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


def _palette_coverage(frame: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """(H, W) coverage of a [0, 1] frame by the palette colour nearest `colour`: the projection of each pixel on
    that colour's direction from the background, so a blurred (dimmed) edge reads as partial coverage."""
    name = min(COLOURS, key=lambda c: np.linalg.norm(colour - np.array(COLOURS[c])))
    direction = np.array(COLOURS[name]) - np.array(BACKGROUND)
    return (frame - np.array(BACKGROUND)) @ direction / (direction @ direction)


def _edge_agreement(measured: np.ndarray, truth: np.ndarray) -> float:
    """sum(grad m . grad g) / sum(|grad g|^2): 1 for the true edges, lower the more they are smoothed; zero-mean
    noise leaves it unbiased, so blur cannot buy it back by denoising."""
    measured_gradient, true_gradient = np.stack(np.gradient(measured)), np.stack(np.gradient(truth))
    return float((measured_gradient * true_gradient).sum() / (true_gradient ** 2).sum())


def imaging_quality(video: np.ndarray, objects: list[FrameObject], truths: list[np.ndarray]) -> float:
    """Mean over frames of the edge agreement, clipped to [0, 1], between the frame's coverage by the object's
    palette colour and truths[t], the prompted shape rendered anti-aliased at the measured centroid (the clean
    rendering); Gaussian blur of sigma s scales each spatial frequency w of the edges by exp(-s^2 w^2 / 2), so the
    score falls with s. `video` is (T, H, W, 3) in [0, 1]; an untracked frame scores 0."""
    return float(np.mean([np.clip(_edge_agreement(_palette_coverage(frame, o.colour), truth), 0.0, 1.0)
                          if o.tracked and truth.any() else 0.0 for frame, o, truth in zip(video, objects, truths)]))


def object_class(objects: list[FrameObject], templates: dict[str, list[np.ndarray]], shape: str) -> float:
    """1 if the prompted shape is the one whose anti-aliased renders at the tracked frames' centroids (templates,
    truth.templates) have the least summed L1 distance to the measured coverages, else 0."""
    if not any(o.tracked for o in objects):
        return 0.0
    error = {s: sum(np.abs(o.coverage - t).sum() for o, t in zip(objects, templates[s]) if o.tracked)
             for s in SHAPES}
    return float(min(error, key=error.get) == shape)


def multiple_objects(objects: list[FrameObject], shape: str, object_size: float) -> float:
    """Mean over frames of max(0, 1 - sum_i min(1, a_i / A)), a_i each other component's soft area and A the
    prompted shape's exact area at object_size: a component as large and bright as the prompted object is a whole
    second object (the frame scores 0), a faint speck only its share of one; an untracked frame scores 0."""
    area = FILL_RATIO[shape] * object_size ** 2
    return float(np.mean([max(0.0, 1.0 - sum(min(1.0, a / area) for a in o.others)) if o.tracked else 0.0
                          for o in objects]))


def _alignment(objects: list[FrameObject], direction: str) -> float:
    """(1 + cos a) / 2, a the angle between `direction` and the tracked centroid's displacement from the first to
    the last tracked frame: 1 along it, 0.5 across it, 0 against it; 0 without a displacement."""
    centroids = [o.centroid for o in objects if o.tracked]
    displacement = centroids[-1] - centroids[0] if centroids else np.zeros(2)
    length = np.linalg.norm(displacement)
    return float((1.0 + np.dot(DIRECTIONS[direction], displacement) / length) / 2) if length else 0.0


def prompted(video: np.ndarray, objects: list[FrameObject], factors: Factors,
             min_displacement: float) -> dict[str, float]:
    """color (0 or 1), dynamic_degree (moved >= min_displacement px, first to last frame: 0 or 1), both read with
    dcm.eval.prompt_following.measure from one (T, H, W, 3) video in [0, 1], and motion_direction: the motion's
    alignment with the prompted direction (_alignment) if it moved, else 0, so a motion further off scores lower."""
    m = measure(video)
    moved = m["displacement"] >= min_displacement
    return {"color": float(m["colour"] == factors.colour),
            "motion_direction": _alignment(objects, factors.direction) if moved else 0.0,
            "dynamic_degree": float(moved)}
