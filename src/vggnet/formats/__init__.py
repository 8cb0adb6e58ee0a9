"""Files of every origin, read without the frameworks that wrote them, and what a file is, decided in one place.

``registry`` lists every kind of file vggnet reads or runs, one entry each (:data:`FORMATS`: name, suffixes, how to
recognise it, its reader, one line for the help and the README), and reads a file as its entry says. The readers:
``caffe`` the authors' ``.caffemodel`` files (protobuf, messages made from Caffe's field numbers), ``keras`` Keras's
``.h5``, ``.weights.h5`` and ``.keras`` files (h5py, and a zip of JSON and HDF5), ``onnx`` VGGs in ONNX graphs
(``onnx``, never run), ``matconvnet`` MatConvNet's ``.mat`` files (scipy, h5py), ``pytorch`` PyTorch's own files
(``torch.load(weights_only=True)``, safetensors) and, through it, ``ports`` the state dicts of the classic PyTorch
ports. A foreign reader hands over a :class:`~vggnet.formats.net.ForeignNet` (layers in PyTorch's layout and the
input the weights expect), and ``net.assemble`` makes it a configuration and a state dict in torchvision's layout;
``found`` holds what a file was found to hold (:class:`WeightsFile`). Nothing here executes code from a file: no
pickle, no Keras, no Caffe.

This package imports vggnet's base alone (``configs``, ``normalization``, ``shape``, ``files``, ``extras``); the
network's ``weights`` reads every file through it.
"""

from __future__ import annotations

from .found import WeightsFile
from .net import Assembled, ForeignNet, FoundLayer, Mapped, assemble
from .registry import (
    FORMATS,
    Format,
    format_lines,
    identify,
    markdown_table,
    read_weights_file,
    suffixes,
    weights_formats,
)

__all__ = [
    "Assembled",
    "ForeignNet",
    "FoundLayer",
    "Mapped",
    "assemble",
    "WeightsFile",
    "FORMATS",
    "Format",
    "format_lines",
    "identify",
    "markdown_table",
    "read_weights_file",
    "suffixes",
    "weights_formats",
]
