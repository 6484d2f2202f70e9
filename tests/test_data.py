"""The procedural dataset and the prompt-following measure on clips with known factors."""

import numpy as np
import pytest
import torch

from dcm.data.procedural import Factors, all_factors, make_clips, render_clip, split_factors
from dcm.eval.prompt_following import measure, prompt_following


def to_video(clip: np.ndarray) -> np.ndarray:
    return ((clip + 1) / 2).transpose(1, 2, 3, 0)


def test_split_is_disjoint_and_covers_every_prompt():
    train, held = split_factors(8, seed=0)
    assert len(held) == 8 and len(train) == 40 and not set(train) & set(held)
    assert split_factors(8, seed=0) == (train, held)


def test_clips_are_deterministic_and_in_range():
    a, rec = make_clips(all_factors()[:3], 2, 7, 8, 16, 16, 5.0, 1.25)
    b, _ = make_clips(all_factors()[:3], 2, 7, 8, 16, 16, 5.0, 1.25)
    assert a.shape == (6, 3, 8, 16, 16) and np.array_equal(a, b)
    assert a.min() >= -1 and a.max() <= 1
    assert rec[0]["caption"] == "a red circle moving left"


def test_caption_round_trip():
    for f in all_factors():
        assert Factors.from_caption(f.caption) == f
    assert Factors.from_caption("a purple circle moving left") is None


@pytest.mark.parametrize("direction,axis,sign", [("left", 0, -1), ("right", 0, 1), ("up", 1, -1), ("down", 1, 1)])
def test_measure_reads_direction_and_colour(direction, axis, sign):
    f = Factors("green", "square", direction)
    start = [8.0, 8.0]
    start[axis] -= sign * 4
    result = measure(to_video(render_clip(f, tuple(start), 8, 16, 16, 5.0, 1.0)))
    assert result["direction"] == direction and result["colour"] == "green"
    assert result["displacement"] == pytest.approx(7.0, abs=0.5)


def test_real_clips_follow_their_prompts_and_static_clips_do_not():
    clips, _ = make_clips(all_factors(), 1, 0, 8, 16, 16, 5.0, 1.25)
    videos = torch.from_numpy(((clips + 1) * 127.5).round().astype(np.uint8)).permute(0, 2, 3, 4, 1)
    real = prompt_following(videos, all_factors())
    assert real["colour"] == 1.0 and real["direction"] == 1.0
    frozen = videos[:, :1].expand_as(videos)  # first frame repeated: right place, no motion
    assert prompt_following(frozen, all_factors())["direction"] == 0.0
