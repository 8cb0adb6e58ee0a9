"""The service's Prometheus metrics (a registry of its own) and its access log: one JSON line per request."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class Metrics:
    """Requests by endpoint and status, their latency, the batches and the queue."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.requests = Counter(
            "vggnet_requests", "HTTP requests by endpoint and status", ["endpoint", "status"], registry=r
        )
        self.latency = Histogram(
            "vggnet_request_seconds", "request latency", ["endpoint"], registry=r, buckets=LATENCY_BUCKETS
        )
        self.batch = Histogram("vggnet_batch_size", "images per forward pass", registry=r, buckets=BATCH_BUCKETS)
        self.inference = Histogram("vggnet_inference_seconds", "seconds per forward pass", registry=r)
        self.queue = Gauge("vggnet_queue_depth", "images waiting for the model", registry=r)

    def observe_batch(self, size: int, seconds: float, waiting: int) -> None:
        self.batch.observe(size)
        self.inference.observe(seconds)
        self.queue.set(waiting)


class AccessLog:
    """ASGI middleware: one JSON line per request on stderr, and the request counter and latency histogram."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def sending(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            seconds = time.perf_counter() - started
            endpoint = getattr(scope.get("route"), "path", "unknown")
            self.metrics.requests.labels(endpoint, str(status)).inc()
            self.metrics.latency.labels(endpoint).observe(seconds)
            client = scope.get("client")
            line = {
                "time": round(time.time(), 3),
                "method": scope["method"],
                "path": scope["path"],
                "status": status,
                "ms": round(1000 * seconds, 2),
                "client": client[0] if client else None,
            }
            print(json.dumps(line), file=sys.stderr, flush=True)
