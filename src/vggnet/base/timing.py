"""The one timing harness: runs that take turns, so that a machine's drift (another job, the clock, the heat)
touches them all alike, each timed over enough calls to measure the work rather than the thread pools' wake-up.
``vggnet bench``, the engines' selection and the scripts in benchmarks/ all time through it."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch


def synchronize(device: torch.device | None) -> None:
    """Wait for a CUDA device's queued work (a no-op elsewhere): what a timer must do before reading the clock."""
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


def take_turns(
    runs: dict[str, Callable[[], Any]],
    images: int,
    rounds: int,
    least: float = 0.0,
    warmup: int = 1,
    device: torch.device | None = None,
) -> dict[str, float]:
    """Images/s of each run (each call does ``images`` images): ``warmup`` calls of each, then the runs take turns
    for ``rounds`` rounds; in a round a run is timed over enough calls to last ``least`` seconds (one call where
    ``least`` is 0). The median round of each run."""
    calls: dict[str, int] = {}
    for name, run in runs.items():
        seconds = 0.0
        for _ in range(warmup if least == 0 else max(1, warmup)):  # timing a call sizes the rounds
            started = time.perf_counter()
            run()
            synchronize(device)
            seconds = time.perf_counter() - started
        calls[name] = max(1, math.ceil(least / max(seconds, 1e-6))) if least else 1
    found: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            synchronize(device)
            started = time.perf_counter()
            for _ in range(calls[name]):
                run()
            synchronize(device)
            found[name].append(images * calls[name] / (time.perf_counter() - started))
    return {name: statistics.median(rates) for name, rates in found.items()}
