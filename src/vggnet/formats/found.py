"""What a file was found to hold, whatever its format: a state dict in torchvision's layout and what the file says
about the network it belongs to (:class:`WeightsFile`); made from another framework's net (:func:`from_foreign`) or
from a state dict and the metadata vggnet stores beside it (:func:`from_state`)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import torch

from ..base.normalization import Normalization
from ..base.shape import shape_of
from .net import ForeignNet, Mapped, assemble


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


def from_foreign(net: ForeignNet, source: str) -> WeightsFile:
    """A :class:`WeightsFile` of another framework's VGG: its configuration, classes and normalisation as the file
    says or implies, and every layer mapped (:func:`vggnet.formats.net.assemble`)."""
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


def from_state(state: dict[str, torch.Tensor], source: str, meta: dict[str, Any]) -> WeightsFile:
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


def decode_metadata(meta: dict[str, str]) -> dict[str, Any]:
    """Metadata strings back to values (JSON where they are JSON)."""
    out: dict[str, Any] = {}
    for key, value in meta.items():
        try:
            out[key] = json.loads(value)
        except (json.JSONDecodeError, TypeError):
            out[key] = value
    return out
