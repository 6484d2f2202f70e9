"""Training checkpoints in two layouts: one process writes one safetensors file (bit-for-bit resume), several
processes write one sharded torch.distributed.checkpoint directory, every rank its own part, which any
number of processes can read back (the shards are re-cut on load)."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from torch import nn

from dcm import distributed
from dcm.errors import DCMError
from dcm.io import atomic_path, load_tensors, read_json, replace_directory, save_tensors, write_json

PROGRESS = "progress.json"
SINGLE_STATE = "state.safetensors"
SINGLE_OPTIMIZERS = "optimizers.pt"
SHARDED_METADATA = ".metadata"  # written by torch.distributed.checkpoint


def noise_key(rank: int) -> str:
    """Key of one process's own random stream in a sharded checkpoint."""
    return f"rng.noise.{rank}"


def is_sharded(ckpt: Path) -> bool:
    return (ckpt / SHARDED_METADATA).is_file()


def save_single(ckpt: Path, modules: dict[str, nn.Module], optimizers: dict, rng: torch.Tensor,
                extra: dict, progress: dict) -> None:
    """One process: modules and the random stream as safetensors, optimiser (and loss-scaler) states as a
    weights-only torch file."""
    tensors = {f"{prefix}.{k}": v for prefix, module in modules.items() for k, v in module.state_dict().items()}
    tensors["rng"] = rng
    with atomic_path(ckpt, is_dir=True) as tmp:
        save_tensors(tmp / SINGLE_STATE, tensors)
        torch.save({**{k: o.state_dict() for k, o in optimizers.items()}, **extra}, tmp / SINGLE_OPTIMIZERS)
        write_json(tmp / PROGRESS, progress)


def load_single(ckpt: Path, modules: dict[str, nn.Module], optimizers: dict) -> tuple[torch.Tensor, dict]:
    """Restore modules and optimisers from `save_single`; returns (random stream state, extra states)."""
    tensors = load_tensors(ckpt / SINGLE_STATE)
    try:
        states = torch.load(ckpt / SINGLE_OPTIMIZERS, weights_only=True)
    except (RuntimeError, EOFError, OSError) as err:
        raise DCMError(f"corrupt or truncated checkpoint file {ckpt / SINGLE_OPTIMIZERS}: {err}") from err
    for prefix, module in modules.items():
        state = {k[len(prefix) + 1:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
        try:
            module.load_state_dict(state)
        except RuntimeError as err:
            raise DCMError(f"checkpoint {ckpt} does not match the {prefix} model: {err}") from err
    for name, optimizer in optimizers.items():
        optimizer.load_state_dict(states.pop(name))
    return tensors["rng"], states


def _state(modules: dict[str, nn.Module], optimizers: dict) -> dict:
    """Model and optimiser state dicts keyed by parameter name (sharded tensors stay sharded)."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_optimizer_state_dict

    state = {f"model.{k}": get_model_state_dict(m) for k, m in modules.items()}
    for name, optimizer in optimizers.items():
        state[f"optim.{name}"] = get_optimizer_state_dict(modules[name], optimizer)
    return state


def save_sharded(ckpt: Path, modules: dict[str, nn.Module], optimizers: dict, rng: torch.Tensor,
                 noise: torch.Tensor, extra: dict, progress: dict) -> None:
    """Every process writes its shards (and its own random stream) into a fresh directory; once all are done
    the main process swaps it in for `ckpt`, so a kill mid-write leaves the previous checkpoint."""
    import torch.distributed.checkpoint as dcp

    tmp = ckpt.with_name(ckpt.name + ".writing")
    if distributed.is_main():
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    distributed.barrier()
    state = {**_state(modules, optimizers), "rng.data": rng, noise_key(distributed.rank()): noise, **extra}
    dcp.save(state, checkpoint_id=str(tmp))
    if distributed.is_main():
        write_json(tmp / PROGRESS, {**progress, "world_size": distributed.world_size()})
        replace_directory(tmp, ckpt)
    distributed.barrier()


def load_sharded(ckpt: Path, modules: dict[str, nn.Module], optimizers: dict, rank: int,
                 extra_keys: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor | None, dict]:
    """Restore a `save_sharded` checkpoint into this launch's (possibly differently sharded) modules; returns
    (shared data stream, this rank's noise stream or None when the writing launch had no such rank, extras)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import set_model_state_dict, set_optimizer_state_dict

    saved = dcp.FileSystemReader(str(ckpt)).read_metadata().state_dict_metadata
    state = _state(modules, optimizers)
    state["rng.data"] = torch.zeros_like(torch.Generator().get_state())
    if noise_key(rank) in saved:
        state[noise_key(rank)] = torch.zeros_like(state["rng.data"])
    for key in extra_keys:
        if key in saved:
            state[key] = torch.zeros(saved[key].size, dtype=saved[key].properties.dtype)
    try:
        dcp.load(state, checkpoint_id=str(ckpt))
    except (RuntimeError, ValueError, KeyError) as err:
        raise DCMError(f"checkpoint {ckpt} does not match this stage's models: {err}") from err
    for name, module in modules.items():
        set_model_state_dict(module, state[f"model.{name}"])
    for name, optimizer in optimizers.items():
        set_optimizer_state_dict(modules[name], optimizer, state[f"optim.{name}"])
    return state["rng.data"], state.get(noise_key(rank)), {k: state[k] for k in extra_keys if k in state}


def read_progress(ckpt: Path) -> dict:
    return read_json(ckpt / PROGRESS)
