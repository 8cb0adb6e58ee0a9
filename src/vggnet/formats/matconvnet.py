"""MatConvNet's ``.mat`` files: ``imagenet-vgg-verydeep-16.mat`` and ``-19.mat`` (the files TensorFlow's neural-style
implementations load) and ``vgg-face.mat``, read with scipy (MATLAB v5 files) or h5py (v7.3), never run.

A file holds a MATLAB struct: ``layers`` (a cell array, each a struct with its ``name``, ``type`` and weights, in
``weights`` = {filters, biases} or, in older releases, ``filters`` and ``biases``), and the input: the normalisation
(``averageImage``, RGB 0-255) and the class names, at the top level in older files (``normalization``, ``classes``)
and under ``meta`` in later ones. Fields are read by name, never by position.

The filters' order is settled from MatConvNet itself, not from a port. Its Caffe importer (``utils/import-caffe.py``,
whose default ``--transpose`` made the verydeep files) reverses a Caffe blob's K x C x H x W to W x H x C x K and
then swaps the first two, leaving every filter height x width x channels x filters (fc6 included), and flips
conv1_1's input channels from Caffe's BGR to RGB. MatConvNet's convolution takes a filter's first dimension along
its images' first, the rows (``TensorShape::getHeight`` is dimension 0 for both), whatever ``vl_nnconv``'s comment
says ("FW x FH"). So a filter F(y, x, c, k) is PyTorch's weight[k, c, y, x]: reading the first two dimensions as
width and height, as neural-style does, transposes every kernel.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..base.normalization import Normalization
from .net import CONV_NAME, ForeignNet, FoundLayer

HEAD_NAMES = ("fc6", "fc7", "fc8")
SKIPPED = {"relu", "softmax", "softmaxloss", "dropout", "loss"}
ORDER = (
    "filters read as MatConvNet's convolution reads them, height x width x channels x filters (its Caffe importer's "
    "layout); neural-style's reading swaps height and width, transposing every kernel"
)


def read(path: Path) -> ForeignNet:
    """The VGG in a MatConvNet ``.mat`` file, with its RGB 0-255 input minus its average image."""
    net = _load(path)
    if "net" in _fields(net) and "layers" not in _fields(net):  # vgg-face.mat: the struct in a variable named net
        net = _get(net, "net")
    if "layers" not in _fields(net):
        raise ValueError(f"{path} is a .mat file without a network's layers (it holds {', '.join(_fields(net))})")
    meta = _get(net, "meta") if "meta" in _fields(net) else net
    layers, ceil = [], False
    for i, layer in enumerate(_cells(_get(net, "layers"))):
        found, pads = _layer(layer, i, path)
        ceil = ceil or pads
        if found is not None:
            layers.append(found)
    named = all(CONV_NAME.match(x.name or "") for x in layers if x.kind == "conv")
    fcs = [x.name for x in layers if x.kind == "fc"]
    if named and fcs not in ([], list(HEAD_NAMES)):
        named = False
    classes = _classes(meta, path)
    return ForeignNet(
        "MatConvNet .mat file" + (", meta layout" if "meta" in _fields(net) else ", older layout"),
        layers,
        _normalization(meta, path),
        ceil,
        classes=classes,
        notes=[ORDER],
        named=named,
    )


def _load(path: Path) -> Any:
    """The file's top-level variables as one struct-like object (v5 through scipy, v7.3 through h5py)."""
    head = path.read_bytes()[:128] if path.is_file() else b""
    if head.startswith(b"\x89HDF") or b"MATLAB 7.3" in head:
        return _HDF5(path)
    from scipy.io import loadmat

    try:
        # Not squeezed: a 1 x 1 x C x K filter keeps its four dimensions (MATLAB drops only trailing ones).
        return _Struct(loadmat(str(path), squeeze_me=False, struct_as_record=False, chars_as_strings=True))
    except (ValueError, TypeError, OSError, IndexError, KeyError) as err:
        raise ValueError(
            f"cannot read {path} as a MATLAB file: truncated or not a .mat file ({str(err)[:120]})"
        ) from None


class _Struct:
    """Top-level variables of a v5 file, read like the structs inside it."""

    def __init__(self, found: dict[str, Any]) -> None:
        self._fieldnames = [k for k in found if not k.startswith("__")]
        for k in self._fieldnames:
            setattr(self, k, found[k])


def _fields(obj: Any) -> list[str]:
    if isinstance(obj, _HDF5):
        return obj.fields()
    return list(getattr(obj, "_fieldnames", None) or [])


def _get(obj: Any, name: str) -> Any:
    if isinstance(obj, _HDF5):
        return obj.get(name)
    value = getattr(obj, name)
    while isinstance(value, np.ndarray) and value.dtype == object and value.size == 1 and _fields(value.flat[0]):
        value = value.flat[0]  # a 1 x 1 struct array is the struct
    return value


def _cells(value: Any) -> list[Any]:
    """A MATLAB cell array (or one element of it) as a list, each 1 x 1 wrapper around a struct unwrapped."""
    if isinstance(value, _HDF5):
        return value.cells()
    items = list(value.ravel(order="F")) if isinstance(value, np.ndarray) and value.dtype == object else [value]
    found = []
    for item in items:
        while isinstance(item, np.ndarray) and item.dtype == object and item.size == 1:
            item = item.flat[0]
        found.append(item)
    return found


def _text(value: Any) -> str:
    if isinstance(value, _HDF5):
        return value.text()
    while isinstance(value, np.ndarray) and value.dtype == object and value.size == 1:
        value = value.flat[0]
    if isinstance(value, np.ndarray):
        return "".join(str(v) for v in value.ravel()) if value.dtype.kind in "UO" else str(value)
    return str(value)


