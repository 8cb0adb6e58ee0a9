"""Dynamic batching: requests run together, up to ``max_batch`` images, in one forward pass on the model's own
thread; each caller gets back its own rows.

A batch waits for company only while other requests are on their way to it (received, their bodies being read or
their images decoded: :meth:`Batcher.expecting`), and at most ``max_wait``. A lone request never waits: at low load
a small model's forward pass is shorter than any fixed wait, which would otherwise be most of each answer's time
(BENCHMARKS.md measured it), while under load the requests being decoded are exactly the ones worth waiting for.

The queue is bounded in images: past ``max_queue`` a request is refused at once (the service answers 503 with
Retry-After) instead of memory growing without bound. A request that times out while queued is dropped before it
is computed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import torch


class Overloaded(Exception):
    """The queue is full: try again later."""


@dataclass
class _Item:
    images: torch.Tensor  # n x C x H x W
    future: asyncio.Future
    queued: float = field(default_factory=time.perf_counter)
    timing: Any = None  # told its wait (``queue``) and its forward pass (``infer``), in seconds


class Batcher:
    """Collects model inputs from concurrent requests into batches for ``run`` (N x C x H x W -> N x K), which is
    called on one dedicated thread (the model's). ``observe(batch_size, seconds, queue_depth)`` is told of each
    batch (metrics)."""

    def __init__(
        self,
        run: Callable[[torch.Tensor], torch.Tensor],
        max_batch: int = 16,
        max_wait: float = 0.005,
        max_queue: int = 256,
        observe: Callable[[int, float, int], None] | None = None,
    ) -> None:
        if max_batch < 1 or max_queue < max_batch or max_wait < 0:
            raise ValueError("need max_batch >= 1, max_queue >= max_batch and max_wait >= 0")
        self.run, self.max_batch, self.max_wait, self.max_queue = run, max_batch, max_wait, max_queue
        self.observe = observe or (lambda *a: None)
        self.queue: deque[_Item] = deque()
        self.waiting = 0  # images queued
        self.coming = 0  # requests on their way to submit (see expecting)
        self.model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vggnet-model")
        self.wakeup: asyncio.Event | None = None
        self.worker: asyncio.Task | None = None

    async def start(self) -> None:
        self.wakeup = asyncio.Event()
        self.worker = asyncio.create_task(self._loop())

    @contextlib.contextmanager
    def expecting(self) -> Iterator[None]:
        """Marks a request that will submit once its body is read and its images decoded: a batch being collected
        waits for it (at most ``max_wait``). Leave it just before :meth:`submit`."""
        self.coming += 1
        try:
            yield
        finally:
            self.coming -= 1
            if self.wakeup is not None:
                self.wakeup.set()

    async def submit(self, images: torch.Tensor, timeout: float | None = None, timing: Any = None) -> torch.Tensor:
        """Rows of ``run`` for ``images`` (n x C x H x W, n <= max_batch), computed with whatever else is queued.
        ``Overloaded`` when the queue has no room; ``TimeoutError`` after ``timeout`` seconds. ``timing`` (any
        object with ``queue`` and ``infer`` attributes) is told how long the images waited and ran."""
        if len(images) > self.max_batch:
            parts = [
                self.submit(images[i : i + self.max_batch], timeout, timing)
                for i in range(0, len(images), self.max_batch)
            ]
            return torch.cat(await asyncio.gather(*parts))
        if self.waiting + len(images) > self.max_queue:
            raise Overloaded(f"{self.waiting} images are queued (at most {self.max_queue})")
        item = _Item(images, asyncio.get_running_loop().create_future(), timing=timing)
        self.queue.append(item)
        self.waiting += len(images)
        self.wakeup.set()
        try:
            return await asyncio.wait_for(asyncio.shield(item.future), timeout)
        except (TimeoutError, asyncio.TimeoutError):
            item.future.cancel()  # dropped if still queued; its rows are ignored if already running
            raise TimeoutError(f"no answer within {timeout:g} s") from None

    async def _loop(self) -> None:
        while True:
            await self.wakeup.wait()
            self.wakeup.clear()
            while self.queue:
                batch = await self._collect()
                if batch:
                    await self._run(batch)

    async def _collect(self) -> list[_Item]:
        """The oldest requests, up to max_batch images, having waited for the requests on their way, at most
        max_wait."""
        deadline = self.queue[0].queued + self.max_wait
        while self.coming and self._queued_live() < self.max_batch and time.perf_counter() < deadline:
            self.wakeup.clear()
            try:
                await asyncio.wait_for(self.wakeup.wait(), max(0.0, deadline - time.perf_counter()))
            except (TimeoutError, asyncio.TimeoutError):
                break
        batch, count = [], 0
        while self.queue and count + len(self.queue[0].images) <= self.max_batch:
            item = self.queue.popleft()
            self.waiting -= len(item.images)
            if not item.future.cancelled():
                batch.append(item)
                count += len(item.images)
        return batch

    def _queued_live(self) -> int:
        return sum(len(i.images) for i in self.queue if not i.future.cancelled())

    async def _run(self, batch: list[_Item]) -> None:
        images = torch.cat([item.images for item in batch])
        started = time.perf_counter()
        try:
            out = await asyncio.get_running_loop().run_in_executor(self.model_thread, self.run, images)
        except Exception as err:  # the model failed: every caller of this batch hears of it
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(err)
            return
        seconds = time.perf_counter() - started
        self.observe(len(images), seconds, self.waiting)
        row = 0
        for item in batch:
            if item.timing is not None:
                item.timing.queue += started - item.queued
                item.timing.infer += seconds
            n = len(item.images)
            if not item.future.done():
                item.future.set_result(out[row : row + n])
            row += n

    async def on_model_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn`` on the model's thread, between batches (for work that is not batched, such as Grad-CAM)."""
        return await asyncio.get_running_loop().run_in_executor(self.model_thread, fn, *args)

    async def stop(self) -> None:
        """Finish what is queued, then stop the worker and the model's thread."""
        while self.queue:
            await asyncio.sleep(0.01)
        if self.worker is not None:
            self.worker.cancel()
        self.model_thread.shutdown(wait=True)
