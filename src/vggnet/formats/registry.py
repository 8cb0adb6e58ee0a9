"""What a file is, decided in one place: every kind of file vggnet reads or runs, one entry each (:data:`FORMATS`),
with its name, its suffixes, how a file of a suffix another entry shares is recognised, the module of this package
that reads it, and one line that ``vggnet convert --help``, ``vggnet info`` and the README's table of formats show.

A reader is a module of this package whose ``read(path)`` (or the function its entry names, ``module:function``)
gives the net it found (:class:`~vggnet.formats.net.ForeignNet`, assembled here into a VGG's state dict) or the
weights themselves (:class:`~vggnet.formats.found.WeightsFile`). A new format is one reader module and one entry.
Entries without a reader are models vggnet exported: they run through an engine and are refused as weights, in a
sentence of their own.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .found import WeightsFile, from_foreign
from .net import ForeignNet


def _vggnet_onnx(path: Path) -> bool:
    """An ONNX file vggnet exported (its metadata says so), or one not there yet (said as a model to run)."""
    from .onnx import exported_by_vggnet

    return not path.is_file() or exported_by_vggnet(path)


@dataclass(frozen=True)
class Format:
    """A kind of file: its name, suffixes and a line saying what it is; the reader (a module of this package, or
    ``module:function``; None: a model to run, not weights), how to recognise it among files of a shared suffix,
    and, for a model to run, the sentence a request to read it as weights gets (``{path}`` in it)."""

    name: str
    suffixes: tuple[str, ...]
    description: str
    reader: str | None
    recognise: Callable[[Path], bool] | None = None
    refusal: str = ""

    @property
    def exported(self) -> bool:
        """A model vggnet exported: run through an engine, never read as weights."""
        return self.reader is None

    def read(self, path: Path) -> WeightsFile:
        """The weights in ``path`` (a file of this format), in torchvision's layout."""
        if self.reader is None:
            raise ValueError(self.refusal.format(path=path))
        module, _, function = self.reader.partition(":")
        found = getattr(importlib.import_module(f".{module}", __package__), function or "read")(path)
        return from_foreign(found, str(path)) if isinstance(found, ForeignNet) else found


# Every kind of file vggnet reads or runs, one entry each; for a shared suffix, the first entry that recognises it.
FORMATS = [
    Format(
        "vggnet ONNX",
        (".onnx",),
        "a model vggnet exported (its metadata says so): run through onnxruntime or OpenVINO, not read as weights",
        None,
        _vggnet_onnx,
        "{path} is an exported ONNX model: it can be evaluated (vggnet eval/predict), not trained",
    ),
    Format(
        "OpenVINO IR",
        (".xml",),
        "a model vggnet exported (vggnet export --openvino): run through OpenVINO, not read as weights",
        None,
        refusal="{path} is an OpenVINO model (an exported network): it can be evaluated (vggnet eval/predict), not "
        "read as weights; give the weights it came from",
    ),
    Format("Caffe", (".caffemodel",), "Caffe: the authors' release (VGG_ILSVRC_16/19_layers), VGG-Face", "caffe"),
    Format(
        "Keras",
        (".h5", ".hdf5", ".keras"),
        "Keras 2 and 3: keras.applications, model.save, .weights.h5, deepface",
        "keras",
    ),
    Format("ONNX", (".onnx",), "ONNX graphs: the ONNX Model Zoo, torch.onnx.export, tf2onnx (read, never run)", "onnx"),
    Format(
        "MatConvNet", (".mat",), "MatConvNet: imagenet-vgg-verydeep-16/19, vgg-face (MATLAB v5 and v7.3)", "matconvnet"
    ),
    Format(
        "PyTorch",
        (".pth", ".pt", ".bin", ".ckpt"),
        "PyTorch: torchvision, timm, jcjohnson's, Caffe-named ports",
        "pytorch",
    ),
    Format(
        "safetensors",
        (".safetensors",),
        "safetensors: vggnet's own files, torchvision's or timm's state dicts",
        "pytorch:read_safetensors",
    ),
]
FALLBACK = "PyTorch"  # a file of any other suffix is tried as PyTorch's (torch.load, weights only)


def weights_formats() -> list[Format]:
    """The formats read as weights (not models to run)."""
    return [f for f in FORMATS if not f.exported]


def suffixes() -> tuple[str, ...]:
    """What a file vggnet knows is called, every format's suffixes."""
    return tuple(dict.fromkeys(s for f in FORMATS for s in f.suffixes))


def by_name(name: str) -> Format:
    return next(f for f in FORMATS if f.name == name)


def identify(path: str | os.PathLike) -> Format:
    """The format of the file at ``path``: the first entry whose suffix it has and that recognises it, else
    PyTorch's."""
    path = Path(str(path))
    suffix = path.suffix.lower()
    for f in FORMATS:
        if suffix in f.suffixes and (f.recognise is None or f.recognise(path)):
            return f
    return by_name(FALLBACK)


def read_weights_file(path: str | os.PathLike) -> WeightsFile:
    """The weights in the file at ``path``, read as its format says (:func:`identify`), in torchvision's layout;
    ``ValueError`` in a sentence for a file that is missing, a model to run, or not what its suffix says."""
    path = Path(path)
    if path.is_dir():
        weights = path / "model.safetensors"  # what a training run's folder holds
        hint = f" (it holds {weights})" if weights.is_file() else ""
        raise ValueError(f"{path} is a folder; give a weights file{hint}")
    if not path.is_file():
        raise ValueError(f"no such weights file: {path}")
    return identify(path).read(path)


def format_lines() -> list[str]:
    """One line per format read as weights: its suffixes and what it is."""
    return [f"  {', '.join(f.suffixes):<24} {f.description}" for f in weights_formats()]


def markdown_table() -> str:
    """The README's table of formats: one row per entry."""
    rows = ["| format | suffixes | what it is |", "|---|---|---|"]
    for f in FORMATS:
        rows.append(f"| {f.name} | {', '.join(f'`{s}`' for s in f.suffixes)} | {f.description} |")
    return "\n".join(rows)
