"""A trained VGG behind HTTP: ``vggnet serve`` (:func:`serve`), with dynamic batching (``batcher``), the Open
Inference Protocol (``open_inference``), a page to try it, Prometheus metrics and a graceful shutdown (``app``), the
model behind one interface (``engine``). It may import the inference layer, the model and the data layer's image
decoding; nothing imports it but the command line."""

from __future__ import annotations

from .app import ServeSettings, create_app
from .engine import Engine

__all__ = ["Engine", "ServeSettings", "create_app", "serve"]


def serve(engine: Engine, settings: ServeSettings, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve until SIGTERM or SIGINT: then stop accepting, finish the requests in flight and return."""
    import signal

    import uvicorn

    app = create_app(engine, settings)
    config = uvicorn.Config(app, host=host, port=port, access_log=False, log_level="warning",
                            timeout_graceful_shutdown=settings.timeout + 5, lifespan="on")  # fmt: skip
    server = uvicorn.Server(config)
    # uvicorn handles the signal (graceful shutdown), then raises it again once done; by then it only means "done"
    previous = {sig: signal.signal(sig, lambda *a: None) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
