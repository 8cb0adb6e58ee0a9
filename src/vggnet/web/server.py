"""Running a vggnet server (``vggnet serve``'s, ``vggnet inside``'s): a socket bound before the app is built
(:func:`bind`), and uvicorn with the request head bounded (``--max-header``), a lingering close after an early answer
and a graceful shutdown on SIGTERM (another side's, such as the service's gRPC, with it) (:func:`serve`).

uvicorn's httptools parser puts no bound on a request's line and headers; :class:`BoundedHead` counts the bytes of
each request's head as they arrive and answers 431 past the bound, as nginx and Triton refuse large heads, before
any of it reaches the app. Where uvicorn runs h11 instead, h11's own bound (``h11_max_incomplete_event_size``)
applies.

An answer sent before its request's body has arrived (a 413 for a body over ``--max-body``) leaves the connection
open while the rest arrives, read and dropped, for at most ``LINGER_SECONDS`` and ``LINGER_BYTES``, then closes it:
nginx's lingering close. The client that sends its whole body before reading (urllib, requests, httpx) then reads
the answer instead of a reset connection, and the answer does not wait for the body. An HTTP/1.0 request is never
sent ``100 Continue`` (HTTP/1.0 has no such answer), whatever its Expect header says.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from .settings import MAX_HEADER, TIMEOUT

LINGER_SECONDS = 2.0  # how long a refused head's connection stays open to swallow what its client still sends
BODY_LINGER_SECONDS = 10.0  # how long a connection answered before its body ends reads and drops the rest
LINGER_BYTES = 64 * 2**20  # ... and how much of it


class HeadTooLarge(Exception):
    """Raised from the parser's callbacks to stop parsing a request whose head is over the bound."""


class BoundedHeadMixin:
    """For uvicorn's httptools protocol: each request's line and headers bounded to ``max_head`` bytes, counted as the
    parser reads them (the URL and each header) and, for a head still incomplete, as its bytes arrive (so that one
    endless header is refused before it is whole); past the bound, 431 with a JSON sentence."""

    max_head = 32 * 2**10

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.in_head, self.parsed, self.arrived, self.refused = True, 0, 0, False
        self.lingering: Any = None  # the timer of a lingering close, while one is under way
        self.dropped = 0

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.in_head, self.parsed, self.arrived = True, 0, 0

    def count(self, size: int) -> None:
        self.parsed += size
        if self.parsed > self.max_head:
            raise HeadTooLarge

    def on_url(self, url: bytes) -> None:
        self.count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self.in_head = False
        if self.parser.get_http_version() == "1.0":
            self.expect_100_continue = False  # HTTP/1.0 clients must not be sent 100 Continue
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        pending = self.cycle is not None and self.cycle.more_body  # answered before its body ended
        super().on_response_complete()
        if pending and not self.transport.is_closing():
            self.dropped = 0
            self.lingering = self.loop.call_later(BODY_LINGER_SECONDS, self.transport.close)

    def on_message_complete(self) -> None:
        if self.lingering is not None:  # the rest of the body has arrived: the connection goes on
            self.lingering.cancel()
            self.lingering = None
        super().on_message_complete()

    def data_received(self, data: bytes) -> None:
        """uvicorn's, with the head's bound: a parser stopped by :class:`HeadTooLarge` answers 431, not 400."""
        import httptools

        if self.refused:  # the answer is out: drop what the client still sends
            return
        if self.lingering is not None:
            self.dropped += len(data)
            if self.dropped > LINGER_BYTES:
                self.transport.close()
                return
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        except httptools.HttpParserError:
            self.refuse() if self.parsed > self.max_head else self.send_400_response("Invalid HTTP request received.")
            return
        if self.in_head and not self.transport.is_closing():
            self.arrived += len(data)  # every byte fed while the head is incomplete is the head's
            if self.arrived > self.max_head:
                self.refuse()

    def refuse(self) -> None:
        allowed = f"the request line and headers are more than the {self.max_head:,} bytes allowed (--max-header)"
        body = json.dumps({"error": allowed}).encode()
        head = (
            "HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        )
        self.refused = True
        self.transport.write(head.encode() + body)
        # close after a moment: closing while the client still sends would reset the connection before it reads
        self.loop.call_later(LINGER_SECONDS, self.transport.close)


def bounded_head_protocol(max_head: int) -> type:
    """uvicorn's httptools protocol with :class:`BoundedHeadMixin`'s bound of ``max_head`` bytes."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    return type("BoundedHead", (BoundedHeadMixin, HttpToolsProtocol), {"max_head": max_head})


Stopping = Callable[[], Awaitable[Any]]


def graceful_server(stopping: Stopping | None = None) -> type:
    """uvicorn's server, calling ``stopping`` (the service's gRPC side) as it shuts down: the other side's new calls
    are refused and those in flight answered while HTTP's are."""
    import uvicorn

    class GracefulServer(uvicorn.Server):
        async def shutdown(self, sockets: Any = None) -> None:
            others = asyncio.ensure_future(stopping() if stopping else asyncio.sleep(0))
            await super().shutdown(sockets)
            await others

    return GracefulServer


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host``:``port`` (0: a free port, read back with ``getsockname``), bound before the
    app is built so that what it announces is the port it listens on."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as err:
        raise ValueError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(
    app: Any,
    sock: socket.socket,
    max_header: int = MAX_HEADER,
    timeout: float = TIMEOUT,
    stopping: Stopping | None = None,
) -> None:
    """Serve ``app`` on ``sock`` (from :func:`bind`) until SIGTERM or SIGINT: then stop accepting, finish the
    requests in flight (given ``timeout`` seconds, and a few more) and return; ``stopping`` is awaited meanwhile.
    ``max_header``: the bound on each request's line and headers."""
    import uvicorn

    try:
        import httptools  # noqa: F401  (uvicorn's fast parser; h11 otherwise)

        http: Any = bounded_head_protocol(max_header)
    except ImportError:
        http = "h11"
    config = uvicorn.Config(
        app,
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=timeout + 5,
        lifespan="on",
        http=http,
        h11_max_incomplete_event_size=max_header,
    )
    server = graceful_server(stopping)(config)
    # uvicorn handles the signal (graceful shutdown), then raises it again once done; by then it only means "done"
    previous = {sig: signal.signal(sig, lambda *a: None) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
