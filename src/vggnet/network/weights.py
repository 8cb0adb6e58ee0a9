"""Reading and writing weights: local files, URLs, torchvision's official weights, timm's layout, and the VGG files
of other frameworks (the authors' Caffe models, Keras's files, the classic PyTorch ports: :mod:`vggnet.formats`).

Nothing here unpickles arbitrary objects: ``.safetensors`` is read with safetensors, ``.pth``/``.pt`` with
``torch.load(weights_only=True)``, ``.caffemodel`` as protobuf, ``.h5``/``.keras`` with h5py. A file says what it
can about itself (architecture, classes, input normalisation, crop), and :func:`read_weights` gathers that into one
:class:`WeightsFile`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from torch import nn

from ..base.files import load_torch, save_safetensors
from ..base.normalization import IMAGENET_MEAN, IMAGENET_STD, NAMED_NORMALIZATIONS, Normalization
from ..base.shape import shape_of
from ..formats import FORMATS, ForeignNet, Mapped, assemble, read_foreign
from ..formats.onnx import not_a_vgg
from ..formats.ports import recognise

OFFICIAL = ("torchvision", "imagenet", "default")
# What a file of weights is called: every format's (formats.FORMATS), and OpenVINO's .xml, which is refused as
# weights in a sentence rather than read as an architecture's name.
FILE_SUFFIXES = (*(suffix for f in FORMATS for suffix in f.suffixes), ".xml")


@dataclass
class WeightsFile:
    """A state dict in torchvision's layout, with what its file says about the model it belongs to."""

    state: dict[str, torch.Tensor]
    source: str
    config: dict[str, Any] | None = None  # VGG.to_config() of the model, where the file records it
    classes: list[str] | None = None
    normalization: Normalization | None = None
    crop: int | None = None
    scale: int | None = None  # the test scale Q the model was validated at
    pad: int = 0  # zeros added around an image rescaled to Q before the crop (see vggnet.inference.loading.Loaded)
    meta: dict[str, Any] = field(default_factory=dict)
    format: str = "PyTorch state dict"  # what kind of file it was
    mapping: list[Mapped] = field(default_factory=list)  # for other frameworks' files: every layer, where it went
    notes: list[str] = field(default_factory=list)  # what was assumed or left out in reading it

    @property
    def trunk_only(self) -> bool:
        """The file holds the convolutional trunk and no classifier (Keras's ``include_top=False``)."""
        return not any(k.startswith("classifier.") for k in self.state)


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


def _torch_load(path: Path) -> Any:
    try:
        return load_torch(path, "PyTorch weights file")
    except ValueError as err:
        raise ValueError(f"cannot read weights from {path}: {err}") from None


