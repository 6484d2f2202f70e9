"""VBench adapter: its dimensions, normalisation ranges and weights, the Quality / Semantic / Total arithmetic,
running vbench 0.1.5 as a separate process in its own environment, and reading the JSON it writes.

The constants and the arithmetic follow Vchitect/VBench `scripts/constant.py` and `scripts/cal_final_score.py`
(read at tag v0.1.5); the runner calls the package's own launchers: `vbench.launch.evaluate` in `vbench_standard`
mode, or VBench-Long's `vbench2_beta_long.eval_long` in `long_vbench_standard` mode, both of which look up every
prompt of the prompt file as `<prompt>-<i>.mp4`, i = 0..4, in the videos folder.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from dcm.errors import DCMError
from dcm.io import read_json

QUALITY_DIMENSIONS = ("subject_consistency", "background_consistency", "temporal_flickering", "motion_smoothness",
                      "aesthetic_quality", "imaging_quality", "dynamic_degree")
SEMANTIC_DIMENSIONS = ("object_class", "multiple_objects", "human_action", "color", "spatial_relationship", "scene",
                       "appearance_style", "temporal_style", "overall_consistency")
RANGES = {  # (min, max) of the normalisation, scripts/constant.py NORMALIZE_DIC
    "subject_consistency": (0.1462, 1.0), "background_consistency": (0.2615, 1.0),
    "temporal_flickering": (0.6293, 1.0), "motion_smoothness": (0.706, 0.9975), "dynamic_degree": (0.0, 1.0),
    "aesthetic_quality": (0.0, 1.0), "imaging_quality": (0.0, 1.0), "object_class": (0.0, 1.0),
    "multiple_objects": (0.0, 1.0), "human_action": (0.0, 1.0), "color": (0.0, 1.0),
    "spatial_relationship": (0.0, 1.0), "scene": (0.0, 0.8222), "appearance_style": (0.0009, 0.2855),
    "temporal_style": (0.0, 0.364), "overall_consistency": (0.0, 0.364)}
WEIGHTS = {**{d: 1.0 for d in RANGES}, "dynamic_degree": 0.5}  # scripts/constant.py DIM_WEIGHT
QUALITY_WEIGHT, SEMANTIC_WEIGHT = 4.0, 1.0  # Total = (4 Quality + 1 Semantic) / 5
LAUNCHERS = {"vbench_standard": "vbench.launch.evaluate", "long_vbench_standard": "vbench2_beta_long.eval_long"}
SETUP_HINT = "see scripts/vbench/README.md to create that environment"

_LOCATE_PACKAGE = ("import importlib.util, sys\n"
                   "spec = importlib.util.find_spec('vbench')\n"
                   "sys.exit(3) if spec is None else print(spec.submodule_search_locations[0])\n")
_VERSION = "import importlib.metadata as m; print(m.version('vbench'))\n"
_ENCODE_MP4 = """\
import pathlib, sys
import cv2, numpy as np
source, target, fps = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), float(sys.argv[3])
target.mkdir(parents=True, exist_ok=True)
for path in sorted(source.glob('*.npy')):
    frames = np.load(path, allow_pickle=False)
    size = (frames.shape[2], frames.shape[1])
    writer = cv2.VideoWriter(str(target / (path.stem + '.mp4')), cv2.VideoWriter_fourcc(*'mp4v'), fps, size)
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
"""  # runs in VBench's environment, which has OpenCV (a vbench requirement); this one has no mp4 encoder


def normalised_scores(raw: dict[str, float], ranges: dict[str, tuple[float, float]],
                      weights: dict[str, float]) -> dict[str, float]:
    """(raw - min) / (max - min) x weight per dimension (cal_final_score.py get_nomalized_score)."""
    return {d: (raw[d] - ranges[d][0]) / (ranges[d][1] - ranges[d][0]) * weights[d] for d in raw}


def aggregate(raw: dict[str, float], quality: tuple[str, ...], semantic: tuple[str, ...],
              ranges: dict[str, tuple[float, float]], weights: dict[str, float]) -> dict:
    """Quality = sum of normalised quality dimensions / sum of their weights, Semantic likewise, Total =
    (4 Quality + 1 Semantic) / 5 (cal_final_score.py). A missing dimension enters with raw score 0, as that
    script fills it, so one with min > 0 contributes a negative normalised value; the result lists them."""
    missing = [d for d in (*quality, *semantic) if d not in raw]
    norm = normalised_scores({d: float(raw.get(d, 0.0)) for d in (*quality, *semantic)}, ranges, weights)
    quality_score = sum(norm[d] for d in quality) / sum(weights[d] for d in quality)
    semantic_score = sum(norm[d] for d in semantic) / sum(weights[d] for d in semantic)
    total = (QUALITY_WEIGHT * quality_score + SEMANTIC_WEIGHT * semantic_score) / (QUALITY_WEIGHT + SEMANTIC_WEIGHT)
    return {"quality": quality_score, "semantic": semantic_score, "total": total, "normalised": norm,
            "missing": missing}


def final_scores(raw: dict[str, float]) -> dict:
    """VBench Quality, Semantic and Total from raw per-dimension scores (7 quality / 6.5, 9 semantic / 9)."""
    unknown = sorted(set(raw) - set(RANGES))
    if unknown:
        raise DCMError(f"not VBench dimensions: {unknown}; known: {sorted(RANGES)}")
    return aggregate(raw, QUALITY_DIMENSIONS, SEMANTIC_DIMENSIONS, RANGES, WEIGHTS)


def read_eval_results(path: str | Path) -> tuple[dict[str, float], dict[str, list[dict]]]:
    """(mean score per dimension, per-video result dicts per dimension) from VBench's `*_eval_results.json`,
    whose format is {dimension: [mean_score, [{"video_path": ..., "video_results": ...}, ...]]}."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise DCMError(f"{path}: expected a JSON object of dimensions, got {type(data).__name__}")
    means, videos = {}, {}
    for dimension, entry in data.items():
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], (int, float))
                and isinstance(entry[1], list)):
            raise DCMError(f"{path}: dimension {dimension!r} is not [mean_score, [per-video results]]")
        means[dimension], videos[dimension] = float(entry[0]), entry[1]
    return means, videos


