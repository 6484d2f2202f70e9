"""Stage `evaluate`: score one method at one step count with tinybench (tiny backbone: its sample set) or VBench
(real backbones: the vbench_sample stage's videos of VBench's prompt suite, in VBench-Long mode for clips of 5 s
or more): per-dimension means, Quality / Semantic / Total, the same per seed index, and (tinybench) the Frechet
distance of per-video descriptors to real clips of the same prompts plus the per-video RMSE to the teacher's
samples from the same noise. Writes eval/<method>-<steps>/scores.{json,md}."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import torch

from dcm import layout, tracking
from dcm.backbone_specs import backbone_spec
from dcm.data.procedural import Factors, make_clips
from dcm.errors import DCMError
from dcm.eval import tinybench, vbench
from dcm.eval.vbench_videos import check_complete, load_suite, suite, vbench_python
from dcm.eval.distance import per_video_rmse
from dcm.io import atomic_path, load_tensors, read_json, write_json
from dcm.outputs import stage_output
from dcm.report.tables import to_markdown
from dcm.video import to_uint8_video

SUMMARY = ("quality", "semantic", "total")


def _factors(prompts: list[str]) -> list[Factors]:
    """The procedural factors each prompt names; DCMError naming the first prompt tinybench cannot score."""
    factors = [Factors.from_caption(p) for p in prompts]
    bad = [p for p, f in zip(prompts, factors) if f is None]
    if bad:
        raise DCMError(f"tinybench scores only 'a <colour> <shape> moving <direction>' prompts; got {bad[0]!r} "
                       "(sampling.prompts)")
    return factors


def real_videos(cfg: dict, factors: list[Factors]) -> tuple[torch.Tensor, list[Factors]]:
    """uint8 (B, T, H, W, 3) procedural clips of each distinct prompt in `factors`, evaluate.real_clips_per_prompt
    each, drawn with seed + 1 so their start points differ from the training clips', and each clip's factors."""
    shape, data = cfg["backbone"], cfg["data"]
    clips, records = make_clips(list(dict.fromkeys(factors)), cfg["evaluate"]["real_clips_per_prompt"],
                                cfg["seed"] + 1, shape["frames"], shape["height"], shape["width"],
                                data["object_size"], data["speed"])
    videos = to_uint8_video(torch.from_numpy(clips))
    return videos, [Factors(r["colour"], r["shape"], r["direction"]) for r in records]


def _tinybench(cfg: dict, videos: torch.Tensor, prompts: list[str], seeds: int) -> dict:
    settings = cfg["evaluate"]
    score = partial(tinybench.score_videos, object_size=cfg["data"]["object_size"],
                    min_displacement=settings["min_displacement"],
                    max_object_fraction=settings["max_object_fraction"])
    factors = _factors(prompts) * seeds
    per_video, descriptors = score(videos, factors)
    real, real_factors = real_videos(cfg, factors)
    _, real_descriptors = score(real, real_factors)
    return {**tinybench.summarise(per_video),
            "per_seed": [tinybench.summarise({d: v[s] for d, v in per_video.items()})
                         for s in layout.seed_slices(len(prompts), seeds)],
            "per_video_total": tinybench.per_video_totals(per_video),  # seed-major, as the videos are
            "frechet_to_real": tinybench.frechet_distance(descriptors, real_descriptors),
            "frechet_descriptor": list(tinybench.DESCRIPTOR), "real_clips": len(real)}


def _vbench(cfg: dict, method: str, steps: int, work: Path) -> dict:
    python = vbench_python(cfg)
    directory = layout.require(layout.vbench_dir(layout.own_point(cfg), layout.sample_set(method, steps)), "vbench_sample")
    made_for, now = read_json(directory / "manifest.json"), suite(cfg, method, steps, python)
    stale = sorted(k for k in now if made_for.get(k) != now[k])
    if stale:
        raise DCMError(f"{directory} was sampled with other {stale} than this config: rerun the vbench_sample stage")
    prompts = load_suite(now["prompt_file"], now["dimensions"])
    check_complete(prompts, directory / "videos")
    results = vbench.run_vbench(directory / "videos", work / "vbench" / "results", python, now["dimensions"],
                                now["mode"], now["prompt_file"])
    means, per_video = vbench.read_eval_results(results)
    return {"dimensions": means, **vbench.final_scores(means),
            "per_seed": [{"dimensions": m, **vbench.final_scores(m)} for m in vbench.per_seed_means(per_video)],
            "vbench_results": str(results.relative_to(work)), "prompts": len(prompts),
            "seeds": now["videos_per_prompt"], "videos": len(prompts) * now["videos_per_prompt"],
            "vbench": {"version": vbench.vbench_version(python), "mode": now["mode"], "prompt_file": now["prompt_file"],
                       "prompt_file_sha256": now["prompt_file_sha256"], "fps": now["fps"], "seconds": now["seconds"],
                       "videos": str(directory / "videos")}}


def _teacher_rmse(cfg: dict, videos: torch.Tensor, slices: list[slice]) -> dict:
    """Mean per-video RMSE to the teacher's full-step samples from the same noise, overall and per seed."""
    name = layout.sample_set("teacher", cfg["sampling"]["teacher_steps"])
    path = layout.samples_dir(layout.run_dir(cfg), name) / layout.SAMPLES
    if not path.is_file():
        return {"rmse_reference": None, "rmse_to_teacher": None}
    reference = load_tensors(path)["videos"]
    if reference.shape != videos.shape:
        raise DCMError(f"{path} holds {tuple(reference.shape)} videos, the evaluated set {tuple(videos.shape)}: "
                       "resample with the same config")
    rmse = per_video_rmse(videos, reference)
    return {"rmse_reference": name, "rmse_to_teacher": float(rmse.mean()),
            "rmse_to_teacher_per_seed": [float(rmse[s].mean()) for s in slices]}


