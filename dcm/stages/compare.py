"""Stage `compare`: distance of every sample set to the teacher's full-step samples from the same noise
(per-pixel RMSE, teacher-feature distance, object-centroid distance; the spread of the first two across
noise seeds) and prompt following, as JSON and a Markdown table."""

from __future__ import annotations

import numpy as np
import torch

from dcm.errors import DCMError
from dcm.eval.distance import centroid_distance, feature_distance, per_video_rmse, pixel_rmse
from dcm.io import atomic_path, load_tensors, read_json, write_json
from dcm import layout
from dcm.backbones import load_teacher
from dcm.methods import compare_sets
from dcm.outputs import stage_output
from dcm.report.tables import to_markdown
from dcm.schedule import PhaseSchedule

FEATURE_STRIDE = 1


def _teacher_features(backbone, teacher, latents, cond, sigma):
    with torch.no_grad():
        return backbone.features(teacher, latents, sigma.expand(len(latents)), cond, FEATURE_STRIDE)


def run(cfg: dict) -> None:
    backbone, teacher = load_teacher(cfg)
    run_dir = layout.run_dir(cfg)
    samples = layout.require(run_dir / "samples", "sample")
    reference_name = layout.sample_set("teacher", cfg["sampling"]["teacher_steps"])
    reference = load_tensors(layout.require(samples / reference_name / layout.SAMPLES, "sample"))
    meta = read_json(samples / reference_name / "meta.json")
    cond = backbone.encode_prompts(meta["prompts"] * len(meta["seeds"]))
    sigma = PhaseSchedule.from_config(cfg).sigmas[1].float()  # the teacher reads a clean video best at its lowest non-zero noise level
    ref_features = _teacher_features(backbone, teacher, reference["latents"], cond, sigma)
    rows = []
    for directory in (layout.require(samples / name, "sample") for name in compare_sets(cfg)):
        tensors = load_tensors(directory / layout.SAMPLES)
        if tensors["videos"].shape != reference["videos"].shape:
            raise DCMError(f"{directory} holds {tuple(tensors['videos'].shape)} videos, the reference "
                           f"{reference_name} {tuple(reference['videos'].shape)}: resample with the same config")
        following_path = directory / "prompt_following.json"
        following = read_json(following_path) if following_path.is_file() else {}
        features = _teacher_features(backbone, teacher, tensors["latents"], cond, sigma)
        per_seed = layout.seed_slices(len(meta["prompts"]), len(meta["seeds"]))
        rmse = [pixel_rmse(tensors["videos"][s], reference["videos"][s]) for s in per_seed]
        feature = [feature_distance([f[s] for f in features], [f[s] for f in ref_features]) for s in per_seed]
        rows.append({
            "samples": directory.name, **{k: read_json(directory / "meta.json")[k] for k in ("method", "steps")},
            "pixel_rmse": pixel_rmse(tensors["videos"], reference["videos"]),
            "pixel_rmse_seed_std": float(np.std(rmse)),
            "feature_distance": feature_distance(features, ref_features),
            "feature_distance_seed_std": float(np.std(feature)),
            "centroid_px": centroid_distance(tensors["videos"], reference["videos"]),
            **{f"{k}_acc": following.get(k) for k in ("colour", "shape", "direction")},
            "displacement_px": following.get("mean_displacement")})
    for row in rows:  # paired: same noise, same prompt, against the teacher at the same step count
        baseline = samples / layout.sample_set("teacher", row["steps"]) / layout.SAMPLES
        if row["method"] != "teacher" and baseline.is_file():
            ours = per_video_rmse(load_tensors(samples / row["samples"] / layout.SAMPLES)["videos"],
                                  reference["videos"])
            theirs = per_video_rmse(load_tensors(baseline)["videos"], reference["videos"])
            row["closer_than_teacher_same_steps"] = float((ours < theirs).float().mean())
    with stage_output(run_dir / "compare", cfg) as work:
        write_json(work / "distances.json", {"reference": reference_name, "rows": rows})
        with atomic_path(work / "distances.md") as tmp:
            tmp.write_text(to_markdown(rows, hide=()))

