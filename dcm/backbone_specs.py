"""What each backbone declares to the rest of the pipeline, torch-free: how its teacher is obtained, where its
prompts come from and which benchmark scores it. Config validation, the dataset, teacher and evaluate stages
read this instead of comparing backbone names."""

from __future__ import annotations

from dataclasses import dataclass

from dcm.errors import DCMError


@dataclass(frozen=True)
class BackboneSpec:
    """The pipeline-facing facts of one backbone."""

    pretrained: bool  # True: the teacher is a diffusers pipeline at backbone.pretrained; False: trained here
    prompts: str  # "procedural": captions of the procedural clips; "prompt_file": the lines of data.prompt_file
    benchmark: str  # "tinybench" (known ground truth) or "vbench" (its own environment, GPU nodes)


BACKBONES = {
    "tiny": BackboneSpec(pretrained=False, prompts="procedural", benchmark="tinybench"),
    "wan": BackboneSpec(pretrained=True, prompts="prompt_file", benchmark="vbench"),
    "hunyuan_video": BackboneSpec(pretrained=True, prompts="prompt_file", benchmark="vbench"),
    "cogvideox": BackboneSpec(pretrained=True, prompts="prompt_file", benchmark="vbench"),
}


def backbone_spec(cfg: dict) -> BackboneSpec:
    """The spec of the config's backbone.name, or an error listing the known names."""
    name = cfg["backbone"]["name"]
    if name not in BACKBONES:
        raise DCMError(f"backbone.name={name!r} is unknown; known: {', '.join(BACKBONES)}")
    return BACKBONES[name]
