"""Wall-clock timing that is right on a GPU: wait for queued kernels before reading the clock."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import torch

__all__ = ["synchronize", "timed"]

T = TypeVar("T")


def synchronize(device: torch.device | str) -> None:
    """Wait for the work queued on ``device`` (a no-op on the CPU)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], T], device: torch.device | str, repeats: int) -> tuple[list[float], T]:
    """Run ``fn`` once to warm up (allocator, kernels), then ``repeats`` timed times; returns the
    seconds of each timed run and the last output."""
    out = fn()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        out = fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return times, out
