"""``vggnet inside``: the learner's page on its own (one model, or two side by side), or one image's view written
to a folder."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from ..data.images import read_image_bytes
from ..inference.loading import ModelChoice
from ..web.engine import Engine
from ..web.errors import install_error_handlers
from .routes import InsideModel, InsideState, mount
from .settings import InsideSettings


def inside_models(choice: ModelChoice, settings: InsideSettings) -> list[InsideModel]:
    if not 1 <= len(choice.weights) <= 2:
        raise ValueError("give one model with --weights, or two to compare side by side (--weights A --weights B)")
    found = []
    for w in choice.weights:
        engine = Engine.load(w, choice.arch, max_pixels=settings.max_pixels, normalize=choice.normalize)
        if engine.platform != "pytorch_libtorch":
            raise ValueError(f"{w} is an exported model: the inside view needs the PyTorch weights it came from")
        found.append(InsideModel(Path(w).name, engine.loaded, engine))
    return found


def create_inside_app(models: list[InsideModel], settings: InsideSettings) -> FastAPI:
    lock = threading.Lock()  # one view at a time: each uses every core

    async def run(fn: Any, *args: Any) -> Any:
        def locked() -> Any:
            with lock:
                return fn(*args)

        return await asyncio.to_thread(locked)

    app = FastAPI(title="vggnet inside", docs_url=None, redoc_url=None)
    mount(app, InsideState(models, run, settings.max_body, settings.channels))

    @app.get("/")
    async def home():
        return RedirectResponse("/inside")

    install_error_handlers(app)
    return app


def run_inside(choice: ModelChoice, settings: InsideSettings) -> None:
    """The page on ``--host``:``--port`` (a free port for 0), or, with an image and ``--out``, the folder."""
    if settings.image or settings.out:
        write_view(inside_models(choice, settings), settings)
        return
    from ..web.server import bind, serve

    sock = bind(settings.host, settings.port)  # a busy port is said before the models' seconds of loading
    port = sock.getsockname()[1]
    models = inside_models(choice, settings)
    names = " and ".join(f"{m.label} ({m.loaded.model.describe()})" for m in models)
    print(f"inside {names}: http://{settings.host}:{port}/inside", flush=True)
    serve(create_inside_app(models, settings), sock)


def write_view(models: list[InsideModel], settings: InsideSettings) -> None:
    from .look import look
    from .offline import write_offline
    from .render import as_json, prepare_image

    if not (settings.image and settings.out):
        raise ValueError("to write a view give both an IMAGE and --out DIR (without them the page is served)")
    data = read_image_bytes(settings.image)  # a regular file, within what an image can need
    found = []
    for m in models:
        x, shown = prepare_image(m.loaded, m.engine.decode(data))
        found.append(as_json(look(m.loaded.model, x, m.loaded.classes, settings.channels), shown, m.loaded.model))
    for path in write_offline(found, settings.out):
        print(f"wrote {path}")
