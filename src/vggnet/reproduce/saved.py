"""What a reproduction's runs saved on each split (``val.safetensors``, ``test.safetensors``: soft-max posteriors per
protocol and Q, the labels, the run's history and settings), read back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .plan import RunSpec, Settings

SPLITS = ("val", "test")  # the held-out training images that decide, the test images that are reported


def read_split(folder: Path, split: str) -> dict[str, Any] | None:
    """A run's saved posteriors on ``split`` (``{"tensors": ..., "meta": ...}``), or None."""
    from safetensors import safe_open

    path = folder / f"{split}.safetensors"
    if not path.is_file():
        return None
    with safe_open(str(path), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
        meta = {k: json.loads(v) for k, v in (f.metadata() or {}).items()}
    return {"tensors": tensors, "meta": meta}


def evaluated(settings: Settings, runs: list[RunSpec], split: str) -> Iterator[tuple[RunSpec, dict[str, Any]]]:
    """Each run evaluated on ``split``, with its posteriors, labels and record."""
    for spec in runs:
        found = read_split(Path(settings.out) / spec.name, split)
        if found is not None:
            yield spec, found
