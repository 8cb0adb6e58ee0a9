"""The HTTP service: the Open Inference Protocol (``/v2/...``), a plain ``/predict`` and ``/explain``, a page at
``/``, Prometheus ``/metrics``, one JSON access-log line per request. An ASGI app on FastAPI (Starlette), served by
uvicorn, which also gives the graceful shutdown: on SIGTERM it stops accepting, lets requests in flight finish,
then the batcher drains.

Every error is a JSON body ``{"error": "<one sentence>"}`` with its status: 400 bad request, 404 unknown model,
413 body too large (or an image with too many pixels), 415 not an image, 503 queue full (with Retry-After), 504 a
request that outlived ``timeout``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources

import numpy as np
import torch
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..data.images import BadImage
from . import open_inference as v2
from .batcher import Batcher, Overloaded
from .engine import Engine, describe_bad_image


@dataclass
class ServeSettings:
    name: str = "vggnet"
    max_batch: int = 16
    max_wait_ms: float = 5.0
    max_queue: int = 256
    max_body: int = 10 * 2**20
    timeout: float = 30.0


class HttpError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


class Metrics:
    """The service's Prometheus metrics, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("vggnet_requests", "HTTP requests by endpoint and status", ["endpoint", "status"],
                                registry=self.registry)  # fmt: skip
        self.latency = Histogram("vggnet_request_seconds", "request latency", ["endpoint"], registry=self.registry,
                                 buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30))  # fmt: skip
        self.batch = Histogram("vggnet_batch_size", "images per forward pass", registry=self.registry,
                               buckets=(1, 2, 4, 8, 16, 32, 64, 128))  # fmt: skip
        self.inference = Histogram("vggnet_inference_seconds", "seconds per forward pass", registry=self.registry)
        self.queue = Gauge("vggnet_queue_depth", "images waiting for the model", registry=self.registry)

    def observe_batch(self, size: int, seconds: float, waiting: int) -> None:
        self.batch.observe(size)
        self.inference.observe(seconds)
        self.queue.set(waiting)


