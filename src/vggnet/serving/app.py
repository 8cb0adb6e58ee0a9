"""The service as a FastAPI app: one :class:`Service` (the model, its batcher, the metrics, the settings) held in
``app.state``, the routes of :mod:`vggnet.serving.routes`, and every error mapped to its HTTP status in one place
(:data:`STATUS`), each answered as JSON with one sentence."""

from __future__ import annotations

import json
from contextlib import asynccontextmanager
from importlib import resources

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..data.images import BadImage
from . import open_inference
from .batcher import Batcher, Overloaded
from .bodies import BodyTooLarge, NoImageField
from .engine import Engine, NotExplainable
from .metrics import AccessLog, Metrics
from .routes import plain, v2
from .service import HttpError, Service
from .settings import ServeSettings

# What each error the service's parts raise means in HTTP. A bad image's status depends on why it is bad.
STATUS: dict[type[Exception], int] = {
    BodyTooLarge: 413,
    NoImageField: 400,
    open_inference.ProtocolError: 400,
    Overloaded: 503,
    TimeoutError: 504,
    NotExplainable: 501,
}
BAD_IMAGE = {"format": 415, "empty": 400, "size": 413, "truncated": 400, "corrupt": 400}


def create_app(engine: Engine, settings: ServeSettings) -> FastAPI:
    """The service for one model."""
    metrics = Metrics()
    batcher = Batcher(
        engine.classify, settings.max_batch, settings.max_wait_ms / 1000, settings.max_queue, metrics.observe_batch
    )
    page = (resources.files("vggnet.serving") / "index.html").read_text()
    service = Service(engine, batcher, metrics, settings, page.replace("__MODEL_NAME__", json.dumps(settings.name)))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await batcher.start()
        yield
        await batcher.stop()  # requests in flight have finished: uvicorn waited for them

    app = FastAPI(title="vggnet", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.service = service
    app.add_middleware(AccessLog, metrics=metrics)
    app.include_router(v2)
    app.include_router(plain)
    install_error_handlers(app)
    return app


def error_response(status: int, message: str) -> JSONResponse:
    headers = {"Retry-After": "1"} if status == 503 else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Every error as JSON with one sentence, its status from :data:`STATUS` (or the image's kind)."""

    @app.exception_handler(HttpError)
    async def refused(request: Request, err: HttpError):
        return error_response(err.status, str(err))

    @app.exception_handler(BadImage)
    async def bad_image(request: Request, err: BadImage):
        return error_response(BAD_IMAGE.get(err.kind, 400), f"the upload is not a usable image: {err}")

    for kind, status in STATUS.items():
        app.add_exception_handler(kind, answer_with(status))

    @app.exception_handler(StarletteHTTPException)
    async def starlette_error(request: Request, err: StarletteHTTPException):
        what = {
            404: f"no such endpoint: {request.method} {request.url.path}",
            405: f"{request.method} is not allowed on {request.url.path}",
        }
        return error_response(err.status_code, what.get(err.status_code, str(err.detail)))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, err: RequestValidationError):
        first = err.errors()[0] if err.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return error_response(400, f"bad {where}: {first.get('msg', 'invalid request')}")

    @app.exception_handler(Exception)
    async def bug(request: Request, err: Exception):  # still one sentence, and the service lives on
        return error_response(500, f"internal error: {type(err).__name__}: {err}")


def answer_with(status: int):
    async def handler(request: Request, err: Exception) -> JSONResponse:
        return error_response(status, message(err))

    return handler


def message(err: Exception) -> str:
    """The sentence for an error the service's parts raise."""
    if isinstance(err, Overloaded):
        return f"the service is overloaded: {err}; retry shortly"
    if isinstance(err, TimeoutError):
        return f"the model gave {err} (--timeout)"
    return str(err)
