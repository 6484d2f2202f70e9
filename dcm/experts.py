"""Semantic and detail experts (Sec. 3.2-3.3): the parameter-efficient detail expert (new copies of the
timestep-dependent layers + LoRA on attention linears), switched in by LoRA flags in training and with its LoRA
merged for a whole sampling phase."""

from __future__ import annotations

import contextlib
import copy
from typing import Callable

import torch
from torch import nn

from dcm.backbones.base import RECOMPUTE_STATE, Backbone
from dcm.errors import DCMError

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
        # plain tuples, not submodules: the LoRA layers belong to `net`'s state dict, not to this one's
        self.adapters = tuple(lora_layers(net))
        # for the inference paths: each adapter's (base layer, LoRA A, LoRA B) parameter dicts, and the submodule
        # dict and key that hold it in `net`
        self._bases = tuple(a.get_base_layer() for a in self.adapters)
        self._slots = tuple((base._parameters, a.lora_A[DETAIL_ADAPTER]._parameters,
                             a.lora_B[DETAIL_ADAPTER]._parameters) for a, base in zip(self.adapters, self._bases))
        homes = {id(m): (parent._modules, leaf) for parent in net.modules() for leaf, m in parent._modules.items()}
        self._homes = tuple(homes[id(a)] for a in self.adapters)
        # each copied layer's two homes, (dict in `net`, key, dict here, key): swapped by direct dict writes, which
        # cost a fraction of attribute lookups and Module.__setattr__ on every training step and sampling phase
        self._copied = tuple(self._homes_of(net, name) for name in self.names)

    def _homes_of(self, net: nn.Module, name: str) -> tuple[dict, str, dict, str]:
        parent, leaf = _resolve(net, name)
        key = name.replace(".", "__")
        if key in self.params:
            return parent._parameters, leaf, self.params._parameters, key
        return parent._modules, leaf, self.layers._modules, key

    def _swap(self) -> None:
        for theirs, leaf, mine, key in self._copied:
            theirs[leaf], mine[key] = mine[key], theirs[leaf]

    def context_parallel_plan(self, plan: dict) -> dict:
        """The entries of a network's context-parallel plan (diffusers' cp_plan) for the layers copied here, named
        as submodules of this module."""
        return {f"layers.{name.replace('.', '__')}": entry for name, entry in plan.items()
                if name.replace(".", "__") in self.layers}

    def install(self) -> None:
        """Put the copied layers into `net` for good (export): the originals move into this module."""
        self._swap()

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
        self._swap()
        self._enable_lora(True)
        setattr(net, RECOMPUTE_STATE, lambda: self.active(net))
        try:
            yield
        finally:
            delattr(net, RECOMPUTE_STATE)
            self._enable_lora(False)
            self._swap()

    def _merged_weights(self) -> list[torch.Tensor]:
        """Each LoRA-targeted weight with its LoRA delta added (peft's get_delta_weight), made once and kept while
        neither the weights nor the LoRA factors change (same tensors, same version counters). They are kept as
        non-persistent buffers, so that they move with this module (`.to()`, the latency stage's parking on the
        CPU) and stay out of every state dict."""
        key = tuple((id(t), t._version) for slot in self._slots for t in (slot[0]["weight"], slot[1]["weight"],
                                                                            slot[2]["weight"]))
        if getattr(self, "_merged_key", None) != key:
            with torch.no_grad():
                for i, (layer, slot) in enumerate(zip(self.adapters, self._slots)):
                    weight = slot[0]["weight"]
                    self.register_buffer(f"merged_{i}", weight + layer.get_delta_weight(DETAIL_ADAPTER).to(weight.dtype),
                                         persistent=False)
            self._merged_key = key
        return [self._buffers[f"merged_{i}"] for i in range(len(self.adapters))]

    @contextlib.contextmanager
    def _unwrapped(self, weights: list[torch.Tensor]):
        """Within the block, each of peft's LoRA wrappers is replaced in the network by its base layer carrying
        `weights`, so a call costs what the plain network's does; wrappers and weights are put back after. The
        module and parameter dicts are written directly: Module.__setattr__ would cost more per switch than a
        tiny network's forward."""
        originals = [slot[0]["weight"] for slot in self._slots]
        for (modules, leaf), base, slot, weight in zip(self._homes, self._bases, self._slots, weights):
            slot[0]["weight"] = weight
            modules[leaf] = base
        try:
            yield
        finally:
            for (modules, leaf), layer, slot, weight in zip(self._homes, self.adapters, self._slots, originals):
                modules[leaf] = layer
                slot[0]["weight"] = weight

    def plain(self) -> contextlib.AbstractContextManager:
        """Within the block, the network runs as the semantic expert without peft's wrappers (inference)."""
        return self._unwrapped([slot[0]["weight"] for slot in self._slots])

    @contextlib.contextmanager
    def merged(self, net: nn.Module):
        """Within the block, `net` runs as the detail expert for inference at the plain network's cost per call:
        copied layers in place and each LoRA-targeted layer replaced by its base layer carrying a merged copy of
        its weight (`_merged_weights`); the shared weights are put back untouched afterwards (not subtracted
        back, which would round them). The copies cost the LoRA-targeted weights' memory once more; calls inside
        the block find the expert in place."""
        merged = self._merged_weights()
        self._swap()
        setattr(net, RECOMPUTE_STATE, contextlib.nullcontext)
        try:
            with self._unwrapped(merged):
                yield
        finally:
            delattr(net, RECOMPUTE_STATE)
            self._swap()


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
        """Hold this expert in place for a block of inference calls (a whole sampling phase): a parameter-efficient
        detail expert switches in once, its LoRA merged into a copy of the weights it adapts (DetailLayers.merged),
        so each call inside costs what the plain network's does."""
        return self.detail.merged(self.net) if self.detail is not None else contextlib.nullcontext()

    def semantic_phase(self, semantic: "Expert") -> contextlib.AbstractContextManager:
        """The block in which `semantic` runs its sampling phase: without the LoRA wrappers this detail expert
        put on it when the two share one network (a parameter-efficient DetE), else as it is."""
        if self.detail is not None and semantic.net is self.net:
            return self.detail.plain()
        return contextlib.nullcontext()


