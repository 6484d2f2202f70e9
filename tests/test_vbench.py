"""The VBench adapter: final-score arithmetic by hand, the results parser on a fixture in VBench's format, and the
errors when its separate environment is absent."""

import json
import sys

import numpy as np
import pytest

from dcm.errors import DCMError
from dcm.eval import vbench, vbench_videos

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


# VBench's prompt suite format (vbench/VBench_full_info.json): prompt_en, dimension tags, auxiliary_info for the
# dimensions scored against per-prompt annotations
SUITE = [
    {"prompt_en": "a person swimming in ocean", "dimension": ["subject_consistency", "dynamic_degree"]},
    {"prompt_en": "a red bicycle", "dimension": ["color"], "auxiliary_info": {"color": {"color": "red"}}},
    {"prompt_en": "a cat", "dimension": ["object_class", "subject_consistency"],
     "auxiliary_info": {"object_class": {"object": "cat"}}},
]


def _suite_file(tmp_path, entries=SUITE, name="VBench_full_info.json"):
    path = tmp_path / name
    path.write_text(json.dumps(entries))
    return path


def test_prompt_suite_five_recorded_seeds_per_prompt(tmp_path):
    path = _suite_file(tmp_path)
    everything = vbench_videos.load_suite(path)
    assert everything == ["a person swimming in ocean", "a red bicycle", "a cat"]
    subset = vbench_videos.load_suite(path, ["subject_consistency"])
    assert subset == ["a person swimming in ocean", "a cat"]
    videos = vbench_videos.suite_videos(everything, subset)
    assert [v.file for v in videos[:6]] == [f"a person swimming in ocean-{i}.mp4" for i in range(5)] + ["a cat-0.mp4"]
    # seeds follow the prompt's place in the whole suite, so a dimension subset samples the same videos
    full = {v.file: v.seed for v in vbench_videos.suite_videos(everything, everything)}
    assert all(full[v.file] == v.seed for v in videos) and len(set(full.values())) == 15
    assert [v.seed for v in videos if v.prompt == "a cat"] == [vbench_videos.SEED_OFFSET + 10 + i for i in range(5)]
    ranks = [vbench_videos.shard(videos, r, 3) for r in range(3)]  # torchrun ranks: each video exactly once
    assert sorted(v.file for r in ranks for v in r) == sorted(v.file for v in videos)


def test_vbench_long_is_chosen_by_duration():
    from dcm.pipelines import pipeline

    modes = {name: vbench_videos.vbench_mode(frames, pipeline(name).fps)
             for name, frames in (("hunyuan_video", 129), ("wan", 81), ("cogvideox", 29))}
    assert modes == {"hunyuan_video": "long_vbench_standard", "wan": "long_vbench_standard",  # 5.4 s, 5.06 s
                     "cogvideox": "vbench_standard"}  # 29 frames at 8 fps: 3.6 s
    assert vbench_videos.vbench_mode(79, 16) == "vbench_standard"  # 4.94 s
    long = vbench.vbench_command("v", "o", ["color"], "long_vbench_standard", "p.json")
    assert long[long.index("-m", 2) + 1] == "vbench2_beta_long.eval_long" and long[-2:] == ["--mode", "long_vbench_standard"]
    short = vbench.vbench_command("v", "o", ["color"], "vbench_standard", "p.json")
    assert "vbench.launch.evaluate" in short and short[short.index("--full_json_dir") + 1] == "p.json"


def test_prompts_vbench_cannot_score_are_refused(tmp_path):
    path = _suite_file(tmp_path)
    with pytest.raises(DCMError, match="is not a VBench prompt file"):  # e.g. a list of the run's own prompts
        vbench_videos.load_suite(_suite_file(tmp_path, ["a red cat runs"], "plain.json"))
    unannotated = _suite_file(tmp_path, [{"prompt_en": "a blue car", "dimension": ["color"]}], "unannotated.json")
    with pytest.raises(DCMError, match="tagged \\['color'\\] without auxiliary_info"):
        vbench_videos.check_prompt_file(unannotated, ["color"])
    vbench_videos.check_prompt_file(unannotated, ["subject_consistency"])  # a quality dimension needs none
    vbench_videos.check_prompt_file(path, list(vbench.RANGES))
    # a videos folder of the run's own held-out prompts (one seed each) is not VBench's suite: refused, not empty
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("a red cat runs-0.mp4", "a red bicycle-0.mp4"):
        (videos / name).write_bytes(b"")
    with pytest.raises(DCMError, match="14 of 15 VBench videos are missing .*'a person swimming in ocean-0.mp4'"):
        vbench_videos.check_complete(vbench_videos.load_suite(path), videos)
    with pytest.raises(DCMError, match="no prompt for the dimensions \\['scene'\\]"):
        vbench_videos.load_suite(path, ["scene"])


def test_videos_are_kept_as_made_and_a_rerun_continues(tmp_path):
    prompts = vbench_videos.load_suite(_suite_file(tmp_path))
    videos = vbench_videos.suite_videos(prompts, prompts)
    sampled, budget = [], {"chunks": 2}

    def sample(chunk):  # a run killed after two chunks of three
        if budget["chunks"] == 0:
            raise RuntimeError("killed")
        budget["chunks"] -= 1
        sampled.extend(v.file for v in chunk)
        return np.stack([np.full((2, 4, 4, 3), v.seed % 251, np.uint8) for v in chunk])

    def encode(frames, out):  # stands in for OpenCV in VBench's environment: one file per .npy
        out.mkdir(parents=True, exist_ok=True)
        for f in frames.glob("*.npy"):
            (out / f"{f.stem}.mp4").write_bytes(np.load(f, allow_pickle=False).tobytes())

    out, scratch = tmp_path / "videos", tmp_path / "scratch"
    with pytest.raises(RuntimeError, match="killed"):
        vbench_videos.write_videos(videos, sample, encode, out, scratch, batch_size=3)
    assert sorted(p.name for p in out.iterdir()) == sorted(sampled) and len(sampled) == 6
    budget["chunks"], first_run = 99, list(sampled)
    assert vbench_videos.write_videos(videos, sample, encode, out, scratch, batch_size=3) == 9
    assert not set(first_run) & set(sampled[6:])  # the rerun sampled only what was missing
    assert sorted(p.name for p in out.iterdir()) == sorted(v.file for v in videos) and not scratch.exists()
    assert (out / "a cat-4.mp4").read_bytes()[:1] == bytes([(vbench_videos.SEED_OFFSET + 14) % 251])
    assert vbench_videos.write_videos(videos, sample, encode, out, scratch, batch_size=3) == 0
    vbench_videos.check_complete(prompts, out)


def test_absent_interpreter_or_package_is_a_clear_error(tmp_path):
    with pytest.raises(DCMError, match="evaluate.vbench_python=/nonexistent/python: cannot run it"):
        vbench.run_vbench(tmp_path, tmp_path / "out", "/nonexistent/python", ["temporal_flickering"])
    with pytest.raises(DCMError, match="vbench package is not installed"):  # this environment has no vbench
        vbench.run_vbench(tmp_path, tmp_path / "out", sys.executable, ["temporal_flickering"])
    with pytest.raises(DCMError, match="unknown \\['sharpness'\\]"):
        vbench.run_vbench(tmp_path, tmp_path / "out", sys.executable, ["sharpness"])
