"""The Open Inference Protocol over gRPC (``inference.GRPCInferenceService``, the service tritonclient.grpc, KServe's
gRPC clients and OpenVINO Model Server's image path use), on grpcio's asyncio server in the HTTP side's event loop.

The messages and the service's stubs are those tritonclient[grpc] ships (compiled from the protocol's published
``grpc_service.proto``). Requests go through the same batcher, limits and errors as HTTP's (:mod:`.infer`,
:mod:`.errors`): a bad tensor is INVALID_ARGUMENT, an unknown model or version NOT_FOUND, a full queue
RESOURCE_EXHAUSTED (as a message over ``--max-body`` is, by grpcio itself), a model not yet warm UNAVAILABLE, a
request past ``--timeout`` DEADLINE_EXCEEDED; each with one sentence. Stopped with the HTTP side: new calls
refused, those in flight answered.
"""

from __future__ import annotations

import functools
from typing import Any

import grpc
from google.protobuf import json_format
from tritonclient.grpc import model_config_pb2, service_pb2, service_pb2_grpc

from ..version import __version__
from . import open_inference as protocol
from .errors import grpc_code, message
from .infer import VERSIONS, answer, check_model
from .routes import EXTENSIONS, metadata
from .service import Service
from .stats import Timing


def rpc(method):
    """A handler whose errors end the call with their gRPC status code and sentence (never a stack trace)."""

    @functools.wraps(method)
    async def handler(self, request, context):
        try:
            return await method(self, request, context)
        except Exception as err:
            await context.abort(getattr(grpc.StatusCode, grpc_code(err)), message(err))

    return handler


class Servicer(service_pb2_grpc.GRPCInferenceServiceServicer):
    def __init__(self, svc: Service) -> None:
        self.svc = svc

    def _model(self, request) -> None:
        check_model(self.svc, request.name, request.version)

    @rpc
    async def ServerLive(self, request, context):
        return service_pb2.ServerLiveResponse(live=True)

    @rpc
    async def ServerReady(self, request, context):
        return service_pb2.ServerReadyResponse(ready=self.svc.ready)

    @rpc
    async def ModelReady(self, request, context):
        self._model(request)
        return service_pb2.ModelReadyResponse(ready=self.svc.ready)

    @rpc
    async def ServerMetadata(self, request, context):
        return service_pb2.ServerMetadataResponse(name="vggnet", version=__version__, extensions=EXTENSIONS)

    @rpc
    async def ModelMetadata(self, request, context):
        self._model(request)
        found = metadata(self.svc)
        tensors = {
            key: [service_pb2.ModelMetadataResponse.TensorMetadata(**t) for t in found[key]]
            for key in ("inputs", "outputs")
        }
        return service_pb2.ModelMetadataResponse(
            name=found["name"], versions=found["versions"], platform=found["platform"], **tensors
        )

    @rpc
    async def ModelConfig(self, request, context):
        self._model(request)
        config = json_format.ParseDict(self.svc.config, model_config_pb2.ModelConfig())
        return service_pb2.ModelConfigResponse(config=config)

    @rpc
    async def ModelStatistics(self, request, context):
        if request.name:
            self._model(request)
        stats = self.svc.stats.triton(self.svc.settings.name)
        return json_format.ParseDict(stats, service_pb2.ModelStatisticsResponse())

    @rpc
    async def ModelInfer(self, request, context):
        check_model(self.svc, request.model_name, request.model_version)
        timing = Timing()
        with self.svc.batcher.expecting(), self.svc.stats.failing(timing):
            parsed = request_of(request)
        found = await answer(self.svc, parsed, timing)
        return service_pb2.ModelInferResponse(
            model_name=self.svc.settings.name,
            model_version=VERSIONS[0],
            id=request.id,
            outputs=[
                service_pb2.ModelInferResponse.InferOutputTensor(name=o.name, datatype=o.datatype, shape=o.shape)
                for o in found
            ],
            raw_output_contents=[o.raw() for o in found],
        )


def request_of(message_: Any) -> protocol.Request:
    """A gRPC ModelInferRequest as the protocol's request: tensors from ``raw_input_contents`` (tritonclient's way)
    or from typed ``contents``; each requested output with its ``classification`` parameter."""
    raw = list(message_.raw_input_contents)
    if raw and len(raw) != len(message_.inputs):
        raise protocol.ProtocolError(f"the request has {len(message_.inputs)} inputs but {len(raw)} raw_input_contents")
    inputs = {}
    for i, t in enumerate(message_.inputs):
        shape = [int(d) for d in t.shape]
        if raw:
            tensor = protocol.tensor_of_raw(t.name, t.datatype, shape, raw[i])
        else:
            tensor = _typed(t, shape)
        inputs[tensor.name] = tensor
    if not inputs:
        raise protocol.ProtocolError("the request needs inputs")
    outputs = [
        {"name": o.name, "parameters": {"classification": o.parameters["classification"].int64_param}}
        if "classification" in o.parameters
        else {"name": o.name}
        for o in message_.outputs
    ]
    return protocol.Request(message_.id or None, inputs, outputs)


def _typed(t: Any, shape: list[int]) -> protocol.Tensor:
    """A tensor from gRPC's typed contents (``fp32_contents``, ``bytes_contents`` ...)."""
    import numpy as np

    if t.datatype == "BYTES":
        return protocol.Tensor(t.name, t.datatype, shape, list(t.contents.bytes_contents))
    field = {"FP32": "fp32_contents", "FP64": "fp64_contents", "INT64": "int64_contents", "INT32": "int_contents"}
    if t.datatype not in field:
        raise protocol.ProtocolError(f"input {t.name}: datatype {t.datatype} in typed contents is not supported")
    values = np.asarray(getattr(t.contents, field[t.datatype]), dtype=protocol.NUMPY[t.datatype])
    if values.size != (int(np.prod(shape)) if shape else 1):
        raise protocol.ProtocolError(f"input {t.name}: {values.size} values for a tensor of shape {shape}")
    return protocol.Tensor(t.name, t.datatype, shape, values.reshape(shape))


async def start_grpc(svc: Service) -> grpc.aio.Server:
    """The gRPC server on ``--host``:``--grpc-port``, its messages bounded by ``--max-body``; ``svc.grpc_port``
    becomes the port it bound (any free one for 0)."""
    limit = svc.settings.max_body
    options = [("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", max(limit, 2**26))]
    server = grpc.aio.server(options=options)
    service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(Servicer(svc), server)
    port = server.add_insecure_port(f"{svc.settings.host}:{svc.settings.grpc_port}")
    if not port:
        raise OSError(f"cannot listen for gRPC on {svc.settings.host}:{svc.settings.grpc_port}")
    svc.grpc_port = port
    await server.start()
    return server