def copied_layer_names(backbone: Backbone, names: list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """The timestep layers a parameter-efficient DetE copies (`dete.timestep_layers`): `names`, each one of the
    backbone's timestep layers or inside one, or all of the backbone's when None."""
    if names is None:
        return tuple(backbone.timestep_layer_names)
    for name in names:
        if not any(name == own or name.startswith(own + ".") for own in backbone.timestep_layer_names):
            raise DCMError(f"dete.timestep_layers: {name!r} is not one of the backbone's timestep-dependent layers "
                           f"nor inside one ({', '.join(backbone.timestep_layer_names)})")
    return tuple(names)


def attach_detail_expert(net: nn.Module, backbone: Backbone, rank: int, alpha: float,
                         timestep_layers: list[str] | tuple[str, ...] | None = None) -> Expert:
    """Freeze `net` (the trained SemE), add LoRA to its attention linears and copies of its timestep layers (those
    of copied_layer_names); only those new parameters train (Sec. 3.3)."""
    from peft import LoraConfig  # imported here: it costs seconds, and most stages never build a detail expert

    names = copied_layer_names(backbone, timestep_layers)
    for name in names:
        try:
            parent, leaf = _resolve(net, name)
            getattr(parent, leaf)
        except AttributeError as err:
            raise DCMError(f"dete.timestep_layers: the network has no layer {name!r}") from err

    net.requires_grad_(False)
    net.add_adapter(LoraConfig(r=rank, lora_alpha=alpha, target_modules=list(backbone.attention_linear_names),
                               init_lora_weights=True), adapter_name=DETAIL_ADAPTER)
    net.disable_adapters()  # the semantic expert is the default; peft also freezes LoRA here, so after it:
    for name, p in net.named_parameters():
        p.requires_grad_("lora_" in name)
    return Expert(net, DetailLayers(net, names))


def detail_state_dict(expert: Expert) -> dict[str, torch.Tensor]:
    """The parameters the detail expert adds (LoRA and copied layers): all a PE checkpoint must store."""
    return {k: v for k, v in expert.state_dict().items() if "lora_" in k or k.startswith("detail.")}
