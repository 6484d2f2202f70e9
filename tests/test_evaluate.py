"""Stage `evaluate` on a synthetic sample set in a temporary results directory."""

import numpy as np
import pytest
import torch

from dcm.config import load_config
from dcm.data.procedural import BACKGROUND, Factors, make_clips
from dcm.errors import DCMError
from dcm import layout
from dcm.io import read_json, save_tensors, write_json
from dcm.stages import evaluate
from tests.helpers import SMOKE

PROMPTS = ["a red circle moving right", "a blue square moving down"]
SEEDS = [[0, 1], [10000, 10001]]  # two sampling seeds, seed-major: video k * 2 + i


def _config(tmp_path, *overrides):
    return load_config(SMOKE, [f"results_dir={tmp_path}", "tracking.enabled=false", "evaluate.real_clips_per_prompt=4",
                               *overrides])


def _write_samples(cfg, name, videos):
    directory = layout.samples_dir(layout.run_dir(cfg), name)
    save_tensors(directory / "samples.safetensors", {"latents": torch.zeros(len(videos), 1), "videos": videos})
    method, steps = name.split("-")
    write_json(directory / "meta.json", {"method": method, "steps": int(steps), "prompts": PROMPTS, "seeds": SEEDS})


def _real(cfg):
    shape, data = cfg["backbone"], cfg["data"]
    clips, _ = make_clips([Factors.from_caption(p) for p in PROMPTS] * 2, 1, 3, shape["frames"], shape["height"],
                          shape["width"], data["object_size"], data["speed"])
    return torch.from_numpy(((clips + 1) * 127.5).round().astype(np.uint8)).permute(0, 2, 3, 4, 1)


def test_tinybench_scores_and_teacher_rmse(tmp_path):
    cfg = _config(tmp_path)
    teacher = _real(cfg)
    _write_samples(cfg, "teacher-10", teacher)  # sampling.teacher_steps of config/smoke.yaml
    shifted = teacher.clone()
    shifted[2:] = teacher[2:] - 20  # seed 1: every pixel 20 darker (the darkest, the background's 26, stays >= 0)
    _write_samples(cfg, "dcm-4", shifted)
    evaluate.run(cfg, "dcm", 4)
    out = tmp_path / "smoke" / "eval" / "dcm-4"
    scores = read_json(out / "scores.json")
    assert scores["backend"] == "tinybench" and scores["videos"] == 4 and scores["seeds"] == 2
    assert scores["rmse_reference"] == "teacher-10"
    assert scores["rmse_to_teacher_per_seed"] == pytest.approx([0.0, 20 / 255], abs=1e-6)
    assert scores["rmse_to_teacher"] == pytest.approx(20 / 255 / 2, abs=1e-6)
    first, second = scores["per_seed"]
    assert first["quality"] >= 0.95 and first["semantic"] == 1.0  # real clips at 8x8, 4 frames
    # background uint8 (26, 26, 31) -> (6, 6, 11): a pure background pixel scores 1 - d / 0.25 = 0.469 (the faint
    # anti-aliased rims outside the dilated object mask score a little less)
    d = np.linalg.norm(np.array([6, 6, 11]) / 255 - np.array(BACKGROUND))
    assert second["dimensions"]["background_consistency"] == pytest.approx(1 - d / 0.25, abs=0.03)
    assert scores["dimensions"]["color"] == pytest.approx(np.mean([first["dimensions"]["color"],
                                                                   second["dimensions"]["color"]]))
    assert scores["frechet_to_real"] >= 0 and scores["real_clips"] == 8
    assert "| seeds | Quality | Semantic | Total |" in (out / "scores.md").read_text()


def test_untracked_teacher_and_bad_prompts(tmp_path):
    cfg = _config(tmp_path)
    _write_samples(cfg, "teacher-2", _real(cfg))
    evaluate.run(cfg, "teacher", 2)
    assert read_json(tmp_path / "smoke" / "eval" / "teacher-2" / "scores.json")["rmse_to_teacher"] is None
    directory = layout.samples_dir(layout.run_dir(cfg), "teacher-2")
    write_json(directory / "meta.json",
               {"method": "teacher", "steps": 2, "prompts": ["a cat", "a dog"], "seeds": SEEDS})
    with pytest.raises(DCMError, match="tinybench scores only .*'a cat'"):
        evaluate.run(cfg, "teacher", 2)
    with pytest.raises(DCMError, match="run the 'sample' stage first"):
        evaluate.run(cfg, "pcm", 4)


def test_vbench_backend_needs_its_interpreter(tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(f"prompt {k}" for k in range(6)) + "\n")
    cfg = _config(tmp_path, "backbone.name=wan", "backbone.pretrained=/models/wan", f"data.prompt_file={prompts}",
                  "trajectories.jobs=1")  # 2 training prompts make one shard
    _write_samples(cfg, "dcm-4", _real(_config(tmp_path)))
    with pytest.raises(DCMError, match="evaluate.vbench_python is not set"):
        evaluate.run(cfg, "dcm", 4)
    cfg["evaluate"]["vbench_python"] = "/nonexistent/python"
    with pytest.raises(DCMError, match="run the 'vbench_sample' stage first"):  # not the held-out sample set
        evaluate.run(cfg, "dcm", 4)
    assert not (tmp_path / "smoke" / "eval" / "dcm-4").exists()
