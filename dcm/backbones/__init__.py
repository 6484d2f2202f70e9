"""Backbone adapters; `load_backbone` is the only place that maps a config name to a class."""

from __future__ import annotations

from pathlib import Path

from dcm.backbones.base import Backbone
from dcm.errors import DCMError


def load_backbone(cfg: dict, teacher_dir: str | Path) -> Backbone:
    """The adapter for `cfg['backbone']['name']`, set up from the teacher saved in `teacher_dir`."""
    name = cfg["backbone"]["name"]
    if name == "tiny":
        from dcm.backbones.tiny import TinyBackbone

        return TinyBackbone.from_directory(cfg["backbone"], teacher_dir)
    raise DCMError(f"backbone.name={name!r} has no adapter in this version; available: tiny")


__all__ = ["Backbone", "load_backbone"]
