"""The Open Inference Protocol (KServe "v2", as NVIDIA Triton speaks it over HTTP): inference requests and
responses in JSON, with the binary tensor extension (a JSON header of ``Inference-Header-Content-Length`` bytes,
then the tensors' raw bytes) that ``tritonclient.http`` uses by default, and Triton's classification extension
(``"classification": k`` on an output: the top k as ``"score:index:label"`` strings).
"""

from __future__ import annotations

import base64
import json
import math
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

HEADER = "Inference-Header-Content-Length"
IMAGE, IMAGE_BYTES, PROBABILITIES = "image", "image_bytes", "probabilities"
# The protocol's datatypes as numpy's, laid out by hand (fmt: skip): a lookup table, four to a line.
NUMPY = {"FP32": np.float32, "FP64": np.float64, "FP16": np.float16, "INT64": np.int64, "INT32": np.int32,
         "UINT8": np.uint8, "INT8": np.int8, "BOOL": np.bool_}  # fmt: skip


class ProtocolError(ValueError):
    """A request the protocol (or this model) cannot take: answered 400 with the sentence."""


@dataclass
class Tensor:
    name: str
    datatype: str
    shape: list[int]
    data: Any  # numpy array, or a list of bytes for BYTES


@dataclass
class Request:
    id: str | None
    inputs: dict[str, Tensor]
    outputs: list[dict[str, Any]] = field(default_factory=list)
    binary_output: bool = False


def parse_request(body: bytes, header_length: int | None) -> Request:
    """Decode an inference request, JSON or JSON with binary tensors."""
    head, rest = (body, b"") if header_length is None else (body[:header_length], body[header_length:])
    try:
        spec = json.loads(head)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ProtocolError(f"the request is not JSON ({err})") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("inputs"), list) or not spec["inputs"]:
        raise ProtocolError('the request needs "inputs": a list of tensors')
    inputs, offset = {}, 0
    for raw in spec["inputs"]:
        tensor, used = _tensor(raw, rest, offset)
        inputs[tensor.name], offset = tensor, offset + used
    if offset != len(rest):
        raise ProtocolError(f"the request carries {len(rest)} bytes of tensor data, its inputs describe {offset}")
    params = spec.get("parameters") or {}
    outputs = spec.get("outputs") or []
    return Request(spec.get("id"), inputs, outputs, bool(params.get("binary_data_output")))


def _tensor(raw: dict[str, Any], rest: bytes, offset: int) -> tuple[Tensor, int]:
    try:
        name, datatype, shape = str(raw["name"]), str(raw["datatype"]), [int(d) for d in raw["shape"]]
    except (KeyError, TypeError, ValueError):
        raise ProtocolError('each input needs "name", "datatype" and "shape"') from None
    if any(d < 0 for d in shape):
        raise ProtocolError(f"input {name}: shape {shape} has a negative dimension")
    count = int(np.prod(shape)) if shape else 1
    size = (raw.get("parameters") or {}).get("binary_data_size")
    if size is not None:
        return tensor_of_raw(name, datatype, shape, rest[offset : offset + int(size)]), int(size)
    if datatype == "BYTES":
        items = raw.get("data")
        if not isinstance(items, list) or len(items) != count:
            raise ProtocolError(f"input {name}: {count} BYTES elements expected (binary, or base64 strings)")
        try:
            return Tensor(name, datatype, shape, [base64.b64decode(v, validate=True) for v in items]), 0
        except (ValueError, TypeError):
            raise ProtocolError(f"input {name}: BYTES elements in JSON must be base64 strings") from None
    if datatype not in NUMPY:
        raise ProtocolError(f"input {name}: unknown datatype {datatype}")
    try:
        array = np.asarray(raw["data"], dtype=NUMPY[datatype]).reshape(shape)
    except (KeyError, ValueError, TypeError):
        raise ProtocolError(f"input {name}: its data do not make a {datatype} tensor of shape {shape}") from None
    return Tensor(name, datatype, shape, array), 0