def _markdown(scores: dict) -> str:
    """Overall and per-seed rows: Quality, Semantic, Total and every dimension."""
    rows = [{"seeds": label, **{k.capitalize(): s[k] for k in SUMMARY}, **s["dimensions"]}
            for label, s in [("all", scores), *((str(k), s) for k, s in enumerate(scores["per_seed"]))]]
    extra = {k: scores.get(k) for k in ("frechet_to_real", "rmse_to_teacher") if scores.get(k) is not None}
    lines = [f"# {scores['samples']} ({scores['backend']})", "", to_markdown(rows, hide=())]
    lines += [f"- {k}: {v:.4g}" for k, v in extra.items()]
    return "\n".join(lines) + "\n"


def score_metrics(scores: dict) -> dict[str, float]:
    """The scores as flat MLflow metrics: total, quality, semantic, each dimension, distances."""
    metrics = {key: scores[key] for key in ("total", "quality", "semantic", "frechet_to_real", "rmse_to_teacher")
               if isinstance(scores.get(key), (int, float))}
    metrics.update({f"dim/{name}": value for name, value in scores["dimensions"].items()})
    return metrics


def _tinybench_set(cfg: dict, point: Path, name: str) -> dict:
    samples = layout.require(layout.samples_dir(point, name), "sample")
    videos = load_tensors(samples / layout.SAMPLES)["videos"]
    meta = read_json(samples / "meta.json")
    prompts, seeds = meta["prompts"], len(meta["seeds"])
    if len(videos) != len(prompts) * seeds:
        raise DCMError(f"{samples}: {len(videos)} videos but {len(prompts)} prompts x {seeds} seeds in meta.json")
    scores = _tinybench(cfg, videos, prompts, seeds)
    scores.update(_teacher_rmse(cfg, videos, layout.seed_slices(len(prompts), seeds)))
    return {**scores, "prompts": len(prompts), "seeds": seeds, "videos": len(videos)}


def run(cfg: dict, method: str, steps: int) -> None:
    name, point = layout.sample_set(method, steps), layout.own_point(cfg)
    backend = backbone_spec(cfg).benchmark
    if backend == "vbench":
        vbench_python(cfg)
    with stage_output(layout.eval_dir(point, name), cfg) as work:
        scores = _tinybench_set(cfg, point, name) if backend == "tinybench" else _vbench(cfg, method, steps, work)
        scores.update(backend=backend, samples=name, method=method, steps=steps)
        write_json(work / "scores.json", scores)
        tracking.current().log_metrics(score_metrics(scores), step=0)
        with atomic_path(work / "scores.md") as tmp:
            tmp.write_text(_markdown(scores))
