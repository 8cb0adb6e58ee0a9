"""The authors' Caffe models (``.caffemodel``) read without Caffe.

A ``.caffemodel`` is a serialised ``caffe.NetParameter`` (protobuf). The message classes are made here, on the
``protobuf`` package, from the field numbers of Caffe's ``caffe.proto``, and only for the fields a VGG needs: the
layers in all three generations of the format (``layer``, the V1 ``layers``, and V0 layers wrapped in V1 ones),
their blobs with a shape in ``shape`` or in the legacy num/channels/height/width, and the convolution, inner-product,
pooling and LRN parameters that say what a layer computes. Fields the reader does not know are skipped by the
parser, as protobuf promises.

A blob's floats are declared ``bytes`` rather than ``repeated float``: Caffe writes them packed, which on the wire
is one length-delimited run of little-endian floats, so the parser hands over the run itself and numpy reads it
without a Python object per weight (VGG-16 has 138 million). A file written unpacked (one tag per float; legal
protobuf, though Caffe never wrote it) is read again through a ``repeated float`` twin of the message.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

from ..base.configs import LRN_ALPHA, LRN_BETA, LRN_K, LRN_SIZE
from .net import Declared, ForeignNet, FoundLayer, mean_pixel_for

# -- the messages, from caffe.proto's field numbers ----------------------------------------------------------------
# Each message's fields as caffe.proto declares them (``[repeated] TYPE NAME = NUMBER [= DEFAULT]``), several to a
# line. BlobProto's data and double_data are Caffe's packed ``repeated float``/``double``, read as bytes (see the
# module's docstring); V1's type is its LayerType enum, as a number; pooling's pool 0 is MAX, its round_mode 0
# CEIL (Caffe's), 1 FLOOR; LRN's norm_region 0 is ACROSS_CHANNELS.
_PROTO = {
    "BlobShape": "repeated int64 dim = 1",
    "BlobProto": "BlobShape shape = 7; bytes data = 5; bytes double_data = 8; int32 num = 1; int32 channels = 2; "
    "int32 height = 3; int32 width = 4",
    "ConvolutionParameter": "uint32 num_output = 1; bool bias_term = 2 = true; repeated uint32 pad = 3; "
    "repeated uint32 kernel_size = 4; uint32 group = 5 = 1; repeated uint32 stride = 6; uint32 pad_h = 9; "
    "uint32 pad_w = 10; uint32 kernel_h = 11; uint32 kernel_w = 12; uint32 stride_h = 13; uint32 stride_w = 14; "
    "repeated uint32 dilation = 18",
    "InnerProductParameter": "uint32 num_output = 1; bool bias_term = 2 = true; bool transpose = 6",
    "PoolingParameter": "int32 pool = 1; uint32 kernel_size = 2; uint32 stride = 3 = 1; uint32 pad = 4; "
    "uint32 kernel_h = 5; uint32 kernel_w = 6; uint32 stride_h = 7; uint32 stride_w = 8; bool global_pooling = 12; "
    "int32 round_mode = 13",
    "LRNParameter": "uint32 local_size = 1 = 5; float alpha = 2 = 1; float beta = 3 = 0.75; int32 norm_region = 4; "
    "float k = 5 = 1",
    "LayerParameter": "string name = 1; string type = 2; repeated BlobProto blobs = 7; "
    "ConvolutionParameter convolution_param = 106; InnerProductParameter inner_product_param = 117; "
    "LRNParameter lrn_param = 118; PoolingParameter pooling_param = 121",
    "V0LayerParameter": "string name = 1; string type = 2; uint32 num_output = 3; uint32 pad = 7; "
    "uint32 kernelsize = 8; uint32 group = 9 = 1; uint32 stride = 10 = 1; int32 pool = 11; uint32 local_size = 13 = 5; "
    "float alpha = 14 = 1; float beta = 15 = 0.75; float k = 22 = 1; repeated BlobProto blobs = 50",
    "V1LayerParameter": "V0LayerParameter layer = 1; string name = 4; int32 type = 5; repeated BlobProto blobs = 6; "
    "ConvolutionParameter convolution_param = 10; InnerProductParameter inner_product_param = 17; "
    "LRNParameter lrn_param = 18; PoolingParameter pooling_param = 19",
    "NetParameter": "string name = 1; repeated V1LayerParameter layers = 2; repeated LayerParameter layer = 100",
}
_T = descriptor_pb2.FieldDescriptorProto


def _fields(declared: str) -> list[tuple[str, int, int, bool, str | None]]:
    """(name, number, type, repeated, message type or default) of each field a ``_PROTO`` entry declares."""
    found = []
    for part in declared.split(";"):
        words = part.split()
        repeated = words[0] == "repeated"
        kind, name, _, number, *default = words[repeated:]
        scalar = getattr(_T, f"TYPE_{kind.upper()}", None)
        extra = default[1] if default else None
        found.append((name, int(number), scalar or _T.TYPE_MESSAGE, repeated, extra if scalar else kind))
    return found


_FIELDS = {message: _fields(declared) for message, declared in _PROTO.items()}
# V1's LayerType numbers, and V0's type strings, as the type names of the current format.
V1_TYPES = {
    1: "Accuracy",
    3: "Concat",
    4: "Convolution",
    5: "Data",
    6: "Dropout",
    8: "Flatten",
    12: "ImageData",
    14: "InnerProduct",
    15: "LRN",
    17: "Pooling",
    18: "ReLU",
    20: "Softmax",
    21: "SoftmaxWithLoss",
    22: "Split",
    25: "Eltwise",
    29: "MemoryData",
    39: "Deconvolution",
}
V0_TYPES = {
    "conv": "Convolution",
    "innerproduct": "InnerProduct",
    "pool": "Pooling",
    "lrn": "LRN",
    "relu": "ReLU",
    "dropout": "Dropout",
    "softmax": "Softmax",
    "softmax_loss": "SoftmaxWithLoss",
    "data": "Data",
    "accuracy": "Accuracy",
    "flatten": "Flatten",
    "concat": "Concat",
}
WEIGHTED = ("Convolution", "InnerProduct")
CONV_NAME = re.compile(r"conv(\d+)_(\d+)$")
HEAD_NAMES = ("fc6", "fc7", "fc8")


@functools.cache
def messages(raw_floats: bool = True) -> dict[str, Any]:
    """The message classes by name; ``raw_floats=False``: blobs' data as ``repeated float`` (unpacked files)."""
    proto = descriptor_pb2.FileDescriptorProto(
        name=f"vggnet_caffe_{int(raw_floats)}.proto", package=f"vggnet_caffe{int(raw_floats)}", syntax="proto2"
    )
    for name, fields in _FIELDS.items():
        message = proto.message_type.add(name=name)
        for field_name, number, kind, repeated, extra in fields:
            if name == "BlobProto" and not raw_floats and field_name in ("data", "double_data"):
                kind, repeated = (_T.TYPE_FLOAT if field_name == "data" else _T.TYPE_DOUBLE), True
            f = message.field.add(name=field_name, number=number, type=kind)
            f.label = _T.LABEL_REPEATED if repeated else _T.LABEL_OPTIONAL
            if kind == _T.TYPE_MESSAGE:
                f.type_name = f".{proto.package}.{extra}"
            elif extra is not None:
                f.default_value = extra
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    # GetMessageClass since protobuf 4.22; MessageFactory.GetPrototype before it
    make = getattr(message_factory, "GetMessageClass", None) or message_factory.MessageFactory(pool).GetPrototype
    return {n: make(pool.FindMessageTypeByName(f"{proto.package}.{n}")) for n in _FIELDS}


