"""Stage `evaluate`: score one sample set with tinybench (tiny backbone) or VBench (real backbones): per-dimension
means, Quality / Semantic / Total, the same per sampling seed, and (tinybench) the Frechet distance of per-video
descriptors to real clips of the same prompts; plus the per-video RMSE to the teacher's samples from the same
noise when those exist. Writes eval/<method>-<steps>/scores.{json,md}."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import torch

from dcm import layout, tracking
from dcm.backbone_specs import backbone_spec
from dcm.data.procedural import Factors, make_clips
from dcm.errors import DCMError
from dcm.eval import tinybench, vbench
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
            "frechet_to_real": tinybench.frechet_distance(descriptors, real_descriptors),
            "frechet_descriptor": list(tinybench.DESCRIPTOR), "real_clips": len(real)}


def _vbench(cfg: dict, videos: torch.Tensor, prompts: list[str], work: Path) -> dict:
    settings = cfg["evaluate"]
    python = settings["vbench_python"]
    vbench.export_frames(videos.cpu().numpy(), prompts, work / "vbench" / "frames")
    vbench.encode_mp4(python, work / "vbench" / "frames", work / "vbench" / "videos", settings["vbench_fps"])
    results = vbench.run_vbench(work / "vbench" / "videos", work / "vbench" / "results", python,
                                settings["vbench_dimensions"])
    means, per_video = vbench.read_eval_results(results)
    return {"dimensions": means, **vbench.final_scores(means),
            "per_seed": [{"dimensions": m, **vbench.final_scores(m)} for m in vbench.per_seed_means(per_video)],
            "vbench_results": str(results.relative_to(work))}


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


def run(cfg: dict, method: str, steps: int) -> None:
    name, point = layout.sample_set(method, steps), layout.own_point(cfg)
    samples = layout.require(layout.samples_dir(point, name), "sample")
    videos = load_tensors(samples / layout.SAMPLES)["videos"]
    meta = read_json(samples / "meta.json")
    prompts, seeds = meta["prompts"], len(meta["seeds"])
    if len(videos) != len(prompts) * seeds:
        raise DCMError(f"{samples}: {len(videos)} videos but {len(prompts)} prompts x {seeds} seeds in meta.json")
    backend = backbone_spec(cfg).benchmark
    if backend == "vbench" and not cfg["evaluate"]["vbench_python"]:
        raise DCMError(f"evaluate.vbench_python is not set: backbone.name={cfg['backbone']['name']} is scored with "
                       "VBench, which needs its own interpreter (scripts/vbench/README.md)")
    with stage_output(layout.eval_dir(point, name), cfg) as work:
        scores = _tinybench(cfg, videos, prompts, seeds) if backend == "tinybench" else \
            _vbench(cfg, videos, prompts, work)
        scores.update(_teacher_rmse(cfg, videos, layout.seed_slices(len(prompts), seeds)))
        scores.update(backend=backend, samples=name, method=method, steps=steps, prompts=len(prompts), seeds=seeds,
                      videos=len(videos))
        write_json(work / "scores.json", scores)
        tracking.current().log_metrics(score_metrics(scores), step=0)
        with atomic_path(work / "scores.md") as tmp:
            tmp.write_text(_markdown(scores))
