"""The service's routes on two routers: ``v2``, the Open Inference Protocol (health, metadata, inference with
binary tensors and classification), and ``plain``: the page at /, Prometheus' /metrics, /predict and /explain for an
image file. Each route takes the app's :class:`~vggnet.serving.service.Service` as a dependency and raises the
errors of the parts it calls; the app maps them to statuses."""

from __future__ import annotations

import asyncio
from typing import Annotated

import numpy as np
import torch
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from . import open_inference as protocol
from .bodies import image_bytes, read_body
from .engine import Engine
from .service import HttpError, Service, service

v2 = APIRouter(prefix="/v2")
plain = APIRouter()
Svc = Annotated[Service, Depends(service)]


def check_model(name: str, svc: Service) -> None:
    if name != svc.settings.name:
        raise HttpError(404, f"unknown model {name!r}; this service serves {svc.settings.name!r}")


async def classify(svc: Service, images: torch.Tensor) -> torch.Tensor:
    """Posteriors of model inputs, through the batcher (``Overloaded`` when its queue is full, ``TimeoutError``)."""
    return await svc.batcher.submit(images, svc.settings.timeout)


async def preprocess(engine: Engine, data: bytes) -> torch.Tensor:
    """An encoded image to a model input, in a worker thread (the event loop and the model's thread stay free)."""
    return await asyncio.to_thread(engine.preprocess, data)


# -- the Open Inference Protocol --------------------------------------------------------------------------------------
@v2.get("/health/live")
async def live():
    return {"live": True}


@v2.get("/health/ready")
async def ready(svc: Svc):
    return {"ready": svc.batcher.worker is not None}


@v2.get("")
async def server_metadata():
    from ..version import __version__

    return {"name": "vggnet", "version": __version__, "extensions": ["binary_tensor_data", "classification"]}


@v2.get("/models/{name}")
@v2.get("/models/{name}/versions/{version}")
async def model_metadata(name: str, svc: Svc, version: str = "1"):
    check_model(name, svc)
    return metadata(svc)


@v2.get("/models/{name}/ready")
@v2.get("/models/{name}/versions/{version}/ready")
async def model_ready(name: str, svc: Svc, version: str = "1"):
    check_model(name, svc)
    return {"name": name, "ready": svc.batcher.worker is not None}


@v2.post("/models/{name}/infer")
@v2.post("/models/{name}/versions/{version}/infer")
async def infer(name: str, request: Request, svc: Svc, version: str = "1"):
    check_model(name, svc)
    with svc.batcher.expecting():
        body = await read_body(request, svc.settings.max_body)
        length = request.headers.get(protocol.HEADER)
        parsed = protocol.parse_request(body, int(length) if length and length.isdigit() else None)
        inputs = await model_inputs(svc.engine, parsed)
    probs = (await classify(svc, inputs)).numpy()
    content, header = protocol.encode_response(svc.settings.name, parsed, probs, svc.engine.loaded.classes)
    headers = {protocol.HEADER: str(header)} if header is not None else {}
    kind = "application/octet-stream" if header is not None else "application/json"
    return Response(content, media_type=kind, headers=headers)


def metadata(svc: Service) -> dict:
    """The model's v2 metadata; ``parameters`` say what a client needs to prepare the FP32 input itself."""
    engine, loaded = svc.engine, svc.engine.loaded
    return {
        "name": svc.settings.name,
        "versions": ["1"],
        "platform": engine.platform,
        "inputs": [
            {"name": protocol.IMAGE, "datatype": "FP32", "shape": [-1, *engine.input_shape]},
            {"name": protocol.IMAGE_BYTES, "datatype": "BYTES", "shape": [-1]},
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


async def model_inputs(engine: Engine, request: protocol.Request) -> torch.Tensor:
    """The batch a v2 request describes: an FP32 ``image`` tensor N x C x crop x crop (normalised as the model takes
    it), or ``image_bytes``, N encoded images brought to the model's geometry here."""
    image, encoded = protocol.IMAGE, protocol.IMAGE_BYTES
    if len(request.inputs) != 1 or not set(request.inputs) <= {image, encoded}:
        given = ", ".join(request.inputs)
        raise protocol.ProtocolError(f"give one input, {image!r} (FP32) or {encoded!r} (BYTES); got {given}")
    (tensor,) = request.inputs.values()
    if tensor.name == encoded:
        if tensor.datatype != "BYTES" or not tensor.data:
            raise protocol.ProtocolError(f"input {encoded} must be a non-empty BYTES tensor")
        return torch.stack([await preprocess(engine, data) for data in tensor.data])
    if tensor.datatype != "FP32":
        raise protocol.ProtocolError(f"input {image} must be FP32, got {tensor.datatype}")
    if len(tensor.shape) != 4 or tensor.shape[1:] != engine.input_shape or tensor.shape[0] < 1:
        shape = ", ".join(map(str, engine.input_shape))
        raise protocol.ProtocolError(f"input {image} must have shape [N, {shape}], got {tensor.shape}")
    if not np.isfinite(tensor.data).all():
        raise protocol.ProtocolError(f"input {image} holds NaN or infinite values")
    return torch.from_numpy(np.array(tensor.data, dtype=np.float32))


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
    with svc.batcher.expecting():
        x = await preprocess(svc.engine, await image_bytes(request, svc.settings.max_body))
    values, indices = (await classify(svc, x[None]))[0].topk(top)
    best = [
        {"class": classes[i], "index": i, "probability": round(v, 6)} for v, i in zip(values.tolist(), indices.tolist())
    ]
    return {"model": svc.settings.name, "top": best}


@plain.post("/explain")
async def explain(request: Request, svc: Svc):
    data = await image_bytes(request, svc.settings.max_body)
    return await svc.batcher.on_model_thread(svc.engine.explain, data)
