"""The service as a FastAPI app: one :class:`Service` (the model, its batcher, the metrics, the settings) held in
``app.state``, the routes of :mod:`vggnet.serving.routes`, and every error mapped to its HTTP status in one place
(:data:`~vggnet.serving.errors.STATUS`), each answered as JSON with one sentence. ``vggnet serve`` assembles it with
the pages of other packages (:mod:`vggnet.commands.serve`)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from importlib import resources

import torch
from fastapi import FastAPI

from ..export.triton import model_config
from ..web.engine import Engine
from ..web.errors import install_error_handlers
from .batcher import Batcher
from .errors import STATUS, message
from .metrics import AccessLog, Metrics
from .routes import plain, v2
from .service import Service
from .settings import ServeSettings
from .stats import ModelStats

Announce = Callable[[Service, float], None]


def create_app(engine: Engine, settings: ServeSettings, announce: Announce | None = None) -> FastAPI:
    """The service for one model. ``announce(service, seconds)`` is called once it is ready, the warm-up having
    taken ``seconds``."""
    metrics, stats = Metrics(), ModelStats()

    def observe(size: int, seconds: float, waiting: int) -> None:
        metrics.observe_batch(size, seconds, waiting)
        stats.batch(size, seconds)

    batcher = Batcher(engine.classify, settings.max_batch, settings.max_wait_ms / 1000, settings.max_queue, observe)
    page = (resources.files("vggnet.serving") / "index.html").read_text()
    delay = round(settings.max_wait_ms * 1000)
    config = model_config(
        settings.name, engine.loaded, engine.platform, settings.max_batch, delay, engine.mirror, True, settings.warmup
    )
    page = page.replace("__MODEL_NAME__", json.dumps(settings.name))
    service = Service(engine, batcher, metrics, settings, page, config, stats)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await batcher.start()
        if settings.grpc_port is not None:
            from .grpc_service import start_grpc

            service.grpc = await start_grpc(service)
        warming = asyncio.create_task(warm_up(service, announce))
        yield
        warming.cancel()
        await stop_grpc(service)
        await batcher.stop()  # requests in flight have finished: uvicorn waited for them

    app = FastAPI(title="vggnet", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.service = service
    app.add_middleware(AccessLog, metrics=metrics)
    app.include_router(v2)
    app.include_router(plain)
    install_error_handlers(app, STATUS, message)
    return app


async def warm_up(service: Service, announce: Announce | None) -> None:
    """OpenVINO's fixed-batch copies compiled (and, new here, measured), a batch of 1 and one of ``max_batch``
    through the model at its geometry (zeros), then ready: the engine's first-call costs (oneDNN's primitives,
    OpenVINO's compilation) are paid before any request."""
    started, settings = time.perf_counter(), service.settings
    service.fixed = await service.batcher.on_model_thread(
        service.engine.fix_batches, settings.fixed_batches, settings.max_batch, settings.warmup
    )
    if settings.warmup:
        for n in sorted({1, settings.max_batch}):
            zeros = torch.zeros(n, *service.engine.input_shape)
            await service.batcher.on_model_thread(service.engine.classify, zeros)
    service.ready = True
    if announce is not None:
        announce(service, time.perf_counter() - started)


async def stop_grpc(service: Service) -> None:
    """Stop the gRPC server, if any: new calls refused, those in flight answered (within --timeout)."""
    if service.grpc is not None:
        server, service.grpc = service.grpc, None
        await server.stop(service.settings.timeout)
