"""Wall time per video for Table 1's latency column: samplers timed round-robin, warm-up rounds, then the median of
timed rounds, each sampler timed in blocks of back-to-back calls where asked (equal_call_blocks)."""

from __future__ import annotations

import platform
import random
import statistics
import time
from collections.abc import Callable, Mapping

import torch

from dcm.layout import parse_sample_set


def device_name() -> str:
    """The accelerator (or CPU) the timing ran on, for the table's footnote."""
    if torch.cuda.is_available():
        return f"{torch.cuda.device_count()}x {torch.cuda.get_device_name(0)}"
    return f"CPU {platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"


def equal_call_blocks(names: list[str], reference: str) -> dict[str, int]:
    """Back-to-back calls per timed block for each `[prefix:]<method>-<steps>` name, so that every block makes
    about as many network calls as one run of `reference` (teacher steps / steps, rounded, at least 1): a k-step
    sampler timed alone for a few milliseconds meets the machine in another state (clock, other tenants' load)
    than the reference's 50 calls do: on this project's 2-core machine a call inside a 2-call run cost 3-17% less
    than one inside a 50-call run, in the bare network calls as in the samplers (4 Dec 2026)."""
    steps = lambda name: parse_sample_set(name.rpartition(":")[2])[1]  # noqa: E731
    return {name: max(1, round(steps(reference) / steps(name))) for name in names}


def interleaved_latency(calls: Mapping[str, Callable[[], object]], warmup: int, repeats: int,
                        clock: Callable[[], float] = time.perf_counter,
                        before: Callable[[str], None] = lambda name: None,
                        block: Mapping[str, int] | None = None) -> dict[str, dict]:
    """Seconds per call of each of `calls`, timed round-robin so that all of them share the machine's load:
    `warmup` untimed rounds of one call each, then `repeats` rounds that each time every one once, in an order
    shuffled per round (seeded by the round: reproducible), so that no call always follows the same one (a sampler
    timed right after its own bare calls would find their weights in the cache every round); the median, min and
    max of each. `block[name]` (default 1) calls are made back to back in each timed round and their time divided
    by that count. `before(name)` runs untimed ahead of each block (the latency stage puts that sampler's networks
    on the GPU there).

    CUDA work is synchronised before each clock read, so asynchronous kernels are inside the measurement.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    names = list(calls)
    block = {name: (block or {}).get(name, 1) for name in names}
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
            for _ in range(block[name]):
                calls[name]()
            sync()
            seconds[name].append((clock() - start) / block[name])
    device = device_name()
    return {name: {"median_s": statistics.median(t), "min_s": min(t), "max_s": max(t), "repeats": repeats,
                   "warmup": warmup, "calls_per_block": block[name], "seconds": t, "device": device}
            for name, t in seconds.items()}


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


def rounds_above_limit(per_set: dict[str, dict], reference: str) -> dict[str, int]:
    """How many rounds each set (`<method>-<steps>`) was faster than `reference` by more than the step-count ratio
    (reference steps / steps)."""
    teacher_steps = parse_sample_set(reference)[1]
    return {name: sum(ratio > teacher_steps / parse_sample_set(name)[1]
                      for ratio in round_ratios(per_set, reference, name)) for name in per_set}


def above_step_limit(per_set: dict[str, dict], reference: str, alpha: float = 0.01) -> list[str]:
    """Sets faster than the step-count ratio allows: more rounds above the limit (rounds_above_limit) than noise
    explains, by a one-sided sign test over the rounds at `alpha`. That is a timing fault, since no sampler makes
    fewer than one network call per step. A sampler with no overhead of its own (the teacher at k steps) sits at
    the limit, so noise alone puts about half its rounds above it; the test flags a set only when, say, all of 10
    rounds or 14 of 16 are above."""
    from scipy.stats import binomtest  # here: the latency stage's other imports do not need scipy

    rounds = {name: len(t["seconds"]) for name, t in per_set.items()}
    return sorted(name for name, above in rounds_above_limit(per_set, reference).items()
                  if binomtest(above, rounds[name], 0.5, alternative="greater").pvalue < alpha)
