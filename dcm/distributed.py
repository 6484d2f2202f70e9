"""Which process of a `torchrun` launch this is (one process per GPU), read from the launcher's environment,
and the barrier that keeps the processes of one stage together. One process when nothing is launched."""

from __future__ import annotations

import os


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
    """True in the one process that writes outputs, checkpoints, metrics and tracking."""
    return rank() == 0


def barrier() -> None:
    """Wait for every process of the launch (a no-op for one process)."""
    if world_size() > 1:
        import torch.distributed  # torch only where there is a process group: the workflow imports this module

        if torch.distributed.is_initialized():
            torch.distributed.barrier()


def average_gradients(params: list) -> None:
    """Replace each parameter's gradient by its mean over the processes: data-parallel SGD without wrapping
    the model."""
    size = world_size()
    if size == 1:
        return
    import torch.distributed

    for p in params:
        if p.grad is not None:
            torch.distributed.all_reduce(p.grad)
            p.grad /= size