# -- from messages to layers ---------------------------------------------------------------------------------------
@dataclass
class CaffeLayer:
    """One layer of any of the three generations, in the current one's terms."""

    name: str
    type: str
    blobs: list[np.ndarray] = field(default_factory=list)
    kernel: tuple[int, int] | None = None
    stride: tuple[int, int] = (1, 1)
    pad: tuple[int, int] = (0, 0)
    num_output: int | None = None
    pool: int = 0
    lrn: tuple[int, float, float, float] | None = None  # local_size, alpha, beta, k
    transpose: bool = False  # an InnerProduct's weights stored inputs x outputs


def read(path: Path) -> ForeignNet:
    """The VGG in a ``.caffemodel``: its layers in order, weights in PyTorch's layout, and the authors' input (BGR,
    0-255, minus the mean pixel of the data the net was trained on)."""
    data = path.read_bytes()
    try:
        net = messages()["NetParameter"].FromString(data)
    except DecodeError as err:
        raise ValueError(f"cannot read {path} as a Caffe model: truncated or not a .caffemodel ({err})") from None
    generation, layers = _layers(net, path)
    if not layers:
        raise ValueError(f"{path} holds no Caffe layers: not a .caffemodel (a prototxt is text; give the binary file)")
    _check_is_vgg(path, layers)
    found = [f for f in (_found(layer) for layer in layers) if f is not None]
    _check_whole(path, found)
    classes = found[-1].weight.shape[0] if found and found[-1].weight is not None else None
    title = f" '{net.name}'" if net.name else ""
    return ForeignNet(
        format=f"Caffe NetParameter{title}, {generation}",
        layers=found,
        normalization=mean_pixel_for(classes, "a Caffe model's input"),
        ceil_mode=True,  # Caffe's pools round up
        named=True,
    )


