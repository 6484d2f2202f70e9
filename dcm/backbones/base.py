"""The small interface every teacher backbone offers to the method code (design.md, layer 4)."""

from __future__ import annotations

import contextlib
import types
from abc import ABC, abstractmethod
from pathlib import Path

import torch
import torch.utils.checkpoint
from torch import nn

from dcm import context_parallel, distributed
from dcm.errors import DCMError

#: names of `backbone.dtype` / `backbone.compute_dtype`
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def compute_dtype(backbone_cfg: dict) -> torch.dtype:
    """The dtype the forward runs in (`backbone.compute_dtype`, default `backbone.dtype`); float32 compute
    needs float32 storage, since frozen modules are not upcast."""
    storage = backbone_cfg.get("dtype", "float32")
    name = backbone_cfg.get("compute_dtype") or storage
    if name == "float32" and storage != "float32":
        raise DCMError(f"backbone.compute_dtype=float32 with backbone.dtype={storage}: frozen {storage} modules "
                       "cannot run in float32; use compute_dtype bfloat16 or dtype float32")
    return DTYPES[name]

def resolve_device(name: str) -> torch.device:
    """The torch device `backbone.device` names; `auto` is cuda when available, else cpu. Under torchrun
    each process takes the GPU of its local rank."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        return torch.device("cuda", distributed.local_rank())
    return torch.device(name)


#: attribute a network carries while something has switched its state (the detail expert): a zero-argument
#: callable giving the context that switches it again, so that a block recomputed in backward, after the switch
#: has ended, runs as it did in the forward
RECOMPUTE_STATE = "_dcm_recompute_state"


def _checkpoint_block(net: nn.Module, block: nn.Module, *args):
    """Run `block` of `net` under non-reentrant checkpointing, recomputed in the state `net` has now."""
    state = getattr(net, RECOMPUTE_STATE, None)
    return torch.utils.checkpoint.checkpoint(
        block.__call__, *args, use_reentrant=False,
        context_fn=lambda: (contextlib.nullcontext(), state() if state else contextlib.nullcontext()))


def configure_checkpointing(net: nn.Module, enabled: bool) -> nn.Module:
    """`net` with diffusers' per-block activation checkpointing on when `enabled` (backbone.gradient_checkpointing):
    each block's activations are recomputed in backward instead of stored, under the state the network had in
    the forward (RECOMPUTE_STATE). It acts only in forwards that record gradients, so sampling and no-grad
    targets run as before. The function is bound to `net`, so a deep copy checks its own state."""
    if enabled:
        net.enable_gradient_checkpointing(gradient_checkpointing_func=types.MethodType(_checkpoint_block, net))
    return net


class Backbone(ABC):
    """Adapter around one video diffusion transformer class and its prompt encoder and decoder.

    Everything above dcm/backbones talks to a teacher or student network only through these methods, so
    the same training and sampling code runs on the tiny teacher and on real models.
    """

    #: dotted names of the timestep-dependent layers the detail expert copies (Sec. 3.3, Psi)
    timestep_layer_names: tuple[str, ...] = ()
    #: module-name patterns of the attention linears that receive LoRA (Sec. 3.3, Lambda)
    attention_linear_names: tuple[str, ...] = ()
    #: attribute of the network holding its list of transformer blocks
    blocks_attribute: str = "blocks"
    #: dtype of the forward (autocast below float32); trainable weights stay float32 masters
    compute_dtype: torch.dtype = torch.float32
    #: backbone.name of this adapter: the key of its pipeline defaults and grid (dcm/pipelines.py, dcm/grids.py)
    name: str = "tiny"
    #: the teacher's guidance as its pipeline applies it, {kind, scale, negative_prompt} (dcm/pipelines.guidance)
    guidance: dict = {"kind": "none", "scale": 1.0, "negative_prompt": ""}
    #: diffusers' cp_plan for context parallelism (dcm/context_parallel.py); None: the network class's own
    context_parallel_plan: dict | None = None

    @property
    @abstractmethod
    def latent_shape(self) -> tuple[int, int, int, int]:
        """(channels, frames, height, width) of one latent video."""

    def predict(self, net: nn.Module, x: torch.Tensor, sigma: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Flow velocity v = dx/dsigma of `net` at noisy latents x (B, C, T, H, W) and levels sigma (B,), in x's
        dtype, computed under the backbone's autocast."""
        with self.autocast(_device_of(net)):
            return self.network_velocity(net, x, sigma, cond).to(x.dtype)

    @abstractmethod
    def network_velocity(self, net: nn.Module, x: torch.Tensor, sigma: torch.Tensor,
                         cond: torch.Tensor) -> torch.Tensor:
        """What `predict` returns, in any dtype; inputs go through `net_inputs`."""

    def autocast(self, device: torch.device):
        """torch.autocast to the compute dtype on `device` (nothing to do for float32 compute)."""
        if self.compute_dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=self.compute_dtype)

    @abstractmethod
    def encode_prompts(self, prompts: list[str]) -> torch.Tensor:
        """Prompt embeddings (B, L, D) for the network's cross-attention."""

    @abstractmethod
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """uint8 RGB video (B, T, H, W, 3) from latents."""

    @abstractmethod
    def load_network(self, directory: str | Path) -> nn.Module:
        """A network saved with `save_network` (or a diffusers checkpoint directory)."""

    def grid(self, num_steps: int, shift: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(sigmas, timesteps) over grid index 0..N as this backbone's pipeline scheduler builds them."""
        from dcm.grids import backbone_grid

        return tuple(torch.from_numpy(a) for a in backbone_grid(self.name, num_steps, shift))

    def model_timestep(self, sigma: torch.Tensor) -> torch.Tensor:
        """The network's timestep input at flow level sigma: 1000 sigma (diffusers' flow-matching convention)."""
        return sigma * 1000

    def tile_decoding(self) -> None:
        """Decode in tiles from now on (diffusers' vae.enable_tiling on real backbones; the tiny one has no VAE)."""

    def enable_context_parallel(self, module: nn.Module, mesh) -> None:
        """diffusers' context parallelism on the networks inside `module` over `mesh` (dcm/context_parallel.py)."""
        context_parallel.enable(module, mesh, self.context_parallel_plan)

    def release_text_encoders(self) -> None:
        """Move the text encoder(s) off the accelerator once the prompts are encoded (the guidance's negative
        prompt first); a later `encode_prompts` runs them where they are. Nothing to move on the tiny backbone."""

    def negative_condition(self) -> torch.Tensor:
        """Embedding (1, L, D) of the guidance's negative prompt, encoded once."""
        if getattr(self, "_negative", None) is None:
            self._negative = self.encode_prompts([self.guidance["negative_prompt"]])
        return self._negative

    def guided_predict(self, net: nn.Module, x: torch.Tensor, sigma: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """The teacher's velocity as its pipeline guides it: with classifier-free guidance v_u + s (v_c - v_u),
        v_u at the negative prompt (Ho & Salimans 2022, as WanPipeline / CogVideoXPipeline combine them); else
        `predict` (HunyuanVideo's embedded guidance is one of its inputs)."""
        if self.guidance["kind"] != "cfg":
            return self.predict(net, x, sigma, cond)
        uncond = self.negative_condition().to(cond).expand(cond.shape[0], *cond.shape[1:])
        v_cond, v_uncond = self.predict(net, x, sigma, cond), self.predict(net, x, sigma, uncond)
        return v_uncond + self.guidance["scale"] * (v_cond - v_uncond)

    def net_inputs(self, net: nn.Module, x: torch.Tensor, *tensors: torch.Tensor) -> list[torch.Tensor]:
        """`x` and `tensors` on the network's device, floats in the compute dtype (not some parameter's dtype:
        diffusers keeps e.g. Wan's scale_shift_table in float32 inside a bfloat16 model)."""
        device = _device_of(net)
        return [t.to(device, self.compute_dtype if t.is_floating_point() else t.dtype) for t in (x, *tensors)]

    def save_network(self, net: nn.Module, directory: str | Path) -> None:
        """Write `net` with diffusers' save_pretrained (safetensors), from the main process only (under torchrun
        it holds the whole trained network, the others their shards)."""
        if distributed.is_main():
            net.save_pretrained(str(directory), safe_serialization=True)

    def features(self, net: nn.Module, x: torch.Tensor, sigma: torch.Tensor, cond: torch.Tensor,
                 stride: int) -> list[torch.Tensor]:
        """Hidden states (B, tokens, dim) after every `stride`-th block, for the discriminator (Eq. 10); under
        context parallelism gathered from the ranks of the group."""
        blocks = getattr(net, self.blocks_attribute)
        captured: list[torch.Tensor] = []
        hooks = [block.register_forward_hook(lambda _m, _i, out: captured.append(out[0] if isinstance(out, tuple) else out))
                 for block in list(blocks)[stride - 1::stride]]
        try:
            self.predict(net, x, sigma, cond)
        finally:
            for hook in hooks:
                hook.remove()
        if context_parallel.config_of(net) is not None:  # the heads' GroupNorm needs every token
            return [context_parallel.gather_tokens(f, net) for f in captured]
        return captured


def _device_of(net: nn.Module) -> torch.device:
    """The device `net` computes on (a sharded parameter's local device)."""
    return next(net.parameters()).device
