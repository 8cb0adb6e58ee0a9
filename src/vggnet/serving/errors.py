"""What each error the service's parts raise means, in one place: its HTTP status (:data:`STATUS`: every server's,
:mod:`vggnet.web.errors`, and the service's own; a bad image's by why it is bad), its gRPC status code
(:func:`grpc_code`), and its sentence (:func:`message`)."""

from __future__ import annotations

from ..data.images import BadImage
from ..web import errors as web
from . import open_inference
from .batcher import Overloaded

STATUS: dict[type[Exception], int] = {
    **web.STATUS,
    open_inference.ProtocolError: 400,
    Overloaded: 503,
    TimeoutError: 504,
}
# HTTP statuses as gRPC's codes, by name (grpc.StatusCode's members): what a gRPC client is told
GRPC = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 413: "RESOURCE_EXHAUSTED", 415: "INVALID_ARGUMENT",
        501: "UNIMPLEMENTED", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}  # fmt: skip


def http_status(err: Exception) -> int:
    """The HTTP status of an error the service's parts raise (500: a bug)."""
    if isinstance(err, web.HttpError):
        return err.status
    if isinstance(err, BadImage):
        return web.BAD_IMAGE.get(err.kind, 400)
    return next((status for kind, status in STATUS.items() if isinstance(err, kind)), 500)


def grpc_code(err: Exception) -> str:
    """The gRPC status code's name for an error (``RESOURCE_EXHAUSTED`` for an overloaded queue, as for a message
    over the size limit)."""
    if isinstance(err, Overloaded):
        return "RESOURCE_EXHAUSTED"
    return GRPC.get(http_status(err), "INTERNAL")


def message(err: Exception) -> str:
    """The sentence for an error the service's parts raise."""
    if isinstance(err, Overloaded):
        return f"the service is overloaded: {err}; retry shortly"
    if isinstance(err, TimeoutError):
        return f"the model gave {err} (--timeout)"
    return web.message(err)