# -- from Caffe layers to a VGG's -----------------------------------------------------------------------------------


def _check_is_vgg(path: Path, layers: list[CaffeLayer]) -> None:
    """Refuse, naming what the file has, a network whose layers with weights are not a VGG's (AlexNet, ResNet ...)."""
    weighted = [layer for layer in layers if layer.blobs]
    strange = [
        layer
        for layer in weighted
        if layer.type not in WEIGHTED or not (CONV_NAME.match(layer.name) or layer.name in HEAD_NAMES)
    ]
    if weighted and not strange:
        return
    has = ", ".join(f"{layer.name} ({layer.type} {'x'.join(map(str, layer.blobs[0].shape))})" for layer in weighted)
    raise ValueError(
        f"{path} is not a VGG: its layers with weights are {has[:400] or 'none'}"
        f"{'...' if len(has) > 400 else ''}; a VGG of Table 1 has 3x3 (or 1x1) Convolution layers named conv1_1 ... "
        "conv5_x and InnerProduct layers fc6, fc7, fc8"
    )


def _check_whole(path: Path, found: list[FoundLayer]) -> None:
    """A Caffe VGG ends with fc8: a file cut at a layer's end parses, and would otherwise pass as a smaller net."""
    names = [layer.name for layer in found if layer.kind in ("conv", "fc")]
    blocks = {int(m.group(1)) for n in names if (m := CONV_NAME.match(n or ""))}
    if names[-3:] != list(HEAD_NAMES) or blocks != {1, 2, 3, 4, 5}:
        raise ValueError(
            f"{path} ends after {names[-1] if names else 'no layer with weights'}: a VGG of Table 1 has five blocks "
            "of convolutions and fc6, fc7, fc8 (the file is truncated, or holds part of a net)"
        )


def _layers(net: Any, path: Path) -> tuple[str, list[CaffeLayer]]:
    if len(net.layer):
        return "layer messages", [_current(m, path) for m in net.layer]
    if any(m.HasField("layer") for m in net.layers):
        return "V0 layers (inside V1 ones)", [_v0(m.layer, path) for m in net.layers]
    return "V1 layers", [_current(m, path, V1_TYPES.get(m.type, f"V1 type {m.type}")) for m in net.layers]


