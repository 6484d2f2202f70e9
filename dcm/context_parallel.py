"""Context parallelism through diffusers (`ContextParallelConfig`, `ModelMixin.enable_parallelism`): the ranks
of a launch form data-parallel groups of `distributed.context_parallel` consecutive ranks; the ranks of one group
feed the same samples and noise to every network, which splits its tokens over them (Ulysses attention) and
gathers its output, so each rank holds the activations of 1/C of the video tokens (their count must divide by C).

Every loss is computed on gathered tensors (the output, the discriminator's teacher features: its GroupNorm
needs all tokens), so it is the same on all ranks of a group, and the gather's backward keeps each rank's slice:
a network's gradient on one rank is its tokens' share, the group's gradient the sum over its ranks, and the
training loop scales the generator loss by C before FSDP2's or DDP's mean over all ranks. The discriminator heads
run on the same gathered features on every rank, so their gradients are whole and their loss is not scaled."""

from __future__ import annotations

import torch
from torch import nn

from dcm.errors import DCMError


def groups(world: int, rank: int, size: int) -> tuple[int, int]:
    """(data-parallel groups, this rank's group) when groups of `size` consecutive ranks share their samples."""
    if size < 1 or world % size:
        raise DCMError(f"distributed.context_parallel={size} must divide the launch's {world} processes")
    return world // size, rank // size


def device_mesh(world: int, size: int, device: torch.device):
    """The (dp, ring, ulysses) mesh diffusers' ContextParallelConfig slices its ring and Ulysses groups from."""
    from torch.distributed.device_mesh import init_device_mesh

    if torch.accelerator.device_count() == 0:  # diffusers' enable_parallelism takes the rank modulo this count
        raise DCMError("distributed.context_parallel > 1 needs an accelerator: diffusers' enable_parallelism "
                       "divides by torch.accelerator.device_count(), which is 0 on a CPU-only machine")
    return init_device_mesh(device.type, (world // size, 1, size), mesh_dim_names=("dp", "ring", "ulysses"))


def enable(module: nn.Module, mesh, plan: dict | None = None) -> None:
    """diffusers' context parallelism on every diffusers network inside `module`, with `plan` (diffusers'
    cp_plan; None: the network's own `_cp_plan`), and on the detail expert's copies of the layers the plan names
    (they stand in for the originals while the expert runs)."""
    from diffusers import ContextParallelConfig, ModelMixin
    from diffusers.hooks.context_parallel import apply_context_parallel

    from dcm.experts import DetailLayers

    nets = [m for m in module.modules() if isinstance(m, ModelMixin)]
    for net in nets:
        if plan is None and net._cp_plan is None:
            raise DCMError(f"distributed.context_parallel > 1: diffusers has no context-parallel plan for "
                           f"{type(net).__name__} and this backbone gives none")
        # Ulysses with equal shares: diffusers 0.42.1's uneven ("anything") variant has no backward
        net.enable_parallelism(config=ContextParallelConfig(ulysses_degree=mesh["ulysses"].size(), mesh=mesh),
                               cp_plan=plan)
    for detail in (m for m in module.modules() if isinstance(m, DetailLayers)):
        config = nets[0]._parallel_config.context_parallel_config
        apply_context_parallel(detail, config, detail.context_parallel_plan(plan or nets[0]._cp_plan))


def config_of(net: nn.Module):
    """The ContextParallelConfig `net` runs under, or None."""
    parallel = getattr(net, "_parallel_config", None)
    return parallel.context_parallel_config if parallel is not None else None


def gather_tokens(tensor: torch.Tensor, net: nn.Module) -> torch.Tensor:
    """`tensor` (B, local tokens, D) of a context-parallel `net` gathered over its group, as diffusers gathers the
    network's output (the backward keeps this rank's slice)."""
    from diffusers.hooks.context_parallel import EquipartitionSharder

    return EquipartitionSharder.unshard(tensor, 1, config_of(net)._flattened_mesh)
