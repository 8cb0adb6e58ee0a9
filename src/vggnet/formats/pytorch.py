"""PyTorch's own files, read without unpickling code: ``torch.save`` files (``.pth``, ``.pt``, ``.bin``, ``.ckpt``:
state dicts of torchvision's or timm's layout, the classic ports of :mod:`vggnet.formats.ports`, vggnet's training
checkpoints) through ``torch.load(weights_only=True)``, and ``.safetensors`` files (vggnet's own, with their
metadata, or anyone's state dict) through safetensors."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

from ..base.files import load_torch
from .found import WeightsFile, convert, decode_metadata, from_foreign, from_state
from .ports import recognise


def read(path: Path) -> WeightsFile:
    """The weights of a ``torch.save`` file: a vggnet training checkpoint, a state dict (alone or under ``model``,
    ``state_dict`` or ``model_state_dict``), a classic port recognised by its keys."""
    try:
        obj = load_torch(path, "PyTorch weights file")
    except ValueError as err:
        raise ValueError(f"cannot read weights from {path}: {err}") from None
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


def read_safetensors(path: Path) -> WeightsFile:
    """The weights of a ``.safetensors`` file, with what vggnet's metadata says of them."""
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise ValueError(f"cannot read weights from {path}: truncated or not a safetensors file ({err})") from None
    return from_state(state, str(path), read_metadata(path))


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata ``save_weights`` stored, decoded (empty for files of other origins)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return decode_metadata(f.metadata() or {})
    except (SafetensorError, OSError) as err:
        raise ValueError(f"cannot read weights from {path}: truncated or not a safetensors file ({err})") from None


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
    found = from_state(checkpoint["model"], source, meta)
    found.format = "vggnet training checkpoint"
    return found
