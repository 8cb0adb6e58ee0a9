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

from .net import Assembled, ForeignNet, FoundLayer, Mapped, assemble

SUFFIXES = {
    ".caffemodel": "caffe",
    ".h5": "keras",
    ".hdf5": "keras",
    ".keras": "keras",
    ".onnx": "onnx",
    ".mat": "matconvnet",
}

__all__ = ["Assembled", "ForeignNet", "FoundLayer", "Mapped", "assemble", "read_foreign", "SUFFIXES"]


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
