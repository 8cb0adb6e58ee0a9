"""ImageNet-style folders (DIR/<class>/*): listed, decoded safely one file at a time in DataLoader workers, and
augmented the paper's way; a bad file is skipped and named, never the end of a run."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from .dataset import Batch, DataSettings, balanced_indices, derive_seed, scale_range
from .images import IMAGE_SUFFIXES, MAX_PIXELS, BadImage, decode_image
from .transforms import (
    eval_transform,
    paper_train_transform,
)


def list_images(root: Path, classes: Sequence[str] | None = None) -> tuple[list[str], list[tuple[Path, int]]]:
    """Class names (sorted sub-folders, unless given) and (file, label) pairs of ``root/<class>/**/<image>``."""
    if not root.is_dir():
        raise ValueError(f"image folder {root} does not exist")
    found = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    classes = list(classes) if classes is not None else found
    if not classes:
        raise ValueError(f"{root} has no class folders (expected {root}/<class>/<image>)")
    samples: list[tuple[Path, int]] = []
    for label, name in enumerate(classes):
        folder = root / name
        files = (
            sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if folder.is_dir()
            else []
        )
        if not files:
            raise ValueError(f"class folder {folder} holds no images")
        samples += [(p, label) for p in files]
    return classes, samples


class ImageFolder:
    """``root/<class>/<image>`` with classes in sorted order, like torchvision's ImageFolder, decoded safely; once
    bound, each image goes through ``transform`` (seeded per image and epoch) in DataLoader workers."""

    channels = 3
    image_size = None

    def __init__(
        self, root: str | os.PathLike, classes: Sequence[str] | None = None, max_pixels: int = MAX_PIXELS
    ) -> None:
        self.root = Path(root)
        self.classes, self.samples = list_images(self.root, classes)
        self.labels = torch.tensor([label for _, label in self.samples])
        self.max_pixels = max_pixels
        self.name = str(self.root)
        self.transform: Callable[[torch.Tensor], torch.Tensor] | None = None
        self.seed = 0
        self.workers = 0

    def __len__(self) -> int:
        return len(self.samples)

    def subset(self, count: int) -> ImageFolder:
        return self.select(balanced_indices(self.labels, len(self.classes), count))

    def select(self, indices: torch.Tensor, name: str | None = None) -> ImageFolder:
        """The images at ``indices``, as a folder of their own."""
        keep = indices.tolist()
        chosen = copy.copy(self)
        chosen.samples = [self.samples[i] for i in keep]
        chosen.labels = self.labels[keep]
        chosen.name = name or self.name
        return chosen

    def relabelled(self, classes: Sequence[str], index: Sequence[int]) -> ImageFolder:
        """The same images labelled with ``classes`` (a run's): an image of class ``k`` here gets ``index[k]``."""
        chosen = copy.copy(self)
        chosen.samples = [(path, index[label]) for path, label in self.samples]
        chosen.labels = torch.tensor([label for _, label in chosen.samples], dtype=torch.long)
        chosen.classes = list(classes)
        return chosen

    def bind(
        self, *, transform: Callable[[torch.Tensor], torch.Tensor], seed: int = 0, workers: int = 0
    ) -> ImageFolder:
        bound = copy.copy(self)
        bound.transform, bound.seed, bound.workers = transform, seed, workers
        return bound

    def prepared(self, settings: DataSettings, stats: dict[str, Any], train: bool) -> ImageFolder:
        lo, hi = scale_range(settings)
        if train:
            transform = paper_train_transform(
                (lo, hi),
                settings.crop,
                settings.colour_shift,
                stats["mean"],
                stats["std"],
                stats["eigval"],
                stats["eigvec"],
            )
        else:  # single-scale validation at Q = S, or (Smin + Smax) / 2 for jittered S, centre crop
            transform = eval_transform((lo + hi) // 2, settings.crop, stats["mean"], stats["std"])
        workers = settings.workers if settings.workers >= 0 else min(8, max(1, (os.cpu_count() or 2) - 1))
        return self.bind(transform=transform, seed=settings.seed, workers=workers)

    def batches(
        self, indices: Sequence[int], batch_size: int, *, epoch: int, device: torch.device | str = "cpu", start: int = 0
    ) -> Iterator[Batch]:
        if self.transform is None:
            raise ValueError(f"{self.name} has no transform bound; open it with open_datasets or bind()")
        view = _TransformedFolder(self, self.transform, self.seed, epoch)
        order = list(indices)[start * batch_size :]
        loader = DataLoader(
            view,
            batch_size=batch_size,
            sampler=order,
            num_workers=self.workers,
            collate_fn=_collate,
            pin_memory=torch.device(device).type == "cuda",
            persistent_workers=False,
            prefetch_factor=4 if self.workers else None,
        )
        for x, y, bad in loader:
            yield x.to(device, non_blocking=True), y.to(device, non_blocking=True), bad

    def sample_pixels(self, count: int = 500, seed: int = 0, side: int = 64) -> torch.Tensor:
        """RGB pixels (M x 3, [0, 1]) of up to ``count`` images shrunk to ``side``: for the mean and colour PCA."""
        from torchvision.transforms.v2.functional import resize

        g = torch.Generator().manual_seed(seed)
        pick = torch.randperm(len(self), generator=g)[:count].tolist()
        pixels = []
        for i in pick:
            try:
                img = decode_image(self.samples[i][0], self.max_pixels)
            except (BadImage, OSError):
                continue
            small = resize(img, [side], antialias=True).float().div(255)
            pixels.append(small.reshape(3, -1).T)
        if not pixels:
            raise ValueError(f"no readable image in {self.root}")
        return torch.cat(pixels)


class _TransformedFolder(TorchDataset):
    """One epoch's view of a folder: the random transform of image i is seeded by (seed, epoch, i)."""

    def __init__(self, folder: ImageFolder, transform, seed: int, epoch: int) -> None:
        self.folder, self.transform, self.seed, self.epoch = folder, transform, seed, epoch

    def __len__(self) -> int:
        return len(self.folder)

    def __getitem__(self, i: int):
        path, label = self.folder.samples[i]
        try:
            img = decode_image(path, self.folder.max_pixels)
        except (BadImage, OSError) as err:
            return None, label, f"{path}: {err}"
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(self.seed, self.epoch, i))
            return self.transform(img), label, None


def _collate(items):
    good = [(x, y) for x, y, bad in items if bad is None]
    bad = [b for _, _, b in items if b is not None]
    if not good:
        return torch.empty(0), torch.empty(0, dtype=torch.long), bad
    return torch.stack([x for x, _ in good]), torch.tensor([y for _, y in good]), bad
