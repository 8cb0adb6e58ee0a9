"""Image descriptors from a trained VGG, the paper's way (Appendix B), and the files that hold them.

Each image, and its mirror image, goes through the dense (fully convolutional) net at every test scale Q; the chosen
layer's map is averaged over space, flips and scales, then L2-normalised. ``relu7`` (fc7 after its ReLU) is the
paper's descriptor; any Caffe layer name works (``relu5_3``, ``pool5``, ``fc6`` ...).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open

from ..base.classes import ClassMatching
from ..base.files import save_safetensors
from ..base.progress import track
from ..data.sources import Source
from ..network.model import VGG
from .folding import prepare
from .geometry import rescale
from .loading import Loaded


@dataclass
class FeatureSet:
    """One descriptor per image: ``features`` N x D float32, ``labels`` N int64, with class and file names."""

    features: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    files: list[str]
    meta: dict[str, str]

    def __post_init__(self) -> None:
        n = len(self.features)
        if self.features.dim() != 2 or self.labels.shape != (n,) or len(self.files) != n:
            raise ValueError(
                f"a feature set needs N x D features, N labels and N file names; got {tuple(self.features.shape)}, "
                f"{tuple(self.labels.shape)} and {len(self.files)}"
            )
        if n and (self.labels.min() < 0 or self.labels.max() >= len(self.classes)):
            raise ValueError(f"labels must index the {len(self.classes)} classes")


@torch.inference_mode()
def describe_images(
    net: torch.nn.Module,
    images: torch.Tensor,
    layer: str,
    scales: Sequence[int],
    mean: Sequence[float],
    std: Sequence[float],
    flip: bool = True,
    l2: bool = True,
    pad: int = 0,
) -> torch.Tensor:
    """Descriptors N x D of uint8 images N x C x H x W: ``layer``'s dense map averaged over space, the mirror image
    (``flip``) and the scales Q, then L2-normalised (``l2``). ``pad``: zeros around each rescaled image (the model's
    test geometry, :class:`vggnet.inference.loading.Loaded`)."""
    total = None
    for q in scales:
        x = rescale(images, q, mean, std, pad).contiguous(memory_format=torch.channels_last)
        for view in (x, x.flip(3)) if flip else (x,):
            out = net.extract(view, layer, dense=True)[layer].float()
            pooled = out.mean((2, 3)) if out.dim() == 4 else out
            total = pooled if total is None else total + pooled
    descriptor = total / (len(scales) * (2 if flip else 1))
    return F.normalize(descriptor, dim=1) if l2 else descriptor


def extract_features(
    loaded: Loaded,
    source: Source,
    layer: str = "relu7",
    scales: Sequence[int] | None = None,
    flip: bool = True,
    l2: bool = True,
    device: str | torch.device = "cpu",
) -> FeatureSet:
    """Descriptors of every image of ``source`` (see :func:`describe_images`), at Q = ``scales`` (default: the
    model's single test scale)."""
    if not isinstance(loaded.model, VGG):
        raise ValueError(f"{loaded.source} is an exported model; features need the PyTorch weights it came from")
    loaded.model.layer(layer)  # an unknown name fails here, before any image is read
    if layer in _head(loaded):
        loaded.check_head(f"{layer} features")
    scales = list(scales or [loaded.default_scale])
    smallest = loaded.model.min_input(loaded.model.pool_size if layer in _head(loaded) else 1)
    for q in scales:
        if q + 2 * loaded.pad < smallest:
            raise ValueError(f"Q={q} is too small for {layer}: the dense net needs images of at least {smallest}")
    device = torch.device(device)
    net = prepare(loaded.model, device)
    chunks, labels = [], []
    for images, y in track(source.batches(), source.size, "features", size=lambda b: len(b[1]), estimate=True):
        x = images.to(device)
        chunks.append(describe_images(net, x, layer, scales, loaded.mean, loaded.std, flip, l2, loaded.pad).cpu())
        labels.append(y)
    if not chunks:
        raise ValueError(f"no readable image in {source.name}")
    meta = {"layer": layer, "scales": json.dumps(scales), "flip": json.dumps(flip), "l2": json.dumps(l2)}
    meta.update(weights=loaded.source, data=source.name)
    return FeatureSet(torch.cat(chunks), torch.cat(labels).long(), list(source.classes), list(source.files), meta)


def _head(loaded: Loaded) -> set[str]:
    return set(loaded.model.layer_names[len(loaded.model.features) :])


def save_features(features: FeatureSet, path: str | os.PathLike) -> Path:
    """Write a feature set as safetensors (tensors ``features``, ``labels``; metadata ``classes``, ``files`` as JSON
    lists, and how the features were made), atomically."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"features are written as safetensors; give a path ending in .safetensors, got {path}")
    tensors = {"features": features.features.float().contiguous(), "labels": features.labels.long().contiguous()}
    meta = {**features.meta, "classes": json.dumps(features.classes), "files": json.dumps(features.files)}
    return save_safetensors(tensors, path, meta)


def load_features(path: str | os.PathLike) -> FeatureSet:
    """A feature set written by :func:`save_features`; ``ValueError`` naming what is missing or wrong."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no such feature file: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            keys, meta = set(f.keys()), f.metadata() or {}
            missing = sorted({"features", "labels"} - keys) + sorted({"classes", "files"} - set(meta))
            if missing:
                raise ValueError(f"{path} is not a vggnet feature file: it lacks {', '.join(missing)}")
            features, labels = f.get_tensor("features"), f.get_tensor("labels")
    except (SafetensorError, OSError) as err:
        raise ValueError(f"cannot read features from {path}: truncated or not a safetensors file ({err})") from None
    try:
        classes, files = json.loads(meta.pop("classes")), json.loads(meta.pop("files"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: its classes or files are not JSON lists ({err})") from None
    bad = (~torch.isfinite(features.float())).any(1) if features.dim() == 2 else None
    if bad is not None and bad.any():
        raise ValueError(
            f"{path}: {int(bad.sum())} of {len(features)} feature vectors hold NaN or infinite values (the first at "
            f"row {int(bad.nonzero()[0])}); extract them again (vggnet features)"
        )
    try:
        return FeatureSet(features.float(), labels.long(), classes, files, meta)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None


def in_model_classes(found: FeatureSet, loaded: Loaded, matching: ClassMatching) -> FeatureSet:
    """The same features labelled with the model's classes (all of them), the folder's matched to them as
    ``matching`` says (:mod:`vggnet.base.classes`)."""
    match = matching.match(found.classes, loaded.classes, found.meta.get("data", "the data"), loaded.source)
    if match.note:
        print(f"note: {match.note}", file=sys.stderr)
    labels = torch.tensor(match.index, dtype=torch.long)[found.labels]
    return FeatureSet(found.features, labels, list(loaded.classes), found.files, found.meta)
