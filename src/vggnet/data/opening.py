"""Opening what a run trains on: the dataset its settings name, its validation split, the normalisation
statistics and augmentation bound (:func:`open_datasets`), so that the training loop only asks for batches; and
the test split of the same data."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..base.classes import match_classes
from ..base.normalization import NAMED_NORMALIZATIONS, Normalization
from .dataset import DATASETS, NORMALIZATIONS, Dataset, DataSettings, scale_range, stratified_split
from .fashion_mnist import load_fashion_mnist, load_scaled_fashion_mnist
from .folders import ImageFolder
from .memory import InMemoryImages, synthetic
from .transforms import (
    IMAGENET_EIGVAL,
    IMAGENET_EIGVEC,
    rgb_eigen,
)


@dataclass
class OpenedData:
    """The training and validation sets of a run, bound, with the statistics they were bound with."""

    train: Dataset
    val: Dataset
    stats: dict[str, Any]
    crop: int


def open_datasets(
    settings: DataSettings,
    weights_normalization: Normalization | None = None,
    stats: dict[str, Any] | None = None,
    folder: type[ImageFolder] | None = None,
) -> OpenedData:
    """The training and validation sets ``settings`` name, normalised and (training) augmented. ``stats`` (mean,
    std, colour eigen-decomposition) are computed from the training set unless given (a resumed run's);
    ``normalize = "auto"`` takes ``weights_normalization`` where there is one. ``folder``: the class image folders
    open as (:class:`vggnet.data.device.DeviceImageFolder` decodes and augments on the GPU)."""
    train_set, val_set = open_raw(settings, folder or ImageFolder)
    if stats is None:
        stats = data_statistics(train_set, settings, weights_normalization)
    train_set = train_set.prepared(settings, stats, train=True)
    val_set = val_set.prepared(settings, stats, train=False)
    if "scale" not in stats:
        # the single test scale Q, the paper's (Smin + Smax) / 2 for folders (Sect. 3.2); in-memory sets say what
        # brings an original image to their validation's input
        if isinstance(val_set, InMemoryImages):
            stats["scale"], stats["pad"] = val_set.test_geometry()
        else:
            stats["scale"], stats["pad"] = sum(scale_range(settings)) // 2, 0
    return OpenedData(train_set, val_set, stats, train_set.image_size or settings.crop)


def dataset_kind(settings: DataSettings) -> str:
    """The dataset ``settings`` name: ``dataset``, or from ``data`` (a folder with train/, else Fashion-MNIST)."""
    kind, data = settings.dataset, settings.data
    if kind is None:
        kind = "folder" if data and (Path(data) / "train").is_dir() else "fashion-mnist"
    if kind not in DATASETS:
        raise ValueError(f"unknown dataset {kind!r}; expected one of {', '.join(DATASETS)}")
    return kind


def open_raw(settings: DataSettings, folder: type[ImageFolder]) -> tuple[Dataset, Dataset]:
    """The training and validation sets ``settings`` name, as they are on disk (no statistics, no augmentation).
    With ``val_split`` the validation set is that many training images held out (stratified, fixed by the seed),
    and the test set is not opened at all; without it, validation is the data's test split."""
    kind, data = dataset_kind(settings), settings.data
    if kind == "fashion-mnist":
        train_set = load_fashion_mnist(data, "train")
    elif kind == "fashion-mnist-scaled":
        train_set = load_scaled_fashion_mnist(data, "train")
    elif kind == "synthetic":
        train_set = synthetic(512, seed=settings.seed)
    else:
        if not data:
            raise ValueError("--dataset folder needs --data DIR with DIR/train/<class>/* and DIR/val/<class>/*")
        train_set = folder(Path(data) / "train")
    if settings.val_split:
        kept, held = stratified_split(train_set.labels, settings.val_split, settings.seed)
        val_set = train_set.select(held, f"{train_set.name} (held out: {len(held):,})")
        train_set = train_set.select(kept, f"{train_set.name} (less {len(held):,} held out)")
    else:
        val_set = open_test_set(settings, train_set.classes, folder)
    if settings.subset is not None:
        train_set = train_set.subset(settings.subset)
    return train_set, val_set


def open_test_set(settings: DataSettings, classes: Sequence[str], folder: type[ImageFolder] = ImageFolder) -> Dataset:
    """The data's test split, as on disk: Fashion-MNIST's test set, a folder's val/ (the paper's test data), its
    classes matched by name to ``classes`` where given (:mod:`vggnet.base.classes`)."""
    kind, data = dataset_kind(settings), settings.data
    if kind == "fashion-mnist":
        return load_fashion_mnist(data, "test")
    if kind == "fashion-mnist-scaled":
        return load_scaled_fashion_mnist(data, "test")
    if kind == "synthetic":
        return synthetic(128, seed=settings.seed + 1)
    if not (Path(data) / "val").is_dir():
        raise ValueError(f"{data} has no val/ folder (expected {data}/train/<class>/* and {data}/val/<class>/*)")
    images = folder(Path(data) / "val")
    if classes is None:
        return images
    # val/'s classes meet the run's (train/'s) by name: a subset of them, never by position
    match = match_classes(images.classes, list(classes), images.name, str(Path(data) / "train"), remedy=VAL_REMEDY)
    if match.note:
        print(f"note: {match.note}", file=sys.stderr)
    return images.relabelled(classes, match.index)


VAL_REMEDY = "name the class folders of val/ as those of train/"


def data_statistics(
    train_set: Dataset, settings: DataSettings, weights_normalization: Normalization | None = None
) -> dict[str, Any]:
    """Mean and std (as ``settings.normalize`` says), and the colour eigen-decomposition, of the training set."""
    mode = settings.normalize
    if mode not in NORMALIZATIONS:
        raise ValueError(f"unknown normalisation {mode!r}; expected one of {', '.join(NORMALIZATIONS)}")
    pixels = train_set.sample_pixels(500, settings.seed)
    mean, std = pixels.mean(0).tolist(), pixels.std(0).tolist()
    rgb = pixels.shape[1] == 3
    eigval, eigvec = rgb_eigen(pixels) if settings.eigen == "dataset" and rgb else (IMAGENET_EIGVAL, IMAGENET_EIGVEC)
    source = "the training set"
    if mode == "auto" and weights_normalization is not None:
        mean, std = weights_normalization.for_channels(train_set.channels).rgb_unit()
        source = weights_normalization.source or "the weights"
    elif mode in NAMED_NORMALIZATIONS:  # the input of weights that do not say (a Caffe port with torchvision's keys)
        named = NAMED_NORMALIZATIONS[mode]
        mean, std = named.for_channels(train_set.channels).rgb_unit()
        source = named.source
    elif mode in ("mean", "auto"):
        std = [1.0] * len(mean)  # the paper's: subtract the mean RGB value only
    return {
        "mean": list(mean),
        "std": list(std),
        "eigval": list(eigval),
        "eigvec": [list(v) for v in eigvec],
        "normalization": source,
    }