def tensor_of_raw(name: str, datatype: str, shape: list[int], raw: bytes) -> Tensor:
    """A tensor from its raw bytes, as the binary extension and gRPC's ``raw_input_contents`` carry them."""
    if any(d < 0 for d in shape):
        raise ProtocolError(f"input {name}: shape {shape} has a negative dimension")
    count = int(np.prod(shape)) if shape else 1
    if datatype == "BYTES":
        return Tensor(name, datatype, shape, _split_bytes(raw, count, name))
    if datatype not in NUMPY:
        raise ProtocolError(f"input {name}: unknown datatype {datatype}")
    dtype = NUMPY[datatype]
    if len(raw) != count * np.dtype(dtype).itemsize:
        raise ProtocolError(f"input {name}: {len(raw)} bytes for a {datatype} tensor of shape {shape}")
    return Tensor(name, datatype, shape, np.frombuffer(raw, dtype=dtype).reshape(shape))


def _split_bytes(buffer: bytes, count: int, name: str) -> list[bytes]:
    """BYTES elements in the binary extension: each a 4-byte little-endian length, then that many bytes."""
    items, at = [], 0
    for _ in range(count):
        if at + 4 > len(buffer):
            raise ProtocolError(f"input {name}: its binary BYTES data end early")
        (n,) = struct.unpack_from("<I", buffer, at)
        items.append(buffer[at + 4 : at + 4 + n])
        at += 4 + n
        if at > len(buffer):
            raise ProtocolError(f"input {name}: its binary BYTES data end early")
    return items


def classification(probs: np.ndarray, k: int, classes: list[str]) -> list[list[str]]:
    """Triton's classification output: per row, the top ``k`` as ``"score:index:label"``."""
    top = np.argsort(-probs, axis=1)[:, :k]
    return [[f"{probs[r, i]:f}:{i}:{classes[i]}" for i in row] for r, row in enumerate(top)]


@dataclass
class Output:
    """One output tensor of a response: FP32 ``values``, or BYTES ``strings`` (classification)."""

    name: str
    datatype: str
    shape: list[int]
    values: np.ndarray | None = None
    strings: list[bytes] | None = None
    binary: bool = False

    def raw(self) -> bytes:
        """The tensor's bytes as the binary extension and gRPC's raw contents carry them."""
        if self.strings is not None:
            return b"".join(struct.pack("<I", len(s)) + s for s in self.strings)
        return np.ascontiguousarray(self.values, dtype=np.float32).tobytes()


def outputs(request: Request, probs: np.ndarray, classes: list[str]) -> list[Output]:
    """The outputs ``request`` asked for (by default ``probabilities``, N x K FP32); ``"classification": k`` on an
    output gives its top k as BYTES."""
    wanted = request.outputs or [{"name": PROBABILITIES, "parameters": {"binary_data": request.binary_output}}]
    found = []
    for out in wanted:
        name, params = out.get("name"), out.get("parameters") or {}
        if name != PROBABILITIES:
            raise ProtocolError(f"unknown output {name!r}; this model has {PROBABILITIES!r}")
        k = int(params.get("classification", 0) or 0)
        binary = bool(params.get("binary_data", False))
        if k:
            rows = classification(probs, min(k, probs.shape[1]), classes)
            strings = [s.encode() for row in rows for s in row]
            found.append(
                Output(name, "BYTES", [len(rows), len(rows[0]) if rows else 0], strings=strings, binary=binary)
            )
        else:
            found.append(Output(name, "FP32", list(probs.shape), values=probs.astype(np.float32), binary=binary))
    return found


def encode_response(model: str, request: Request, found: list[Output]) -> tuple[bytes, int | None]:
    """The HTTP response: JSON, with the outputs asked for in binary after it (``Inference-Header-Content-Length``
    then says where the JSON ends)."""
    entries, blobs = [], []
    for out in found:
        entry: dict[str, Any] = {"name": out.name, "datatype": out.datatype, "shape": out.shape}
        if out.binary:
            blob = out.raw()
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        elif out.strings is not None:
            entry["data"] = [s.decode() for s in out.strings]
        else:  # JSON has no NaN or infinity (RFC 8259): a non-finite score is null there (binary keeps it)
            entry["data"] = [v if math.isfinite(v) else None for v in out.values.ravel().tolist()]
        entries.append(entry)
    head = {"model_name": model, "model_version": "1", "outputs": entries}
    if request.id is not None:
        head["id"] = request.id
    text = json.dumps(head, allow_nan=False).encode()
    return (text + b"".join(blobs), len(text)) if blobs else (text, None)
