"""What each backbone's stock diffusers pipeline does by default, torch-free: its scheduler (class, the
published checkpoint's scheduler_config.json, how the pipeline calls set_timesteps), its guidance and its frame
rate. The grid (dcm/grids.py), the guided teacher velocity and VBench's mp4s read it from here."""

from __future__ import annotations

from dataclasses import dataclass, field

from dcm.errors import DCMError

GUIDANCE_KINDS = ("embedded", "cfg", "none")


@dataclass(frozen=True)
class Pipeline:
    """One backbone's pipeline defaults; `set_timesteps` is "sigmas" when the pipeline passes
    sigmas=linspace(1, 0, N + 1)[:-1], "steps" when it passes only the number of steps."""

    scheduler: str
    scheduler_config: dict = field(default_factory=dict)
    shift_key: str | None = None
    set_timesteps: str = "steps"
    guidance: dict = field(default_factory=dict)
    guidance_kinds: tuple[str, ...] = ("none",)
    fps: float = 8.0
    source: str = ""


PIPELINES = {
    # no pipeline: the project's own grid, kept as it was (diffusers' default set_timesteps(N), see grids.py)
    "tiny": Pipeline("FlowMatchEulerDiscreteScheduler", {"num_train_timesteps": 1000}, "shift",
                     guidance={"kind": "none", "scale": 1.0, "negative_prompt": ""}, source="this repository"),
    # hunyuanvideo-community/HunyuanVideo scheduler/scheduler_config.json; HunyuanVideoPipeline.__call__
    # defaults: sigmas=linspace(1, 0, N + 1)[:-1], guidance_scale=6.0 (embedded), 129 frames at 24 fps
    "hunyuan_video": Pipeline("FlowMatchEulerDiscreteScheduler", {"num_train_timesteps": 1000, "shift": 7.0},
                              "shift", "sigmas", {"kind": "embedded", "scale": 6.0, "negative_prompt": ""},
                              ("embedded",), 24.0, "HunyuanVideoPipeline, hunyuanvideo-community/HunyuanVideo"),
    # Wan-AI/Wan2.1-T2V-1.3B-Diffusers scheduler/scheduler_config.json (UniPC on flow sigmas, shift 3);
    # WanPipeline.__call__: set_timesteps(N), guidance_scale=5.0, negative_prompt "" (None -> ""), 16 fps
    "wan": Pipeline("UniPCMultistepScheduler", {
        "num_train_timesteps": 1000, "beta_schedule": "linear", "beta_start": 0.0001, "beta_end": 0.02,
        "prediction_type": "flow_prediction", "use_flow_sigmas": True, "flow_shift": 3.0, "solver_order": 2,
        "solver_type": "bh2", "predict_x0": True, "lower_order_final": True, "final_sigmas_type": "zero",
        "timestep_spacing": "linspace", "use_dynamic_shifting": False},
        "flow_shift", "steps", {"kind": "cfg", "scale": 5.0, "negative_prompt": ""}, ("cfg", "none"), 16.0,
        "WanPipeline, Wan-AI/Wan2.1-T2V-1.3B-Diffusers"),
    # THUDM/CogVideoX-2b scheduler/scheduler_config.json (DDIM, v-prediction, trailing spacing);
    # CogVideoXPipeline.__call__: set_timesteps(N), guidance_scale=6, negative_prompt "" (None -> ""), 8 fps
    "cogvideox": Pipeline("CogVideoXDDIMScheduler", {
        "num_train_timesteps": 1000, "beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012,
        "prediction_type": "v_prediction", "rescale_betas_zero_snr": True, "snr_shift_scale": 3.0,
        "timestep_spacing": "trailing", "set_alpha_to_one": True, "steps_offset": 0, "clip_sample": False},
        None, "steps", {"kind": "cfg", "scale": 6.0, "negative_prompt": ""}, ("cfg", "none"), 8.0,
        "CogVideoXPipeline, THUDM/CogVideoX-2b"),
}


def pipeline(name: str) -> Pipeline:
    """The pipeline defaults of backbone `name`."""
    if name not in PIPELINES:
        raise DCMError(f"backbone.name={name!r} has no pipeline defaults; known: {', '.join(PIPELINES)}")
    return PIPELINES[name]


def guidance(backbone_cfg: dict) -> dict:
    """backbone.guidance ({kind, scale, negative_prompt}) over the pipeline's defaults, checked against the kinds
    the backbone supports: embedded guidance for HunyuanVideo, classifier-free guidance for Wan and CogVideoX."""
    spec = pipeline(backbone_cfg["name"])
    resolved = {**spec.guidance, **(backbone_cfg.get("guidance") or {})}
    if resolved["kind"] not in spec.guidance_kinds:
        raise DCMError(f"backbone.guidance.kind={resolved['kind']!r} is not available for backbone.name="
                       f"{backbone_cfg['name']}; choose from {list(spec.guidance_kinds)}")
    if resolved["kind"] == "cfg" and resolved["scale"] < 1:
        raise DCMError(f"backbone.guidance.scale={resolved['scale']}: classifier-free guidance needs a scale >= 1")
    return resolved
