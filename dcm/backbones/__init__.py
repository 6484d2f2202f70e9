"""Backbone adapters; `load_backbone` is the only place that maps a config name to a class."""

from __future__ import annotations

import importlib
from pathlib import Path

import torch

from dcm import layout
from dcm.backbone_specs import backbone_spec
from dcm.backbones.base import Backbone
from dcm.errors import DCMError

#: backbone.name -> (module, class) of its adapter; the pretrained ones read backbone.pretrained
PRETRAINED_ADAPTERS = {
    "wan": ("dcm.backbones.wan", "WanBackbone"),
    "hunyuan_video": ("dcm.backbones.hunyuan_video", "HunyuanVideoBackbone"),
    "cogvideox": ("dcm.backbones.cogvideox", "CogVideoXBackbone"),
}
AVAILABLE = ("tiny", *PRETRAINED_ADAPTERS)


def pretrained_adapter(name: str) -> type:
    """The adapter class of a pretrained backbone name, or an error listing the available names."""
    if name not in PRETRAINED_ADAPTERS:
        raise DCMError(f"backbone.name={name!r} has no adapter; available: {', '.join(AVAILABLE)}")
    module, cls = PRETRAINED_ADAPTERS[name]
    return getattr(importlib.import_module(module), cls)


def load_backbone(cfg: dict, teacher_dir: str | Path) -> Backbone:
    """The adapter for `cfg['backbone']['name']`, set up from the teacher saved in `teacher_dir` (for real
    backbones: checked against the pointer file the teacher stage wrote there)."""
    name = cfg["backbone"]["name"]
    if not backbone_spec(cfg).pretrained:
        from dcm.backbones.tiny import TinyBackbone

        return TinyBackbone.from_directory(cfg["backbone"], teacher_dir)
    from dcm.backbones.diffusers_backbone import read_pointer

    adapter = pretrained_adapter(name)
    read_pointer(teacher_dir, cfg["backbone"]["pretrained"])
    return adapter(cfg["backbone"])


def teacher_network_dir(cfg: dict) -> Path:
    """Where the teacher stage saves (or points to) the teacher network."""
    return layout.run_dir(cfg) / "teacher" / layout.NETWORK


def load_teacher(cfg: dict) -> tuple[Backbone, torch.nn.Module]:
    """The backbone adapter and the frozen teacher network in eval mode."""
    directory = layout.require(teacher_network_dir(cfg), "teacher")
    backbone = load_backbone(cfg, directory)
    teacher = backbone.load_network(directory).eval().requires_grad_(False)
    return backbone, teacher


__all__ = ["Backbone", "load_backbone", "load_teacher", "pretrained_adapter", "teacher_network_dir", "AVAILABLE"]
