"""Tinybench against graded corruptions of real procedural clips at the tiny default's size (config/config.yaml):
the stronger each corruption, the lower the Total and the dimension it targets; faint specks cost little; blur
does not buy back the score that noise cost."""

import numpy as np
import pytest
from PIL import Image

from dcm.errors import DCMError
from dcm.eval.tinybench import sweeps
from dcm.report.figures import DPI, LINE_FIGSIZE, plot_tinybench_sweeps
from dcm.stages.figures import tinybench_sweeps

FRAMES, SIZE, OBJECT, SPEED = 8, 16, 5.0, 1.25  # config/config.yaml
TARGETS = {"blur": "imaging_quality", "noise": "background_consistency", "speck_size": "multiple_objects",
           "speck_count": "multiple_objects", "frame_drops": "motion_smoothness", "motion_angle": "motion_direction"}


@pytest.fixture(scope="module")
def table():
    return sweeps.sweep(FRAMES, SIZE, SIZE, OBJECT, SPEED)


@pytest.fixture(scope="module")
def clean():
    return sweeps.clean_clips(FRAMES, SIZE, SIZE, OBJECT, SPEED)


def per_clip_totals(videos, factors):
    return np.array([sweeps.score(v[None], [f], OBJECT, 2.0, 0.25)["total"] for v, f in zip(videos, factors)])


def test_the_sweep_covers_every_corruption_from_clean(table):
    assert list(dict.fromkeys(table["corruption"])) == list(TARGETS)
    assert table.groupby("corruption")["level"].first().eq(0).all()
    assert len(table[table["corruption"] == "frame_drops"]) == FRAMES // 2 + 1
    assert (table.groupby("corruption")["total"].first() > 99).all()  # every sweep starts from clean clips


@pytest.mark.parametrize("corruption", list(TARGETS))
def test_scores_fall_as_the_corruption_grows(table, corruption):
    rows = table[table["corruption"] == corruption].sort_values("level")
    for column in ("total", TARGETS[corruption]):
        values = rows[column].to_numpy()
        assert (np.diff(values) <= 0).all(), (column, values)
        assert values[-1] < values[0] - (1.0 if column == "total" else 0.1), (column, values)


def test_a_faint_speck_costs_little_and_is_not_a_second_object(clean):
    videos, factors, _ = clean
    specked = sweeps.add_specks(videos, factors, 2, 1)
    assert (specked != videos).any(axis=(1, 2, 3, 4)).all()  # every clip got its speck
    cost = per_clip_totals(videos, factors) - per_clip_totals(specked, factors)
    assert (cost > 0).all() and cost.max() < 1.0, cost
    share = sweeps.score(specked, factors, OBJECT, 2.0, 0.25)["multiple_objects"]
    assert 0.8 < share < 1.0, share  # counted as at most a fifth of an object, not as a whole one


def test_single_pixel_specks_cost_less_than_larger_ones(table):
    costs = 100 - table[table["corruption"] == "speck_size"].set_index("level")["total"]
    costs -= costs[0.0]
    assert costs[1.0] < 0.3 and costs[2.0] < 1.0 < costs[4.0], costs


@pytest.mark.parametrize("sigma", [0.5, 0.75, 1.0, 1.5])
def test_blurring_a_noisy_clip_does_not_raise_its_total(clean, sigma):
    videos, factors, _ = clean
    noisy = sweeps.add_noise(videos, 8.0)
    before = sweeps.score(noisy, factors, OBJECT, 2.0, 0.25)
    after = sweeps.score(sweeps.blur(noisy, sigma), factors, OBJECT, 2.0, 0.25)
    assert after["background_consistency"] > before["background_consistency"]  # blur does denoise the background
    assert after["total"] < before["total"], (sigma, before["total"], after["total"])


def test_a_turned_path_keeps_the_clean_clip_at_zero_degrees(clean):
    videos, factors, starts = clean
    np.testing.assert_array_equal(sweeps.rotated_motion(factors, starts, 0.0, FRAMES, SIZE, SIZE, OBJECT, SPEED),
                                  videos)


def test_sweep_figure_and_csv_at_the_smoke_size(tmp_path):
    cfg = {"backbone": {"frames": 4, "height": 8, "width": 8}, "data": {"object_size": 3.0, "speed": 1.0},
           "evaluate": {"min_displacement": 2.0, "max_object_fraction": 0.25}}  # config/smoke.yaml
    tinybench_sweeps(cfg, tmp_path)
    image = Image.open(tmp_path / "tinybench_sweeps.png")
    assert image.format == "PNG" and image.size == (round(LINE_FIGSIZE[0] * DPI), round(2 * LINE_FIGSIZE[1] * DPI))
    rows = (tmp_path / "tinybench_sweeps.csv").read_text().splitlines()
    assert rows[0].startswith("corruption,unit,level,total,quality,semantic,") and len(rows) == 1 + 6 + 5 * 4 + 3


def test_sweep_figure_refuses_a_table_without_scores(table, tmp_path):
    with pytest.raises(DCMError, match="missing column 'semantic'"):
        plot_tinybench_sweeps(table.drop(columns="semantic"), tmp_path / "x.png")
    with pytest.raises(DCMError, match="no rows"):
        plot_tinybench_sweeps(table.iloc[:0], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
