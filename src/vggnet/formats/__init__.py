"""The VGG files of other frameworks, read without those frameworks.

``caffe`` reads the authors' ``.caffemodel`` files (protobuf, messages made from Caffe's field numbers), ``keras``
Keras's ``.h5``, ``.weights.h5`` and ``.keras`` files (h5py, and a zip of JSON and HDF5), ``onnx`` VGGs in ONNX
graphs (``onnx``, never run), ``matconvnet`` MatConvNet's ``.mat`` files (scipy, h5py), ``ports`` the state dicts
of the classic PyTorch ports; each hands over a :class:`~vggnet.formats.net.ForeignNet` (layers in PyTorch's
layout and the input the weights expect), and ``net.assemble`` makes it a configuration and a state dict in
torchvision's layout. Nothing here executes code from a file: no pickle, no Keras, no Caffe.

This package imports vggnet's base alone (``configs``, ``normalization``, ``extras``); ``weights`` reads every file
through it.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from .net import Assembled, ForeignNet, FoundLayer, Mapped, assemble


class Format(NamedTuple):
    """A kind of file vggnet reads: its suffixes, the module of this package that reads it (None: PyTorch's own
    files, read by :mod:`vggnet.network.weights`) and a line saying what it is."""

    suffixes: tuple[str, ...]
    reader: str | None
    description: str


# Every format vggnet reads, one entry each: ``vggnet convert --help`` lists them from here.
FORMATS = [
    Format((".caffemodel",), "caffe", "Caffe: the authors' release (VGG_ILSVRC_16/19_layers), VGG-Face"),
    Format((".h5", ".hdf5", ".keras"), "keras", "Keras 2 and 3: keras.applications, model.save, .weights.h5, deepface"),
    Format((".onnx",), "onnx", "ONNX graphs: the ONNX Model Zoo, torch.onnx.export, tf2onnx (read, never run)"),
    Format((".mat",), "matconvnet", "MatConvNet: imagenet-vgg-verydeep-16/19, vgg-face (MATLAB v5 and v7.3)"),
    Format((".pth", ".pt", ".bin", ".ckpt"), None, "PyTorch: torchvision, timm, jcjohnson's, Caffe-named ports"),
    Format((".safetensors",), None, "safetensors: vggnet's own files, torchvision's or timm's state dicts"),
]
SUFFIXES = {suffix: f.reader for f in FORMATS if f.reader for suffix in f.suffixes}

__all__ = ["Assembled", "ForeignNet", "FoundLayer", "Mapped", "assemble", "read_foreign", "FORMATS", "SUFFIXES"]


def format_lines() -> list[str]:
    """One line per format vggnet reads: its suffixes and what it is."""
    return [f"  {', '.join(f.suffixes):<24} {f.description}" for f in FORMATS]


def read_foreign(path: Path) -> ForeignNet | None:
    """The net in a Caffe or Keras file, by its suffix; None for other files."""
    kind = SUFFIXES.get(path.suffix.lower())
    if kind == "caffe":
        from .caffe import read

        return read(path)
    if kind == "keras":
        from .keras import read

        return read(path)
    if kind == "onnx":
        from .onnx import read

        return read(path)
    if kind == "matconvnet":
        from .matconvnet import read

        return read(path)
    return None
