"""Which process of a `torchrun` launch this is (one process per GPU), read from the launcher's environment;
the barrier that keeps the processes of one stage together; how a global batch is split over them; and how
the training modules are sharded (FSDP2) or replicated (DDP) across them. One process when nothing is
launched."""

from __future__ import annotations

import math
import os

STRATEGIES = ("fsdp2", "deepspeed", "ddp", "none")


def world_size() -> int:
    """Number of processes of this launch (1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """This process's index in the launch."""
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    """This process's index on its node: the GPU it drives."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    """True in the one process that writes outputs, metrics and tracking."""
    return rank() == 0


def barrier() -> None:
    """Wait for every process of the launch (a no-op for one process)."""
    if world_size() > 1:
        import torch.distributed  # torch only where there is a process group: the workflow imports this module

        if torch.distributed.is_initialized():
            torch.distributed.barrier()


def micro_batches(batch_size: int, world: int, rank: int, micro_batch_size: int | None = None):
    """This process's share of one global batch of `batch_size` samples: a list of (sample indices, weight)
    per forward. The global batch is cut into micro-steps of `world * micro_batch_size` slots; slot
    (step j, process r, position i) holds sample j*world*m + r*m + i. Every process runs the same number of
    forwards (sharded weights are gathered collectively); a process whose slots are all past the end reruns
    sample 0 with weight 0. The weights make the processes' averaged gradients the mean over the batch:
    weight = (real samples in the micro-batch) * world / batch_size, for a loss that is a mean over its batch."""
    m = micro_batch_size or math.ceil(batch_size / world)
    plan = []
    for j in range(math.ceil(batch_size / (world * m))):
        first = j * world * m + rank * m
        indices = list(range(first, min(first + m, batch_size)))
        plan.append((indices, len(indices) * world / batch_size) if indices else ([0], 0.0))
    return plan


def block_class_names(module) -> set[str]:
    """Names of the classes diffusers/transformers declare must not be split (`_no_split_modules`): the
    transformer blocks, each one FSDP unit."""
    return {name for m in module.modules() for name in (getattr(m, "_no_split_modules", None) or ())}


def shard(module, strategy: str, compute_dtype, block_names: set[str], reshard_root: bool | None = None) -> None:
    """Shard `module` in place across the launch: FSDP2 (`fully_shard` per block in `block_names`, then the
    root; forward gathers in `compute_dtype`, gradients reduce in float32) or DDP (`replicate`: gradients
    all-reduced in backward). In place, so every call of the module, closures included, goes through it.
    `reshard_root` True frees the gathered root weights after each forward (a module only run without
    gradients: no backward reshards them), False keeps them (a frozen module whose block outputs, not its
    output, are backpropagated: the GAN's teacher features); None is FSDP2's choice for a trained module."""
    import torch
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    if strategy == "ddp":
        from torch.distributed._composable.replicate import replicate

        replicate(module)
        return
    policy = MixedPrecisionPolicy(param_dtype=None if compute_dtype == torch.float32 else compute_dtype,
                                  reduce_dtype=torch.float32)
    for sub in list(module.modules())[1:]:
        if type(sub).__name__ in block_names and not hasattr(sub, "unshard"):
            fully_shard(sub, mp_policy=policy)
    fully_shard(module, mp_policy=policy, reshard_after_forward=reshard_root)


def set_gradient_sync(modules, sync: bool) -> None:
    """Skip (or resume) the gradient reduction of FSDP2 modules between the micro-batches of one step."""
    for module in modules:
        if hasattr(module, "set_requires_gradient_sync"):
            module.set_requires_gradient_sync(sync)
