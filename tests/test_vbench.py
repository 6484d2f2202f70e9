"""The VBench adapter: final-score arithmetic by hand, the results parser on a fixture in VBench's format, and the
errors when its separate environment is absent."""

import json
import sys

import numpy as np
import pytest

from dcm.errors import DCMError
from dcm.eval import vbench

# VBench's *_eval_results.json: {dimension: [mean_score, [per-video dicts]]} (vbench/__init__.py, save_json)
FIXTURE = {
    "temporal_flickering": [0.9, [{"video_path": "/v/a red circle-0.mp4", "video_results": 0.95},
                                  {"video_path": "/v/a red circle-1.mp4", "video_results": 0.85}]],
    "dynamic_degree": [0.5, [{"video_path": "/v/a red circle-0.mp4", "video_results": True},
                             {"video_path": "/v/a red circle-1.mp4", "video_results": False}]],
}


def test_final_scores_by_hand():
    raw = {"subject_consistency": 0.5731,      # (0.5731 - 0.1462) / 0.8538 = 0.5
           "background_consistency": 0.63075,  # (0.63075 - 0.2615) / 0.7385 = 0.5
           "temporal_flickering": 1.0,         # (1 - 0.6293) / 0.3707 = 1
           "motion_smoothness": 0.706,         # its minimum: 0
           "dynamic_degree": 0.4,              # 0.4 x weight 0.5 = 0.2
           "aesthetic_quality": 0.6, "imaging_quality": 0.7,
           "object_class": 0.9, "multiple_objects": 0.3, "color": 0.8,
           "scene": 0.4111}                    # 0.4111 / 0.8222 = 0.5
    result = vbench.final_scores(raw)
    quality = (0.5 + 0.5 + 1 + 0 + 0.2 + 0.6 + 0.7) / 6.5  # = 3.5 / 6.5
    # missing: human_action, spatial_relationship, temporal_style, overall_consistency (min 0: 0) and
    # appearance_style, whose raw 0 normalises to (0 - 0.0009) / (0.2855 - 0.0009)
    semantic = (0.9 + 0.3 + 0.8 + 0.5 - 0.0009 / 0.2846) / 9
    assert result["quality"] == pytest.approx(quality, abs=1e-12)
    assert result["semantic"] == pytest.approx(semantic, abs=1e-12)
    assert result["total"] == pytest.approx((4 * quality + semantic) / 5, abs=1e-12)
    assert result["total"] == pytest.approx(0.4862545, abs=1e-6)
    assert sorted(result["missing"]) == ["appearance_style", "human_action", "overall_consistency",
                                         "spatial_relationship", "temporal_style"]


def test_perfect_scores_give_one_and_unknown_dimensions_are_refused():
    top = {d: hi for d, (lo, hi) in vbench.RANGES.items()}
    result = vbench.final_scores(top)
    assert (result["quality"], result["semantic"], result["total"]) == pytest.approx((1.0, 1.0, 1.0))
    assert result["missing"] == []
    with pytest.raises(DCMError, match="not VBench dimensions"):
        vbench.final_scores({"sharpness": 1.0})


def test_parser_reads_means_and_per_seed_videos(tmp_path):
    path = tmp_path / "results_2025_eval_results.json"
    path.write_text(json.dumps(FIXTURE))
    means, videos = vbench.read_eval_results(vbench.find_eval_results(tmp_path))
    assert means == {"temporal_flickering": 0.9, "dynamic_degree": 0.5}
    per_seed = vbench.per_seed_means(videos)
    assert per_seed == [{"temporal_flickering": 0.95, "dynamic_degree": 1.0},
                        {"temporal_flickering": 0.85, "dynamic_degree": 0.0}]


def test_parser_names_a_malformed_dimension(tmp_path):
    path = tmp_path / "x_eval_results.json"
    path.write_text(json.dumps({"color": 0.5}))
    with pytest.raises(DCMError, match="'color' is not \\[mean_score"):
        vbench.read_eval_results(path)
    with pytest.raises(DCMError, match="expected one"):
        vbench.find_eval_results(tmp_path / "empty")


def test_export_names_videos_by_prompt_and_seed(tmp_path):
    videos = np.arange(4 * 2 * 2 * 2 * 3, dtype=np.uint8).reshape(4, 2, 2, 2, 3)
    paths = vbench.export_frames(videos, ["a cat", "a dog"], tmp_path)
    assert [p.name for p in paths] == ["a cat-0.npy", "a dog-0.npy", "a cat-1.npy", "a dog-1.npy"]
    assert np.array_equal(np.load(paths[3], allow_pickle=False), videos[3])
    with pytest.raises(DCMError, match="1..5 videos per prompt"):
        vbench.export_frames(np.zeros((12, 1, 1, 1, 3), np.uint8), ["a", "b"], tmp_path)


def test_absent_interpreter_or_package_is_a_clear_error(tmp_path):
    with pytest.raises(DCMError, match="evaluate.vbench_python=/nonexistent/python: cannot run it"):
        vbench.run_vbench(tmp_path, tmp_path / "out", "/nonexistent/python", ["temporal_flickering"])
    with pytest.raises(DCMError, match="vbench package is not installed"):  # this environment has no vbench
        vbench.run_vbench(tmp_path, tmp_path / "out", sys.executable, ["temporal_flickering"])
    with pytest.raises(DCMError, match="unknown \\['sharpness'\\]"):
        vbench.run_vbench(tmp_path, tmp_path / "out", sys.executable, ["sharpness"])
