"""Training checkpoints: written atomically, read without unpickling code."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from .files import atomic_write


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``state`` (tensors, numbers, strings, lists, dicts) to ``path`` via a temporary file, fsync and rename."""
    return atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; pickled code is refused (``weights_only=True``)."""
    path = Path(path)
    if path.is_dir():
        path = path / "last.pt"
    if not path.is_file():
        raise ValueError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"cannot read checkpoint {path}: {err}") from None
    if not isinstance(state, dict) or "model" not in state:
        raise ValueError(f"{path} is not a vggnet training checkpoint")
    return state
