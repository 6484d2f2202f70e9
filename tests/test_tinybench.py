"""Tinybench on clips whose answer is known: real procedural clips score near the top, noise and frozen frames
score low where they should, and a clip built to fail one dimension scores lower there than the real clip."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from dcm.data.procedural import BACKGROUND, COLOURS, DIRECTIONS, Factors, make_clips, render_clip
from dcm.eval import tinybench
from dcm.eval.tinybench.dimensions import temporal_flickering

FRAMES, SIZE, OBJECT, SPEED = 8, 16, 5.0, 1.25  # config/config.yaml
PROMPTS = [Factors("red", "circle", "right"), Factors("green", "square", "up"),
           Factors("blue", "triangle", "left"), Factors("yellow", "circle", "down")]
OPPOSITE = {"left": "right", "right": "left", "up": "down", "down": "up"}


def uint8(clips: np.ndarray) -> torch.Tensor:
    """(B, 3, T, H, W) clips in [-1, 1] -> uint8 videos (B, T, H, W, 3), as the tiny backbone decodes."""
    return torch.from_numpy(((np.clip(clips, -1, 1) + 1) * 127.5).round().astype(np.uint8)).permute(0, 2, 3, 4, 1)


def clips_of(factors, seed=0):
    clips, records = make_clips(factors, 1, seed, FRAMES, SIZE, SIZE, OBJECT, SPEED)
    return clips, [tuple(r["start"]) for r in records]


def scores(videos, factors=PROMPTS):
    per_video, _ = tinybench.score_videos(videos, factors, OBJECT)
    return tinybench.summarise(per_video)


@pytest.fixture(scope="module")
def real():
    clips, starts = clips_of(PROMPTS)
    return clips, starts, scores(uint8(clips))


def test_real_clips_score_near_the_top_everywhere(real):
    result = real[2]
    assert min(result["dimensions"].values()) >= 0.97, result["dimensions"]
    # motion_direction is graded by the angle of the measured motion, which sub-pixel centroids tilt by ~1e-4 rad
    assert result["quality"] >= 0.98 and result["semantic"] == pytest.approx(1.0, abs=1e-6) and result["missing"] == []


def test_noise_scores_low(real):
    noise = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (4, FRAMES, SIZE, SIZE, 3), dtype=np.uint8))
    result = scores(noise)["dimensions"]
    assert result["temporal_flickering"] < 0.7  # uniform noise: E|a - b| = 255 / 3
    for d in ("subject_consistency", "background_consistency", "motion_smoothness", "imaging_quality",
              "dynamic_degree", "multiple_objects", "object_class", "motion_direction"):
        assert result[d] == 0.0, d


def test_frozen_frames_score_low_on_motion_only(real):
    clips = real[0]
    frozen = scores(uint8(np.repeat(clips[:, :, :1], FRAMES, axis=2)))["dimensions"]
    assert frozen["dynamic_degree"] == 0.0 and frozen["motion_direction"] == 0.0
    assert frozen["temporal_flickering"] == 1.0 and frozen["subject_consistency"] >= 0.99  # as in VBench


def _recoloured(clip, colour, colours):
    """A (3, T, H, W) clip of a `colour` object repainted with colours[t] in frame t: the renderer's blend
    background + coverage (colour - background), inverted for the coverage and redone."""
    background = np.array(BACKGROUND)[:, None, None, None]
    original = np.array(COLOURS[colour])[:, None, None, None]
    frames = (clip + 1) / 2
    coverage = ((frames - background) * (original - background)).sum(0) / ((original - background) ** 2).sum()
    painted = background + coverage[None] * (np.array(colours).T[:, :, None, None] - background)
    return painted * 2 - 1


def _render_path(factors, positions):
    """A clip whose object centre is at positions[t] in frame t."""
    return np.concatenate([render_clip(factors, tuple(p), 1, SIZE, SIZE, OBJECT, 0.0) for p in positions], axis=1)


def failing_clip(dimension: str, clips: np.ndarray, starts) -> np.ndarray:
    """Clips of PROMPTS built to fail `dimension` only, in [-1, 1]."""
    rng = np.random.default_rng(1)
    if dimension == "temporal_flickering":  # every other frame 0.3 brighter
        out = clips.copy()
        out[:, :, 1::2] += 0.3
        return out
    if dimension == "subject_consistency":  # each object's colour drifting to the next prompt's over the clip
        return np.stack([_recoloured(c, f.colour, np.linspace(COLOURS[f.colour], COLOURS[g.colour], FRAMES))
                         for c, f, g in zip(clips, PROMPTS, PROMPTS[1:] + PROMPTS[:1])])
    if dimension == "background_consistency":  # background noise up to 0.2 in every channel
        return clips + rng.uniform(0, 0.4, clips.shape)
    if dimension == "motion_smoothness":  # the right path plus +-1 px jitter per frame
        return np.stack([_render_path(f, [np.array(s) + np.array(DIRECTIONS[f.direction]) * SPEED * t
                                           + rng.uniform(-1, 1, 2) for t in range(FRAMES)])
                         for f, s in zip(PROMPTS, starts)])
    if dimension == "imaging_quality":  # Gaussian blur, sigma 1 px
        return ndimage.gaussian_filter(clips, sigma=(0, 0, 0, 1, 1), mode="nearest")
    if dimension == "dynamic_degree":  # the first frame held
        return np.repeat(clips[:, :, :1], FRAMES, axis=2)
    if dimension == "multiple_objects":  # a second object in the opposite corner
        second = [_render_path(f, [(SIZE - s[0], SIZE - s[1])] * FRAMES) for f, s in zip(PROMPTS, starts)]
        return np.maximum(clips, np.stack(second))
    swap = {"color": lambda f: Factors("blue" if f.colour != "blue" else "red", f.shape, f.direction),
            "object_class": lambda f: Factors(f.colour, "square" if f.shape != "square" else "triangle", f.direction),
            "motion_direction": lambda f: Factors(f.colour, f.shape, OPPOSITE[f.direction])}[dimension]
    return make_clips([swap(f) for f in PROMPTS], 1, 0, FRAMES, SIZE, SIZE, OBJECT, SPEED)[0]


@pytest.mark.parametrize("dimension", list(tinybench.RANGES))
def test_a_clip_made_to_fail_a_dimension_scores_lower_there(real, dimension):
    clips, starts, reference = real
    bad = scores(uint8(failing_clip(dimension, clips, starts)))["dimensions"][dimension]
    assert bad < reference["dimensions"][dimension] - 0.1, (dimension, bad, reference["dimensions"][dimension])


def test_temporal_flickering_is_vbench_formula():
    video = np.zeros((3, 2, 2, 3), np.uint8)
    video[1] = 51  # |0 - 51| then |51 - 0|: mean absolute difference 51
    assert temporal_flickering(video) == pytest.approx((255 - 51) / 255)


def test_aggregation_uses_vbench_weights():
    ones = {d: np.ones(2) for d in tinybench.RANGES}
    still = {**ones, "dynamic_degree": np.zeros(2), "color": np.array([1.0, 0.0])}
    result = tinybench.summarise(still)
    assert result["quality"] == pytest.approx(5 / 5.5)  # five dimensions at 1, dynamic_degree (weight 0.5) at 0
    assert result["semantic"] == pytest.approx(3.5 / 4)
    assert result["total"] == pytest.approx((4 * 5 / 5.5 + 3.5 / 4) / 5)


def test_frechet_distance_closed_form():
    a, b = np.array([[-1.0], [1.0]]), np.array([[1.0], [5.0]])  # means 0, 3; unbiased variances 2, 8
    assert tinybench.frechet_distance(a, b) == pytest.approx(9 + 2 + 8 - 2 * 4)
    # diagonal: variances (2/3, 8/3) against 4x those, means 5 apart: 25 + sum (s_a - s_b)^2 = 25 + 2/3 + 8/3
    x = np.array([[-1.0, 0.0], [1.0, 0.0], [0.0, -2.0], [0.0, 2.0]])
    assert tinybench.frechet_distance(x, 2 * x + [3.0, 4.0]) == pytest.approx(25 + 10 / 3)
    assert tinybench.frechet_distance(x, x) == pytest.approx(0.0, abs=1e-9)


def test_frechet_separates_frozen_from_real_clips(real):
    clips = make_clips(PROMPTS, 8, 5, FRAMES, SIZE, SIZE, OBJECT, SPEED)[0]
    factors = [f for f in PROMPTS for _ in range(8)]
    _, reference = tinybench.score_videos(uint8(clips), factors, OBJECT)
    _, fresh = tinybench.score_videos(uint8(make_clips(PROMPTS, 8, 6, FRAMES, SIZE, SIZE, OBJECT, SPEED)[0]),
                                      factors, OBJECT)
    _, frozen = tinybench.score_videos(uint8(np.repeat(clips[:, :, :1], FRAMES, axis=2)), factors, OBJECT)
    assert tinybench.frechet_distance(frozen, reference) > 2 * tinybench.frechet_distance(fresh, reference)


def test_per_video_totals_average_to_the_sets_total(real):
    clips = real[0]
    frozen = uint8(np.repeat(clips[:, :, :1], FRAMES, axis=2))
    mixed = torch.cat([uint8(clips[:2]), frozen[2:]])  # two real clips, two frozen ones
    per_video, _ = tinybench.score_videos(mixed, PROMPTS, OBJECT)
    totals = tinybench.per_video_totals(per_video)
    assert len(totals) == 4 and totals[0] > totals[2] and totals[1] > totals[3]
    assert np.mean(totals) == pytest.approx(tinybench.summarise(per_video)["total"])
    assert totals[0] == pytest.approx(scores(mixed[:1], PROMPTS[:1])["total"])
