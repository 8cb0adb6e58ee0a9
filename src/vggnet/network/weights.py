"""Weights into a model and out of it: local files, URLs, torchvision's official weights, timm's layout, and the VGG
files of other frameworks (the authors' Caffe models, Keras's files, the classic PyTorch ports), each read as
:mod:`vggnet.formats` says of its kind.

Nothing here unpickles arbitrary objects: ``.safetensors`` is read with safetensors, ``.pth``/``.pt`` with
``torch.load(weights_only=True)``, ``.caffemodel`` as protobuf, ``.h5``/``.keras`` with h5py. A file says what it
can about itself (architecture, classes, input normalisation, crop), and :func:`read_weights` gathers that into one
:class:`~vggnet.formats.found.WeightsFile`; :func:`apply_weights` puts it into a model, for every caller.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import torch
from torch import nn

from ..base.files import save_safetensors
from ..base.normalization import IMAGENET_MEAN, IMAGENET_STD, NAMED_NORMALIZATIONS, Normalization
from ..formats import WeightsFile, read_weights_file

OFFICIAL = ("torchvision", "imagenet", "default")


def official_weights(arch: str | None, tag: str = "DEFAULT"):
    """torchvision's weights enum entry for ``arch`` (``"vgg16_bn"``) and tag (``"DEFAULT"``, ``"IMAGENET1K_V1"``)."""
    import torchvision.models as tvm

    try:
        enum = tvm.get_model_weights(arch or "")
    except (ValueError, KeyError):
        raise ValueError(
            f"torchvision publishes no weights for architecture {arch!r}; official weights exist for "
            "vgg11, vgg13, vgg16, vgg19 and their _bn variants"
        ) from None
    tag = "DEFAULT" if tag.lower() in OFFICIAL else tag.upper()
    try:
        return enum[tag] if tag != "DEFAULT" else enum.DEFAULT
    except KeyError:
        raise ValueError(
            f"unknown weights {tag!r} for {arch}; torchvision has {', '.join(e.name for e in enum)}"
        ) from None


def download(url: str) -> Path:
    """The local path of ``url``, fetched once into torch's hub cache (``file://`` URLs are read in place)."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        path = Path(unquote(parsed.path))
        if not path.is_file():
            raise ValueError(f"no such weights file: {path}")
        return path
    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(parsed.path)
    if not cached.is_file():
        from ..base.download import by_hand, fetch

        fetch(url, cached, by_hand(cached))
    return cached


def read_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state dict from a file of any format vggnet reads (:mod:`vggnet.formats`), or a vggnet training
    checkpoint."""
    return read_weights_file(path).state


def is_official_name(source: str | os.PathLike) -> bool:
    """Whether ``source`` names torchvision's weights ("torchvision", "IMAGENET1K_V1" ...) rather than a file."""
    text = str(source)
    return not Path(text).exists() and (text.lower() in OFFICIAL or text.upper().startswith("IMAGENET"))


def read_weights(
    source: str | os.PathLike,
    arch: str | None = None,
    normalize: str | None = None,
    classes: str | os.PathLike | list[str] | None = None,
) -> WeightsFile:
    """Weights from a file, a URL (fetched once into torch's hub cache), or torchvision's official weights of
    ``arch`` (``"torchvision"``, ``"IMAGENET1K_V1"`` ...), converted to torchvision's layout.

    ``normalize``: the input the weights expect, by name (``caffe``, ``vggface``, ``imagenet``, ``tf``), for files
    that do not say or say wrongly (a Caffe port saved with torchvision's keys). ``classes``: the class names, as a
    list or a text file of one name per line; else the file's own, or a ``names.txt`` beside it with one name per
    class (the VGG-Face release ships one)."""
    found = _read_source(source, arch)
    if normalize not in (None, "auto"):
        if normalize not in NAMED_NORMALIZATIONS:
            raise ValueError(f"unknown normalisation {normalize!r}; expected one of {', '.join(NAMED_NORMALIZATIONS)}")
        norm = NAMED_NORMALIZATIONS[normalize]
        found.normalization = replace(norm, source=f"{norm.source} (given with --normalize {normalize})")
    _name_classes(found, source, classes)
    return found


def _read_source(source: str | os.PathLike, arch: str | None) -> WeightsFile:
    text = str(source)
    if is_official_name(text):
        if arch is None:
            raise ValueError(f"{text!r} names torchvision's weights: say which with --arch (e.g. vgg16)")
        entry = official_weights(arch, text)
        found = read_weights_file(download(entry.url))
        found.source = f"torchvision {arch} {entry.name}"
        found.normalization = Normalization(IMAGENET_MEAN, IMAGENET_STD, source="torchvision's ImageNet weights")
        return found
    found = read_weights_file(download(text) if "://" in text else Path(text))
    found.source = text
    return found


def read_class_names(path: str | os.PathLike) -> list[str]:
    """Class names from a text file, one per line (blank lines skipped)."""
    try:
        names = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"cannot read class names from {path}: {err}") from None
    if not names:
        raise ValueError(f"{path} names no classes (one name per line)")
    return names


def _name_classes(found: WeightsFile, source: str | os.PathLike, classes: Any) -> None:
    head = found.state.get("classifier.6.weight")
    count = None if head is None else head.shape[0]
    if classes is not None:
        names = read_class_names(classes) if isinstance(classes, (str, os.PathLike)) else list(classes)
        if count is not None and len(names) != count:
            raise ValueError(f"{len(names):,} class names given for weights of {count:,} classes ({source})")
        found.classes = names
        return
    beside = Path(str(source)).with_name("names.txt")
    if found.classes is None and found.mapping and count and beside.is_file():
        names = read_class_names(beside)
        if len(names) == count:
            found.classes = names
            found.notes.append(f"class names from {beside}, beside the file")


