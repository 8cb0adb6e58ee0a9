"""The learner's page at ``/inside`` (:mod:`vggnet.inside`), mounted (:func:`mount`) on ``vggnet serve``'s app and
on ``vggnet inside``'s own small one: the page, the models it can show (one, or two side by side), an image's view
through a model, and a channel's kernels. Images arrive as /predict's do (a multipart ``file`` or the raw body,
within ``--max-body``, checked before decoding), are rescaled to the model's test scale first, and every error is
one sentence."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse

from ..inference.loading import Loaded
from ..network.model import VGG
from ..web.bodies import image_bytes
from ..web.engine import Engine
from ..web.errors import HttpError
from .look import block_taps, look
from .render import as_json, kernels_json, prepare_image

inside = APIRouter(prefix="/inside")


@dataclass
class InsideModel:
    """A model the page can show: its weights' name, the loaded model and the engine that decodes its images."""

    label: str
    loaded: Loaded
    engine: Engine


@dataclass
class InsideState:
    models: list[InsideModel]
    run: Callable[..., Awaitable[Any]]  # runs a function on the model's thread (the service's), or a worker thread
    max_body: int
    channels: int = 8
    why_not: str = ""  # why there is no model to show (an exported model: the page needs PyTorch weights)


def mount(app: FastAPI, state: InsideState) -> None:
    """The page and its endpoints at ``/inside`` on ``app`` (``vggnet inside``'s own, or ``vggnet serve``'s)."""
    app.state.inside = state
    app.include_router(inside)


def page_html() -> str:
    return (resources.files("vggnet.inside") / "page.html").read_text()


def state(request: Request) -> InsideState:
    return request.app.state.inside


def model_of(s: InsideState, index: int) -> InsideModel:
    if not s.models:
        raise HttpError(501, s.why_not or "no model to look inside")
    if not 0 <= index < len(s.models):
        raise HttpError(404, f"there is no model {index}; this page shows {len(s.models)}")
    return s.models[index]


@inside.get("", response_class=HTMLResponse)
async def page():
    return page_html()


@inside.get("/models")
async def models(request: Request):
    s = state(request)
    found = []
    for i, m in enumerate(s.models):
        model: VGG = m.loaded.model
        taps = [name for _, name in block_taps(model)]
        entry = {"index": i, "label": m.label, "model": model.describe(), "lrn": model.has_lrn, "taps": taps}
        found.append({**entry, "cam_layer": taps[-1], "classes": len(m.loaded.classes)})
    return {"models": found, "why_not": s.why_not}


@inside.post("/look")
async def view(request: Request, model: int = 0, layer: str | None = None, lrn: bool = True):
    s = state(request)
    chosen = model_of(s, model)
    data = await image_bytes(request, s.max_body)
    img = await asyncio.to_thread(chosen.engine.decode, data)

    def run() -> dict:
        try:
            x, shown = prepare_image(chosen.loaded, img)
            found = look(chosen.loaded.model, x, chosen.loaded.classes, s.channels, layer, lrn)
        except ValueError as err:
            raise HttpError(400, str(err)) from None
        return as_json(found, shown, chosen.loaded.model)

    return await s.run(run)


@inside.get("/kernels")
async def channel_kernels(request: Request, layer: str, channel: int, model: int = 0):
    chosen = model_of(state(request), model)
    try:
        return kernels_json(chosen.loaded.model, layer, channel)
    except ValueError as err:
        raise HttpError(400, str(err)) from None
