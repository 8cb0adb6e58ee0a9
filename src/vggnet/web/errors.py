"""What an error means to a client of a vggnet server, in one place: the error a route raises for a request it
refuses itself (:class:`HttpError`), the HTTP status of the errors every server's parts raise (:data:`STATUS`; a bad
image's by why it is bad, :data:`BAD_IMAGE`), its sentence (:func:`message`), and the handlers that answer each as
JSON with one sentence (:func:`install_error_handlers`). A server with errors of its own (the service's queue, its
protocol) adds them to the table it installs."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..data.images import BadImage
from .bodies import BadEncoding, BodyTooLarge, NoImageField, UnknownEncoding
from .engine import NotExplainable


class HttpError(Exception):
    """A request refused by a route's own check (an unknown model, a bad query parameter), with its status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


STATUS: dict[type[Exception], int] = {
    BodyTooLarge: 413,
    NoImageField: 400,
    BadEncoding: 400,
    UnknownEncoding: 415,
    NotExplainable: 501,
}
BAD_IMAGE = {"format": 415, "empty": 400, "size": 413, "truncated": 400, "corrupt": 400}


def message(err: Exception) -> str:
    """The sentence for an error a server's parts raise."""
    if isinstance(err, BadImage):
        return f"the upload is not a usable image: {err}"
    return str(err)


def error_response(status: int, message: str) -> JSONResponse:
    headers = {"Retry-After": "1"} if status == 503 else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def install_error_handlers(
    app: FastAPI, status: dict[type[Exception], int] = STATUS, sentence: Callable[[Exception], str] = message
) -> None:
    """Every error as JSON with one sentence (``sentence``), its status from ``status`` (or the image's kind)."""

    @app.exception_handler(HttpError)
    async def refused(request: Request, err: HttpError):
        return error_response(err.status, str(err))

    @app.exception_handler(BadImage)
    async def bad_image(request: Request, err: BadImage):
        return error_response(BAD_IMAGE.get(err.kind, 400), sentence(err))

    for kind, code in status.items():
        app.add_exception_handler(kind, answer_with(code, sentence))

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


def answer_with(status: int, sentence: Callable[[Exception], str] = message):
    async def handler(request: Request, err: Exception) -> JSONResponse:
        return error_response(status, sentence(err))

    return handler