def rgb_input(found: WeightsFile) -> WeightsFile:
    """The same network taking RGB images on [0, 1]: for Caffe-style ports (BGR, 0-255) conv1_1's input channels are
    reversed and the mean and std rescaled, which computes exactly the same function."""
    norm = found.normalization
    if norm is None or (norm.channel_order, norm.pixel_range) == ("RGB", 1.0):
        return found
    state = dict(found.state)
    if norm.channel_order == "BGR" and "features.0.weight" in state:
        state["features.0.weight"] = state["features.0.weight"].flip(1)
    mean, std = norm.rgb_unit()
    rgb = Normalization(mean, std, source=f"{norm.source}, {norm.channel_order} 0-{norm.pixel_range:g} made RGB 0-1")
    return replace(found, state=state, normalization=rgb)


def check_compatible(
    model: nn.Module, state: dict[str, torch.Tensor], source: str = "weights", trunk_only: bool = False
) -> None:
    """Raise ``ValueError`` naming the missing, unexpected and mis-shaped keys, if any (``trunk_only``: of the
    convolutional trunk)."""
    own = {k: v for k, v in model.state_dict().items() if not (trunk_only and k.startswith("classifier."))}
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    misshaped = [
        f"{k}: expected {tuple(own[k].shape)}, got {tuple(state[k].shape)}"
        for k in own
        if k in state and own[k].shape != state[k].shape
    ]
    if missing or unexpected or misshaped:
        arch = getattr(model, "arch", None) or type(model).__name__
        lines = [f"{source} do not fit {arch} ({getattr(model, 'num_classes', '?')} classes):"]
        for label, items in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)):
            if items:
                shown = items[:20] + ([f"... {len(items) - 20} more"] if len(items) > 20 else [])
                lines.append(f"  {label} ({len(items)}): " + ", ".join(shown))
        raise ValueError("\n".join(lines))


def load_weights(model: nn.Module, source: str | os.PathLike, normalize: str | None = None) -> nn.Module:
    """Load weights into ``model`` in place and return it, ready for RGB images on [0, 1] normalised as
    ``model.normalization`` says (set from the file).

    ``source``: a ``.pth``/``.pt``/``.safetensors`` file (or a vggnet checkpoint), an ``http(s)://`` or ``file://``
    URL, or ``"torchvision"``/``"IMAGENET1K_V1"``/... for torchvision's official weights of ``model.arch``
    (downloaded into torch's hub cache); timm's VGG layout is recognised and converted. The files of other
    frameworks too: the authors' ``.caffemodel``, Keras's ``.h5``/``.keras``, jcjohnson's and Caffe-named ports.
    Weights for BGR 0-255 images (Caffe's) are turned into the same net for RGB [0, 1] images: conv1_1's input
    channels reversed, the mean pixel and the 0-255 scale moved into ``model.normalization``. ``normalize`` names
    the input of weights that do not say (``caffe``, ``vggface``, ``imagenet``, ``tf``). A file holding the trunk
    alone (Keras's ``include_top=False``) loads the trunk and leaves fc6-fc8 as they are. The model's pools round
    as it was built: Caffe's round up (``ceil_mode=True``; :func:`vggnet.load_model` builds the file's own net).
    """
    apply_weights(model, read_weights(source, getattr(model, "arch", None), normalize), str(source))
    return model


def apply_weights(model: nn.Module, found: WeightsFile, source: str | None = None) -> WeightsFile:
    """Put weights already read (:func:`read_weights`) into ``model``, in place: the same net made to take RGB
    images on [0, 1] (:func:`rgb_input`), every key checked against the model's (:func:`check_compatible`; the trunk
    alone where the file holds no head), the state dict loaded, and the input the weights expect made the model's
    normalisation where the file says it. Returns the weights as they went in (RGB). ``source``: the name the
    weights go by in a message (default: their file's)."""
    found = rgb_input(found)
    check_compatible(model, found.state, f"weights from {source or found.source}", trunk_only=found.trunk_only)
    model.load_state_dict(found.state, strict=not found.trunk_only)
    if found.normalization is not None and hasattr(model, "set_normalization"):
        model.set_normalization(found.normalization.for_channels(model.in_channels))
    return found


# -- saving ---------------------------------------------------------------------------------------------------------
def model_metadata(model: nn.Module) -> dict[str, str]:
    """What is needed to rebuild ``model``: stored as safetensors metadata (strings only)."""
    meta = {"format": "vggnet"}
    if hasattr(model, "to_config"):
        meta.update({k: json.dumps(v) for k, v in model.to_config().items()})
    return meta


def save_weights(
    model: nn.Module, path: str | os.PathLike, metadata: dict[str, str] | None = None, trunk_only: bool = False
) -> Path:
    """Write ``model``'s weights as safetensors, atomically, with what is needed to rebuild it as metadata (and the
    input its weights expect, where the model knows it). ``trunk_only``: the convolutional trunk's weights alone
    (a trunk converted from a file without a classifier)."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"save_weights writes safetensors; give a path ending in .safetensors, got {path}")
    state = {
        k: v.detach().contiguous().cpu()
        for k, v in model.state_dict().items()
        if not (trunk_only and k.startswith("classifier."))
    }
    norm = getattr(model, "normalization", None)
    meta = {**model_metadata(model), **(norm.metadata() if norm is not None else {}), **(metadata or {})}
    return save_safetensors(state, path, meta)
