"""The service's routes on two routers: ``v2``, the Open Inference Protocol (health, metadata, inference with
binary tensors and classification), and ``plain``: the page at /, Prometheus' /metrics, /predict and /explain for an
image file. Each route takes the app's :class:`~vggnet.serving.service.Service` as a dependency and raises the
errors of the parts it calls; the app maps them to statuses."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..web.bodies import image_bytes, read_body
from ..web.errors import HttpError
from . import open_inference as protocol
from .infer import VERSIONS, answer, check_model
from .service import Service, service
from .stats import Timing

v2 = APIRouter(prefix="/v2")
plain = APIRouter()
Svc = Annotated[Service, Depends(service)]


# -- the Open Inference Protocol --------------------------------------------------------------------------------------
EXTENSIONS = ["binary_tensor_data", "classification", "model_configuration", "statistics"]


@v2.get("/health/live")
async def live():
    return {"live": True}


@v2.get("/health/ready")
async def ready(svc: Svc):
    return JSONResponse({"ready": svc.ready}, status_code=200 if svc.ready else 400)  # the protocol: 4xx is "no"


@v2.get("")
async def server_metadata():
    from ..version import __version__

    return {"name": "vggnet", "version": __version__, "extensions": EXTENSIONS}


@v2.get("/models/stats")  # before /models/{name}, which would take "stats" for a name
@v2.get("/models/{name}/stats")
@v2.get("/models/{name}/versions/{version}/stats")
async def model_stats(svc: Svc, name: str | None = None, version: str | None = None):
    if name is not None:
        check_model(svc, name, version)
    return svc.stats.triton(svc.settings.name)


@v2.get("/models/{name}")
@v2.get("/models/{name}/versions/{version}")
async def model_metadata(name: str, svc: Svc, version: str | None = None):
    check_model(svc, name, version)
    return metadata(svc)


@v2.get("/models/{name}/ready")
@v2.get("/models/{name}/versions/{version}/ready")
async def model_ready(name: str, svc: Svc, version: str | None = None):
    check_model(svc, name, version)
    return JSONResponse({"name": name, "ready": svc.ready}, status_code=200 if svc.ready else 400)


@v2.get("/models/{name}/config")
@v2.get("/models/{name}/versions/{version}/config")
async def model_config(name: str, svc: Svc, version: str | None = None):
    check_model(svc, name, version)
    return svc.config


@v2.post("/models/{name}/infer")
@v2.post("/models/{name}/versions/{version}/infer")
async def infer(name: str, request: Request, svc: Svc, version: str | None = None):
    check_model(svc, name, version)
    timing = Timing()
    with svc.batcher.expecting(), svc.stats.failing(timing):
        body = await read_body(request, svc.settings.max_body)
        length = request.headers.get(protocol.HEADER)
        parsed = protocol.parse_request(body, int(length) if length and length.isdigit() else None)
    found = await answer(svc, parsed, timing)
    content, header = protocol.encode_response(svc.settings.name, parsed, found)
    headers = {protocol.HEADER: str(header)} if header is not None else {}
    kind = "application/octet-stream" if header is not None else "application/json"
    return Response(content, media_type=kind, headers=headers)


def metadata(svc: Service) -> dict:
    """The model's v2 metadata; ``parameters`` say what a client needs to prepare the FP32 input itself."""
    engine, loaded = svc.engine, svc.engine.loaded
    return {
        "name": svc.settings.name,
        "versions": list(VERSIONS),
        "platform": engine.platform,
        "inputs": [
            {"name": protocol.IMAGE, "datatype": "FP32", "shape": [-1, *engine.input_shape]},
            {"name": protocol.IMAGE_BYTES, "datatype": "BYTES", "shape": [-1, 1]},
        ],
        "outputs": [{"name": protocol.PROBABILITIES, "datatype": "FP32", "shape": [-1, len(loaded.classes)]}],
        "parameters": {
            "classes": loaded.classes,
            "mean": loaded.mean,
            "std": loaded.std,
            "scale": loaded.default_scale,
            "pad": loaded.pad,
            "crop": loaded.crop,
            "mirror": engine.mirror,
            "max_batch": svc.settings.max_batch,
        },
    }


# -- the page, metrics, and image files -------------------------------------------------------------------------------
@plain.get("/", response_class=HTMLResponse)
async def page(svc: Svc):
    return svc.page


@plain.get("/metrics")
async def prometheus(svc: Svc):
    return Response(generate_latest(svc.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@plain.post("/predict")
async def predict(request: Request, svc: Svc, top: int | None = None):
    classes = svc.engine.loaded.classes
    top = min(5, len(classes)) if top is None else top
    if not 1 <= top <= len(classes):
        raise HttpError(400, f"top must be in [1, {len(classes)}], got {top}")
    timing = Timing(images=1)
    with svc.stats.failing(timing):
        with svc.batcher.expecting():
            data = await image_bytes(request, svc.settings.max_body)
            started = time.perf_counter()
            x = await asyncio.to_thread(svc.engine.preprocess, data)  # the loop and the model's thread stay free
            timing.input = time.perf_counter() - started
        values, indices = (await svc.batcher.submit(x[None], svc.settings.timeout, timing))[0].topk(top)
    best = [
        {"class": classes[i], "index": i, "probability": round(v, 6)} for v, i in zip(values.tolist(), indices.tolist())
    ]
    svc.stats.request(timing, 0.0)
    return {"model": svc.settings.name, "top": best}


@plain.post("/explain")
async def explain(request: Request, svc: Svc):
    data = await image_bytes(request, svc.settings.max_body)
    return await svc.batcher.on_model_thread(svc.engine.explain, data)
