"""Wall time per video for Table 1's latency column: samplers timed round-robin, warm-up rounds, then the median of
timed rounds."""

from __future__ import annotations

import platform
import random
import statistics
import time
from collections.abc import Callable, Mapping

import torch


def device_name() -> str:
    """The accelerator (or CPU) the timing ran on, for the table's footnote."""
    if torch.cuda.is_available():
        return f"{torch.cuda.device_count()}x {torch.cuda.get_device_name(0)}"
    return f"CPU {platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"


def interleaved_latency(calls: Mapping[str, Callable[[], object]], warmup: int, repeats: int,
                        clock: Callable[[], float] = time.perf_counter,
                        before: Callable[[str], None] = lambda name: None) -> dict[str, dict]:
    """Seconds per call of each of `calls`, timed round-robin so that all of them share the machine's load:
    `warmup` untimed rounds, then `repeats` rounds that each call every one once, in an order shuffled per round
    (seeded by the round: reproducible), so that no call always follows the same one (a sampler timed right after
    its own bare calls would find their weights in the cache every round); the median, min and max of each.
    `before(name)` runs untimed ahead of each call (the latency stage puts that sampler's networks on the GPU
    there).

    CUDA work is synchronised before each clock read, so asynchronous kernels are inside the measurement.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    names = list(calls)
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    for _ in range(warmup):
        for name in names:
            before(name)
            calls[name]()
    seconds = {name: [] for name in names}
    for round_ in range(repeats):
        for name in random.Random(round_).sample(names, len(names)):
            before(name)
            sync()
            start = clock()
            calls[name]()
            sync()
            seconds[name].append(clock() - start)
    device = device_name()
    return {name: {"median_s": statistics.median(t), "min_s": min(t), "max_s": max(t), "repeats": repeats,
                   "warmup": warmup, "seconds": t, "device": device} for name, t in seconds.items()}


def round_ratios(per_set: dict[str, dict], numerator: str, denominator: str) -> list[float]:
    """`numerator`'s time over `denominator`'s in each timed round: the two shared that round's load."""
    return [a / b for a, b in zip(per_set[numerator]["seconds"], per_set[denominator]["seconds"], strict=True)]


def paired_ratio(per_set: dict[str, dict], numerator: str, denominator: str) -> float:
    """The median of round_ratios: the machine's drift between rounds cancels (a ratio of medians keeps it)."""
    return statistics.median(round_ratios(per_set, numerator, denominator))


def round_quartiles(per_set: dict[str, dict], numerator: str, denominator: str) -> tuple[float, float]:
    """First and third quartiles of round_ratios (statistics.quantiles, inclusive): the rounds' spread around
    paired_ratio."""
    ratios = round_ratios(per_set, numerator, denominator)
    if len(ratios) == 1:
        return ratios[0], ratios[0]
    q1, _, q3 = statistics.quantiles(ratios, n=4, method="inclusive")
    return q1, q3


def speedups(per_set: dict[str, dict], reference: str) -> dict[str, float]:
    """Each set's speed-up over `reference`, paired by round (paired_ratio)."""
    return {name: paired_ratio(per_set, reference, name) for name in per_set}


def above_step_limit(per_set: dict[str, dict], reference: str) -> list[str]:
    """Sets (`<method>-<steps>` names) faster than the step-count ratio allows in most rounds: the lower quartile
    of their per-round speed-ups (round_quartiles) above the limit.
    That is a timing fault, since no sampler makes fewer than one network call per step; a median just above
    the limit with a quarter of the rounds below it is noise, and one slow round no longer hides a fault."""
    teacher_steps = int(reference.rsplit("-", 1)[1])
    return sorted(name for name in per_set
                  if round_quartiles(per_set, reference, name)[0] > teacher_steps / int(name.rsplit("-", 1)[1]))
