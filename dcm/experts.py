"""Semantic and detail experts (Sec. 3.2-3.3): the parameter-efficient detail expert (new copies of the
timestep-dependent layers + LoRA on attention linears), switched in by flags."""

from __future__ import annotations

import contextlib
import copy
from typing import Callable

import torch
from torch import nn

from dcm.backbones.base import RECOMPUTE_STATE, Backbone

DETAIL_ADAPTER = "detail"

#: a network as the ODE sees it: (x_t, sigma, cond) -> the flow velocity dx/dsigma (not a "denoiser":
#: in EDM and k-diffusion that name returns the clean sample)
VelocityFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def _resolve(root: nn.Module, dotted: str) -> tuple[nn.Module, str]:
    *path, leaf = dotted.split(".")
    for name in path:
        root = getattr(root, name)
    return root, leaf


class DetailLayers(nn.Module):
    """Fresh copies of a network's timestep-dependent layers (Psi), swapped in while the detail expert runs."""

    def __init__(self, net: nn.Module, names: tuple[str, ...]):
        super().__init__()
        self.names = tuple(names)
        self.layers = nn.ModuleDict()
        self.params = nn.ParameterDict()
        for name in self.names:
            parent, leaf = _resolve(net, name)
            original = getattr(parent, leaf)
            key = name.replace(".", "__")
            if isinstance(original, nn.Parameter):
                self.params[key] = nn.Parameter(original.detach().clone())
            else:
                self.layers[key] = copy.deepcopy(original)
        for p in self.parameters():
            p.requires_grad_(True)
        # a plain tuple, not submodules: the LoRA layers belong to `net`'s state dict, not to this one's
        self.adapters = tuple(lora_layers(net))

    def _swap(self, net: nn.Module) -> None:
        for name in self.names:
            parent, leaf = _resolve(net, name)
            key = name.replace(".", "__")
            store = self.params if key in self.params else self.layers
            mine, theirs = store[key], getattr(parent, leaf)
            setattr(parent, leaf, mine)
            store[key] = theirs

    def context_parallel_plan(self, plan: dict) -> dict:
        """The entries of a network's context-parallel plan (diffusers' cp_plan) for the layers copied here, named
        as submodules of this module."""
        return {f"layers.{name.replace('.', '__')}": entry for name, entry in plan.items()
                if name.replace(".", "__") in self.layers}

    def install(self, net: nn.Module) -> None:
        """Put the copied layers into `net` for good (export): the originals move into this module."""
        self._swap(net)

    def _enable_lora(self, enabled: bool) -> None:
        # peft's layer forward reads only this flag; diffusers' enable/disable_adapters walk every module of
        # the network, check the peft version and reset requires_grad on each call, which a per-step switch
        # cannot afford
        for layer in self.adapters:
            layer._disable_adapters = not enabled

    @contextlib.contextmanager
    def active(self, net: nn.Module):
        """Within the block, `net` (the network these layers were built on) runs as the detail expert: copied
        layers in place, LoRA enabled, by flags only, so the LoRA weights keep their requires_grad. While
        active, the network carries RECOMPUTE_STATE, so that blocks checkpointed here are recomputed as the
        detail expert in backward; re-entering while active (such a recomputation inside the block) changes
        nothing."""
        if getattr(net, RECOMPUTE_STATE, None) is not None:
            yield
            return
        self._swap(net)
        self._enable_lora(True)
        setattr(net, RECOMPUTE_STATE, lambda: self.active(net))
        try:
            yield
        finally:
            delattr(net, RECOMPUTE_STATE)
            self._enable_lora(False)
            self._swap(net)


def lora_layers(net: nn.Module) -> list[nn.Module]:
    """The peft adapter layers of `net`, in module order."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [m for m in net.modules() if isinstance(m, BaseTunerLayer)]


class Expert(nn.Module):
    """A student network, optionally acting as the parameter-efficient detail expert on shared weights."""

    def __init__(self, net: nn.Module, detail: DetailLayers | None = None):
        super().__init__()
        self.net = net
        self.detail = detail

    def forward(self, backbone: Backbone, x: torch.Tensor, sigma: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Flow velocity of this expert (call the module, so that sharding and replication hooks run)."""
        if self.detail is None:
            return backbone.predict(self.net, x, sigma, cond)
        with self.detail.active(self.net):
            return backbone.predict(self.net, x, sigma, cond)

    def velocity_fn(self, backbone: Backbone) -> VelocityFn:
        """This expert as a plain (x, sigma, cond) -> velocity function."""
        return lambda x, sigma, cond: self(backbone, x, sigma, cond)

    def phase(self) -> contextlib.AbstractContextManager:
        """Hold this expert active for a block of calls (a whole sampling phase): the detail expert's layers and
        LoRA flags switch once, and each call inside finds them in place."""
        return self.detail.active(self.net) if self.detail is not None else contextlib.nullcontext()


def attach_detail_expert(net: nn.Module, backbone: Backbone, rank: int, alpha: float) -> Expert:
    """Freeze `net` (the trained SemE), add LoRA to its attention linears and copies of its timestep layers;
    only those new parameters train (Sec. 3.3)."""
    from peft import LoraConfig  # imported here: it costs seconds, and most stages never build a detail expert

    net.requires_grad_(False)
    net.add_adapter(LoraConfig(r=rank, lora_alpha=alpha, target_modules=list(backbone.attention_linear_names),
                               init_lora_weights=True), adapter_name=DETAIL_ADAPTER)
    net.disable_adapters()  # the semantic expert is the default; peft also freezes LoRA here, so after it:
    for name, p in net.named_parameters():
        p.requires_grad_("lora_" in name)
    return Expert(net, DetailLayers(net, backbone.timestep_layer_names))


def detail_state_dict(expert: Expert) -> dict[str, torch.Tensor]:
    """The parameters the detail expert adds (LoRA and copied layers): all a PE checkpoint must store."""
    return {k: v for k, v in expert.state_dict().items() if "lora_" in k or k.startswith("detail.")}
