"""Fig. 2 (b): the consistency loss and its gradient norm per noise-level bucket, measured on a fixed batch of
cached teacher pairs at intervals during distillation, without touching the training state."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import torch

from dcm import distributed, tracking
from dcm.errors import DCMError
from dcm.io import read_json, write_json
from dcm.schedule import uniform_edges
from dcm.trajectories import OnlineTeacher, TrajectoryCache

PROBE_FILE = "noise_probe.json"


def bucket_ranges(num_steps: int, buckets: int) -> list[tuple[int, int]]:
    """`buckets` near-equal grid index ranges [a, b] covering [0, N], ascending; bucket [a, b] holds the
    pairs (x_{t_n}, x_{t_{n-1}}) with a < n <= b."""
    if not 1 <= buckets <= num_steps:
        raise DCMError(f"vcm.probe_buckets={buckets} must lie in 1..schedule.num_steps={num_steps}")
    edges = uniform_edges(num_steps, buckets)[::-1]
    return list(pairwise(edges))


def probe_batches(source: TrajectoryCache | OnlineTeacher, ranges: list[tuple[int, int]], batch_size: int,
                  seed: int) -> list:
    """One fixed batch of teacher pairs per bucket, n uniform in (a, b], drawn with a generator of its own."""
    generator = torch.Generator().manual_seed(seed)
    return [source.sampler(a, b, batch_size)(generator) for a, b in ranges]


def gradient_norm(loss: torch.Tensor, params: list[torch.Tensor]) -> float:
    """Global L2 norm of d loss / d params via torch.autograd.grad, which leaves every .grad as it was."""
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads if g is not None])))


@dataclass
class NoiseProbe:
    """Called with the step count after each training step; every `every` steps (and at step 0 and the last
    step) records loss and gradient norm per bucket to `path` and to MLflow."""

    loss_fn: Callable[[object], torch.Tensor]  # the consistency loss of one batch (x_n, x_prev, n, cond)
    params: list[torch.Tensor]  # the student's trainable parameters
    batches: list  # one fixed batch per bucket, from probe_batches
    ranges: list[tuple[int, int]]
    sigmas: torch.Tensor
    every: int
    last_step: int
    path: Path
    records: dict[int, tuple[list[float], list[float]]] = field(default_factory=dict)

    def __post_init__(self):
        if self.path.is_file():  # an interrupted run: keep what it measured, redo later steps identically
            saved = read_json(self.path)
            if saved["buckets"] != self._buckets():
                raise DCMError(f"{self.path} was made with other probe buckets ({saved['buckets']}); "
                               "remove it to start over")
            self.records = {s: (lo, gn) for s, lo, gn in zip(saved["steps"], saved["loss"], saved["grad_norm"])}

    def _buckets(self) -> list[dict]:
        return [{"index_range": [a, b], "sigma_range": [float(self.sigmas[a]), float(self.sigmas[b])]}
                for a, b in self.ranges]

    def measure(self) -> tuple[list[float], list[float]]:
        """(loss, gradient norm) per bucket on the fixed batches; global RNG state restored afterwards."""
        losses, norms = [], []
        with torch.random.fork_rng(devices=[]):
            for batch in self.batches:
                loss = self.loss_fn(batch)
                norms.append(gradient_norm(loss, self.params))
                losses.append(float(loss.detach()))
        return losses, norms

    def __call__(self, step: int) -> None:
        """Probe after `step` training steps if it is a probe step, then rewrite the JSON."""
        if step % self.every and step != self.last_step:
            return
        losses, norms = self.measure()
        self.records[step] = (losses, norms)
        metrics = {f"probe/loss/b{j:02d}": v for j, v in enumerate(losses)}
        metrics.update({f"probe/grad_norm/b{j:02d}": v for j, v in enumerate(norms)})
        tracking.current().log_metrics(metrics, step)
        self.save()

    def to_json(self) -> dict:
        """The noise_probe.json document: buckets, probed steps, and per step a value per bucket."""
        steps = sorted(self.records)
        return {"buckets": self._buckets(), "steps": steps, "loss": [self.records[s][0] for s in steps],
                "grad_norm": [self.records[s][1] for s in steps]}

    def save(self) -> None:
        """Write noise_probe.json atomically."""
        write_json(self.path, self.to_json())


def training_probe(cfg: dict, section: str, source: TrajectoryCache | OnlineTeacher,
                   consistency_loss: Callable[[object], torch.Tensor],
                   params: list[torch.Tensor], sigmas: torch.Tensor, path: Path) -> NoiseProbe | None:
    """The probe configured by `<section>.probe_every/probe_buckets/probe_batch_size`, or None when off and in
    every process of a multi-GPU launch but the main one (which measures and writes it alone)."""
    scfg = cfg[section]
    if not scfg.get("probe_every") or not distributed.is_main():
        return None
    ranges = bucket_ranges(source.num_steps, scfg["probe_buckets"])
    return NoiseProbe(loss_fn=consistency_loss, params=[p for p in params if p.requires_grad],
                      batches=probe_batches(source, ranges, scfg["probe_batch_size"], cfg["seed"]), ranges=ranges,
                      sigmas=sigmas, every=scfg["probe_every"], last_step=scfg["steps"], path=path)
