"""One interleaved timing loop for the harnesses that time steps side by side (layers, the
detection step), so a change in machine load cannot favour one variant."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def sync(device: torch.device) -> None:
    """Wait for the work queued on `device` (CUDA runs asynchronously), so that a clock read
    next counts it; nothing on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved_median_ms(
    steps: dict[str, Callable[[], None]],
    device: torch.device,
    rounds: int,
    iters: int,
    warmup: int = 1,
) -> dict[str, float]:
    """Median milliseconds per call of each step. After `warmup` calls each (allocator, kernel
    choice), every round times `iters` calls of each step in turn, so a change in machine load
    falls on all of them alike; CUDA is synchronised around each timing."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    samples: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            sync(device)
            start = time.perf_counter()
            for _ in range(iters):
                step()
            sync(device)
            samples[name].append((time.perf_counter() - start) / iters)
    return {name: 1000 * statistics.median(s) for name, s in samples.items()}
