"""Fixed-shape copies of an OpenVINO model for the batches the service's batcher forms.

An exported model keeps its batch and image size dynamic, so that one file runs any batch at any size. OpenVINO's
CPU plugin can be faster on a shape it knows when compiling: 2-5 % on an AVX2-only EPYC, 1.3-2x reported on a Zen 4
(BENCHMARKS.md). So the service compiles a copy for each batch it forms most (a lone request, the powers of two of
a rising load, a full batch) and keeps a copy only where it was measured faster than the dynamic model on the same
batches by :data:`MARGIN` (``auto``); each answer is remembered per machine, kind of model and shape, as ``auto``'s
choice of engine is. Other batch sizes run on the dynamic model: padding them to a fixed size would spend compute a
copy may not win back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..base.hardware import cpu_signature
from ..base.timing import take_turns
from .select import kind_of, recall, remember

MODES = ("auto", "on", "off")
MARGIN = 1.1  # a copy is kept where it is at least this much faster: less is within these runs' noise
ROUNDS, LEAST = 3, 0.1  # turns of the measurement, and the least seconds each timing takes
MEASUREMENT = "fixed v1"  # how copies are measured: a new way measures afresh


@dataclass(frozen=True)
class FixedBatch:
    """What became of one batch size: ``speedup`` is the copy's images/s over the dynamic model's (None: not
    measured), ``how`` says where the decision came from (measured, remembered, asked, not measured, over budget)."""

    batch: int
    speedup: float | None
    kept: bool
    how: str

    def __str__(self) -> str:
        shown = f" {self.speedup:.2f}x" if self.speedup is not None else ""
        return f"{self.batch}:{shown} {'fixed' if self.kept else 'dynamic'} ({self.how})"


def batch_sizes(max_batch: int) -> list[int]:
    """1, the powers of two below ``max_batch``, and ``max_batch``."""
    return sorted({1, max_batch, *(2**k for k in range(1, max_batch.bit_length()) if 2**k < max_batch)})


def fix_batches(
    model: Any, image: tuple[int, ...], max_batch: int, mode: str = "auto", measure: bool = True, budget: float = 20.0
) -> list[FixedBatch]:
    """Compile fixed-batch copies of ``model`` (an :class:`~vggnet.engines.openvino_engine.OpenVinoModel`) for
    :func:`batch_sizes` batches of ``image`` (C x H x W) and keep them as ``mode`` says: ``on`` all, ``off`` none,
    ``auto`` those measured (or remembered) faster; ``measure=False`` keeps to what is remembered, and what cannot be
    measured within ``budget`` seconds in all stays dynamic."""
    if mode not in MODES:
        raise ValueError(f"unknown fixed-batch mode {mode!r}; expected one of {', '.join(MODES)}")
    if mode == "off":
        return []
    deadline = time.perf_counter() + budget
    found = []
    for n in batch_sizes(max_batch):
        shape = (n, *image)
        if mode == "on":
            model.keep_fixed(shape, model.compile_fixed(shape))
            found.append(FixedBatch(n, None, True, "asked"))
            continue
        found.append(decide(model, shape, measure, deadline))
        if found[-1].how == "over budget":
            deadline = 0.0  # sizes ascend, and a larger batch takes longer to time: the rest are over budget too
    return found


def decide(model: Any, shape: tuple[int, ...], measure: bool, deadline: float) -> FixedBatch:
    """Keep a copy for ``shape`` where it is remembered or measured faster by :data:`MARGIN`."""
    n, key = shape[0], cache_key(model, shape)
    known, compiled = recall(key, {"speedup": (int, float)}), None
    if known is not None:
        speedup, how = float(known["speedup"]), "remembered"
    elif not measure:
        return FixedBatch(n, None, False, "not measured")
    else:
        measured = measure_copy(model, shape, deadline) if time.perf_counter() < deadline else None
        if measured is None:
            return FixedBatch(n, None, False, "over budget")
        speedup, compiled = measured
        remember(key, {"speedup": speedup, "batch": n})
        how = "measured"
    kept = speedup >= MARGIN
    if kept:
        model.keep_fixed(shape, compiled if compiled is not None else model.compile_fixed(shape))
    return FixedBatch(n, speedup, kept, how)


def measure_copy(model: Any, shape: tuple[int, ...], deadline: float) -> tuple[float, Any] | None:
    """A copy compiled for ``shape`` and its images/s over the dynamic model's on the same batch, the two taking
    turns; None, with nothing compiled, where the measurement would end past ``deadline`` (estimated from one timed
    call of the dynamic model)."""
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    model.request.infer({0: x})  # the dynamic model's first call at a new shape prepares its kernels
    started = time.perf_counter()
    model.request.infer({0: x})
    call = time.perf_counter() - started
    if time.perf_counter() + ROUNDS * 2 * (call + max(call, LEAST)) > deadline:
        return None
    compiled = model.compile_fixed(shape)
    fixed = compiled.create_infer_request()
    runs = {"dynamic": lambda: model.request.infer({0: x}), "fixed": lambda: fixed.infer({0: x})}
    rates = take_turns(runs, shape[0], ROUNDS, LEAST)
    return rates["fixed"] / rates["dynamic"], compiled


def cache_key(model: Any, shape: tuple[int, ...]) -> str:
    threads = model.threads or "all"
    kind = kind_of(model.meta, model.size, model.precision)
    return f"{MEASUREMENT} || {cpu_signature()} || {kind} || {threads} threads || {'x'.join(map(str, shape))}"
