"""Request bodies read within ``--max-body`` (compressed ones, gzip or deflate, inflated within it too), and the
image of a ``/predict`` or ``/explain`` request.

A body over the limit is refused with 413 at once, whatever its client still sends: the connection then reads and
drops the rest for a bounded time (:mod:`vggnet.web.server`'s lingering close, as nginx does), so that clients
which send the whole body before they read the answer (urllib, requests, httpx) read the 413 rather than a
connection reset, and a 5 GB upload costs neither a wait nor 5 GB.
"""

from __future__ import annotations

import zlib

from starlette.requests import Request

ENCODINGS = {"gzip": 31, "x-gzip": 31, "deflate": 15}  # zlib's window bits: gzip's header, zlib's (HTTP's deflate)


class BodyTooLarge(ValueError):
    """A request body over the service's limit (answered 413)."""


class NoImageField(ValueError):
    """A multipart upload without a ``file`` field (answered 400)."""


class BadEncoding(ValueError):
    """A compressed body that does not inflate (answered 400)."""


class UnknownEncoding(ValueError):
    """A Content-Encoding the service does not speak (answered 415)."""


async def read_body(request: Request, limit: int) -> bytes:
    """The request's body, refused with :class:`BodyTooLarge` as soon as it passes ``limit`` bytes (whatever
    Content-Length says), and inflated where its Content-Encoding is gzip or deflate (the inflated body within
    ``limit`` too: a small bomb stays small)."""
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity", *ENCODINGS):
        raise UnknownEncoding(f"Content-Encoding {encoding!r} is not supported; send identity, gzip or deflate")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"the body is {int(declared):,} bytes, more than the {limit:,} allowed (--max-body)")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"the body is more than the {limit:,} bytes allowed (--max-body)")
        chunks.append(chunk)
    body = b"".join(chunks)
    return inflate(body, encoding, limit) if encoding in ENCODINGS else body


def inflate(body: bytes, encoding: str, limit: int) -> bytes:
    """A gzip or deflate body, inflated up to ``limit`` bytes."""
    inflater = zlib.decompressobj(ENCODINGS[encoding])
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as err:
        raise BadEncoding(f"the body is not valid {encoding} ({err})") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise BodyTooLarge(f"the body inflates to more than the {limit:,} bytes allowed (--max-body)")
    if not inflater.eof:
        raise BadEncoding(f"the {encoding} body ends early")
    return out


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
