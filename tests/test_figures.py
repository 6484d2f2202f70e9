"""Figures: each writes a PNG of the documented size and refuses malformed input by name."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from dcm import layout
from dcm.config import load_config

from dcm.errors import DCMError
from dcm.report.figures import (
    DPI,
    GRID_LABEL_PX,
    GRID_PAD_PX,
    GRID_TITLE_PX,
    LINE_FIGSIZE,
    plot_kappa_sweep,
    plot_noise_probe,
    plot_sample_grid,
    plot_table1_scores,
    plot_table3_scores,
    plot_training_terms,
    plot_trajectory_distance,
    sample_grid_size,
    smooth,
)
from dcm.stages.figures import term_curves
from tests.helpers import SMOKE

LINE_PX = (round(LINE_FIGSIZE[0] * DPI), round(LINE_FIGSIZE[1] * DPI))


def _png(path) -> Image.Image:
    image = Image.open(path)
    assert image.format == "PNG"
    return image.convert("RGB")


PROBE = {"buckets": [{"index_range": [0, 5], "sigma_range": [0.0, 0.4]},
                     {"index_range": [5, 10], "sigma_range": [0.4, 1.0]}],
         "steps": [0, 50, 100], "loss": [[0.1, 0.3], [0.05, 0.2], [0.04, 0.1]],
         "grad_norm": [[1.0, 2.0], [0.5, 1.5], [0.4, 1.0]]}


def test_noise_probe_plot(tmp_path):
    plot_noise_probe(PROBE, tmp_path / "fig2.png")
    assert _png(tmp_path / "fig2.png").size == LINE_PX
    with pytest.raises(DCMError, match="'grad_norm'"):
        plot_noise_probe({k: v for k, v in PROBE.items() if k != "grad_norm"}, tmp_path / "x.png")
    with pytest.raises(DCMError, match=r"'loss' has shape \(3, 1\)"):
        plot_noise_probe({**PROBE, "loss": [[0.1], [0.1], [0.1]]}, tmp_path / "x.png")
    with pytest.raises(DCMError, match="non-finite"):
        plot_noise_probe({**PROBE, "grad_norm": [[1.0, float("nan")]] * 3}, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


TRAJ = {"space": "x0", "index": [1, 2, 3, 4], "mean": [0.01, 0.02, 0.1, 0.2], "std": [0.0, 0.01, 0.02, 0.02],
        "suggested_kappa": 2, "configured_kappa": 3}


def test_trajectory_distance_plot(tmp_path):
    plot_trajectory_distance(TRAJ, tmp_path / "fig10.png")
    assert _png(tmp_path / "fig10.png").size == LINE_PX
    with pytest.raises(DCMError, match="'suggested_kappa'"):
        plot_trajectory_distance({k: v for k, v in TRAJ.items() if k != "suggested_kappa"}, tmp_path / "x.png")
    with pytest.raises(DCMError, match="equal-length"):
        plot_trajectory_distance({**TRAJ, "std": [0.0]}, tmp_path / "x.png")


def test_kappa_sweep_plot(tmp_path):
    scores = {k: v for score in ("total", "quality", "semantic") for k, v in ((score, 80.0), (f"{score}_std", 1.0))}
    rows = [{"kappa": 37, **scores}, {"kappa": 28, **scores, "total": 70.0}]
    plot_kappa_sweep(rows, tmp_path / "k.png", {"suggested": 35, "configured": 37})
    assert _png(tmp_path / "k.png").size == LINE_PX
    with pytest.raises(DCMError, match="no rows"):
        plot_kappa_sweep([], tmp_path / "x.png")
    with pytest.raises(DCMError, match="'semantic_std'"):
        plot_kappa_sweep([{k: v for k, v in rows[0].items() if k != "semantic_std"}], tmp_path / "x.png")
    with pytest.raises(DCMError, match="repeated kappa"):
        plot_kappa_sweep(rows + [rows[0]], tmp_path / "x.png")
    with pytest.raises(DCMError, match="at most 2 marked"):
        plot_kappa_sweep(rows, tmp_path / "x.png", {"a": 1, "b": 2, "c": 3})
    assert not (tmp_path / "x.png").exists()


def _captured(monkeypatch) -> list:
    """The figures the plot functions would save, kept open for inspection (nothing is written)."""
    figures = []
    monkeypatch.setattr("dcm.report.figures._save", lambda fig, path: figures.append(fig))
    return figures


def _table_row(method, steps, total, std, train_seeds=3, **extra):
    return {"method": method, "steps": steps, "total": total, "total_std": std, "train_seeds": train_seeds,
            "seeds": 4, **extra}


def test_table1_plot_draws_each_method_against_steps_with_its_spread(tmp_path, monkeypatch):
    rows = [_table_row("teacher", 50, 78.0, 1.0, train_seeds=1), _table_row("teacher", 4, 80.0, 1.5, train_seeds=1),
            _table_row("dcm", 4, 74.0, 2.0), _table_row("dcm", 2, 75.0, 0.5)]
    plot_table1_scores(rows, tmp_path / "t1.png")
    assert _png(tmp_path / "t1.png").size == LINE_PX
    figures = _captured(monkeypatch)
    plot_table1_scores(rows, tmp_path / "unused.png")
    ax = figures[0].axes[0]
    assert ax.get_title() == "Table 1: Total, mean \u00b1 std over 3 training seeds"
    bars = {c.get_label(): c for c in ax.containers}
    assert list(bars) == ["teacher", "dcm"]
    line, _, (segments,) = bars["dcm"].lines
    assert list(line.get_xdata()) == [2, 4] and list(line.get_ydata()) == [75.0, 74.0]  # sorted by steps
    assert [tuple(seg[:, 1]) for seg in segments.get_segments()] == [(74.5, 75.5), (72.0, 76.0)]
    with pytest.raises(DCMError, match="no rows"):
        plot_table1_scores([], tmp_path / "x.png")
    with pytest.raises(DCMError, match="'train_seeds'"):
        plot_table1_scores([{k: v for k, v in rows[0].items() if k != "train_seeds"}], tmp_path / "x.png")
    with pytest.raises(DCMError, match="non-finite Total"):
        plot_table1_scores([{**rows[0], "total_std": float("nan")}], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_table3_plot_marks_the_paired_difference_above_each_row(tmp_path, monkeypatch):
    rows = [_table_row("vcm", 4, 70.0, 1.0, train_seeds=1, row="(1)", variant="vcm", paired_diff=None,
                       paired_p=None),
            _table_row("od", 4, 74.0, 1.0, train_seeds=1, row="(2)", variant="od", paired_diff=3.7,
                       paired_p=0.0002)]
    figures = _captured(monkeypatch)
    plot_table3_scores(rows, tmp_path / "t3.png")
    ax = figures[0].axes[0]
    assert "over 4 sampling seeds, one training" in ax.get_title()
    assert [p.get_height() for p in ax.patches] == [70.0, 74.0]
    assert [t.get_text() for t in ax.texts] == ["+3.70\np=0.0002"]
    figures.clear()
    plot_table3_scores([rows[0], {**rows[1], "paired_seeds_positive": "2/3"}], tmp_path / "unused.png")
    assert [t.get_text() for t in figures[0].axes[0].texts] == ["+3.70\np=0.0002\n2/3 seeds +"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["(1) vcm", "(2) od"]
    with pytest.raises(DCMError, match="'paired_p'"):
        plot_table3_scores([{k: v for k, v in rows[0].items() if k != "paired_p"}], tmp_path / "x.png")


def _solid(colour, videos=2, frames=3, size=4) -> torch.Tensor:
    return torch.tensor(colour, dtype=torch.uint8).expand(videos, frames, size, size, 3).clone()


def test_sample_grid_places_each_method_on_its_row_upscaled(tmp_path):
    red, blue = _solid([255, 0, 0]), _solid([0, 0, 255])
    red[1] = 0  # video 1 of the first set is black
    scale = 5
    plot_sample_grid({"vcm": red, "seme+dete": blue}, tmp_path / "grid.png", ["a red circle moving left"],
                     video=0, scale=scale)
    image = _png(tmp_path / "grid.png")
    assert image.size == sample_grid_size(2, 3, 4, 4, scale) == (GRID_LABEL_PX + 3 * (4 * scale + GRID_PAD_PX),
                                                                 GRID_TITLE_PX + 2 * (4 * scale + GRID_PAD_PX))
    cell = 4 * scale + GRID_PAD_PX
    for row, colour in ((0, (255, 0, 0)), (1, (0, 0, 255))):
        for frame in range(3):
            for dy, dx in ((1, 1), (4 * scale - 2, 4 * scale - 2)):  # both corners of the upscaled frame
                assert image.getpixel((GRID_LABEL_PX + frame * cell + dx, GRID_TITLE_PX + row * cell + dy)) == colour
    plot_sample_grid({"vcm": red}, tmp_path / "black.png", ["p"], video=1, scale=scale)
    assert _png(tmp_path / "black.png").getpixel((GRID_LABEL_PX + 2, GRID_TITLE_PX + 2)) == (0, 0, 0)


def test_sample_grid_rejects_bad_sets(tmp_path):
    good = _solid([1, 2, 3])
    with pytest.raises(DCMError, match="'lcm' must be a uint8"):
        plot_sample_grid({"lcm": good.float()}, tmp_path / "x.png", ["p"])
    with pytest.raises(DCMError, match="'pcm' has frames"):
        plot_sample_grid({"lcm": good, "pcm": _solid([1, 2, 3], frames=5)}, tmp_path / "x.png", ["p"])
    with pytest.raises(DCMError, match="video 7 is outside"):
        plot_sample_grid({"lcm": good}, tmp_path / "x.png", ["p"], video=7)
    with pytest.raises(DCMError, match="no sample sets"):
        plot_sample_grid({}, tmp_path / "x.png", ["p"])
    with pytest.raises(DCMError, match="no prompts"):
        plot_sample_grid({"lcm": good}, tmp_path / "x.png", [])


def test_smooth_is_a_trailing_mean():
    assert smooth(np.array([1.0, 2.0, 3.0, 4.0]), 2).tolist() == [1.0, 1.5, 2.5, 3.5]
    assert smooth(np.array([3.0, 0.0, 6.0]), 5).tolist() == [3.0, 1.5, 3.0]  # fewer than the window at the start
    assert smooth(np.array([2.0, 4.0]), 1).tolist() == [2.0, 4.0]


def _curve(**columns):
    return {name: np.asarray(values, dtype=float) for name, values in columns.items()}


def test_training_terms_plot(tmp_path):
    share = {"tc": _curve(step=[1, 2, 3], share=[0.1, 0.2, 0.3])}
    accuracy = {"dcm": _curve(step=[1, 2, 3], real=[0.5, 0.6, 0.7], fake=[0.4, 0.5, 0.5])}
    plot_training_terms(share, "TC share of the gradient", accuracy, tmp_path / "terms.png")
    assert _png(tmp_path / "terms.png").size == LINE_PX
    plot_training_terms({}, "unused", accuracy, tmp_path / "accuracy_only.png")  # one panel, the same size
    assert _png(tmp_path / "accuracy_only.png").size == LINE_PX
    with pytest.raises(DCMError, match="no run logged"):
        plot_training_terms({}, "x", {}, tmp_path / "x.png")
    with pytest.raises(DCMError, match="'dcm' has curves of lengths"):
        plot_training_terms({}, "x", {"dcm": _curve(step=[1, 2], real=[0.5, 0.5], fake=[0.5])}, tmp_path / "x.png")
    with pytest.raises(DCMError, match="'tc' holds non-finite"):
        plot_training_terms({"tc": _curve(step=[1], share=[float("nan")])}, "x", {}, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def _write_metrics(directory, lines):
    directory.mkdir(parents=True)
    (directory / layout.METRICS).write_text("".join(json.dumps(line) + "\n" for line in lines))


def test_term_curves_read_the_share_and_the_accuracy_per_step(tmp_path):
    cfg = load_config(SMOKE, [f"results_dir={tmp_path}", "seme.tc_share=false", "seme.tc_weight=3.0"])
    run = layout.run_dir(cfg)
    _write_metrics(layout.seme_dir(run, True), [{"step": 1, "consistency": 0.4, "temporal_coherence": 0.2},
                                                {"step": 2, "consistency": 0.1, "temporal_coherence": 0.3}])
    _write_metrics(layout.dete_dir(run, "dcm"), [{"step": 1, "d_real_acc": 0.25, "d_fake_acc": 0.75}])
    share, label, accuracy = term_curves(cfg)
    assert label == "TC share of the loss (seme.tc_share off)"
    # 3 * 0.2 / (0.4 + 3 * 0.2) and 3 * 0.3 / (0.1 + 3 * 0.3)
    assert share["tc"]["share"] == pytest.approx([0.6, 0.9]) and share["tc"]["step"].tolist() == [1, 2]
    assert list(accuracy) == ["dcm"]  # the smoke config's one GAN variant
    assert accuracy["dcm"]["real"].tolist() == [0.25] and accuracy["dcm"]["fake"].tolist() == [0.75]
    logged = load_config(SMOKE, [f"results_dir={tmp_path}", "seme.tc_share=true"])
    with pytest.raises(DCMError, match="lines without 'tc_share'"):
        term_curves(logged)
    _write_metrics(tmp_path / "other" / "seme" / "tc", [{"step": 1, "tc_share": 0.125}])
    share, label, _ = term_curves({**logged, "name": "other", "variants": {"tc_only": {
        "decouple": True, "parameter_efficient": True, "temporal_coherence": True, "gan": False}}})
    assert label == "TC share of the gradient" and share["tc"]["share"].tolist() == [0.125]
