"""Backbone adapters; `load_backbone` is the only place that maps a config name to a class."""

from __future__ import annotations

import importlib
from pathlib import Path

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
    if name == "tiny":
        from dcm.backbones.tiny import TinyBackbone

        return TinyBackbone.from_directory(cfg["backbone"], teacher_dir)
    from dcm.backbones.diffusers_backbone import read_pointer

    adapter = pretrained_adapter(name)
    read_pointer(teacher_dir, cfg["backbone"]["pretrained"])
    return adapter(cfg["backbone"])


__all__ = ["Backbone", "load_backbone", "pretrained_adapter", "AVAILABLE"]