def _current(m: Any, path: Path, kind: str | None = None) -> CaffeLayer:
    """A layer of the current format, or (``kind``: its type's name) of V1, whose messages are the same but for it."""
    layer = CaffeLayer(m.name, kind or m.type, [_blob(b, m.name, path) for b in m.blobs])
    _params(layer, m)
    return layer


def _v0(m: Any, path: Path) -> CaffeLayer:
    kind = V0_TYPES.get(m.type, m.type)
    layer = CaffeLayer(m.name, kind, [_blob(b, m.name, path) for b in m.blobs])
    layer.num_output = m.num_output if m.HasField("num_output") else None
    if kind in ("Convolution", "Pooling") and m.HasField("kernelsize"):
        layer.kernel = (m.kernelsize, m.kernelsize)
    layer.stride, layer.pad, layer.pool = (m.stride, m.stride), (m.pad, m.pad), m.pool
    layer.lrn = (m.local_size, m.alpha, m.beta, m.k)
    return layer


def _params(layer: CaffeLayer, m: Any) -> None:
    """Kernel, stride, padding, outputs, pooling method and LRN constants from a layer's parameter messages."""
    if m.HasField("convolution_param"):
        p = m.convolution_param
        layer.num_output = p.num_output if p.HasField("num_output") else None
        layer.kernel = _pair(list(p.kernel_size), p, "kernel_h", "kernel_w", None)
        layer.stride = _pair(list(p.stride), p, "stride_h", "stride_w", 1)
        layer.pad = _pair(list(p.pad), p, "pad_h", "pad_w", 0)
        if p.group != 1 or any(d != 1 for d in p.dilation):
            raise ValueError(f"convolution {layer.name} is grouped or dilated; a VGG's convolutions are neither")
    if m.HasField("inner_product_param"):
        p = m.inner_product_param
        layer.num_output = p.num_output if p.HasField("num_output") else None
        layer.transpose = p.transpose
    if m.HasField("pooling_param"):
        p = m.pooling_param
        layer.pool = p.pool
        layer.kernel = _pair([p.kernel_size] if p.HasField("kernel_size") else [], p, "kernel_h", "kernel_w", None)
        layer.stride = _pair([p.stride], p, "stride_h", "stride_w", 1)
        if p.global_pooling:
            layer.kernel = (0, 0)
    if m.HasField("lrn_param"):
        p = m.lrn_param
        layer.lrn = (p.local_size, p.alpha, p.beta, p.k) if p.norm_region == 0 else (0, 0.0, 0.0, 0.0)
    elif layer.type == "LRN":
        layer.lrn = (5, 1.0, 0.75, 1.0)  # Caffe's defaults


def _pair(values: list[int], p: Any, h: str, w: str, default: int | None) -> tuple[int, int] | None:
    if p.HasField(h) or p.HasField(w):
        return getattr(p, h), getattr(p, w)
    if not values:
        return None if default is None else (default, default)
    return (values[0], values[-1])


def _blob(b: Any, layer: str, path: Path) -> np.ndarray:
    """A blob's values with its shape (``shape``, else the legacy num, channels, height, width)."""
    if b.HasField("shape"):
        shape = tuple(int(d) for d in b.shape.dim)
    else:
        shape = tuple(int(d) for d in (b.num, b.channels, b.height, b.width))
    count = Declared(str(path)).shape(shape, f"a blob of layer {layer}") if shape else 0
    if b.data:
        values = np.frombuffer(b.data, dtype="<f4")
    elif b.double_data:
        values = np.frombuffer(b.double_data, dtype="<f8").astype(np.float32)
    else:
        unpacked = messages(raw_floats=False)["BlobProto"].FromString(b.SerializeToString())
        values = np.asarray(unpacked.data or unpacked.double_data, dtype=np.float32)
    if len(b.data) % 4 or len(b.double_data) % 8 or values.size != count:
        raise ValueError(
            f"{path}: a blob of layer {layer} holds {values.size:,} values for its shape {shape} ({count:,}): "
            "the file is truncated or damaged"
        )
    return values.reshape(shape)


