"""One training loop for every stage: a global batch split over the processes of a launch (with gradient
accumulation), float32 master weights under the backbone's autocast (a loss scaler for float16), the student,
EMA target and frozen teacher sharded (FSDP2) or replicated (DDP) and optionally context-parallel (diffusers),
an optional discriminator, JSONL metrics, a stop on any non-finite loss or gradient, checkpoints that resume
(bit-for-bit in one process, sharded and re-cut to any process count in several), and save-and-exit on
SIGTERM / SIGUSR1 (SLURM pre-emption)."""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

import torch
from accelerate import Accelerator
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm

from dcm import checkpoint, context_parallel, distributed, layout, tracking
from dcm.errors import DCMError
from dcm.io import read_jsonl, write_csv

CHECKPOINT_DIR = "checkpoint"
RANK_SEED_STRIDE = 1_000_003  # separates the noise streams of the processes of a multi-GPU launch
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)  # SLURM sends one of them before pre-empting or timing out


class Preempted(DCMError):
    """A stop signal arrived: the checkpoint of the step just finished is on disk; rerun to resume."""


class Objective(Protocol):
    """What a stage trains: a generator loss, and optionally a discriminator loss on the same batch."""

    def generator_loss(self, batch, generator: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]: ...


@dataclass
class DiscriminatorStep:
    """A discriminator module, its optimiser, and its loss on the oldest generator micro-batch not yet used."""

    module: nn.Module  # the discriminator heads being trained
    optimizer: torch.optim.Optimizer  # their optimiser (AdamW, betas (0, 0.999) in the paper's setting)
    loss: Callable[[], tuple[torch.Tensor, dict]]  # its hinge loss on the micro-batch the generator step just used,
    # and logs (its accuracy)


