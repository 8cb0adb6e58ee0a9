"""An inference request of the Open Inference Protocol answered, whichever way it came (HTTP or gRPC): its inputs
made a batch of model inputs, the batch classified through the batcher, the outputs it asked for, and its times
kept in the model's statistics."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import torch

from ..web.engine import Engine
from ..web.errors import HttpError
from . import open_inference as protocol
from .service import Service
from .stats import Timing

VERSIONS = ("1",)


def check_model(svc: Service, name: str, version: str | None = None) -> None:
    """``HttpError`` 404 for a model or version this service does not serve (Triton refuses both)."""
    if name != svc.settings.name:
        raise HttpError(404, f"unknown model {name!r}; this service serves {svc.settings.name!r}")
    if version not in (None, "", *VERSIONS):
        raise HttpError(404, f"unknown version {version!r} of model {name!r}; it has version {', '.join(VERSIONS)}")


async def answer(svc: Service, request: protocol.Request, timing: Timing) -> list[protocol.Output]:
    """The outputs of ``request``; its phases are timed into ``timing`` and, when it ends, the statistics."""
    with svc.stats.failing(timing):
        started = time.perf_counter()
        inputs = await model_inputs(svc.engine, request)
        timing.input, timing.images = time.perf_counter() - started, len(inputs)
        probs = (await svc.batcher.submit(inputs, svc.settings.timeout, timing)).numpy()
        started = time.perf_counter()
        found = protocol.outputs(request, probs, svc.engine.loaded.classes)
    svc.stats.request(timing, time.perf_counter() - started)
    return found


async def model_inputs(engine: Engine, request: protocol.Request) -> torch.Tensor:
    """The batch a request describes: an FP32 ``image`` tensor N x C x crop x crop (normalised as the model takes
    it; NaN and infinities pass, as in Triton, and give NaN for that image), or else ``image_bytes``, N encoded
    images (shape [N] or [N, 1]) brought to the model's geometry here."""
    image, encoded = protocol.IMAGE, protocol.IMAGE_BYTES
    unknown = [name for name in request.inputs if name not in (image, encoded)]
    if unknown or not request.inputs:
        given = ", ".join(request.inputs) or "none"
        raise protocol.ProtocolError(f"the inputs are {image!r} (FP32) or {encoded!r} (BYTES); got {given}")
    # image_bytes is optional (the model configuration says so): a request with both, as perf_analyzer sends every
    # input it is told of, is answered for image
    tensor = request.inputs.get(image) or request.inputs[encoded]
    if tensor.name == encoded:
        if (
            tensor.datatype != "BYTES"
            or not tensor.data
            or tensor.shape not in ([len(tensor.data)], [len(tensor.data), 1])
        ):
            raise protocol.ProtocolError(f"input {encoded} must be a non-empty BYTES tensor of shape [N] or [N, 1]")
        # decoded in a worker thread: the event loop and the model's thread stay free
        return torch.stack([await asyncio.to_thread(engine.preprocess, data) for data in tensor.data])
    if tensor.datatype != "FP32":
        raise protocol.ProtocolError(f"input {image} must be FP32, got {tensor.datatype}")
    if len(tensor.shape) != 4 or tensor.shape[1:] != engine.input_shape or tensor.shape[0] < 1:
        shape = ", ".join(map(str, engine.input_shape))
        raise protocol.ProtocolError(f"input {image} must have shape [N, {shape}], got {tensor.shape}")
    return torch.from_numpy(np.array(tensor.data, dtype=np.float32))
