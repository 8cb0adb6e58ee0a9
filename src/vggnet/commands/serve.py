"""``vggnet serve``: one model behind HTTP (and gRPC): the Open Inference Protocol, /predict, a page
(:mod:`vggnet.serving`), and the learner's page at /inside (:mod:`vggnet.inside`), assembled here into one app
(:func:`service_app`), served until SIGTERM (:func:`serve_model`)."""

from __future__ import annotations

import argparse
import dataclasses
import os
from typing import Any

from ..inference.loading import ModelChoice
from ..serving.settings import ServeSettings
from .command import Command, parsed, require_serve_extra


def cmd_serve(args: argparse.Namespace) -> int:
    model, s = parsed(ModelChoice, args), parsed(ServeSettings, args)
    s.check()
    require_serve_extra("serving")
    serve_model(model, s)
    return 0


def service_app(engine: Any, settings: ServeSettings, announce: Any = None) -> Any:
    """The service's app for ``engine`` (:func:`vggnet.serving.app.create_app`) with the inside page mounted on it,
    run between batches on the model's thread (an exported model has no page: it says why)."""
    from ..inside.routes import InsideModel, InsideState, mount
    from ..network.model import VGG
    from ..serving.app import create_app

    app = create_app(engine, settings, announce)
    pytorch = isinstance(engine.loaded.model, VGG)
    models = [InsideModel(settings.name, engine.loaded, engine)] if pytorch else []
    why_not = f"{engine.loaded.source} is an exported model: the inside view needs the PyTorch weights it came from"
    mount(app, InsideState(models, app.state.service.batcher.on_model_thread, settings.max_body, why_not=why_not))
    return app


def serve_model(model: ModelChoice, settings: ServeSettings) -> None:
    """``vggnet serve``: load the model, say what is served where, serve it, say that it stopped cleanly."""
    import torch

    from ..base.devices import pick_device
    from ..serving.app import stop_grpc
    from ..web.engine import Engine
    from ..web.server import bind, serve

    if len(model.weights) != 1:
        raise ValueError("give the model with one --weights (a vggnet file, an exported .onnx, or weights with --arch)")
    pick_device(model.device)
    sock = bind(settings.host, settings.port)  # a busy port is said before the model's seconds of loading
    settings = dataclasses.replace(settings, port=sock.getsockname()[1])
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
    app = service_app(engine, settings, announce)
    serve(app, sock, settings.max_header, settings.timeout, lambda: stop_grpc(app.state.service))
    print("stopped: every request in flight was answered", flush=True)


def announce(service: Any, seconds: float) -> None:
    """The first line: what is served where, once the model is warm (and how long that took)."""
    engine, settings, loaded = service.engine, service.settings, service.engine.loaded
    runs = "PyTorch" if engine.platform == "pytorch_libtorch" else f"{loaded.model.engine}, {loaded.model.precision}"
    grpc = f" and gRPC on {settings.host}:{service.grpc_port}" if service.grpc_port else ""
    sizes = " and ".join(str(n) for n in sorted({1, settings.max_batch}))
    warm = f"warmed up in {seconds:.2f} s (batches of {sizes})" if settings.warmup else "no warm-up (--no-warmup)"
    if service.fixed:
        warm += "; OpenVINO batches " + ", ".join(map(str, service.fixed))
    print(
        f"serving {loaded.source} ({runs}) as {settings.name!r} ({len(loaded.classes)} classes; images rescaled to "
        f"{loaded.default_scale}, centre {loaded.crop} x {loaded.crop}) on http://{settings.host}:{settings.port}/"
        f"{grpc}; ready, {warm}",
        flush=True,
    )


COMMAND = Command(
    "serve",
    "serve a model over HTTP: the Open Inference Protocol (Triton/KServe v2), /predict, a page",
    cmd_serve,
    (ModelChoice, ServeSettings),
)
