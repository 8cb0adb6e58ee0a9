"""Request bodies read within ``--max-body``, and the image of a ``/predict`` or ``/explain`` request.

A body over the limit is refused with 413. The client of a refused upload is usually still sending it (urllib,
requests and httpx send the whole body before they read the answer): were the service to answer and close at once,
the unread bytes would make its kernel reset the connection, and the client would see "connection reset" instead of
the 413. So a bounded amount of the rest is read and dropped first (up to ``DRAIN_BYTES`` more, for at most
``DRAIN_SECONDS``); a client that announced ``Expect: 100-continue`` has sent nothing yet and is answered at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.requests import Request

DRAIN_BYTES = 64 * 2**20
DRAIN_SECONDS = 10.0


class BodyTooLarge(ValueError):
    """A request body over the service's limit (answered 413)."""


class NoImageField(ValueError):
    """A multipart upload without a ``file`` field (answered 400)."""


async def read_body(request: Request, limit: int) -> bytes:
    """The request's body, refused with :class:`BodyTooLarge` as soon as it passes ``limit`` bytes (whatever
    Content-Length says), after draining what the client is still sending."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        if "100-continue" not in request.headers.get("expect", "").lower():
            await drain(request.stream(), int(declared))
        raise BodyTooLarge(f"the body is {int(declared):,} bytes, more than the {limit:,} allowed (--max-body)")
    chunks, size = [], 0
    stream = request.stream()
    async for chunk in stream:
        size += len(chunk)
        if size > limit:
            await drain(stream, DRAIN_BYTES)
            raise BodyTooLarge(f"the body is more than the {limit:,} bytes allowed (--max-body)")
        chunks.append(chunk)
    return b"".join(chunks)


async def drain(stream: AsyncIterator[bytes], budget: int) -> None:
    """Read and drop up to ``budget`` (at most :data:`DRAIN_BYTES`) more bytes of a body, for at most
    :data:`DRAIN_SECONDS`: enough for an ordinary client to finish sending and read the answer."""
    budget = min(budget, DRAIN_BYTES)

    async def consume() -> None:
        read = 0
        async for chunk in stream:
            read += len(chunk)
            if read >= budget:
                return

    with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
        await asyncio.wait_for(consume(), DRAIN_SECONDS)


async def image_bytes(request: Request, limit: int) -> bytes:
    """The image of a /predict or /explain request: a multipart field ``file``, or the raw body."""
    body = await read_body(request, limit)
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        return body
    from starlette.datastructures import UploadFile

    # The body was read above, within the limit; Starlette's form parser reads from the request's stream, which is
    # spent. A new Request over the same scope, whose receive() replays the body, lets it parse what was read.
    async def replay() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    form = await Request(request.scope, replay).form()
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise NoImageField('a multipart upload needs the image in a field named "file"')
    return await upload.read()
