"""What every engine's exported model shares: the metadata vggnet writes beside the network, and the parts of
:class:`vggnet.VGG`'s interface that evaluation uses, over an engine's own ``run`` (a float32 batch in, class scores
out).

An exported model is the paper's dense classifier: images of any size in, the spatial mean of the class score map
out. Its metadata carries what is needed to feed it: classes, normalisation, crop.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

METADATA = (
    "classes",
    "mean",
    "std",
    "crop",
    "scale",
    "pad",
    "in_channels",
    "num_classes",
    "min_size",
    "source",
    "precision",
)
REQUIRED = ("classes", "mean", "std", "crop", "in_channels", "num_classes")
# What each entry must be: a whole number at least this large, a list of numbers or names, or words.
COUNTS = {"crop": 1, "scale": 1, "pad": 0, "in_channels": 1, "num_classes": 1, "min_size": 1}


def decode_metadata(path: str | os.PathLike, raw: dict[str, str]) -> dict[str, Any]:
    """vggnet's metadata entries of an exported file (each a JSON text), read and checked: one sentence naming the
    file and the entry where one does not read or is not what vggnet wrote."""
    import json

    found = {}
    for key, text in raw.items():
        try:
            found[key] = json.loads(text)
        except ValueError:
            raise ValueError(
                f"{path}: its vggnet metadata entry {key!r} does not read ({text[:40]!r} is not JSON)"
            ) from None
    for key, value in found.items():
        problem = _metadata_problem(key, value)
        if problem:
            raise ValueError(f"{path}: its vggnet metadata entry {key!r} is {str(value)[:40]!r}, not {problem}")
    return found


def _metadata_problem(key: str, value: Any) -> str | None:
    """What is wrong with one metadata entry, or None."""
    if key in COUNTS:
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= COUNTS[key]
        return None if ok else f"a whole number of at least {COUNTS[key]}"
    if key in ("mean", "std"):
        ok = (
            isinstance(value, list)
            and value
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        )
        return (
            None
            if ok and (key == "mean" or all(v > 0 for v in value))
            else f"a list of {'positive ' * (key == 'std')}numbers"
        )
    if key == "classes":
        return (
            None if isinstance(value, list) and value and all(isinstance(v, str) for v in value) else "a list of names"
        )
    return None if isinstance(value, str) else "text"


class ExportedModel:
    """Calling it gives class scores; ``score_map`` gives them as a 1 x 1 map (the engine already averaged the dense
    map). A subclass sets ``engine`` and ``device_note``, calls :meth:`take_metadata` and implements :meth:`run`."""

    batch_norm = False
    engine = ""
    device_note = ""  # why the model runs on the CPU only, named in the error for another device

    def take_metadata(self, path: str | os.PathLike, meta: dict[str, Any]) -> None:
        missing = [k for k in REQUIRED if k not in meta]
        if missing:
            raise ValueError(f"{path} was not exported by vggnet: its metadata lacks {', '.join(missing)}")
        if len(meta["classes"]) != meta["num_classes"] or len(meta["mean"]) != len(meta["std"]):
            raise ValueError(f"{path}: its vggnet metadata disagrees with itself (classes, num_classes, mean, std)")
        self.meta = meta
        self.num_classes = int(meta["num_classes"])
        self.in_channels = int(meta["in_channels"])
        self.min_size = int(meta.get("min_size", 32))
        self.path = str(path)

    def run(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != self.in_channels:
            raise ValueError(f"expected {self.in_channels} input channels, got {x.shape[1]}")
        return torch.from_numpy(self.run(x.detach().float().contiguous().cpu().numpy()))

    def score_map(self, x: torch.Tensor) -> torch.Tensor:
        return self(x)[:, :, None, None]

    def eval(self) -> ExportedModel:
        return self

    def to(self, *args: Any, **kwargs: Any) -> ExportedModel:
        device = args[0] if args else kwargs.get("device")
        if device is not None and torch.device(device).type != "cpu":
            raise ValueError(f"{self.device_note}; use --device cpu")
        return self


def file_size(path: Path) -> int:
    """Bytes of an exported model: the ONNX file, or the IR's .xml and .bin together."""
    return path.stat().st_size + (path.with_suffix(".bin").stat().st_size if path.suffix == ".xml" else 0)
