"""The vbench_sample and evaluate stages on a small random Wan pipeline, with a stand-in for VBench's separate
environment (an interpreter whose `vbench` package, launcher and OpenCV record what they are asked to do), so the
wiring is checked end to end here: VBench's prompt file, 5 seeded mp4s per prompt at the backbone's fps, the
mode by duration, a killed run resumed, and the version and mode in the score file."""

import dataclasses
import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dcm import pipelines
from dcm.config import load_config
from dcm.errors import DCMError
from dcm.eval.vbench_videos import SEED_OFFSET
from dcm.io import read_json
from tests.test_backbones import build_wan

REPO = Path(__file__).resolve().parents[1]
SUITE = [{"prompt_en": "a red cat runs", "dimension": ["subject_consistency", "color"],
          "auxiliary_info": {"color": {"color": "red"}}},
         {"prompt_en": "the dog walks", "dimension": ["subject_consistency"]},
         {"prompt_en": "blue sea", "dimension": ["scene"], "auxiliary_info": {"scene": {"scene": {"scene": "sea"}}}}]
CV2 = '''COLOR_RGB2BGR = 4
def VideoWriter_fourcc(*code): return 0
def cvtColor(frame, code): return frame
class VideoWriter:
    def __init__(self, path, fourcc, fps, size): self.path, self.fps, self.size, self.frames = path, fps, size, 0
    def write(self, frame): self.frames += 1
    def release(self):
        import json; open(self.path, "w").write(json.dumps({"fps": self.fps, "size": list(self.size), "frames": self.frames}))
'''
LAUNCHER = '''import argparse, json, pathlib
p = argparse.ArgumentParser()
for a in ("--videos_path", "--output_path", "--full_json_dir", "--mode"): p.add_argument(a)
p.add_argument("--dimension", nargs="+")
args = p.parse_args()
out = pathlib.Path(args.output_path); out.mkdir(parents=True, exist_ok=True)
(out / "args.json").write_text(json.dumps(vars(args)))
videos = sorted(pathlib.Path(args.videos_path).glob("*.mp4"))
rows = [{"video_path": str(v), "video_results": 0.5 + 0.1 * int(v.stem.rpartition("-")[2])} for v in videos]
(out / "results_x_eval_results.json").write_text(json.dumps({d: [sum(r["video_results"] for r in rows) / len(rows), rows] for d in args.dimension}))
'''


def fake_vbench_python(root: Path) -> str:
    """An interpreter whose path holds a stand-in vbench 9.9.9 (prompt file, both launchers) and cv2."""
    site = root / "site"
    for package in ("vbench/launch", "vbench2_beta_long"):
        (site / package).mkdir(parents=True)
    (site / "vbench" / "__init__.py").write_text("")
    (site / "vbench" / "launch" / "__init__.py").write_text("")
    (site / "vbench" / "launch" / "evaluate.py").write_text(LAUNCHER)
    (site / "vbench2_beta_long" / "__init__.py").write_text("")
    (site / "vbench2_beta_long" / "eval_long.py").write_text(LAUNCHER)
    (site / "vbench" / "VBench_full_info.json").write_text(json.dumps(SUITE))
    (site / "vbench-9.9.9.dist-info").mkdir()
    (site / "vbench-9.9.9.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: vbench\nVersion: 9.9.9\n")
    (site / "cv2.py").write_text(CV2)
    python = root / "python"
    python.write_text(f'#!/bin/sh\nPYTHONPATH="{site}" exec "{sys.executable}" "$@"\n')
    python.chmod(python.stat().st_mode | stat.S_IEXEC)
    return str(python)