def _found(layer: CaffeLayer) -> FoundLayer | None:
    """The layer as vggnet sees it, checked against what a VGG's layer of that name computes; None for layers
    without a counterpart in a VGG's parameters or shapes (ReLU, dropout, data, loss ...)."""
    if layer.type == "Pooling":
        if layer.pool != 0 or layer.kernel != (2, 2) or layer.stride != (2, 2):
            raise ValueError(
                f"pooling layer {layer.name} is not a VGG's 2x2 max-pool of stride 2 (method {layer.pool}, kernel "
                f"{layer.kernel}, stride {layer.stride})"
            )
        return FoundLayer("pool", layer.name, name=layer.name)
    if layer.type == "LRN":
        if not _is_papers_lrn(layer.lrn):
            n, alpha, beta, k = layer.lrn or (0, 0.0, 0.0, 0.0)
            raise ValueError(
                f"LRN layer {layer.name} computes a / ({k:g} + {alpha / max(n, 1):.3g} x the sum of {n} squares)"
                f"^{beta:g} (Caffe divides alpha by n); A-LRN's is the paper's a / ({LRN_K:g} + {LRN_ALPHA:g} x the "
                f"sum of {LRN_SIZE} squares)^{LRN_BETA:g}, Caffe's alpha {LRN_ALPHA * LRN_SIZE:g}, across channels"
            )
        return FoundLayer("lrn", layer.name, name=layer.name)
    if layer.type not in WEIGHTED or not layer.blobs:
        return None
    weight = layer.blobs[0]
    # an InnerProduct's weights: rows x columns, in the legacy shape 1 x 1 x rows x columns (columns x rows where
    # the layer says transpose)
    if layer.type == "InnerProduct":
        weight = weight.reshape(-1, weight.shape[-1])
        weight = weight.T if layer.transpose else weight
    outputs = weight.shape[0]
    if layer.num_output is not None and layer.num_output != outputs:
        raise ValueError(
            f"layer {layer.name} declares {layer.num_output:,} outputs but its weights hold {outputs:,}: the file "
            "is inconsistent"
        )
    bias = torch.from_numpy(layer.blobs[1].reshape(-1).copy()) if len(layer.blobs) > 1 else None
    if layer.type == "InnerProduct":
        return FoundLayer("fc", layer.name, torch.from_numpy(weight.copy()), bias, name=layer.name)
    if layer.kernel is not None and tuple(weight.shape[2:]) != layer.kernel:
        raise ValueError(f"layer {layer.name} declares a {layer.kernel} kernel but holds {tuple(weight.shape[2:])}")
    k = weight.shape[-1]
    if layer.name in HEAD_NAMES:  # fc6 ... as convolutions (FCN's form): the same weights
        return FoundLayer("fc", layer.name, torch.from_numpy(weight.copy()), bias, name=layer.name)
    if layer.stride != (1, 1) or layer.pad != (k // 2, k // 2):
        raise ValueError(
            f"convolution {layer.name} has stride {layer.stride} and padding {layer.pad}; a VGG's {k}x{k} "
            f"convolutions have stride 1 and padding {k // 2}"
        )
    return FoundLayer("conv", layer.name, torch.from_numpy(weight.copy()), bias, name=layer.name)


def _is_papers_lrn(lrn: tuple[int, float, float, float] | None) -> bool:
    """Whether Caffe's LRN constants (its alpha is divided by n) give the paper's normalisation, within float32's
    rounding of the stored constants."""
    if lrn is None or lrn[0] != LRN_SIZE:
        return False
    n, alpha, beta, k = lrn
    return all(abs(a - b) <= 1e-6 * abs(b) for a, b in zip((alpha / n, beta, k), (LRN_ALPHA, LRN_BETA, LRN_K)))
