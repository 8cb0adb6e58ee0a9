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