def read_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state dict from a ``.safetensors`` or ``.pth``/``.pt`` file, or from a vggnet training checkpoint."""
    return _read_path(Path(path)).state


def _read_path(path: Path) -> WeightsFile:
    if not path.is_file():
        raise ValueError(f"no such weights file: {path}")
    if path.suffix == ".xml":
        raise ValueError(
            f"{path} is an OpenVINO model (an exported network): it can be evaluated (vggnet eval/predict), not read "
            "as weights; give the weights it came from"
        )
    foreign = read_foreign(path)
    if foreign is not None:
        try:
            return from_foreign(foreign, str(path))
        except ValueError as err:
            raise ValueError(not_a_vgg(path, err) if path.suffix == ".onnx" else str(err)) from None
    if path.suffix == ".safetensors":
        try:
            state = load_file(str(path))
        except (SafetensorError, OSError) as err:
            raise ValueError(f"cannot read weights from {path}: truncated or not a safetensors file ({err})") from None
        return describe(state, str(path), read_metadata(path))
    obj = _torch_load(path)
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict) and isinstance(obj.get("stats"), dict):
        return _from_checkpoint(obj, str(path))  # a vggnet training checkpoint
    for key in ("model", "state_dict", "model_state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path} does not hold a state dict of tensors")
    port = recognise(obj, str(path))
    return from_foreign(port, str(path)) if port is not None else WeightsFile(convert(obj), str(path))


def from_foreign(net: ForeignNet, source: str) -> WeightsFile:
    """A :class:`WeightsFile` of another framework's VGG: its configuration, classes and normalisation as the file
    says or implies, and every layer mapped."""
    built = assemble(net, source)
    return WeightsFile(
        built.state,
        source,
        config=built.model_config(net.ceil_mode),
        classes=net.classes,
        normalization=net.normalization,
        crop=net.crop,
        format=net.format,
        mapping=built.rows,
        notes=list(net.notes),
    )


def _from_checkpoint(checkpoint: dict[str, Any], source: str) -> WeightsFile:
    meta = decode_metadata(checkpoint.get("meta", {}))
    meta.update(
        classes=checkpoint.get("classes"),
        mean=checkpoint["stats"].get("mean"),
        std=checkpoint["stats"].get("std"),
        crop=checkpoint.get("crop"),
        scale=checkpoint["stats"].get("scale"),
        pad=checkpoint["stats"].get("pad", 0),
    )
    found = describe(checkpoint["model"], source, meta)
    found.format = "vggnet training checkpoint"
    return found


def describe(state: dict[str, torch.Tensor], source: str, meta: dict[str, Any]) -> WeightsFile:
    """A :class:`WeightsFile` from a state dict and the metadata vggnet stores beside it."""
    return WeightsFile(
        convert(state),
        source,
        config=shape_of(meta),
        classes=meta.get("classes"),
        normalization=Normalization.from_metadata(meta),
        crop=int(meta["crop"]) if meta.get("crop") else None,
        scale=int(meta["scale"]) if meta.get("scale") else None,
        pad=int(meta.get("pad") or 0),
        meta=meta,
        format=_vggnet_format(meta),
    )


def _vggnet_format(meta: dict[str, Any]) -> str:
    if meta.get("format") != "vggnet":
        return "safetensors file"
    origin = meta.get("converted_from")
    return "vggnet weights file" + (f", converted from {origin['format']}" if isinstance(origin, dict) else "")


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
        found = _read_path(download(entry.url))
        found.source = f"torchvision {arch} {entry.name}"
        found.normalization = Normalization(IMAGENET_MEAN, IMAGENET_STD, source="torchvision's ImageNet weights")
        return found
    found = _read_path(download(text) if "://" in text else Path(text))
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


def convert(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Bring a state dict into torchvision's layout: drop DDP/compile prefixes, convert timm's head."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        for prefix in ("module.", "_orig_mod."):
            if key.startswith(prefix):
                key = key[len(prefix) :]
        out[key] = value
    timm = {"pre_logits.fc1": "classifier.0", "pre_logits.fc2": "classifier.3", "head.fc": "classifier.6"}
    for old, new in timm.items():
        for suffix in ("weight", "bias"):
            value = out.pop(f"{old}.{suffix}", None)
            if value is not None:
                # timm keeps fc6/fc7 as convolutions; flattening the kernel gives the same linear map.
                out[f"{new}.{suffix}"] = value.reshape(value.shape[0], -1) if suffix == "weight" else value
    return out


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
    found = rgb_input(read_weights(source, getattr(model, "arch", None), normalize))
    check_compatible(model, found.state, f"weights from {source}", trunk_only=found.trunk_only)
    model.load_state_dict(found.state, strict=not found.trunk_only)
    if found.normalization is not None and hasattr(model, "set_normalization"):
        model.set_normalization(found.normalization.for_channels(model.in_channels))
    return model


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


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata ``save_weights`` stored, decoded (empty for files of other origins)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return decode_metadata(f.metadata() or {})
    except (SafetensorError, OSError) as err:
        raise ValueError(f"cannot read weights from {path}: truncated or not a safetensors file ({err})") from None


def decode_metadata(meta: dict[str, str]) -> dict[str, Any]:
    """Metadata strings back to values (JSON where they are JSON)."""
    out: dict[str, Any] = {}
    for key, value in meta.items():
        try:
            out[key] = json.loads(value)
        except (json.JSONDecodeError, TypeError):
            out[key] = value
    return out
