"""Distances between sample sets, on hand-made videos."""

import numpy as np
import pytest
import torch

from dcm.eval.distance import centroid_distance, feature_distance, pixel_rmse


def _video(positions, frames=4, size=8):
    v = np.full((1, frames, size, size, 3), 26, dtype=np.uint8)  # the dark background
    for t, (x, y) in enumerate(positions):
        if x is not None:
            v[0, t, y, x] = (230, 40, 40)
    return torch.from_numpy(v)


def test_identical_videos_are_at_distance_zero_even_with_empty_frames():
    v = _video([(1, 1), (None, None), (3, 3), (4, 4)])
    assert pixel_rmse(v, v) == 0 and centroid_distance(v, v) == 0


def test_centroid_distance_hand_value():
    a = _video([(1, 1)] * 4)
    b = _video([(4, 5)] * 4)  # 3 right, 4 down: 5 px in every frame
    assert centroid_distance(a, b) == pytest.approx(5.0)
    missing = _video([(1, 1), (1, 1), (1, 1), (None, None)])
    assert centroid_distance(a, missing) == pytest.approx(np.hypot(8, 8) / 4)


def test_feature_distance_is_relative():
    ref = [torch.ones(2, 3)]
    assert feature_distance([torch.full((2, 3), 1.5)], ref) == pytest.approx(0.25)
