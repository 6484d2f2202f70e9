"""What the teacher's pairs cost for a real-backbone config, cached or online (trajectories.mode): bytes stored
per training video and for the config's trajectory count (fp16 latent states and the prompt embedding, shaped
as the stages write them), and teacher forwards, with minutes where a per-video figure is stated."""

from __future__ import annotations

import json

from dcm.memory_plan import REAL_CONFIGS, SPECS

STORED_BYTES = 2  # fp16: how write_shard stores latent states and prompt embeddings
#: minutes for one teacher video of 50 steps at the paper's size, where a figure is stated (not measured here):
#: HunyuanVideo ~75 min (issue 12's estimate, one A100, 129 frames at 720p)
TEACHER_MINUTES_PER_VIDEO = {"hunyuan_video": 75.0}
REFERENCE_STEPS = 50  # the step count TEACHER_MINUTES_PER_VIDEO is stated for


def state_elements(cfg: dict) -> int:
    """Elements of one latent state (C, T, H, W) of the config's video size."""
    b = cfg["backbone"]
    spec = SPECS[b["name"]]
    frames = (b["frames"] - 1) // spec.temporal_compression + 1
    return spec.latent_channels * frames * (b["height"] // spec.spatial_compression) * (
        b["width"] // spec.spatial_compression)


def condition_elements(cfg: dict) -> int:
    """Elements of one cached prompt embedding: text tokens x the first text encoder's width, plus the adapter's
    padding (HunyuanVideo packs its mask and CLIP vector in)."""
    from dcm.backbones import pretrained_adapter

    b = cfg["backbone"]
    spec = SPECS[b["name"]]
    encoder = json.loads((REAL_CONFIGS / spec.text_encoders[0]).read_text())
    width = encoder.get("hidden_size") or encoder["d_model"]
    length = b.get("max_sequence_length") or pretrained_adapter(b["name"]).default_max_sequence_length
    rows, columns = spec.condition_padding
    return (length + rows) * (width + columns)


def teacher_cost(cfg: dict) -> dict:
    """Per mode: bytes per video and for the config's trajectories, teacher forwards per video (cached: the whole
    ODE, once) or per training sample (online: one guided step), the forwards of one SemE + DetE run, and the
    minutes of those forwards where TEACHER_MINUTES_PER_VIDEO states a figure."""
    from dcm.config import trajectory_count
    from dcm.pipelines import guidance

    steps, videos = cfg["schedule"]["num_steps"], trajectory_count(cfg)
    per_velocity = 2 if guidance(cfg["backbone"])["kind"] == "cfg" else 1  # classifier-free guidance: 2 forwards
    state, condition = state_elements(cfg) * STORED_BYTES, condition_elements(cfg) * STORED_BYTES
    minutes = TEACHER_MINUTES_PER_VIDEO.get(cfg["backbone"]["name"])
    per_forward = None if minutes is None else minutes / (REFERENCE_STEPS * per_velocity)
    samples = sum(cfg[stage]["steps"] * cfg[stage]["batch_size"] for stage in ("seme", "dete"))

    def mode(states: int, forwards: int, run_forwards: int) -> dict:
        per_video = states * state + condition
        return {"bytes_per_video": per_video, "bytes_total": per_video * videos, "teacher_forwards": forwards,
                "teacher_minutes": None if per_forward is None else forwards * per_forward,
                "run_teacher_forwards": run_forwards}

    return {"videos": videos, "state_bytes": state, "condition_bytes": condition,
            "cached": mode(steps + 1, steps * per_velocity, videos * steps * per_velocity),
            "online": mode(1, per_velocity, samples * per_velocity)}
