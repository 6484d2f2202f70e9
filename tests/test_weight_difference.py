"""Normalised L1 weight distance and its layer groups."""

import pytest
import torch

from dcm.eval.weight_difference import ATTENTION, OTHER, TIMESTEP, layer_group, normalised_l1, weight_difference


def test_normalised_l1_hand_value():
    assert normalised_l1(torch.tensor([1.0, -2.0]), torch.tensor([1.5, -2.0])) == pytest.approx(0.5 / 3)


def test_groups_follow_the_backbone_names(backbone):
    assert layer_group("condition_embedder.time_embedder.linear_1.weight", backbone) == TIMESTEP
    assert layer_group("scale_shift_table", backbone) == TIMESTEP
    assert layer_group("blocks.0.attn1.to_q.weight", backbone) == ATTENTION
    assert layer_group("blocks.0.attn2.to_out.0.bias", backbone) == ATTENTION
    assert layer_group("blocks.0.ffn.net.0.proj.weight", backbone) == OTHER


def test_only_changed_group_differs(backbone, net):
    first = {k: v.clone() for k, v in net.state_dict().items()}
    second = {k: v.clone() for k, v in first.items()}
    second["blocks.0.attn1.to_q.weight"] *= 2
    groups = weight_difference(first, second, backbone)["groups"]
    assert groups[TIMESTEP]["normalised_l1"] == 0 and groups[OTHER]["normalised_l1"] == 0
    assert groups[ATTENTION]["normalised_l1"] > 0
