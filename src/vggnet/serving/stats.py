"""The model's statistics as Triton keeps them (the statistics extension: ``GET /v2/models/NAME/stats``, gRPC's
``ModelStatistics``), which Triton's dashboards and perf_analyzer's server-side report read.

Triton's units and meanings: counts, and durations summed in nanoseconds. ``inference_count`` counts images (a
request of 4 images is 4 inferences), ``execution_count`` the model's forward passes (batches). Per request:
``success`` (or ``fail``) its whole time in the service, ``queue`` its wait for a batch, ``compute_input`` the
time its inputs took to become a model input (decoding included), ``compute_infer`` the forward pass it was part
of, ``compute_output`` the encoding of its answer. ``batch_stats`` are per batch size.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Duration:
    count: int = 0
    ns: int = 0

    def add(self, seconds: float, count: int = 1) -> None:
        self.count += count
        self.ns += int(seconds * 1e9)

    def json(self) -> dict[str, int]:
        return {"count": self.count, "ns": self.ns}


PHASES = ("success", "fail", "queue", "compute_input", "compute_infer", "compute_output", "cache_hit", "cache_miss")


@dataclass
class Timing:
    """One request's phases, filled in as it goes (the batcher fills queue and infer)."""

    started: float = field(default_factory=time.perf_counter)
    input: float = 0.0
    queue: float = 0.0
    infer: float = 0.0
    images: int = 0


class ModelStats:
    """Running totals for one model (all updated on the event loop's thread)."""

    def __init__(self) -> None:
        self.phases = {name: Duration() for name in PHASES}
        self.batches: dict[int, Duration] = {}
        self.inference_count = self.execution_count = 0
        self.last_inference_ms = 0

    def batch(self, size: int, seconds: float) -> None:
        """A forward pass of ``size`` images."""
        self.execution_count += 1
        self.batches.setdefault(size, Duration()).add(seconds)
        self.last_inference_ms = int(time.time() * 1000)

    @contextlib.contextmanager
    def failing(self, timing: Timing) -> Iterator[None]:
        """Counts the request as failed if what it wraps raises."""
        try:
            yield
        except BaseException:
            self.request(timing, 0.0, ok=False)
            raise

    def request(self, timing: Timing, output_seconds: float, ok: bool = True) -> None:
        """A request answered (``ok``) or failed."""
        total = time.perf_counter() - timing.started
        if not ok:
            self.phases["fail"].add(total)
            return
        self.phases["success"].add(total)
        self.inference_count += timing.images
        for name, seconds in (
            ("queue", timing.queue),
            ("compute_input", timing.input),
            ("compute_infer", timing.infer),
            ("compute_output", output_seconds),
        ):
            self.phases[name].add(seconds)

    def triton(self, name: str, version: str = "1") -> dict[str, Any]:
        """Triton's JSON for this model (the HTTP endpoint's; gRPC's message is parsed from it)."""
        zero = {"count": 0, "ns": 0}
        return {
            "model_stats": [
                {
                    "name": name,
                    "version": version,
                    "last_inference": self.last_inference_ms,
                    "inference_count": self.inference_count,
                    "execution_count": self.execution_count,
                    "inference_stats": {phase: d.json() for phase, d in self.phases.items()},
                    "batch_stats": [
                        {"batch_size": size, "compute_input": zero, "compute_infer": d.json(), "compute_output": zero}
                        for size, d in sorted(self.batches.items())
                    ],
                }
            ]
        }