def seed_index(video_path: str) -> int:
    """The i of a VBench video named `<prompt>-<i>.<ext>` (here: the sampling-seed index)."""
    stem = Path(video_path).stem
    head, _, tail = stem.rpartition("-")
    if not head or not tail.isdigit():
        raise DCMError(f"VBench video {video_path} is not named <prompt>-<index>")
    return int(tail)


def per_seed_means(videos: dict[str, list[dict]]) -> list[dict[str, float]]:
    """Mean per-video score of each dimension for each seed index (booleans count as 0/1)."""
    by_seed: dict[int, dict[str, list[float]]] = {}
    for dimension, rows in videos.items():
        for row in rows:
            by_seed.setdefault(seed_index(row["video_path"]), {}).setdefault(dimension, []).append(
                float(row["video_results"]))
    return [{d: float(np.mean(v)) for d, v in by_seed[k].items()} for k in sorted(by_seed)]


def find_eval_results(output_dir: str | Path) -> Path:
    """The one `*_eval_results.json` VBench wrote into `output_dir`."""
    found = sorted(Path(output_dir).glob("*_eval_results.json"))
    if len(found) != 1:
        raise DCMError(f"expected one *_eval_results.json in {output_dir}, found {[p.name for p in found]}")
    return found[0]


def _call(python: str, args: list[str], what: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run([python, *args], capture_output=True, text=True)
    except OSError as err:  # absent or not executable
        raise DCMError(f"evaluate.vbench_python={python}: cannot run it to {what} ({err.strerror}); "
                       f"{SETUP_HINT}") from err


def vbench_package_dir(python: str) -> Path:
    """Where the vbench package lives in the interpreter `python`; DCMError if it or the package is absent."""
    proc = _call(python, ["-c", _LOCATE_PACKAGE], "find the vbench package")
    if proc.returncode == 3:
        raise DCMError(f"evaluate.vbench_python={python}: the vbench package is not installed there; {SETUP_HINT}")
    if proc.returncode != 0:
        raise DCMError(f"evaluate.vbench_python={python} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return Path(proc.stdout.strip())


def package_prompt_file(python: str) -> Path:
    """VBench's own prompt suite, vbench/VBench_full_info.json of the package in the interpreter `python`."""
    return vbench_package_dir(python) / "VBench_full_info.json"


def vbench_version(python: str) -> str:
    """The installed vbench package's version in the interpreter `python`."""
    proc = _call(python, ["-c", _VERSION], "read the vbench version")
    if proc.returncode != 0:
        raise DCMError(f"evaluate.vbench_python={python}: cannot read the vbench version: {proc.stderr[-2000:]}")
    return proc.stdout.strip()


def encode_mp4(python: str, frames_dir: str | Path, videos_dir: str | Path, fps: float) -> None:
    """Encode every `<name>.npy` of `frames_dir` as `<name>.mp4` in `videos_dir` with OpenCV in VBench's env."""
    proc = _call(python, ["-c", _ENCODE_MP4, str(frames_dir), str(videos_dir), str(fps)], "encode mp4 videos")
    if proc.returncode != 0:
        raise DCMError(f"encoding mp4 with {python} failed ({proc.returncode}): {proc.stderr[-2000:]}")


def vbench_command(videos_dir: str | Path, output_dir: str | Path, dimensions: list[str], mode: str,
                   prompt_file: str | Path) -> list[str]:
    """Arguments to the VBench interpreter: its launcher for `mode` (torchrun, one process) on `videos_dir`."""
    if mode not in LAUNCHERS:
        raise DCMError(f"VBench mode {mode!r} is not run here; known: {sorted(LAUNCHERS)}")
    return ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1", "-m", LAUNCHERS[mode],
            "--videos_path", str(videos_dir), "--dimension", *dimensions, "--output_path", str(output_dir),
            "--full_json_dir", str(prompt_file), "--mode", mode]


def run_vbench(videos_dir: str | Path, output_dir: str | Path, python: str, dimensions: list[str],
               mode: str = "vbench_standard", prompt_file: str | Path | None = None) -> Path:
    """Run VBench's own launcher for `mode` on `videos_dir` with the interpreter `python`, on `prompt_file`
    (default: the package's VBench_full_info.json); returns the `*_eval_results.json` it wrote into `output_dir`."""
    unknown = sorted(set(dimensions) - set(RANGES))
    if unknown:
        raise DCMError(f"evaluate.vbench_dimensions: unknown {unknown}; known: {sorted(RANGES)}")
    prompt_file = prompt_file or package_prompt_file(python)
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    proc = _call(python, vbench_command(videos_dir, output_dir, dimensions, mode, prompt_file), "run VBench")
    if proc.returncode != 0:
        raise DCMError(f"VBench ({python}) failed ({proc.returncode}) on {videos_dir}: {proc.stderr[-3000:]}")
    return find_eval_results(output_dir)
