"""Writing ``.caffemodel`` files for the tests, independently of vggnet's reader.

The messages come from a ``.proto`` written here (the field numbers of Caffe's ``caffe.proto``; the floats
``repeated float [packed = true]``, as Caffe declares them, where the reader takes them as bytes) and compiled by
protoc from grpcio-tools, so the files are protobuf's own encoding of Caffe's messages. ``wire`` builds bytes by
hand from the wire format's rules, for a third, protobuf-free check.
"""

from __future__ import annotations

import importlib.util
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

PROTO_TEMPLATE = """
syntax = "proto2";
package testcaffe;

message BlobShape { repeated int64 dim = 1 [packed = true]; }
message BlobProto { optional BlobShape shape = 7; repeated float data = 5 [packed = true]; optional int32 num = 1;
  optional int32 channels = 2; optional int32 height = 3; optional int32 width = 4; }
message ConvolutionParameter { optional uint32 num_output = 1; repeated uint32 pad = 3; repeated uint32 kernel_size
  = 4; repeated uint32 stride = 6; }
message InnerProductParameter { optional uint32 num_output = 1; }
message PoolingParameter { optional int32 pool = 1; optional uint32 kernel_size = 2; optional uint32 stride = 3; }
message LRNParameter { optional uint32 local_size = 1; optional float alpha = 2; optional float beta = 3; optional
  float k = 5; }
{layer_messages}
message NetParameter { optional string name = 1; repeated V1LayerParameter layers = 2; repeated LayerParameter layer
  = 100; }
"""
# The layer message, current and V1 (Caffe's field numbers for each): (rule, type, name, number, V1 number).
LAYER_FIELDS = (
    ("optional", "string", "name", 1, 4),
    ("optional", "string", "type", 2, None),
    ("optional", "int32", "type", None, 5),
    ("repeated", "string", "bottom", 3, 2),
    ("repeated", "string", "top", 4, 3),
    ("repeated", "BlobProto", "blobs", 7, 6),
    ("optional", "ConvolutionParameter", "convolution_param", 106, 10),
    ("optional", "InnerProductParameter", "inner_product_param", 117, 17),
    ("optional", "LRNParameter", "lrn_param", 118, 18),
    ("optional", "PoolingParameter", "pooling_param", 121, 19),
)


def layer_message(name: str, v1: bool) -> str:
    fields = [(rule, kind, field, v1_number if v1 else number) for rule, kind, field, number, v1_number in LAYER_FIELDS]
    lines = [f"  {rule} {kind} {field} = {n};" for rule, kind, field, n in fields if n is not None]
    return "message " + name + " {\n" + "\n".join(lines) + "\n}"


PROTO = PROTO_TEMPLATE.replace(
    "{layer_messages}", layer_message("LayerParameter", False) + "\n" + layer_message("V1LayerParameter", True)
)
# V1's LayerType numbers (caffe.proto) and the current format's type names.
V1 = {
    "Data": 5,
    "Convolution": 4,
    "ReLU": 18,
    "Pooling": 17,
    "LRN": 15,
    "InnerProduct": 14,
    "Dropout": 6,
    "Softmax": 20,
}


