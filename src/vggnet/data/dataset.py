"""What a dataset is to training (:class:`Dataset`, one interface for every source), the settings that open one
(:class:`DataSettings`), the datasets and normalisations there are, and the deterministic helpers every source
shares: seeds derived from (seed, epoch, position), a balanced subset, a stratified validation split."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import torch

from ..base.normalization import NAMED_NORMALIZATIONS

DATASETS = ("fashion-mnist", "fashion-mnist-scaled", "folder", "synthetic")


NORMALIZATIONS = ("auto", "mean", "meanstd", *NAMED_NORMALIZATIONS)


Batch = tuple[torch.Tensor, torch.Tensor, list[str]]  # images, labels, "path: reason" of each skipped file


class Dataset(Protocol):
    """What training reads: labelled images, in batches already augmented (training) and normalised."""

    name: str
    classes: list[str]
    labels: torch.Tensor
    channels: int
    image_size: int | None  # the side of every image, where all have one

    def __len__(self) -> int: ...

    def batches(
        self, indices: Sequence[int], batch_size: int, *, epoch: int, device: torch.device | str = "cpu", start: int = 0
    ) -> Iterator[Batch]:
        """The images at ``indices``, ``batch_size`` at a time from batch ``start``, on ``device``; epoch seeds
        the augmentation."""
        ...

    def subset(self, count: int) -> Dataset: ...

    def sample_pixels(self, count: int, seed: int) -> torch.Tensor:
        """Pixels M x C in [0, 1] of (up to) ``count`` images: for the mean, std and colour PCA."""
        ...

    def prepared(self, settings: DataSettings, stats: dict[str, Any], train: bool) -> Dataset:
        """This dataset with its normalisation (and, for training, its augmentation) bound."""
        ...


class DataSettings(Protocol):
    """The settings :func:`open_datasets` reads (a :class:`vggnet.training.settings.TrainConfig` has them all)."""

    dataset: str | None
    data: str | None
    subset: int | None
    val_split: int | None
    scale: list[int] | None
    crop: int
    colour_shift: float
    eigen: str
    normalize: str
    workers: int
    seed: int
    decode: str


DEFAULT_SCALE = 256  # the paper's S for image folders when none is given


def scale_range(settings: DataSettings) -> tuple[int, int]:
    """(Smin, Smax) of the training scale; Smin = Smax for a fixed S; the paper's 256 where none is set."""
    scale = settings.scale or [DEFAULT_SCALE]
    return scale[0], scale[-1]


def derive_seed(*parts: int) -> int:
    """A 63-bit seed from several integers (seed, epoch, index ...), stable across processes and runs."""
    digest = hashlib.blake2b(struct.pack(f"<{len(parts)}q", *parts), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def balanced_indices(labels: torch.Tensor, num_classes: int, count: int) -> torch.Tensor:
    """The first ``count`` indices taking each class in turn: a balanced, deterministic subset."""
    if count < 1:
        raise ValueError(f"a subset needs at least one image, got {count}")
    order = torch.argsort(labels, stable=True)
    per_class = torch.bincount(labels[order], minlength=num_classes)
    starts = torch.cumsum(per_class, 0) - per_class
    rank = torch.arange(len(order)) - starts[labels[order]]
    return order[torch.argsort(rank, stable=True)[:count]]


def stratified_split(labels: torch.Tensor, count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(kept, held out): ``count`` indices held out at random (fixed by ``seed``), each class in proportion to its
    share of ``labels`` (largest remainders), the rest kept; both sorted."""
    n = len(labels)
    if not 1 <= count < n:
        raise ValueError(f"a validation split must hold 1 to {n - 1} of the {n} training images, got {count}")
    classes, per_class = torch.unique(labels, return_counts=True)
    exact = per_class.double() * count / n
    quota = exact.floor().long()
    quota[torch.argsort(exact - quota, descending=True)[: count - int(quota.sum())]] += 1
    g = torch.Generator().manual_seed(derive_seed(seed, 0x5917))
    held = []
    for c, q in zip(classes.tolist(), quota.tolist()):
        members = (labels == c).nonzero().squeeze(1)
        held.append(members[torch.randperm(len(members), generator=g)[:q]])
    held_out = torch.cat(held).sort().values
    mask = torch.ones(n, dtype=torch.bool)
    mask[held_out] = False
    return mask.nonzero().squeeze(1), held_out
