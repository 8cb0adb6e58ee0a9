"""What ``vggnet bench`` measures and prints: a figure (images/s, the peak memory a run added, the GFLOP/s it reached),
the peak itself, runs timed in turns (:func:`vggnet.base.timing.take_turns`), the machine's matmul ceiling and the
table of ratios against torchvision."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..base.files import quiet_stderr
from ..base.timing import synchronize, take_turns


@dataclass
class Figure:
    name: str
    images_per_s: float
    peak_mib: float
    gflops: float  # achieved, from the model's multiply-accumulates


class PeakMemory:
    """Peak memory that tensors allocated while the block ran, above what was allocated before it: the CUDA
    allocator's own peak, or on the CPU the running sum of the profiler's allocation records (the process's
    resident set would not show memory the allocator reuses)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak = 0.0

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
        else:
            from torch.profiler import ProfilerActivity, profile

            # Kineto's start/stop lines, "gpuGetDeviceCount failed" on CPU-only machines and the allocator's notes
            # on blocks from before the profile go to file descriptor 2 while it runs: silenced until __exit__.
            self.quiet = quiet_stderr()
            self.quiet.__enter__()
            self.profiler = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
            self.profiler.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = (torch.cuda.max_memory_allocated(self.device) - self.base) / 2**20
            return
        try:
            self.profiler.__exit__(*exc)
        finally:
            self.quiet.__exit__(None, None, None)
        # Each event's own allocations minus frees (children excluded), in time order: a running total.
        records = sorted((e.time_range.start, e.self_cpu_memory_usage) for e in self.profiler.events())
        current = top = 0
        for _, change in records:
            current += change
            top = max(top, current)
        self.peak = top / 2**20


def alternate(
    runs: dict[str, Callable[[], None]],
    images: int,
    device: torch.device,
    repeats: int = 5,
    warmup: int = 1,
    macs_per_image: float = 0.0,
    flop_factor: float = 2.0,
) -> list[Figure]:
    """Each run's figure: images/s, the runs taking turns ``repeats`` times after ``warmup`` calls each
    (:func:`~vggnet.base.timing.take_turns`), and the peak memory of one more call of each, apart from the timed
    ones (the CPU's sampler would steal time)."""
    peaks: dict[str, float] = {}
    for name, fn in runs.items():
        for _ in range(warmup):
            fn()
        with PeakMemory(device) as mem:
            fn()
        peaks[name] = mem.peak
    rates = take_turns(runs, images, repeats, warmup=0, device=device)
    return [Figure(n, rates[n], peaks[n], rates[n] * macs_per_image * flop_factor / 1e9) for n in runs]


def matmul_gflops(device: torch.device, dtype: torch.dtype = torch.float32, n: int = 2048, repeats: int = 10) -> float:
    """The machine's measured matrix-multiply rate (GFLOP/s), the ceiling for convolution-heavy work."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    synchronize(device)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        synchronize(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def table(sections: list[tuple[str, list[Figure]]], ceiling: float) -> str:
    """The figures as a Markdown table; each section's first row is the torchvision reference of its ratios."""
    lines = [
        "| run | images/s | vs torchvision | peak memory (MiB) | GFLOP/s | % of matmul |",
        "|---|---|---|---|---|---|",
    ]
    for _, figures in sections:
        ref = figures[0].images_per_s
        for f in figures:
            share = f"{100 * f.gflops / ceiling:.0f}%" if f.gflops else "-"
            gflops = f"{f.gflops:.0f}" if f.gflops else "-"
            lines.append(
                f"| {f.name} | {f.images_per_s:.2f} | {f.images_per_s / ref:.2f}x | {f.peak_mib:.0f} | "
                f"{gflops} | {share} |"
            )
    return "\n".join(lines)