def compile_messages(folder: Path):
    """The module protoc makes of PROTO."""
    (folder / "testcaffe.proto").write_text(PROTO)
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{folder}", f"--python_out={folder}", "testcaffe.proto"],
        check=True,
    )
    spec = importlib.util.spec_from_file_location("testcaffe_pb2", folder / "testcaffe_pb2.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def deploy_layers(config: list, state: dict[str, torch.Tensor], lrn: bool = False) -> list[tuple]:
    """The authors' deploy net for a torchvision-layout state dict: (name, type, blobs, params) in order."""
    layers: list[tuple] = [("data", "Data", [], {})]
    block, conv, index = 1, 0, 0
    keys = sorted({k.rsplit(".", 1)[0] for k in state if k.startswith("features.")}, key=lambda k: int(k.split(".")[1]))
    for item in config:
        if item == "M":
            layers.append((f"pool{block}", "Pooling", [], {"pool": 0, "kernel_size": 2, "stride": 2}))
            block, conv = block + 1, 0
        elif item == "LRN":
            layers.append((f"norm{block}", "LRN", [], {"local_size": 5, "alpha": 5e-4, "beta": 0.75, "k": 2.0}))
        else:
            conv += 1
            key = keys[index]
            index += 1
            w, b = state[f"{key}.weight"], state[f"{key}.bias"]
            k = w.shape[-1]
            layers.append((f"conv{block}_{conv}", "Convolution", [w, b], {"num_output": w.shape[0], "kernel": k}))
            layers.append((f"relu{block}_{conv}", "ReLU", [], {}))
    for name, key in (("fc6", "classifier.0"), ("fc7", "classifier.3"), ("fc8", "classifier.6")):
        if f"{key}.weight" in state:
            w = state[f"{key}.weight"]
            layers.append((name, "InnerProduct", [w, state[f"{key}.bias"]], {"num_output": w.shape[0]}))
            if name != "fc8":
                layers += [(f"relu{name[2:]}", "ReLU", [], {}), (f"drop{name[2:]}", "Dropout", [], {})]
    layers.append(("prob", "Softmax", [], {}))
    return layers


def write_caffemodel(pb, path: Path, layers: list[tuple], generation: str = "v1", name: str = "VGG_test") -> Path:
    """A .caffemodel of ``layers`` in the V1 (``layers``, legacy 4-D blob shapes) or current (``layer``,
    ``BlobShape``) format."""
    net = pb.NetParameter(name=name)
    for layer_name, kind, blobs, params in layers:
        m = net.layers.add(type=V1[kind]) if generation == "v1" else net.layer.add(type=kind)
        m.name = layer_name
        for blob in blobs:
            b = m.blobs.add()
            array = blob.detach().float().numpy()
            if generation == "v1":  # legacy: four dimensions, a matrix as 1 x 1 x rows x columns
                dims = (1,) * (4 - array.ndim) + array.shape
                b.num, b.channels, b.height, b.width = dims
            else:
                b.shape.dim.extend(array.shape)
            b.data.extend(array.reshape(-1).tolist())
        _params(m, kind, params)
    path.write_bytes(net.SerializeToString())
    return path


def _params(m, kind: str, params: dict) -> None:
    if kind == "Convolution":
        k = params["kernel"]
        m.convolution_param.num_output = params["num_output"]
        m.convolution_param.kernel_size.append(k)
        m.convolution_param.pad.append(k // 2)
    elif kind == "InnerProduct":
        m.inner_product_param.num_output = params["num_output"]
    elif kind == "Pooling":
        p = m.pooling_param
        p.pool, p.kernel_size, p.stride = params["pool"], params["kernel_size"], params["stride"]
    elif kind == "LRN":
        p = m.lrn_param
        p.local_size, p.alpha, p.beta, p.k = params["local_size"], params["alpha"], params["beta"], params["k"]


# -- the wire format by hand ----------------------------------------------------------------------------------------
def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number: int, payload: bytes | int, kind: str = "bytes") -> bytes:
    """One field: ``bytes`` (length-delimited), ``varint`` or ``fixed32`` (a float's four bytes)."""
    if kind == "varint":
        return varint(number << 3 | 0) + varint(payload)
    if kind == "fixed32":
        return varint(number << 3 | 5) + payload
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def blob_bytes(array: np.ndarray, packed: bool = True) -> bytes:
    """A BlobProto: ``shape`` (7) with packed dims, then the floats (5), packed or one tag each."""
    dims = b"".join(varint(d) for d in array.shape)
    floats = array.astype("<f4").reshape(-1)
    data = (
        field(5, floats.tobytes())
        if packed
        else b"".join(field(5, struct.pack("<f", v), "fixed32") for v in floats.tolist())
    )
    return field(7, field(1, dims)) + data
