"""Wall time per video for Table 1's latency column: warm-up runs, then the median of timed repeats."""

from __future__ import annotations

import platform
import statistics
import time
from typing import Callable

import torch


def device_name() -> str:
    """The accelerator (or CPU) the timing ran on, for the table's footnote."""
    if torch.cuda.is_available():
        return f"{torch.cuda.device_count()}x {torch.cuda.get_device_name(0)}"
    return f"CPU {platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"


def measure_latency(generate: Callable[[], object], warmup: int, repeats: int,
                    clock: Callable[[], float] = time.perf_counter) -> dict:
    """Median, min and max seconds of `repeats` calls of `generate` after `warmup` untimed calls.

    CUDA work is synchronised before each clock read, so asynchronous kernels are inside the measurement.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    for _ in range(warmup):
        generate()
    seconds = []
    for _ in range(repeats):
        sync()
        start = clock()
        generate()
        sync()
        seconds.append(clock() - start)
    return {"median_s": statistics.median(seconds), "min_s": min(seconds), "max_s": max(seconds),
            "repeats": repeats, "warmup": warmup, "seconds": seconds, "device": device_name()}