@dataclass
class TrainLoop:
    """Runs `steps` optimiser steps of `objective` on batches from `sample_batch`, resuming from `out_dir`."""

    student: nn.Module  # the module whose trainable parameters are optimised
    optimizer: torch.optim.Optimizer  # AdamW over the student's trainable parameters (fp32 masters)
    objective: Objective  # the loss of one batch: consistency, flow matching or LCM, plus their extra terms
    sample_batch: Callable[[torch.Generator], tuple]  # the global batch: a tuple of batch-first tensors
    out_dir: Path  # the stage's work directory: checkpoint/, metrics.jsonl and metrics.csv go here
    steps: int  # optimiser steps in all, counting those before a resume
    seed: int  # seeds the batch and noise streams (each process derives its own)
    checkpoint_every: int  # steps between checkpoints (also written at the end and on SIGTERM/SIGUSR1)
    grad_clip: float | None = None  # global gradient-norm clip; None = off
    ema: AveragedModel | None = None  # consistency target F^- (Eq. 4), updated after each step
    discriminator: DiscriminatorStep | None = None  # the GAN's heads, stepped after each generator step (Eq. 10)
    description: str = "train"  # name on the progress bar and in errors
    on_step: Callable[[int], None] | None = None  # called with the step count after each step (a probe)
    accelerator: Accelerator | None = None  # default: one on the device the student already sits on
    compute_dtype: torch.dtype = torch.float32  # dtype of the forward (the backbone autocasts); float16 scales
    strategy: str = "fsdp2"  # how several processes hold the modules: distributed.STRATEGIES
    micro_batch_size: int | None = None  # samples per process per forward; default the batch split evenly
    frozen: tuple[nn.Module, ...] = ()  # modules the objective calls without training them (the GAN's teacher)
    context_parallel: int = 1  # consecutive ranks that split each sample's tokens (dcm/context_parallel.py)
    enable_context_parallel: Callable | None = None  # (module, mesh): the backbone's; None: context_parallel.enable
    _stop: threading.Event = field(default_factory=threading.Event, init=False, repr=False)

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

    def _prepare(self, world: int) -> None:
        """float32 masters for every trainable parameter, modules on the device, then sharded or replicated."""
        for module in self._modules().values():  # the EMA copy has the student's requires_grad flags
            for p in module.parameters():
                if p.requires_grad and p.dtype != torch.float32:
                    p.data = p.data.float()  # in place: the optimisers keep their parameters
        if self.accelerator is None:
            self.accelerator = Accelerator(cpu=next(self.student.parameters()).device.type == "cpu")
        for module in (*self._modules().values(), *self.frozen):
            module.to(self.accelerator.device)
        if self.context_parallel > 1:  # before sharding: the hooks split and gather around the sharded blocks
            mesh = context_parallel.device_mesh(world, self.context_parallel, self.accelerator.device)
            for module in (self.student, *([self.ema.module] if self.ema is not None else []), *self.frozen):
                (self.enable_context_parallel or context_parallel.enable)(module, mesh)
        if world == 1:
            self.student, self.optimizer = self.accelerator.prepare(self.student, self.optimizer)
            return
        blocks = distributed.block_class_names(self.student)
        for module, optimizer in ((self.student, self.optimizer),
                                  (self.discriminator and self.discriminator.module,
                                   self.discriminator and self.discriminator.optimizer)):
            if module is not None:
                _shard_with_optimizer(module, optimizer, self.strategy, self.compute_dtype, blocks)
        if self.strategy == "fsdp2":  # the frozen copies are sharded too (DDP replicates them as they are)
            if self.ema is not None:
                distributed.shard(self.ema.module, "fsdp2", self.compute_dtype, blocks, reshard_root=True)
            for module in self.frozen:
                distributed.shard(module, "fsdp2", self.compute_dtype, distributed.block_class_names(module),
                                  reshard_root=False)

    def _check_strategy(self, world: int) -> None:
        if self.strategy not in distributed.STRATEGIES:
            raise DCMError(f"distributed.strategy={self.strategy!r}; choose one of {', '.join(distributed.STRATEGIES)}")
        if world > 1 and self.strategy == "none":
            raise DCMError(f"distributed.strategy=none but this launch has {world} processes: choose fsdp2 or ddp")
        if world > 1 and self.strategy == "deepspeed":
            raise DCMError("distributed.strategy=deepspeed is not wired into the training loop (README, "
                           "'Precision and sharding'): use fsdp2")
        if self.compute_dtype == torch.float16 and world > 1 and self.strategy == "fsdp2":
            raise DCMError("backbone.compute_dtype=float16 with distributed.strategy=fsdp2: the float16 loss scaler "
                           "is tested in one process only; use bfloat16")

    def _save(self, step: int, data: torch.Generator, noise: torch.Generator, scaler) -> None:
        ckpt = self.out_dir / CHECKPOINT_DIR
        progress = {"step": step, "seed": self.seed, "steps": self.steps}
        extra = {"scaler": _scaler_state(scaler)} if scaler is not None else {}
        if distributed.world_size() == 1:
            checkpoint.save_single(ckpt, self._modules(), self._optimizers(), data.get_state(), extra, progress)
        else:
            checkpoint.save_sharded(ckpt, self._modules(), self._optimizers(), data.get_state(), noise.get_state(),
                                    extra, progress)

    def _load(self, data: torch.Generator, noise: torch.Generator, scaler) -> int:
        """The step of the checkpoint in out_dir (0 without one), with modules, optimisers and streams restored."""
        ckpt = self.out_dir / CHECKPOINT_DIR
        if not (ckpt / checkpoint.PROGRESS).is_file():
            return 0
        progress = checkpoint.read_progress(ckpt)
        if progress["seed"] != self.seed:
            raise DCMError(f"checkpoint {ckpt} was made with seed {progress['seed']}, this run uses {self.seed}; "
                           "remove it to start over")
        world, rank = distributed.world_size(), distributed.rank()
        _, group = context_parallel.groups(world, rank, self.context_parallel)
        if checkpoint.is_sharded(ckpt):  # the ranks of one context-parallel group continue its first rank's noise
            rng, own_noise, extra = checkpoint.load_sharded(ckpt, self._modules(), self._optimizers(),
                                                            group * self.context_parallel, ("scaler",))
        elif world == 1:
            rng, extra = checkpoint.load_single(ckpt, self._modules(), self._optimizers())
            own_noise = None
        else:
            raise DCMError(f"checkpoint {ckpt} was written by one process; resume it with one process or remove it")
        data.set_state(rng)
        if noise is not data:  # a process of the writing launch continues its stream, a new one starts its own
            if own_noise is not None:
                noise.set_state(own_noise)
            else:
                noise.manual_seed(self.seed + RANK_SEED_STRIDE * group + progress["step"])
        if scaler is not None and "scaler" in extra:
            _load_scaler(scaler, extra["scaler"])
        return int(progress["step"])

    def _backward(self, loss: torch.Tensor, scaler) -> None:
        self.accelerator.backward(scaler.scale(loss) if scaler is not None else loss)

    def _optimizer_step(self, optimizer, params: list, clip: float | None, scaler, step: int, what: str) -> float:
        """Unscale, clip and step; a non-finite gradient stops the stage (under a loss scaler it skips the step
        and lowers the scale, as long as the scale stays above 1)."""
        if scaler is not None:
            scaler.unscale_(optimizer)
        norm = torch.nn.utils.clip_grad_norm_(params, clip or float("inf"))
        norm = float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)
        if not math.isfinite(norm):
            if scaler is None:
                raise DCMError(f"{self.description}: non-finite {what} gradient (norm {norm}) at step {step}; "
                               "training stopped, nothing is published")
            if scaler.get_scale() < 1.0:
                raise DCMError(f"{self.description}: {what} gradients non-finite at every loss scale at step {step}")
        if scaler is not None:
            scaler.step(optimizer)
        else:
            optimizer.step()
        return norm

    def _reduce(self, values: dict[str, torch.Tensor], world: int) -> dict[str, float]:
        """Sum over processes of each process's weighted sums, / world: the means over the global batch; the
        last entry is the stop flag (any process signalled)."""
        keys = list(values)
        flat = torch.stack([torch.as_tensor(values[k], dtype=torch.float64).detach().cpu() for k in keys]
                           + [torch.tensor(float(self._stop.is_set()), dtype=torch.float64)])
        if world > 1:
            flat = flat.to(self.accelerator.device)
            torch.distributed.all_reduce(flat)
            flat[:-1] /= world
        out = dict(zip(keys, flat[:-1].tolist()))
        out["_stop"] = float(flat[-1]) > 0
        return out

    def run(self) -> list[dict]:
        """Train to `steps`, appending one JSON line of metrics per step to metrics.jsonl; return all lines.

        Each step draws one global batch from a stream shared by every process; each data-parallel group (one
        process, or `context_parallel` of them) trains on its own disjoint slots of it (distributed.micro_batches),
        with its own stream for the objective's noise (for one group the two streams are one). Metrics are means over the global batch; only the main
        process writes them; every process writes its part of a sharded checkpoint."""
        world, rank = distributed.world_size(), distributed.rank()
        self._check_strategy(world)
        groups, group = context_parallel.groups(world, rank, self.context_parallel)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._prepare(world)
        scaler = torch.amp.GradScaler(self.accelerator.device.type) if self.compute_dtype == torch.float16 else None
        data = torch.Generator().manual_seed(self.seed)
        noise = data if groups == 1 else torch.Generator().manual_seed(self.seed + RANK_SEED_STRIDE * group)
        start = self._load(data, noise, scaler)
        metrics_path = self.out_dir / layout.METRICS
        history = _read_metrics(metrics_path, keep=start)
        trainable = [p for p in self.student.parameters() if p.requires_grad]
        sharded = [m for m in (self.student, self.discriminator and self.discriminator.module) if m is not None]
        with _stop_on_signals(self._stop), \
                open(metrics_path, "w") if distributed.is_main() else contextlib.nullcontext() as log:
            for line in history if log else []:
                log.write(json.dumps(line) + "\n")
            bar = tqdm(range(start, self.steps), initial=start, total=self.steps, desc=self.description,
                       dynamic_ncols=True, disable=not distributed.is_main())
            for step in bar:
                batch = self.sample_batch(data)
                plan = distributed.micro_batches(len(batch[0]), groups, group, self.micro_batch_size)
                self.optimizer.zero_grad(set_to_none=True)
                sums: dict[str, torch.Tensor] = {}
                for i, (indices, weight) in enumerate(plan):
                    distributed.set_gradient_sync(sharded, i == len(plan) - 1)
                    micro = batch if len(indices) == len(batch[0]) else tuple(t[indices] for t in batch)
                    loss, logs = self.objective.generator_loss(micro, noise)
                    scale = weight * self.context_parallel  # a group's gradient is the sum over its ranks
                    self._backward(loss * scale if scale != 1.0 else loss, scaler)
                    _accumulate(sums, {"loss": loss, **logs}, weight)
                line = self._reduce(sums, world)
                stop = line.pop("_stop")
                if not math.isfinite(line["loss"]):
                    bad = sorted(k for k, v in line.items() if not math.isfinite(v))
                    raise DCMError(f"{self.description}: non-finite loss at step {step + 1} ({', '.join(bad)}); "
                                   "training stopped, nothing is published")
                line["grad_norm"] = self._optimizer_step(self.optimizer, trainable, self.grad_clip, scaler,
                                                         step + 1, "generator")
                if self.ema is not None:
                    self.ema.update_parameters(self.student)
                if self.discriminator is not None:
                    line.update(self._discriminator_step(plan, scaler, step + 1, world))
                if scaler is not None:
                    scaler.update()
                if self.on_step is not None:
                    self.on_step(step + 1)
                line = {"step": step + 1, "loss": line.pop("loss"), "grad_norm": line.pop("grad_norm"),
                        "lr": self.optimizer.param_groups[0]["lr"], **line}
                history.append(line)
                tracking.current().log_metrics(line, step + 1)
                bar.set_postfix(loss=f"{line['loss']:.4g}")
                if log:
                    log.write(json.dumps(line) + "\n")
                    log.flush()
                if (step + 1) % self.checkpoint_every == 0 or step + 1 == self.steps or stop:
                    self._save(step + 1, data, noise, scaler)
                if stop:
                    raise Preempted(f"{self.description}: stopped by a signal after step {step + 1}; the checkpoint "
                                    "is saved, rerun the stage to resume")
        _check_finite(trainable, self.description, world, self.accelerator.device)
        if world > 1:
            _gather_on_main(self.student)
        if distributed.is_main():
            write_csv(self.out_dir / layout.METRICS_TABLE, history)  # the same curves as a table, for `dvc plots`
        return history

    def _discriminator_step(self, plan, scaler, step: int, world: int) -> dict[str, float]:
        """One optimiser step of the discriminator on the generator's micro-batches of this step (Eq. 10)."""
        disc = self.discriminator
        disc.optimizer.zero_grad(set_to_none=True)  # drops what the generator's backward left on the heads
        sums: dict[str, torch.Tensor] = {}
        for i, (_, weight) in enumerate(plan):
            distributed.set_gradient_sync([disc.module], i == len(plan) - 1)
            d_loss, logs = disc.loss()
            self._backward(d_loss * weight if weight != 1.0 else d_loss, scaler)  # whole gradients: not scaled by C
            _accumulate(sums, {"d_loss": d_loss, **logs}, weight)
        line = self._reduce(sums, world)
        line.pop("_stop")
        if not math.isfinite(line["d_loss"]):
            raise DCMError(f"{self.description}: non-finite discriminator loss at step {step}; training stopped, "
                           "nothing is published")
        self._optimizer_step(disc.optimizer, list(disc.module.parameters()), None, scaler, step, "discriminator")
        return line