def _array(value: Any) -> np.ndarray:
    if isinstance(value, _HDF5):
        return value.array()
    while isinstance(value, np.ndarray) and value.dtype == object and value.size == 1:
        value = value.flat[0]
    return np.asarray(value, dtype=np.float32)


def _layer(layer: Any, index: int, path: Path) -> tuple[FoundLayer | None, bool]:
    """One layer as a :class:`FoundLayer` (None for those without weights that a VGG has anyway), and whether it
    pads (a max-pool padded on its right and bottom rounds sizes up, as Caffe's did)."""
    fields = _fields(layer)
    kind = _text(_get(layer, "type")).lower() if "type" in fields else "?"
    name = _text(_get(layer, "name")) if "name" in fields else f"layer {index + 1}"
    if kind in SKIPPED:
        return None, False
    if kind == "pool":
        method = _text(_get(layer, "method")).lower() if "method" in fields else "max"
        size = _array(_get(layer, "pool")).ravel().tolist() if "pool" in fields else [2, 2]
        if method != "max" or size != [2, 2]:
            raise ValueError(f"{path} is not a VGG: its pool {name} is a {method} pool of {size}, not 2x2 max")
        pads = "pad" in fields and bool(np.any(_array(_get(layer, "pad"))))
        return FoundLayer("pool", name), pads
    if kind in ("lrn", "normalize"):
        return FoundLayer("lrn", name), False
    if kind != "conv":
        raise ValueError(f"{path} is not a VGG: its layer {name} is of type {kind!r}")
    filters, biases = _weights(layer, fields, name, path)
    if filters.ndim == 3:  # one filter: MATLAB dropped its trailing K = 1
        filters = filters[..., None]
    if filters.ndim != 4:
        raise ValueError(f"{path}: layer {name}'s filters are {filters.shape}, not height x width x channels x filters")
    weight = torch.from_numpy(np.ascontiguousarray(filters)).float()
    weight = weight.permute(3, 2, 0, 1).contiguous()  # H x W x C x K -> K x C x H x W (see the module's docstring)
    bias = torch.from_numpy(np.ascontiguousarray(biases)).float().reshape(-1)
    head = name in HEAD_NAMES or (tuple(weight.shape[2:]) not in ((3, 3), (1, 1)))
    return FoundLayer("fc" if head else "conv", name, weight, bias, name), False


def _weights(layer: Any, fields: list[str], name: str, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A convolution's filters and biases, from ``weights`` = {filters, biases} or from the older fields."""
    if "weights" in fields:
        found = _cells(_get(layer, "weights"))
        if len(found) != 2:
            raise ValueError(f"{path}: layer {name}'s weights hold {len(found)} arrays, not filters and biases")
        return _array(found[0]), _array(found[1])
    if "filters" in fields and "biases" in fields:
        return _array(_get(layer, "filters")), _array(_get(layer, "biases"))
    raise ValueError(f"{path}: convolution {name} has no weights (neither weights nor filters and biases)")


def _normalization(meta: Any, path: Path) -> Normalization:
    """RGB 0-255 minus the average image's mean colour, as the file's ``normalization`` says."""
    if "normalization" not in _fields(meta):
        raise ValueError(f"{path} does not say its input's normalisation (no normalization field)")
    norm = _get(meta, "normalization")
    if "averageImage" not in _fields(norm):
        raise ValueError(f"{path}'s normalization has no averageImage")
    average = _array(_get(norm, "averageImage"))
    mean = average.reshape(-1, 3).mean(0) if average.size % 3 == 0 else average.reshape(-1)
    return Normalization(tuple(float(v) for v in mean), (1.0,) * len(mean), "RGB", 255.0, "the file's averageImage")


def _classes(meta: Any, path: Path) -> list[str] | None:
    if "classes" not in _fields(meta):
        return None
    classes = _get(meta, "classes")
    key = "description" if "description" in _fields(classes) else "name" if "name" in _fields(classes) else None
    if key is None:
        return None
    return [_text(c) for c in _cells(_get(classes, key))]


class _HDF5:
    """A MATLAB v7.3 file (HDF5) read like the structs of a v5 one: groups are structs, object references are cell
    arrays, character arrays are uint16 codes; MATLAB stores arrays transposed, so they are read back reversed."""

    def __init__(self, path: Path, node: Any = None, file: Any = None) -> None:
        import h5py

        if node is None:
            try:
                file = h5py.File(str(path), "r")
            except OSError as err:
                raise ValueError(f"cannot read {path} as a MATLAB v7.3 file: truncated or not HDF5 ({err})") from None
            node = file
        self.path, self.node, self.file = path, node, file

    def _wrap(self, node: Any) -> _HDF5:
        return _HDF5(self.path, node, self.file)

    def fields(self) -> list[str]:
        return [k for k in getattr(self.node, "keys", list)() if not k.startswith("#")]

    def get(self, name: str) -> _HDF5:
        return self._wrap(self.node[name])

    def cells(self) -> list[_HDF5]:
        import h5py

        if isinstance(self.node, h5py.Dataset) and self.node.dtype == h5py.ref_dtype:
            return [self._wrap(self.file[ref]) for ref in self.node[()].ravel(order="F")]
        return [self]

    def array(self) -> np.ndarray:
        data = np.asarray(self.node[()], dtype=np.float32)
        return data.transpose(tuple(range(data.ndim))[::-1])  # MATLAB's column-major order back to its indices

    def text(self) -> str:
        return "".join(chr(int(c)) for c in np.asarray(self.node[()]).ravel(order="F"))
