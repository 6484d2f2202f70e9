"""One training loop for every stage: optimiser steps through accelerate, optional EMA target and
discriminator, JSONL metrics, progress bar, and checkpoints that resume bit-for-bit."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import torch
from accelerate import Accelerator
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm

from dcm import distributed, tracking
from dcm.errors import DCMError
from dcm.io import atomic_path, load_tensors, read_json, save_tensors, write_csv, write_json

CHECKPOINT_DIR = "checkpoint"
RANK_SEED_STRIDE = 1_000_003  # separates the batch streams of the processes of a multi-GPU launch


class Objective(Protocol):
    """What a stage trains: a generator loss, and optionally a discriminator loss on the same batch."""

    def generator_loss(self, batch, generator: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]: ...


@dataclass
class Discriminator:
    """A discriminator module, its optimiser, and the loss computed after each generator step."""

    module: nn.Module
    optimizer: torch.optim.Optimizer
    loss: Callable[[], torch.Tensor]


@dataclass
class TrainLoop:
    """Runs `steps` optimiser steps of `objective` on batches from `sample_batch`, resuming from `out_dir`."""

    student: nn.Module  # the module whose trainable parameters are optimised
    optimizer: torch.optim.Optimizer
    objective: Objective
    sample_batch: Callable[[torch.Generator], object]
    out_dir: Path
    steps: int
    seed: int
    checkpoint_every: int
    grad_clip: float | None = None
    ema: AveragedModel | None = None  # consistency target F^- (Eq. 4), updated after each step
    discriminator: Discriminator | None = None
    description: str = "train"
    on_step: Callable[[int], None] | None = None  # called with the step count after each step (a probe)
    accelerator: Accelerator | None = None  # default: one on the device the student already sits on

    def _modules(self) -> dict[str, nn.Module]:
        modules = {"student": self.student}
        if self.ema is not None:
            modules["ema"] = self.ema
        if self.discriminator is not None:
            modules["disc"] = self.discriminator.module
        return modules

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        optimizers = {"student": self.optimizer}
        if self.discriminator is not None:
            optimizers["disc"] = self.discriminator.optimizer
        return optimizers

    def _save_checkpoint(self, step: int, generator: torch.Generator) -> None:
        tensors = {f"{prefix}.{k}": v for prefix, module in self._modules().items()
                   for k, v in module.state_dict().items()}
        tensors["rng"] = generator.get_state()
        with atomic_path(self.out_dir / CHECKPOINT_DIR, is_dir=True) as tmp:
            save_tensors(tmp / "state.safetensors", tensors)
            torch.save({k: o.state_dict() for k, o in self._optimizers().items()}, tmp / "optimizers.pt")
            write_json(tmp / "progress.json", {"step": step, "seed": self.seed, "steps": self.steps})

    def _load_checkpoint(self, generator: torch.Generator) -> int:
        ckpt = self.out_dir / CHECKPOINT_DIR
        if not ckpt.is_dir():
            return 0
        progress = read_json(ckpt / "progress.json")
        if progress["seed"] != self.seed:
            raise DCMError(f"checkpoint {ckpt} was made with seed {progress['seed']}, this run uses {self.seed}; "
                           "remove it to start over")
        tensors = load_tensors(ckpt / "state.safetensors")
        try:
            optim_states = torch.load(ckpt / "optimizers.pt", weights_only=True)
        except (RuntimeError, EOFError, OSError) as err:
            raise DCMError(f"corrupt or truncated checkpoint file {ckpt / 'optimizers.pt'}: {err}") from err
        for prefix, module in self._modules().items():
            state = {k[len(prefix) + 1:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
            try:
                module.load_state_dict(state)
            except RuntimeError as err:
                raise DCMError(f"checkpoint {ckpt} does not match the {prefix} model: {err}") from err
        for name, optimizer in self._optimizers().items():
            optimizer.load_state_dict(optim_states[name])
        generator.set_state(tensors["rng"])
        return int(progress["step"])

    def run(self) -> list[dict]:
        """Train to `steps`, appending one JSON line of metrics per step to metrics.jsonl; return all lines.

        Under torchrun every process draws its own batches (`batch_size` per process) and gradients are
        averaged across processes before each optimiser step; only the main process writes. A resumed
        multi-process run continues the main process's random stream exactly, the others' from a reseed.
        """
        self.out_dir.mkdir(parents=True, exist_ok=True)
        generator = torch.Generator().manual_seed(self.seed)
        start = self._load_checkpoint(generator)
        if not distributed.is_main():
            generator.manual_seed(self.seed + RANK_SEED_STRIDE * distributed.rank() + start)
        metrics_path = self.out_dir / "metrics.jsonl"
        history = _read_metrics(metrics_path, keep=start)
        if self.accelerator is None:
            self.accelerator = Accelerator(cpu=next(self.student.parameters()).device.type == "cpu")
        if distributed.world_size() == 1:  # several processes average gradients by hand: the objective calls
            # the student through closures, not a wrapped forward, so a DistributedDataParallel would not sync
            self.student, self.optimizer = self.accelerator.prepare(self.student, self.optimizer)
        for module in (self.student, self.ema, self.discriminator and self.discriminator.module):
            if module is not None:
                module.to(self.accelerator.device)  # in place: the optimisers keep their parameters
        trainable = [p for p in self.student.parameters() if p.requires_grad]
        with open(metrics_path, "w") if distributed.is_main() else contextlib.nullcontext() as log:
            for line in history if log else []:
                log.write(json.dumps(line) + "\n")
            bar = tqdm(range(start, self.steps), initial=start, total=self.steps, desc=self.description,
                       dynamic_ncols=True, disable=not distributed.is_main())
            for step in bar:
                loss, logs = self.objective.generator_loss(self.sample_batch(generator), generator)
                self.optimizer.zero_grad(set_to_none=True)
                self.accelerator.backward(loss)
                distributed.average_gradients(trainable)
                grad_norm = self.accelerator.clip_grad_norm_(trainable, self.grad_clip or float("inf"))
                self.optimizer.step()
                if self.ema is not None:
                    self.ema.update_parameters(self.student)
                if self.discriminator is not None:
                    d_loss = self.discriminator.loss()
                    self.discriminator.optimizer.zero_grad(set_to_none=True)
                    self.accelerator.backward(d_loss)
                    distributed.average_gradients(list(self.discriminator.module.parameters()))
                    self.discriminator.optimizer.step()
                    logs["d_loss"] = d_loss
                if self.on_step is not None:
                    self.on_step(step + 1)
                logs = {k: float(v.detach()) if torch.is_tensor(v) else v for k, v in logs.items()}
                line = {"step": step + 1, "loss": float(loss.detach()), "grad_norm": float(grad_norm), **logs}
                history.append(line)
                tracking.current().log_metrics(line, step + 1)
                bar.set_postfix(loss=f"{line['loss']:.4g}")
                if log:
                    log.write(json.dumps(line) + "\n")
                    log.flush()
                if (step + 1) % self.checkpoint_every == 0 or step + 1 == self.steps:
                    if distributed.is_main():
                        self._save_checkpoint(step + 1, generator)
                    distributed.barrier()
        if distributed.is_main():
            write_csv(self.out_dir / "metrics.csv", history)  # the same curves as a table, for `dvc plots`
        return history


def _read_metrics(path: Path, keep: int) -> list[dict]:
    """The first `keep` metric lines of an interrupted run (later ones are redone after resuming)."""
    if not path.is_file() or keep == 0:
        return []
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [line for line in lines if line["step"] <= keep]


def make_ema(student: nn.Module, decay: float) -> AveragedModel:
    """An EMA copy of `student` (the target network F^- of Eq. 4) with the given decay."""
    return AveragedModel(student, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def adamw(params, lr: float, weight_decay: float = 0.0, betas=(0.9, 0.999)) -> torch.optim.AdamW:
    """AdamW over the parameters that require gradients."""
    params = [p for p in params if p.requires_grad]
    if not params:
        raise DCMError("no trainable parameters")
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, betas=betas)
