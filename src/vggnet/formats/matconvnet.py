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

Every array's declared shape is checked against a VGG's and against the bytes the file holds for it before any is
read: scipy allocates what a v5 header declares, and an HDF5 dataset may declare far more than it stores, so v5
files are walked header by header first (compressed variables inflated a piece at a time, nothing kept), and v7.3
datasets checked one by one as they are reached.
"""

from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..base.normalization import Normalization
from .net import CONV_NAME, Declared, ForeignNet, FoundLayer

HEAD_NAMES = ("fc6", "fc7", "fc8")
SKIPPED = {"relu", "softmax", "softmaxloss", "dropout", "loss"}
MAX_CELLS = 1 << 20  # elements of a cell or struct array: layers, class names (21,841 in ImageNet's full set)
MAX_CHARS = 1 << 24  # characters of one char array
ORDER = (
    "filters read as MatConvNet's convolution reads them, height x width x channels x filters (its Caffe importer's "
    "layout); neural-style's reading swaps height and width, transposing every kernel"
)


def read(path: Path) -> ForeignNet:
    """The VGG in a MatConvNet ``.mat`` file, with its RGB 0-255 input minus its average image."""
    declared = Declared(str(path))
    net = _load(path, declared)
    if "net" in _fields(net) and "layers" not in _fields(net):  # vgg-face.mat: the struct in a variable named net
        net = _get(net, "net")
    if "layers" not in _fields(net):
        raise ValueError(f"{path} is a .mat file without a network's layers (it holds {', '.join(_fields(net))})")
    meta = _get(net, "meta") if "meta" in _fields(net) else net
    layers, ceil = [], False
    for i, layer in enumerate(_cells(_get(net, "layers"))):
        found, pads = _layer(layer, i, path, declared)
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


def _load(path: Path, declared: Declared) -> Any:
    """The file's top-level variables as one struct-like object (v5 through scipy, v7.3 through h5py)."""
    with open(path, "rb") as f:
        head = f.read(128)
    if head.startswith(b"\x89HDF") or b"MATLAB 7.3" in head:
        return _HDF5(path, declared)
    from scipy.io import loadmat

    _V5Walk(path, declared).run()
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


def _array(value: Any, dtype: type = np.float32) -> np.ndarray:
    if isinstance(value, _HDF5):
        return value.array(dtype)
    while isinstance(value, np.ndarray) and value.dtype == object and value.size == 1:
        value = value.flat[0]
    return np.asarray(value, dtype=dtype)


def _shape(value: Any) -> tuple[int, ...]:
    """An array's shape in MATLAB's order, before it is read."""
    if isinstance(value, _HDF5):
        return tuple(value.node.shape or ())[::-1]
    while isinstance(value, np.ndarray) and value.dtype == object and value.size == 1:
        value = value.flat[0]
    return tuple(np.shape(value))


def _layer(layer: Any, index: int, path: Path, declared: Declared) -> tuple[FoundLayer | None, bool]:
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
    shape = _shape(filters)
    if len(shape) == 4:  # height x width x channels x filters, checked before an HDF5 dataset is read
        declared.kernel(*shape, f"layer {name}'s filters")
    filters, biases = _array(filters), _array(biases)
    if filters.ndim == 3:  # one filter: MATLAB dropped its trailing K = 1
        filters = filters[..., None]
    if filters.ndim != 4:
        raise ValueError(f"{path}: layer {name}'s filters are {filters.shape}, not height x width x channels x filters")
    weight = torch.from_numpy(np.ascontiguousarray(filters)).float()
    weight = weight.permute(3, 2, 0, 1).contiguous()  # H x W x C x K -> K x C x H x W (see the module's docstring)
    bias = torch.from_numpy(np.ascontiguousarray(biases)).float().reshape(-1)
    head = name in HEAD_NAMES or (tuple(weight.shape[2:]) not in ((3, 3), (1, 1)))
    return FoundLayer("fc" if head else "conv", name, weight, bias, name), False


def _weights(layer: Any, fields: list[str], name: str, path: Path) -> tuple[Any, Any]:
    """A convolution's filters and biases, not yet read, from ``weights`` = {filters, biases} or from the older
    fields."""
    if "weights" in fields:
        found = _cells(_get(layer, "weights"))
        if len(found) != 2:
            raise ValueError(f"{path}: layer {name}'s weights hold {len(found)} arrays, not filters and biases")
        return found[0], found[1]
    if "filters" in fields and "biases" in fields:
        return _get(layer, "filters"), _get(layer, "biases")
    raise ValueError(f"{path}: convolution {name} has no weights (neither weights nor filters and biases)")