def test_vbench_sample_then_evaluate(tmp_path, monkeypatch):
    from dcm.stages import evaluate, teacher, vbench_sample

    torch.manual_seed(0)
    build_wan(tmp_path / "wan")
    python = fake_vbench_python(tmp_path / "vbench-env")
    cfg = load_config(REPO / "config" / "wan2.1-t2v-1.3b.yaml", [
        f"results_dir={tmp_path / 'results'}", f"backbone.pretrained={tmp_path / 'wan'}", "backbone.dtype=float32",
        "backbone.device=cpu", "backbone.frames=5", "backbone.height=32", "backbone.width=32",
        "backbone.max_sequence_length=8", "schedule.num_steps=4", "schedule.kappa=2", "threads=2",
        "tracking.enabled=false", f"evaluate.vbench_python={python}", "evaluate.vbench_batch_size=4",
        "evaluate.vbench_dimensions=[subject_consistency]", "sampling.steps=[2]", "sampling.teacher_steps=4",
        "tables.ablation_steps=2", "userstudy.steps=2", "pcm.phases=2"])
    teacher.run(cfg)
    out = tmp_path / "results" / "wan2.1-t2v-1.3b" / "vbench" / "teacher-2"
    calls = []
    original = vbench_sample.write_videos

    def killed_after_one_chunk(videos, sample, *args, **kwargs):
        def once(chunk):
            if calls:
                raise RuntimeError("killed")
            calls.append(len(chunk))
            return sample(chunk)
        return original(videos, once, *args, **kwargs)

    monkeypatch.setattr(vbench_sample, "write_videos", killed_after_one_chunk)
    with pytest.raises(RuntimeError, match="killed"):
        vbench_sample.run(cfg, method="teacher", steps=2)
    kept = out.with_name("teacher-2.partial") / "checkpoint" / "videos"
    assert len(list(kept.glob("*.mp4"))) == 4  # the finished chunk survives the kill
    with pytest.raises(DCMError, match="run the 'vbench_sample' stage first"):
        evaluate.run(cfg, "teacher", 2)
    monkeypatch.setattr(vbench_sample, "write_videos", original)
    vbench_sample.run(cfg, method="teacher", steps=2)

    names = sorted(p.name for p in (out / "videos").iterdir())
    assert names == sorted(f"{p}-{i}.mp4" for p in ("a red cat runs", "the dog walks") for i in range(5))
    mp4 = read_json(out / "videos" / "the dog walks-3.mp4")  # what the stand-in OpenCV was asked to write
    assert mp4 == {"fps": 16.0, "size": [32, 32], "frames": 5}  # Wan's 16 fps, every frame
    manifest = read_json(out / "manifest.json")
    assert manifest["seeds"]["the dog walks-3.mp4"] == SEED_OFFSET + 5 * 1 + 3
    assert manifest["mode"] == "vbench_standard" and manifest["seconds"] == 5 / 16
    assert manifest["guidance"] == {"kind": "cfg", "scale": 5.0, "negative_prompt": ""}
    assert manifest["prompt_file"].endswith("vbench/VBench_full_info.json")

    evaluate.run(cfg, "teacher", 2)
    scores = read_json(tmp_path / "results" / "wan2.1-t2v-1.3b" / "eval" / "teacher-2" / "scores.json")
    assert scores["vbench"]["version"] == "9.9.9" and scores["vbench"]["mode"] == "vbench_standard"
    assert scores["prompts"] == 2 and scores["videos"] == 10 and scores["seeds"] == 5
    assert scores["dimensions"] == {"subject_consistency": pytest.approx(0.7)}  # mean of 0.5 .. 0.9
    assert [s["dimensions"]["subject_consistency"] for s in scores["per_seed"]] == pytest.approx([0.5, 0.6, 0.7, 0.8, 0.9])
    launched = read_json(next((tmp_path / "results" / "wan2.1-t2v-1.3b" / "eval" / "teacher-2").rglob("args.json")))
    assert launched["mode"] == "vbench_standard" and launched["full_json_dir"] == manifest["prompt_file"]

    # a backbone at 1 fps: 5 frames last 5 s, so VBench-Long (81 frames at 16 fps would too, but decode slowly here)
    monkeypatch.setitem(pipelines.PIPELINES, "wan", dataclasses.replace(pipelines.PIPELINES["wan"], fps=1.0))
    with pytest.raises(DCMError, match="sampled with other \\['fps', 'mode', 'seconds'\\]"):  # stale videos
        evaluate.run(cfg, "teacher", 2)
    vbench_sample.run(cfg, method="teacher", steps=2)
    assert read_json(out / "videos" / "a red cat runs-0.mp4")["fps"] == 1.0
    evaluate.run(cfg, "teacher", 2)
    scores = read_json(tmp_path / "results" / "wan2.1-t2v-1.3b" / "eval" / "teacher-2" / "scores.json")
    assert scores["vbench"]["mode"] == "long_vbench_standard"
    launched = read_json(next((tmp_path / "results" / "wan2.1-t2v-1.3b" / "eval" / "teacher-2").rglob("args.json")))
    assert launched["mode"] == "long_vbench_standard"  # VBench-Long's own launcher (vbench2_beta_long.eval_long)


def test_two_processes_share_the_videos(tmp_path):
    """torchrun with two CPU processes (gloo): each samples its shard, rank 0 finishes one complete output."""
    torch.manual_seed(0)
    build_wan(tmp_path / "wan")
    python = fake_vbench_python(tmp_path / "vbench-env")
    overrides = [f"results_dir={tmp_path / 'results'}", f"backbone.pretrained={tmp_path / 'wan'}",
                 "backbone.dtype=float32", "backbone.device=cpu", "backbone.frames=5", "backbone.height=32",
                 "backbone.width=32", "backbone.max_sequence_length=8", "schedule.num_steps=4", "schedule.kappa=2",
                 "threads=1", "tracking.enabled=false", f"evaluate.vbench_python={python}",
                 "evaluate.vbench_dimensions=[subject_consistency]", "sampling.steps=[2]", "sampling.teacher_steps=4",
                 "tables.ablation_steps=2", "userstudy.steps=2", "pcm.phases=2"]
    config = ["--config", str(REPO / "config" / "wan2.1-t2v-1.3b.yaml"), *(a for o in overrides for a in ("--set", o))]
    from dcm.stages import teacher

    teacher.run(load_config(REPO / "config" / "wan2.1-t2v-1.3b.yaml", overrides))
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           "-m", "dcm", "vbench_sample", "--method", "teacher", "--steps", "2", *config],
                          capture_output=True, text=True, cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "results" / "wan2.1-t2v-1.3b" / "vbench" / "teacher-2"
    assert len(list((out / "videos").glob("*.mp4"))) == 10 and not out.with_name("teacher-2.partial").exists()
    assert read_json(out / "manifest.json")["world_size"] == 2
    assert "rank 1 sampled 5 of its 5" in proc.stderr and "rank 0 sampled 5 of its 5" in proc.stderr
