"""VGGs in ONNX graphs, read with ``onnx`` and never run: the ONNX Model Zoo's (converted from MXNet Gluon, names
like ``vgg0_conv0_weight``), what ``torch.onnx.export`` writes from torchvision's VGG (``features.0.weight`` or
anonymous ``onnx::Conv_...`` initialisers, BN folded into the convolutions or not), and Keras models through
tf2onnx (NHWC input behind a ``Transpose``, dense layers as ``MatMul`` + ``Add`` in (in, out) order, fc1's input
flattened H x W x C), often with a head of the user's own.

The graph is walked along its main path, from the image input to the output: convolutions, batch norms, pools and
LRNs make the trunk; after the flatten, fully connected layers (``Gemm``, ``MatMul`` + ``Add``, or convolutions over
pool5's map) make the head. Side computations (shapes for a ``Reshape``) are passed over. A head that is not VGG's
fc6-fc8 is described in one line and left out: the file loads as a trunk. A ``Sub``/``Mul``/``Div`` on the input
before the first convolution is the normalisation the graph carries; without one, the model takes its input as the
graph does (no normalisation, channels as they are), and says so: ``--normalize`` names a convention the user knows.

Before any weight is read, every tensor's declared shape is checked against a VGG's and against the bytes the file
(or its external data) holds for it, and external data is read only from the model's own folder.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..base.extras import require
from ..base.normalization import Normalization
from .found import WeightsFile, from_foreign
from .net import Declared, ForeignNet, FoundLayer

# Operators of quantised graphs (QDQ, QOperator, integer ops): their weights are not the float VGG's.
QUANTISED = {
    "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearConv", "QLinearMatMul", "QLinearAdd",
    "QLinearMul", "QLinearAveragePool", "QLinearGlobalAveragePool", "QLinearConcat", "QLinearSigmoid",
    "ConvInteger", "MatMulInteger", "QGemm",
}  # fmt: skip
PASSING = {"Relu", "Dropout", "Identity", "Cast"}  # on the main path: nothing to read
ACTIVATIONS = {"Sigmoid", "Tanh", "LeakyRelu", "Elu", "Selu", "Softplus", "Gelu", "HardSigmoid"}
EXTERNAL = 1  # onnx.TensorProto.EXTERNAL: an initialiser whose bytes are in another file
# Bytes per value of TensorProto's data types 1-20 (FLOAT, UINT8, INT8, UINT16, INT16, INT32, INT64, STRING, BOOL,
# FLOAT16, DOUBLE, UINT32, UINT64, COMPLEX64, COMPLEX128, BFLOAT16, the four FLOAT8s); 0 and the 4-bit types: checked
# by their shape alone.
ITEMSIZE = dict(zip(range(1, 21), (4, 1, 1, 2, 2, 4, 8, 0, 1, 2, 8, 4, 8, 8, 16, 2, 1, 1, 1, 1)))


def read(path: Path) -> WeightsFile:
    """The VGG in an ONNX graph (see the module's docstring), assembled; ``ValueError`` in a sentence for a file
    that is not ONNX, whose external weights are missing, that is quantised, or that holds another network (an
    ONNX file vggnet exported is a model to run: :mod:`vggnet.formats.registry` tells it apart)."""
    require("onnx", f"reading {path}")
    model = _load(path)
    graph = model.graph
    quantised = sorted({n.op_type for n in graph.node} & QUANTISED)
    if quantised:
        raise ValueError(
            f"{path} is a quantised ONNX graph ({', '.join(quantised)}): its weights are integers, not the float "
            "VGG's; give the float file it was quantised from"
        )
    walk = Walk(path, _constants(graph))
    try:
        walk.run(graph)
    except ValueError as err:
        raise ValueError(not_a_vgg(path, err)) from None
    producer = f"{model.producer_name} {model.producer_version}".strip() or "unknown producer"
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    try:
        return from_foreign(walk.net(f"ONNX graph (opset {opset}, from {producer})"), str(path))
    except ValueError as err:
        raise ValueError(not_a_vgg(path, err)) from None


def exported_by_vggnet(path: Path) -> bool:
    """Whether an ONNX file is one vggnet exported (it carries vggnet's metadata): a model to run through an engine,
    not weights to read."""
    try:
        return any(key.startswith("vggnet_") for key in onnx_properties(path))
    except Exception:  # noqa: BLE001  (a file that does not read is said by read())
        return False


def onnx_properties(path: str | os.PathLike) -> dict[str, str]:
    """An ONNX file's metadata properties. Reaching them parses the whole file (hundreds of MB for a VGG), so they
    are kept per file version: deciding what a file is and then reading its metadata parse it once."""
    found = Path(path).stat()
    return dict(_properties(str(path), found.st_mtime_ns, found.st_size))


@functools.lru_cache(maxsize=8)
def _properties(path: str, mtime_ns: int, size: int) -> tuple[tuple[str, str], ...]:
    import onnx

    return tuple((p.key, p.value) for p in onnx.load(path, load_external_data=False).metadata_props)


def not_a_vgg(path: Path, err: Exception) -> str:
    """The sentence for an ONNX file that is neither vggnet's own export nor a VGG's weights: both said."""
    reason = str(err).replace(f"{path}: ", "", 1).replace(f"{path}'s ", "its ", 1).replace(f"{path} ", "", 1)
    return (
        f"{path} was not exported by vggnet: its metadata lacks classes, mean, std, crop, in_channels and num_classes;"
        f" and read as a VGG's weights, {reason}"
    )


def _load(path: Path) -> Any:
    import onnx
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, OSError, ValueError) as err:
        raise ValueError(f"cannot load ONNX model {path}: truncated or not an ONNX file ({str(err)[:120]})") from None
    if not model.graph.node:
        raise ValueError(f"cannot load ONNX model {path}: it holds no graph (no nodes); truncated or not an ONNX file")
    declared = Declared(str(path))
    for what, tensor in _tensors(model.graph):
        _check_tensor(tensor, what, path, declared)
    try:
        onnx.external_data_helper.load_external_data_for_model(model, str(path.parent))
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}'s external weights do not read ({str(err)[:120]}): truncated?") from None
    return model


def _tensors(graph: Any) -> list[tuple[str, Any]]:
    """Every tensor a graph holds, with what to call it: initialisers and node attributes (Constant values),
    subgraphs' too; the tensors onnx's loader of external data reads."""
    found = [(f"the initialiser {t.name}", t) for t in graph.initializer]
    for node in graph.node:
        for a in node.attribute:
            what = f"{node.op_type} {node.name or node.output[0]}'s {a.name}"
            found += [(what, t) for t in ([a.t] if a.HasField("t") else []) + list(a.tensors)]
            for sub in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                found += _tensors(sub)
    return found


def _check_tensor(tensor: Any, what: str, path: Path, declared: Declared) -> None:
    """A tensor's declared shape against a VGG's and against the bytes the file holds for it, before it is read."""
    count = declared.shape(tensor.dims, what)
    size = ITEMSIZE.get(tensor.data_type)
    if tensor.data_location == EXTERNAL:
        info = {e.key: e.value for e in tensor.external_data}
        held = _external_bytes(path, info, what)
    else:
        typed = [tensor.float_data, tensor.int32_data, tensor.int64_data, tensor.double_data, tensor.uint64_data]
        held = max(len(values) for values in typed)
        if held and size:  # one field entry per value (two for a complex one)
            declared.held(count * (2 if tensor.data_type in (14, 15) else 1), 1, held, f"{what} (values, not bytes)")
            return
        held = len(tensor.raw_data)
    if size:
        declared.held(count, size, held, what)


def _external_bytes(path: Path, info: dict[str, str], what: str) -> int:
    """The bytes an external tensor has in its file, which must lie in the model's own folder: a location that
    leaves it (``..``, an absolute path, a symbolic link to elsewhere) is refused before anything there is read."""
    where = info.get("location", "")
    folder = Path(os.path.realpath(path.parent))
    target = Path(os.path.realpath(folder / where))
    if not where or Path(where).is_absolute() or ".." in Path(where).parts or folder not in target.parents:
        raise ValueError(
            f"{path}'s weights point outside its folder ({where or 'no location'}), where vggnet reads nothing: "
            "keep the external data file beside the .onnx file"
        )
    if not target.is_file():
        raise ValueError(
            f"{path} keeps its weights in an external file, {where}, that is not beside it; copy it next to the "
            ".onnx file"
        )
    try:
        offset, length = int(info.get("offset") or 0), int(info["length"]) if info.get("length") else None
    except ValueError:
        raise ValueError(f"{path}: {what}'s external offset or length is not a number: the file is damaged") from None
    available = max(target.stat().st_size - offset, 0)
    if offset < 0 or (length is not None and length > available):
        raise ValueError(f"{path}: {what} lies past the end of {where}: truncated")
    return available if length is None else length


def _constants(graph: Any) -> dict[str, np.ndarray]:
    """Every tensor whose value the graph fixes: initialisers, Constant nodes, and Identity or Cast of either."""
    from onnx import numpy_helper

    found = {}
    for init in graph.initializer:
        try:
            found[init.name] = numpy_helper.to_array(init)
        except (ValueError, TypeError) as err:
            raise ValueError(f"the ONNX initialiser {init.name} does not read ({str(err)[:80]}): truncated?") from None
    for node in graph.node:
        if node.op_type == "Constant":
            value = next((a for a in node.attribute if a.name == "value"), None)
            if value is not None:
                found[node.output[0]] = numpy_helper.to_array(value.t)
        elif node.op_type in ("Identity", "Cast") and node.input and node.input[0] in found:
            found[node.output[0]] = found[node.input[0]]
    return found


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


@dataclass
class Walk:
    """The main path's layers, as the walk along the graph finds them."""

    path: Path
    consts: dict[str, np.ndarray]
    layers: list[FoundLayer] = field(default_factory=list)
    head: list[str] = field(default_factory=list)  # what the head is made of, for its one-line description
    head_is_vgg: bool = True
    flattened: bool = False
    nhwc: bool = False
    hwc_flatten: bool = False  # fc1's inputs in H x W x C order (a Transpose back to NHWC before the flatten)
    ceil_mode: bool = False
    scale: np.ndarray | None = None  # the input's normalisation, as x * scale + shift
    shift: np.ndarray | None = None
    softmax: bool = False
    dims: tuple[int, ...] = ()  # the image input's declared shape (0 where it is not fixed)

    def run(self, graph: Any) -> None:
        image = next((i for i in graph.input if i.name not in self.consts), None)
        if image is None:
            raise ValueError(f"{self.path}: its graph has no input for images")
        main, self.dims = image.name, tuple(d.dim_value for d in image.type.tensor_type.shape.dim)
        for node in graph.node:
            if main not in node.input or node.op_type == "Constant":
                continue  # a side computation (a shape, a constant), off the path of the image
            self.step(node, [i for i in node.input if i and i != main])
            main = node.output[0]
        if not any(layer.kind == "conv" for layer in self.layers):
            raise ValueError(f"{self.path} holds no convolutions along its main path: not a VGG")

    def step(self, node: Any, others: list[str]) -> None:
        op, a = node.op_type, _attrs(node)
        if op in PASSING:
            return
        if op == "Softmax":
            self.softmax = True
        elif op == "Transpose":
            self.transpose(list(a.get("perm", [])))
        elif op in ("Sub", "Add", "Mul", "Div") and all(o in self.consts for o in others):
            self.arithmetic(op, self.consts[others[0]] if others else None, node)
        elif op == "Conv":
            self.conv(node, a)
        elif op == "BatchNormalization":
            self.batch_norm(node, a)
        elif op == "MaxPool":
            self.max_pool(node, a)
        elif op == "LRN":
            self.layers.append(FoundLayer("lrn", node.name or "LRN"))
        elif op in ("AveragePool", "GlobalAveragePool", "ReduceMean") and self.layers:  # pool5 to the head's map
            self.head.append("AveragePool" if op == "AveragePool" else "GlobalAveragePool")
        elif op in ("Flatten", "Reshape"):
            self.flattened = True
        elif op in ("Gemm", "MatMul"):
            self.dense(node, a)
        elif op in ACTIVATIONS and self.flattened:
            self.head.append(op)
            self.head_is_vgg = False
        else:
            joins = op in ("Add", "Concat", "Sum", "Mul")
            why = " joining branches (a ResNet's or an Inception's)" if joins else ""
            raise ValueError(f"{self.path} is not a VGG: it has a {op} node ({node.name or node.output[0]}){why}")

    def transpose(self, perm: list[int]) -> None:
        if perm == [0, 3, 1, 2] and not self.layers:
            self.nhwc = True  # channels-last images, made channels-first for the convolutions
        elif perm == [0, 2, 3, 1] and self.layers and not self.flattened:
            self.hwc_flatten = True  # back to channels-last before the flatten: fc1 reads H x W x C
        elif perm != [0, 1, 2, 3]:
            raise ValueError(f"{self.path}: a Transpose {perm} on the image's path is not one of a VGG's layouts")

    def arithmetic(self, op: str, value: np.ndarray | None, node: Any) -> None:
        """Normalisation before the first convolution; a bias or a scale after a layer (tf2onnx's Add of a bias,
        a batch norm folded into Mul and Add)."""
        if value is None:
            raise ValueError(f"{self.path}: {op} node {node.name} has no constant to apply")
        v = np.asarray(value, dtype=np.float64).reshape(-1)
        if not self.layers:
            scale = np.ones_like(v) if self.scale is None else self.scale
            shift = np.zeros_like(v) if self.shift is None else self.shift
            if op == "Sub":
                shift = shift - v
            elif op == "Add":
                shift = shift + v
            else:
                factor = v if op == "Mul" else 1 / v
                scale, shift = scale * factor, shift * factor
            self.scale, self.shift = scale, shift
            return
        layer = self.layers[-1]
        if layer.kind not in ("conv", "fc") or op in ("Sub", "Div"):
            raise ValueError(f"{self.path}: a {op} node after {layer.source} is not part of a VGG")
        t = torch.from_numpy(v).float()
        bias = layer.bias if layer.bias is not None else torch.zeros(layer.weight.shape[0])
        if op == "Add":
            layer.bias = bias + t
        else:
            shape = (-1,) + (1,) * (layer.weight.dim() - 1)
            layer.weight, layer.bias = layer.weight * t.reshape(shape), bias * t

    def conv(self, node: Any, a: dict[str, Any]) -> None:
        weight = self.weight(node, 1)
        bias = self.weight(node, 2) if len(node.input) > 2 and node.input[2] else None
        kernel = tuple(weight.shape[2:])
        if a.get("group", 1) != 1:
            raise ValueError(f"{self.path} is not a VGG: {node.name or 'a convolution'} is grouped ({a['group']})")
        if set(a.get("dilations", [1, 1])) != {1} or set(a.get("strides", [1, 1])) != {1}:
            first = " its first convolution" if not self.layers else ""
            raise ValueError(
                f"{self.path} is not a VGG:{first} {node.name or 'a convolution'} is {kernel[0]}x{kernel[1]} with "
                f"stride {a.get('strides')} and dilation {a.get('dilations', [1, 1])}"
                + (" (AlexNet's first layer)" if kernel == (11, 11) else "")
            )
        if self.flattened or (self.layers and kernel not in ((3, 3), (1, 1))) or self.head_started():
            self.layers.append(FoundLayer("fc", node.name or node.input[1], weight, bias))  # fc6-fc8 as convolutions
            self.head.append(f"Conv {weight.shape[0]}")
            return
        self.layers.append(FoundLayer("conv", node.name or node.input[1], weight, bias))

    def head_started(self) -> bool:
        return any(layer.kind == "fc" for layer in self.layers)

    def batch_norm(self, node: Any, a: dict[str, Any]) -> None:
        gamma, beta, mean, var = (self.weight(node, i) for i in (1, 2, 3, 4))
        eps = float(a.get("epsilon", 1e-5))
        layer = self.layers[-1] if self.layers else None
        if layer is None or layer.kind != "conv" or layer.bn is not None:
            self.head.append("BatchNorm")
            self.head_is_vgg = False
            if layer is None or layer.kind == "conv":
                raise ValueError(f"{self.path}: a batch norm ({node.name}) where a VGG has none")
            return
        if abs(eps - 1e-5) > 1e-9:  # PyTorch's BatchNorm2d keeps 1e-5: fold this one into the convolution
            factor = gamma / torch.sqrt(var + eps)
            bias = layer.bias if layer.bias is not None else torch.zeros_like(mean)
            layer.weight, layer.bias = layer.weight * factor.reshape(-1, 1, 1, 1), (bias - mean) * factor + beta
            return
        layer.bn = (gamma, beta, mean, var)

    def max_pool(self, node: Any, a: dict[str, Any]) -> None:
        if list(a.get("kernel_shape", [])) != [2, 2] or list(a.get("strides", [])) != [2, 2]:
            raise ValueError(
                f"{self.path} is not a VGG: its max-pool {node.name} is {a.get('kernel_shape')} with stride "
                f"{a.get('strides')}, where a VGG's are 2x2 with stride 2"
            )
        self.ceil_mode = self.ceil_mode or bool(a.get("ceil_mode", 0)) or any(a.get("pads", [0]))
        self.layers.append(FoundLayer("pool", node.name or "MaxPool"))

    def dense(self, node: Any, a: dict[str, Any]) -> None:
        weight = self.weight(node, 1)
        if node.op_type == "MatMul" or not a.get("transB", 0):
            weight = weight.T  # (in, out) as Keras and MatMul keep it
        if float(a.get("alpha", 1.0)) != 1.0:
            weight = weight * float(a["alpha"])
        bias = self.weight(node, 2) * float(a.get("beta", 1.0)) if len(node.input) > 2 and node.input[2] else None
        self.layers.append(FoundLayer("fc", node.name or node.input[1], weight.contiguous(), bias))
        self.head.append(f"Dense {weight.shape[0]}")

    def weight(self, node: Any, i: int) -> torch.Tensor:
        name = node.input[i] if len(node.input) > i else ""
        if name not in self.consts:
            raise ValueError(f"{self.path}: {node.op_type} {node.name}'s input {i} ({name}) is not a constant weight")
        return torch.from_numpy(np.array(self.consts[name], dtype=np.float32))

    def net(self, kind: str) -> ForeignNet:
        layers, notes = list(self.layers), []
        if self.nhwc:
            notes.append("the graph takes NHWC images behind a Transpose; vggnet's model takes NCHW")
        fcs = [layer for layer in layers if layer.kind == "fc"]
        if fcs and (len(fcs) != 3 or not self.head_is_vgg or not _vgg_widths(fcs)):
            notes.append("head not loaded: " + self.describe_head())
            layers = [layer for layer in layers if layer.kind != "fc"]
        elif fcs and self.hwc_flatten:
            fcs[0].weight = _hwc_to_chw(fcs[0].weight, _channels(layers))
        side = self.dims[1:3] if self.nhwc else self.dims[2:4]  # the side the graph takes, where it fixes one
        crop = side[0] if len(self.dims) == 4 and side[0] == side[1] and side[0] > 0 else None
        return ForeignNet(kind, layers, self.normalization(notes), self.ceil_mode, crop=crop, notes=notes)

    def describe_head(self) -> str:
        parts = ["Flatten", *self.head]
        if parts[-1].startswith(("Dense", "Conv")):
            parts[-1] = parts[-1].split()[-1]
        return " → ".join(parts) + (", softmax" if self.softmax else "")

    def normalization(self, notes: list[str]) -> Normalization:
        if self.scale is None:  # the graph's input is what its own package feeds it; vggnet's model takes the same
            notes.append(
                "the file carries no input normalisation: the model takes its input as the graph did (no mean, std "
                "or channel reversal); pass --normalize NAME if you know the convention (e.g. caffe for "
                "keras.applications' own VGG16, imagenet for torchvision's and the ONNX Model Zoo's)"
            )
            return Normalization((0.0,) * 3, (1.0,) * 3, "RGB", 1.0, "the graph's input as it is, unnormalised")
        mean, std = -self.shift / self.scale, 1 / self.scale
        channels = max(len(mean), 1)
        mean, std = np.broadcast_to(mean, (channels,)), np.broadcast_to(std, (channels,))
        pixels = 255.0 if np.abs(mean).max() > 1.5 else 1.0  # means in 0-255 units: the graph takes 0-255 pixels
        notes.append(f"normalisation read from the graph: mean {np.round(mean, 4).tolist()}, std "
                     f"{np.round(std, 4).tolist()}, pixels 0-{pixels:g}")  # fmt: skip
        return Normalization(tuple(mean), tuple(std), "RGB", pixels, "the ONNX graph's own Sub/Mul/Div")


def _channels(layers: list[FoundLayer]) -> int:
    return int(next(layer.weight.shape[0] for layer in reversed(layers) if layer.kind == "conv"))


def _vgg_widths(fcs: list[FoundLayer]) -> bool:
    """fc6, fc7, fc8 chained, fc6 and fc7 as wide as each other."""
    flat = [f.weight.reshape(f.weight.shape[0], -1) for f in fcs]
    chained = all(b.shape[1] == a.shape[0] for a, b in zip(flat, flat[1:]))
    return chained and flat[0].shape[0] == flat[1].shape[0]


def _hwc_to_chw(weight: torch.Tensor, channels: int) -> torch.Tensor:
    """fc6's columns from Keras's H x W x C flatten to PyTorch's C x H x W."""
    side = int(round((weight.shape[1] // channels) ** 0.5))
    return weight.reshape(weight.shape[0], side, side, channels).permute(0, 3, 1, 2).reshape(weight.shape[0], -1)
