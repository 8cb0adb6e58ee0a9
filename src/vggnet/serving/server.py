"""Running the service: uvicorn with the request head bounded (``--max-header``), a graceful shutdown on SIGTERM,
and the model loaded and announced (``vggnet serve``).

uvicorn's httptools parser puts no bound on a request's line and headers; :class:`BoundedHead` counts the bytes of
each request's head as they arrive and answers 431 past the bound, as nginx and Triton refuse large heads, before
any of it reaches the app. Where uvicorn runs h11 instead, h11's own bound (``h11_max_incomplete_event_size``)
applies.
"""

from __future__ import annotations

import json
import os
import signal
from typing import Any

from ..inference import ModelChoice
from .settings import ServeSettings

LINGER_SECONDS = 2.0  # how long a refused head's connection stays open to swallow what its client still sends


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
        super().on_headers_complete()

    def data_received(self, data: bytes) -> None:
        """uvicorn's, with the head's bound: a parser stopped by :class:`HeadTooLarge` answers 431, not 400."""
        import httptools

        if self.refused:  # the answer is out: drop what the client still sends
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


def serve(app: Any, settings: ServeSettings) -> None:
    """Serve ``app`` until SIGTERM or SIGINT: then stop accepting, finish the requests in flight and return."""
    import uvicorn

    try:
        import httptools  # noqa: F401  (uvicorn's fast parser; h11 otherwise)

        http: Any = bounded_head_protocol(settings.max_header)
    except ImportError:
        http = "h11"
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=settings.timeout + 5,
        lifespan="on",
        http=http,
        h11_max_incomplete_event_size=settings.max_header,
    )
    server = uvicorn.Server(config)
    # uvicorn handles the signal (graceful shutdown), then raises it again once done; by then it only means "done"
    previous = {sig: signal.signal(sig, lambda *a: None) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def serve_model(model: ModelChoice, settings: ServeSettings) -> None:
    """``vggnet serve``: load the model, say what is served where, serve it, say that it stopped cleanly."""
    import torch

    from ..devices import pick_device
    from .app import create_app
    from .engine import Engine

    if len(model.weights) != 1:
        raise ValueError("give the model with one --weights (a vggnet file, an exported .onnx, or weights with --arch)")
    pick_device(model.device)
    engine = Engine.load(
        model.weights[0],
        model.arch,
        settings.mirror,
        settings.max_pixels,
        model.engine,
        model.precision,
        model.normalize,
    )
    torch.set_num_threads(settings.threads or engine.default_threads(os.cpu_count() or 2))
    loaded = engine.loaded
    runs = "PyTorch" if engine.platform == "pytorch_libtorch" else f"{loaded.model.engine}, {loaded.model.precision}"
    print(
        f"serving {loaded.source} ({runs}) as {settings.name!r} ({len(loaded.classes)} classes; images rescaled to "
        f"{loaded.default_scale}, centre {loaded.crop} x {loaded.crop}) on http://{settings.host}:{settings.port}/",
        flush=True,
    )
    serve(create_app(engine, settings), settings)
    print("stopped: every request in flight was answered", flush=True)