def _shard_with_optimizer(module: nn.Module, optimizer, strategy: str, compute_dtype, blocks: set[str]) -> None:
    """Shard (or replicate) `module` in place and point `optimizer` at the parameters that replaced its own."""
    before = dict(module.named_parameters())
    distributed.shard(module, strategy, compute_dtype, blocks)
    after = dict(module.named_parameters())
    swap = {id(p): after[name] for name, p in before.items()}
    inner = getattr(optimizer, "optimizer", optimizer)
    for group in inner.param_groups:
        group["params"] = [swap[id(p)] for p in group["params"]]


def _gather_on_main(module: nn.Module) -> None:
    """Put the whole trained weights (float32 masters, on the CPU) into `module` on the main process, so the
    stage saves them as one network; the other processes keep their shards."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    full = get_model_state_dict(module, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if not distributed.is_main():
        return
    params = dict(module.named_parameters())
    for name, value in full.items():
        if name in params:
            owner, _, leaf = name.rpartition(".")
            parent = module.get_submodule(owner)
            parent._parameters[leaf] = nn.Parameter(value, requires_grad=params[name].requires_grad)


def _accumulate(sums: dict, values: dict, weight: float) -> None:
    """Add weight * value (a micro-batch's share of the global mean) to each running sum."""
    for key, value in values.items():
        value = torch.as_tensor(value.detach() if torch.is_tensor(value) else value, dtype=torch.float64).cpu()
        sums[key] = sums.get(key, 0.0) + weight * value


def _check_finite(params: list, description: str, world: int, device) -> None:
    """Refuse to hand on a network with a non-finite trainable weight (on any process's shard)."""
    bad = torch.tensor(float(any(not torch.isfinite(getattr(p, "_local_tensor", p)).all() for p in params)),
                       device=device)
    if world > 1:
        torch.distributed.all_reduce(bad)
    if bad.item():
        raise DCMError(f"{description}: the trained network has non-finite weights; nothing is published")


def _scaler_state(scaler) -> torch.Tensor:
    """(scale, growth tracker) of a loss scaler as one tensor, for either checkpoint layout."""
    state = scaler.state_dict()
    return torch.tensor([state["scale"], state["_growth_tracker"]], dtype=torch.float64)


def _load_scaler(scaler, saved: torch.Tensor) -> None:
    state = scaler.state_dict()
    state.update(scale=float(saved[0]), _growth_tracker=int(saved[1]))
    scaler.load_state_dict(state)


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event):
    """While training, SIGTERM / SIGUSR1 ask the loop to checkpoint after the current step and exit."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _read_metrics(path: Path, keep: int) -> list[dict]:
    """The first `keep` metric lines of an interrupted run (later ones are redone after resuming)."""
    if not path.is_file() or keep == 0:
        return []
    return [line for line in read_jsonl(path) if line["step"] <= keep]


def check_batch_fits(section: str, batch_size: int, sample_shape: tuple[int, ...], tensors_per_sample: int) -> None:
    """Refuse, before any work, a `<section>.batch_size` whose fp32 inputs alone (`tensors_per_sample` tensors of
    `sample_shape` per sample, this process's share of the global batch) exceed this machine's memory."""
    share = math.ceil(batch_size / distributed.world_size())
    needed = share * tensors_per_sample * math.prod(sample_shape) * 4
    available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if needed > available:
        raise DCMError(f"{section}.batch_size={batch_size}: one batch of inputs needs {needed / 1e9:.1f} GB per "
                       f"process, more than this machine's {available / 1e9:.1f} GB of memory")


def make_ema(student: nn.Module, decay: float) -> AveragedModel:
    """An EMA copy of `student` (the target network F^- of Eq. 4) with the given decay. Parameters only: the
    networks keep no running statistics (their buffers are constant rotary tables), and sharded parameters
    cannot be averaged in one foreach call with unsharded buffers."""
    return AveragedModel(student, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=False)


def adamw(params, lr: float, weight_decay: float = 0.0, betas=(0.9, 0.999)) -> torch.optim.AdamW:
    """AdamW over the parameters that require gradients."""
    params = [p for p in params if p.requires_grad]
    if not params:
        raise DCMError("no trainable parameters")
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, betas=betas)


def scale_options(cfg: dict, backbone) -> dict:
    """TrainLoop keywords for precision and distribution from the backbone adapter and `distributed` of a config."""
    dcfg = cfg.get("distributed", {})
    return {"compute_dtype": backbone.compute_dtype, "strategy": dcfg.get("strategy", "fsdp2"),
            "micro_batch_size": dcfg.get("micro_batch_size"), "context_parallel": dcfg.get("context_parallel", 1),
            "enable_context_parallel": backbone.enable_context_parallel}