async def read_body(request: Request, limit: int) -> bytes:
    """The request's body, refused with 413 as soon as it passes ``limit`` bytes (whatever Content-Length says)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise HttpError(413, f"the body is {int(declared):,} bytes, more than the {limit:,} allowed (--max-body)")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HttpError(413, f"the body is more than the {limit:,} bytes allowed (--max-body)")
        chunks.append(chunk)
    return b"".join(chunks)


async def image_bytes(request: Request, limit: int) -> bytes:
    """The image of a /predict or /explain request: a multipart field ``file``, or the raw body."""
    body = await read_body(request, limit)
    kind = request.headers.get("content-type", "")
    if not kind.startswith("multipart/form-data"):
        return body
    from starlette.datastructures import UploadFile
    from starlette.requests import Request as Plain

    async def replay() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    form = await Plain(request.scope, replay).form()
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise HttpError(400, 'a multipart upload needs the image in a field named "file"')
    return await upload.read()


def create_app(engine: Engine, settings: ServeSettings) -> FastAPI:
    """The service for one model."""
    metrics = Metrics()
    batcher = Batcher(engine.classify, settings.max_batch, settings.max_wait_ms / 1000, settings.max_queue,
                      metrics.observe_batch)  # fmt: skip

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await batcher.start()
        yield
        await batcher.stop()  # requests in flight have finished: uvicorn waited for them

    app = FastAPI(title="vggnet", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.engine, app.state.batcher, app.state.metrics, app.state.settings = engine, batcher, metrics, settings
    install_logging_and_errors(app, metrics)
    add_v2_routes(app, engine, batcher, settings)
    add_plain_routes(app, engine, batcher, settings, metrics)
    return app


class AccessLog:
    """ASGI middleware: one JSON line per request on stderr, and the request counter and latency histogram."""

    def __init__(self, app, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def sending(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            seconds = time.perf_counter() - started
            route = scope.get("route")
            endpoint = getattr(route, "path", "unknown")
            self.metrics.requests.labels(endpoint, str(status)).inc()
            self.metrics.latency.labels(endpoint).observe(seconds)
            client = scope.get("client")
            line = {"time": round(time.time(), 3), "method": scope["method"], "path": scope["path"], "status": status,
                    "ms": round(1000 * seconds, 2), "client": client[0] if client else None}  # fmt: skip
            print(json.dumps(line), file=sys.stderr, flush=True)


def install_logging_and_errors(app: FastAPI, metrics: Metrics) -> None:
    app.add_middleware(AccessLog, metrics=metrics)

    @app.exception_handler(HttpError)
    async def http_error(request: Request, err: HttpError):
        return error_response(err)

    @app.exception_handler(Exception)
    async def bug(request: Request, err: Exception):  # still one sentence, and the service lives on
        return error_response(HttpError(500, f"internal error: {type(err).__name__}: {err}"))

    @app.exception_handler(StarletteHTTPException)
    async def starlette_error(request: Request, err: StarletteHTTPException):
        what = {404: f"no such endpoint: {request.method} {request.url.path}",
                405: f"{request.method} is not allowed on {request.url.path}"}  # fmt: skip
        what = what.get(err.status_code, str(err.detail))
        return error_response(HttpError(err.status_code, what))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, err: RequestValidationError):
        first = err.errors()[0] if err.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return error_response(HttpError(400, f"bad {where}: {first.get('msg', 'invalid request')}"))


def error_response(err: HttpError) -> JSONResponse:
    return JSONResponse({"error": err.message}, status_code=err.status, headers=err.headers)


async def run_batch(batcher: Batcher, images: torch.Tensor, settings: ServeSettings) -> torch.Tensor:
    """Posteriors for model inputs through the batcher, its refusals as HTTP errors."""
    try:
        return await batcher.submit(images, settings.timeout)
    except Overloaded as err:
        raise HttpError(503, f"the service is overloaded: {err}; retry shortly", {"Retry-After": "1"}) from None
    except TimeoutError as err:
        raise HttpError(504, f"the model gave {err} (--timeout)") from None


async def preprocess(engine: Engine, data: bytes) -> torch.Tensor:
    """An encoded image to a model input, in a worker thread (the event loop and the model's thread stay free)."""
    try:
        return await asyncio.to_thread(engine.preprocess, data)
    except BadImage as err:
        raise HttpError(*describe_bad_image(err)) from None


def check_model(name: str, settings: ServeSettings) -> None:
    if name != settings.name:
        raise HttpError(404, f"unknown model {name!r}; this service serves {settings.name!r}")


def add_v2_routes(app: FastAPI, engine: Engine, batcher: Batcher, settings: ServeSettings) -> None:
    @app.get("/v2/health/live")
    async def live():
        return {"live": True}

    @app.get("/v2/health/ready")
    async def ready():
        return {"ready": batcher.worker is not None}

    @app.get("/v2")
    async def server_metadata():
        from ..version import __version__

        return {"name": "vggnet", "version": __version__, "extensions": ["binary_tensor_data", "classification"]}

    @app.get("/v2/models/{name}")
    @app.get("/v2/models/{name}/versions/{version}")
    async def model_metadata(name: str, version: str = "1"):
        check_model(name, settings)
        return metadata(engine, settings)

    @app.get("/v2/models/{name}/ready")
    @app.get("/v2/models/{name}/versions/{version}/ready")
    async def model_ready(name: str, version: str = "1"):
        check_model(name, settings)
        return {"name": name, "ready": batcher.worker is not None}

    @app.post("/v2/models/{name}/infer")
    @app.post("/v2/models/{name}/versions/{version}/infer")
    async def infer(name: str, request: Request, version: str = "1"):
        check_model(name, settings)
        body = await read_body(request, settings.max_body)
        length = request.headers.get(v2.HEADER)
        try:
            parsed = v2.parse_request(body, int(length) if length and length.isdigit() else None)
            images = await model_inputs(engine, parsed)
            probs = (await run_batch(batcher, images, settings)).numpy()
            content, header = v2.encode_response(settings.name, parsed, probs, engine.loaded.classes)
        except v2.ProtocolError as err:
            raise HttpError(400, str(err)) from None
        headers = {v2.HEADER: str(header)} if header is not None else {}
        kind = "application/octet-stream" if header is not None else "application/json"
        return Response(content, media_type=kind, headers=headers)


def metadata(engine: Engine, settings: ServeSettings) -> dict:
    """The model's v2 metadata; ``parameters`` say what a client needs to prepare the FP32 input itself."""
    loaded = engine.loaded
    return {
        "name": settings.name,
        "versions": ["1"],
        "platform": engine.platform,
        "inputs": [
            {"name": v2.IMAGE, "datatype": "FP32", "shape": [-1, *engine.input_shape]},
            {"name": v2.IMAGE_BYTES, "datatype": "BYTES", "shape": [-1]},
        ],
        "outputs": [{"name": v2.PROBABILITIES, "datatype": "FP32", "shape": [-1, len(loaded.classes)]}],
        "parameters": {
            "classes": loaded.classes,
            "mean": loaded.mean,
            "std": loaded.std,
            "scale": loaded.default_scale,
            "pad": loaded.pad,
            "crop": loaded.crop,
            "mirror": engine.mirror,
            "max_batch": settings.max_batch,
        },  # fmt: skip
    }


async def model_inputs(engine: Engine, request: v2.Request) -> torch.Tensor:
    """The batch a v2 request describes: an FP32 ``image`` tensor N x C x crop x crop (normalised as the model takes
    it), or ``image_bytes``, N encoded images brought to the model's geometry here."""
    if len(request.inputs) != 1 or not set(request.inputs) <= {v2.IMAGE, v2.IMAGE_BYTES}:
        raise v2.ProtocolError(f"give one input, {v2.IMAGE!r} (FP32) or {v2.IMAGE_BYTES!r} (BYTES); got "
                               f"{', '.join(request.inputs)}")  # fmt: skip
    (tensor,) = request.inputs.values()
    if tensor.name == v2.IMAGE_BYTES:
        if tensor.datatype != "BYTES" or not tensor.data:
            raise v2.ProtocolError(f"input {v2.IMAGE_BYTES} must be a non-empty BYTES tensor")
        return torch.stack([await preprocess(engine, data) for data in tensor.data])
    if tensor.datatype != "FP32":
        raise v2.ProtocolError(f"input {v2.IMAGE} must be FP32, got {tensor.datatype}")
    if len(tensor.shape) != 4 or tensor.shape[1:] != engine.input_shape or tensor.shape[0] < 1:
        raise v2.ProtocolError(f"input {v2.IMAGE} must have shape [N, {', '.join(map(str, engine.input_shape))}], "
                               f"got {tensor.shape}")  # fmt: skip
    if not np.isfinite(tensor.data).all():
        raise v2.ProtocolError(f"input {v2.IMAGE} holds NaN or infinite values")
    return torch.from_numpy(np.array(tensor.data, dtype=np.float32))


def add_plain_routes(app: FastAPI, engine: Engine, batcher: Batcher, settings: ServeSettings, metrics: Metrics):
    page_html = (resources.files("vggnet.serving") / "index.html").read_text()  # read once, not per visit
    page_html = page_html.replace("__MODEL_NAME__", json.dumps(settings.name))

    @app.get("/", response_class=HTMLResponse)
    async def page():
        return page_html

    @app.get("/metrics")
    async def prometheus():
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/predict")
    async def predict(request: Request, top: int | None = None):
        top = min(5, len(engine.loaded.classes)) if top is None else top
        if not 1 <= top <= len(engine.loaded.classes):
            raise HttpError(400, f"top must be in [1, {len(engine.loaded.classes)}], got {top}")
        x = await preprocess(engine, await image_bytes(request, settings.max_body))
        probs = (await run_batch(batcher, x[None], settings))[0]
        values, indices = probs.topk(top)
        return {
            "model": settings.name,
            "top": [
                {"class": engine.loaded.classes[i], "index": i, "probability": round(v, 6)}
                for v, i in zip(values.tolist(), indices.tolist())
            ],  # fmt: skip
        }

    @app.post("/explain")
    async def explain(request: Request):
        data = await image_bytes(request, settings.max_body)
        try:
            return await batcher.on_model_thread(engine.explain, data)
        except BadImage as err:
            raise HttpError(*describe_bad_image(err)) from None
        except NotImplementedError as err:
            raise HttpError(501, str(err)) from None
