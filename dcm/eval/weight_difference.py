"""Normalised L1 distance between the weights of two fully trained experts, per tensor and per layer group
(the analysis behind the paper's Fig. 5 and the choice of what the detail expert re-learns)."""

from __future__ import annotations

import torch

from dcm.backbones.base import Backbone

TIMESTEP = "timestep-dependent (Psi)"
ATTENTION = "attention linears (Lambda)"
OTHER = "other"


def layer_group(name: str, backbone: Backbone) -> str:
    """Which of Psi, Lambda or other a parameter belongs to, by the backbone's own layer names."""
    if any(name == n or name.startswith(n + ".") for n in backbone.timestep_layer_names):
        return TIMESTEP
    module = name.rsplit(".", 1)[0]
    if any(module.endswith("." + n) for n in backbone.attention_linear_names):
        return ATTENTION
    return OTHER


def normalised_l1(a: torch.Tensor, b: torch.Tensor) -> float:
    """sum |a - b| / sum |a|."""
    return float((a.float() - b.float()).abs().sum() / a.float().abs().sum().clamp_min(1e-12))


def weight_difference(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor], backbone: Backbone) -> dict:
    """Per-tensor and per-group normalised L1 distances between two state dicts of one architecture."""
    if first.keys() != second.keys():
        raise ValueError(f"the experts differ in parameters: {sorted(first.keys() ^ second.keys())[:4]}")
    rows = [{"name": k, "group": layer_group(k, backbone), "numel": first[k].numel(),
             "normalised_l1": normalised_l1(first[k], second[k])} for k in sorted(first)]
    groups = {}
    for group in (TIMESTEP, ATTENTION, OTHER):
        keys = [r["name"] for r in rows if r["group"] == group]
        if keys:
            num = sum(float((first[k].float() - second[k].float()).abs().sum()) for k in keys)
            den = sum(float(first[k].float().abs().sum()) for k in keys)
            groups[group] = {"normalised_l1": num / den, "tensors": len(keys),
                             "params": sum(first[k].numel() for k in keys)}
    return {"tensors": rows, "groups": groups}