def _normalization(meta: Any, path: Path) -> Normalization:
    """RGB 0-255 minus the average image's mean colour, as the file's ``normalization`` says."""
    if "normalization" not in _fields(meta):
        raise ValueError(f"{path} does not say its input's normalisation (no normalization field)")
    norm = _get(meta, "normalization")
    if "averageImage" not in _fields(norm):
        raise ValueError(f"{path}'s normalization has no averageImage")
    average = _array(_get(norm, "averageImage"), np.float64)  # a whole image in the older layout: summed in float64
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
    arrays, character arrays are uint16 codes; MATLAB stores arrays transposed, so they are read back reversed.
    Each dataset's declared shape and storage are checked before it is read (``label``: where it is, as MATLAB
    would name it)."""

    def __init__(self, path: Path, declared: Declared, node: Any = None, file: Any = None, label: str = "") -> None:
        import h5py

        if node is None:
            try:
                file = h5py.File(str(path), "r")
            except OSError as err:
                raise ValueError(f"cannot read {path} as a MATLAB v7.3 file: truncated or not HDF5 ({err})") from None
            node = file
        self.path, self.declared, self.node, self.file, self.label = path, declared, node, file, label

    def _wrap(self, node: Any, label: str) -> _HDF5:
        return _HDF5(self.path, self.declared, node, self.file, label)

    def fields(self) -> list[str]:
        return [k for k in getattr(self.node, "keys", list)() if not k.startswith("#")]

    def get(self, name: str) -> _HDF5:
        return self._wrap(self.node[name], f"{self.label}.{name}".lstrip("."))

    def cells(self) -> list[_HDF5]:
        import h5py

        if isinstance(self.node, h5py.Dataset) and self.node.dtype == h5py.ref_dtype:
            self.declared.items(self.node.shape, MAX_CELLS, "cells", self.label)
            refs = self.node[()].ravel(order="F")
            return [self._wrap(self.file[ref], f"{self.label}{{{i + 1}}}") for i, ref in enumerate(refs)]
        return [self]

    def array(self, dtype: type = np.float32) -> np.ndarray:
        self.declared.hdf5(self.node, self.label or "an array")
        data = np.asarray(self.node[()], dtype=dtype)
        return data.transpose(tuple(range(data.ndim))[::-1])  # MATLAB's column-major order back to its indices

    def text(self) -> str:
        self.declared.items(getattr(self.node, "shape", None) or (), MAX_CHARS, "characters", self.label)
        return "".join(chr(int(c)) for c in np.asarray(self.node[()]).ravel(order="F"))


# -- MATLAB v5 files: every array's header checked before scipy reads it --------------------------------------------
MI_SIZES = {1: 1, 2: 1, 3: 2, 4: 2, 5: 4, 6: 4, 7: 4, 9: 8, 12: 8, 13: 8, 16: 1, 17: 2, 18: 4}  # miINT8 ... miUTF32
MI_MATRIX, MI_COMPRESSED = 14, 15
MX_CELL, MX_STRUCT, MX_OBJECT, MX_CHAR = 1, 2, 3, 4
MX_NUMERIC = range(6, 16)  # mxDOUBLE_CLASS ... mxUINT64_CLASS
MAX_DEPTH = 32  # arrays inside arrays (MatConvNet's: a struct, its layers' cells, their structs, the weights' cells)


class _V5Walk:
    """A MATLAB v5 file's variables walked header by header: each array's shape checked against a VGG's, each
    numeric array's data against the bytes its element holds, nested cells and structs followed; the data skipped
    (a compressed variable inflated a piece at a time and dropped). Files of other versions are left to scipy."""

    def __init__(self, path: Path, declared: Declared) -> None:
        self.path, self.declared, self.order = path, declared, "<"

    def run(self) -> None:
        size = self.path.stat().st_size
        with open(self.path, "rb") as f:
            head = f.read(128)
            if len(head) < 128 or head[126:128] not in (b"IM", b"MI"):
                return
            self.order = "<" if head[126:128] == b"IM" else ">"
            while f.tell() + 8 <= size:
                kind, stored = struct.unpack(self.order + "II", f.read(8))
                start, nbytes = f.tell(), stored
                try:
                    stream = _Inflating(f, stored) if kind == MI_COMPRESSED else _Stored(f, stored)
                    if kind == MI_COMPRESSED:
                        kind, nbytes, _ = self.tag(stream)
                    if kind == MI_MATRIX:
                        self.matrix(stream, nbytes, "a variable", 0)
                except (EOFError, zlib.error):
                    raise ValueError(
                        f"{self.path} ends inside a variable, or one does not inflate: truncated"
                    ) from None
                f.seek(start + stored)

    def tag(self, s: Any) -> tuple[int, int, bytes | None]:
        """An element's type and byte count, and its data where the tag holds it (a small element)."""
        raw = s.read(8)
        first, second = struct.unpack(self.order + "II", raw)
        if first >> 16:
            return first & 0xFFFF, first >> 16, raw[4 : 4 + (first >> 16)]
        return first, second, None

    def element(self, s: Any, most: int) -> bytes:
        """A small element's data (flags, dimensions, a name), read whole; longer than ``most``: refused."""
        _, nbytes, data = self.tag(s)
        if data is not None:
            return data
        if nbytes > most:
            raise ValueError(f"{self.path}: an array's header declares {nbytes:,} bytes where at most {most} belong")
        data = s.read(nbytes)
        s.skip(-nbytes % 8)
        return data

    def matrix(self, s: Any, nbytes: int, what: str, depth: int) -> None:
        if nbytes == 0:
            return  # an empty array
        if depth > MAX_DEPTH:
            raise ValueError(f"{self.path}: {what} nests arrays more than {MAX_DEPTH} deep, where a VGG's file has few")
        end = s.pos + nbytes
        flags = struct.unpack(self.order + "I", self.element(s, 8)[:4])[0]
        raw = self.element(s, 256)
        dims = struct.unpack(f"{self.order}{len(raw) // 4}i", raw[: len(raw) // 4 * 4])
        name = self.element(s, 1 << 16).decode("latin-1")
        what = name if depth == 0 and name else what
        kind, count = flags & 0xFF, math.prod(dims)
        if kind in MX_NUMERIC:
            self.numeric(s, dims, what, bool(flags & 0x800))
        elif kind == MX_CHAR:
            self.declared.items(dims, MAX_CHARS, "characters", what)
        elif kind in (MX_CELL, MX_STRUCT, MX_OBJECT):
            if kind == MX_OBJECT:
                self.element(s, 1 << 16)  # its class's name
            names = [""]
            if kind != MX_CELL:
                length = struct.unpack(self.order + "i", self.element(s, 8)[:4])[0]
                text = self.element(s, 1 << 20)
                names = [
                    text[i : i + length].rstrip(b"\0").decode("latin-1") for i in range(0, len(text), max(length, 1))
                ]
            self.declared.items((count, len(names)), MAX_CELLS, "elements", what)
            for i in range(count):
                for field in names:
                    self.inner(s, end, f"{what}{{{i + 1}}}" if kind == MX_CELL else f"{what}.{field}", depth)
        if s.pos > end:
            raise ValueError(f"{self.path}: {what} holds more than its {nbytes:,} bytes: damaged")
        s.skip(end - s.pos)

    def numeric(self, s: Any, dims: tuple[int, ...], what: str, complex_: bool) -> None:
        count = self.declared.shape(dims, what)
        for _ in range(2 if complex_ else 1):
            kind, nbytes, data = self.tag(s)
            if kind not in MI_SIZES:
                raise ValueError(f"{self.path}: {what}'s data is of no numeric type ({kind})")
            self.declared.held(count, MI_SIZES[kind], nbytes, what)
            if data is None:
                s.skip(nbytes + -nbytes % 8)

    def inner(self, s: Any, end: int, what: str, depth: int) -> None:
        kind, nbytes, _ = self.tag(s)
        if kind != MI_MATRIX or nbytes > end - s.pos:
            raise ValueError(f"{self.path}: {what} is no array that fits in its parent's bytes: damaged")
        self.matrix(s, nbytes, what, depth + 1)


class _Stored:
    """One variable's bytes, as they are in the file."""

    def __init__(self, f: Any, limit: int) -> None:
        self.f, self.limit, self.pos = f, limit, 0

    def read(self, n: int) -> bytes:
        data = self.f.read(n) if self.pos + n <= self.limit else b""
        if len(data) < n:
            raise EOFError
        self.pos += n
        return data

    def skip(self, n: int) -> None:
        if self.pos + n > self.limit:
            raise EOFError
        self.f.seek(n, 1)
        self.pos += n


class _Inflating:
    """One zlib-compressed variable's bytes, inflated a piece at a time: what is skipped is never kept."""

    PIECE = 1 << 20

    def __init__(self, f: Any, limit: int) -> None:
        self.f, self.left, self.pos = f, limit, 0
        self.z, self.buffer, self.at = zlib.decompressobj(), b"", 0  # inflated bytes, and how far they are read

    def _more(self) -> None:
        compressed = self.z.unconsumed_tail
        if not compressed:
            compressed = self.f.read(min(self.PIECE, self.left))
            self.left -= len(compressed)
            if not compressed:
                raise EOFError
        self.buffer, self.at = self.buffer[self.at :] + self.z.decompress(compressed, self.PIECE), 0

    def read(self, n: int) -> bytes:
        while len(self.buffer) - self.at < n:
            self._more()
        data, self.at, self.pos = self.buffer[self.at : self.at + n], self.at + n, self.pos + n
        return data

    def skip(self, n: int) -> None:
        self.pos += n
        while n > len(self.buffer) - self.at:
            n -= len(self.buffer) - self.at
            self.buffer, self.at = b"", 0
            self._more()
        self.at += n
