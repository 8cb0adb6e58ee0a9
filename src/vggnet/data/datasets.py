"""Datasets: Fashion-MNIST from its idx files, ImageNet-style folders, and a synthetic set for smoke tests.

Every training dataset follows one interface (:class:`Dataset`) and is opened with its normalisation and augmentation
bound (:func:`open_datasets`), so the training loop only asks for batches. A batch is a deterministic function of
(seed, epoch, position), so that a resumed run sees exactly the images, order and augmentation an uninterrupted one
would. Test-time images (evaluation, features) come from :func:`open_source`, one image or batch at a time.
"""

from __future__ import annotations

import copy
import gzip
import hashlib
import math
import os
import struct
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import torch
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from ..base.files import cache_dir
from ..base.normalization import NAMED_NORMALIZATIONS, Normalization
from .images import IMAGE_SUFFIXES, MAX_PIXELS, BadImage, decode_image, decode_on, read_checked, to_gray
from .transforms import (
    IMAGENET_EIGVAL,
    IMAGENET_EIGVEC,
    crop_flip,
    eval_transform,
    normalize,
    paper_train_transform,
    random_shifts,
    rescale_crop,
    rgb_eigen,
    translate_flip,
)

FASHION_MNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
FASHION_MNIST_DEBIAN = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
FASHION_MNIST_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
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
    """The settings :func:`open_datasets` reads (a :class:`vggnet.recipe.TrainConfig` has them all)."""

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


# -- Fashion-MNIST ----------------------------------------------------------------------------------------------------
def read_idx(path: str | os.PathLike) -> torch.Tensor:
    """Read an idx file (gzipped or not) of unsigned bytes into a tensor of its dimensions."""
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise ValueError(f"{path} is truncated or corrupt: {err}") from None
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] != 0x08:
        raise ValueError(f"{path} is not an idx file of unsigned bytes")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    expected = 4 + 4 * ndim + int(torch.tensor(dims).prod())
    if len(raw) != expected:
        raise ValueError(f"{path} is truncated or corrupt: {len(raw)} bytes, expected {expected}")
    return torch.frombuffer(bytearray(raw[4 + 4 * ndim :]), dtype=torch.uint8).reshape(dims)


FASHION_MNIST_NAMES = [n for pair in FASHION_MNIST_FILES.values() for n in pair]


def _has_fashion_mnist(folder: Path) -> bool:
    return all((folder / n).is_file() or (folder / n[:-3]).is_file() for n in FASHION_MNIST_NAMES)


def find_fashion_mnist(root: str | os.PathLike | None = None, download: bool = True) -> Path:
    """The folder holding Fashion-MNIST's four idx files: ``root`` (which must hold them), else Debian's, else
    vggnet's cache, downloaded there from the official source if need be."""
    if root is not None:
        folder = Path(root)
        if not folder.is_dir():
            raise ValueError(f"data folder {folder} does not exist")
        if not _has_fashion_mnist(folder):
            missing = [n for n in FASHION_MNIST_NAMES if not (folder / n).is_file() and not (folder / n[:-3]).is_file()]
            raise ValueError(
                f"{folder} holds neither Fashion-MNIST's idx files (missing {', '.join(missing)}) nor an image "
                f"folder ({folder}/train/<class>/*)"
            )
        return folder
    candidates = [FASHION_MNIST_DEBIAN, cache_dir() / "fashion-mnist"]
    for folder in candidates:
        if _has_fashion_mnist(folder):
            return folder
    if not download:
        raise ValueError(f"Fashion-MNIST idx files not found in {', '.join(map(str, candidates))}")
    return download_fashion_mnist(candidates[-1])


def download_fashion_mnist(folder: str | os.PathLike, base_url: str | None = None) -> Path:
    """Fetch Fashion-MNIST's four idx files from ``base_url`` (the official source by default) into ``folder``."""
    from ..base.download import fetch

    base_url = base_url or FASHION_MNIST_URL
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name in FASHION_MNIST_NAMES:
        if not (folder / name).is_file():
            fetch(
                base_url.rstrip("/") + "/" + name,
                folder / name,
                f"Give --data DIR with the four idx files (or "
                f"put them in {folder}), or on Debian: apt-get install dataset-fashion-mnist",
            )
    return folder


def load_fashion_mnist(root: str | os.PathLike | None = None, split: str = "train") -> InMemoryImages:
    """Fashion-MNIST as 1 x 32 x 32 images (the 28 x 28 originals zero-padded by 2, VGG's smallest input)."""
    if split not in FASHION_MNIST_FILES:
        raise ValueError(f"Fashion-MNIST has splits train and test, not {split!r}")
    folder = find_fashion_mnist(root)
    image_file, label_file = FASHION_MNIST_FILES[split]

    def pick(name: str) -> Path:
        return folder / name if (folder / name).is_file() else folder / name[:-3]

    images = read_idx(pick(image_file))
    labels = read_idx(pick(label_file)).long()
    if images.dim() != 3 or len(images) != len(labels):
        raise ValueError(
            f"Fashion-MNIST files in {folder} disagree: {tuple(images.shape)} images, {len(labels)} labels"
        )
    images = torch.nn.functional.pad(images[:, None], (2, 2, 2, 2))
    return InMemoryImages(
        images, labels, FASHION_MNIST_CLASSES, pad=2, flip=True, name=f"fashion-mnist/{split}", border=2
    )


# Fashion-MNIST with scale: each garment rescaled by a log-uniform factor and placed at random on a larger canvas,
# so that objects come at many sizes and places, as ImageNet's do (the paper's scale findings need that).
SCALED_CANVAS = 64  # the largest jittered S of the miniature (512 of 224 at a 28 crop): no scale upsamples it
SCALED_FACTORS = (0.5, 2.0)  # garments 14-56 pixels on a side
SCALED_SEEDS = {"train": 1, "test": 2}


def load_scaled_fashion_mnist(root: str | os.PathLike | None = None, split: str = "train") -> InMemoryImages:
    """Fashion-MNIST's garments at many sizes and places: each 28 x 28 image rescaled by a factor drawn log-uniformly
    from [0.5, 2] and put at a random place on a black 64 x 64 canvas. Deterministic: the training and test sets each
    have their own seed, so the same files always give the same images."""
    plain = load_fashion_mnist(root, split)
    images = scale_and_place(plain.originals, SCALED_CANVAS, SCALED_FACTORS, SCALED_SEEDS[split])
    return InMemoryImages(images, plain.labels, plain.classes, pad=0, flip=True, name=f"fashion-mnist-scaled/{split}")


def scale_and_place(originals: torch.Tensor, canvas: int, factors: tuple[float, float], seed: int) -> torch.Tensor:
    """uint8 images N x C x h x w, each rescaled by a log-uniform factor in ``factors`` and placed uniformly at random
    on a zero canvas of side ``canvas``."""
    from torchvision.transforms.v2.functional import resize

    g = torch.Generator().manual_seed(seed)
    n, channels, h, _ = originals.shape
    lo, hi = math.log(factors[0]), math.log(factors[1])
    sides = (h * torch.exp(lo + (hi - lo) * torch.rand(n, generator=g))).round().long().clamp(1, canvas)
    tops = (torch.rand(n, generator=g) * (canvas - sides + 1)).long()
    lefts = (torch.rand(n, generator=g) * (canvas - sides + 1)).long()
    out = torch.zeros(n, channels, canvas, canvas, dtype=torch.uint8)
    for side in sides.unique().tolist():
        which = (sides == side).nonzero().squeeze(1)
        scaled = resize(originals[which], [side, side], antialias=True)
        for i, image in zip(which.tolist(), scaled):
            top, left = int(tops[i]), int(lefts[i])
            out[i, :, top : top + side, left : left + side] = image
    return out


# -- In-memory datasets -----------------------------------------------------------------------------------------------
@dataclass
class InMemoryImages:
    """Images held as one uint8 tensor N x C x H x W, augmented a batch at a time on the training device once bound
    for training; normalised by ``mean`` and ``std``.

    Three geometries: by default, shifts by up to ``pad`` pixels and flips of the whole image; with ``crop``, random
    ``crop`` x ``crop`` windows (the centre one at validation); with ``scale`` (Smin, Smax), the paper's: each
    original image (without the stored ``border`` of zeros) rescaled isotropically to S, fixed or jittered per image,
    then a random ``crop`` window and a flip; at validation Q = (Smin + Smax) // 2 and the centre window.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    pad: int = 0
    flip: bool = True
    name: str = "in-memory"
    mean: Sequence[float] | None = None
    std: Sequence[float] | None = None
    augment: bool = False
    seed: int = 0
    crop: int | None = None  # train on random crop x crop windows (validate on the centre one)
    border: int = 0  # zero padding stored around each original image (Fashion-MNIST's 28 x 28 are stored as 32 x 32)
    scale: tuple[int, int] | None = None  # rescale the originals to S in [Smin, Smax] before cropping

    def __post_init__(self) -> None:
        if len(self.images) == 0:
            raise ValueError(f"dataset {self.name} is empty")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    @property
    def image_size(self) -> int:
        return self.crop or self.images.shape[-1]

    @property
    def originals(self) -> torch.Tensor:
        """The images as they were before the stored border was added."""
        b = self.border
        return self.images[..., b : self.images.shape[-2] - b, b : self.images.shape[-1] - b] if b else self.images

    def test_geometry(self) -> tuple[int, int]:
        """(Q, pad): validation's input is the original image rescaled to side Q and padded by ``pad`` zeros, then
        its centre ``crop`` taken. A test image, given as an original, must be brought there the same way."""
        side = min(self.originals.shape[-2:])
        if self.scale:
            return (self.scale[0] + self.scale[1]) // 2, 0
        stored = min(self.images.shape[-2:])
        crop = self.crop or stored
        # the least padding whose centre crop is still validation's window: none for crops of the original
        return side, max(0, self.border - (stored - crop) // 2)

    def subset(self, count: int) -> InMemoryImages:
        return self.select(balanced_indices(self.labels, len(self.classes), count))

    def select(self, indices: torch.Tensor, name: str | None = None) -> InMemoryImages:
        """The images at ``indices``, as a dataset of their own."""
        return replace(self, images=self.images[indices], labels=self.labels[indices], name=name or self.name)

    def sample_pixels(self, count: int = 0, seed: int = 0) -> torch.Tensor:
        """Every pixel of the original images (in memory, so the statistics are exact; the stored border is not
        part of them)."""
        return self.originals.float().div_(255).transpose(0, 1).reshape(self.channels, -1).T

    def statistics(self) -> tuple[list[float], list[float]]:
        """Per-channel mean and standard deviation of the pixels, in [0, 1]."""
        x = self.sample_pixels()
        return x.mean(0).tolist(), x.std(0).tolist()

    def bind(self, *, mean: Sequence[float], std: Sequence[float], augment: bool, seed: int = 0) -> InMemoryImages:
        return replace(self, mean=list(mean), std=list(std), augment=augment, seed=seed)

    def prepared(self, settings: DataSettings, stats: dict[str, Any], train: bool) -> InMemoryImages:
        """Normalised; for training, shifted and flipped. A ``crop`` smaller than the images (28 of Fashion-MNIST's
        padded 32) trains on random windows of that side, the paper's random crop, and validates on the centre one.
        A ``scale`` rescales the original images to S first (the paper's S, fixed or jittered)."""
        bound = self.bind(mean=stats["mean"], std=stats["std"], augment=train, seed=settings.seed)
        if settings.scale is not None:
            lo, hi = scale_range(settings)
            if lo < settings.crop:
                raise ValueError(f"training scale S must be at least the crop size {settings.crop}, got S={lo}")
            return replace(bound, crop=settings.crop, scale=(lo, hi))
        side = min(self.images.shape[-2:])
        return replace(bound, crop=settings.crop) if settings.crop < side else bound

    def batches(
        self, indices: Sequence[int], batch_size: int, *, epoch: int, device: torch.device | str = "cpu", start: int = 0
    ) -> Iterator[Batch]:
        device = torch.device(device)
        if self.scale:
            yield from self._rescaled_batches(indices, batch_size, epoch, device, start)
            return
        images = self.images.to(device, non_blocking=True)
        labels = self.labels.to(device, non_blocking=True)
        index = torch.as_tensor(list(indices), dtype=torch.long, device=device)
        m, s = self._mean_std(device)
        room = (min(self.images.shape[-2:]) - self.crop) if self.crop else 2 * self.pad
        if self.augment:  # drawn for the whole epoch: an image's augmentation depends on its position only
            g = torch.Generator(device=device).manual_seed(derive_seed(self.seed, epoch))
            dy, dx, mirror = random_shifts(len(index), room, self.flip, g)
        for lo in range(start * batch_size, len(index), batch_size):
            take, part = index[lo : lo + batch_size], slice(lo, lo + batch_size)
            x = images[take]
            if self.crop and self.augment:
                x = crop_flip(x, self.crop, dy[part], dx[part], mirror[part])
            elif self.crop:
                centre = torch.full((len(x),), room // 2, device=device)
                x = crop_flip(x, self.crop, centre, centre)
            elif self.augment:
                x = translate_flip(x, self.pad, dy[part], dx[part], mirror[part])
            yield normalize(x, m, s), labels[take], []

    def _mean_std(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        m = torch.tensor(self.mean if self.mean is not None else [0.0] * self.channels, device=device)
        s = torch.tensor(self.std if self.std is not None else [1.0] * self.channels, device=device)
        return m, s

    def _rescaled_batches(
        self, indices: Sequence[int], batch_size: int, epoch: int, device: torch.device, start: int
    ) -> Iterator[Batch]:
        """The paper's geometry: originals rescaled to S (jittered per image), random crop and flip; at validation
        rescaled to Q and centre-cropped, as test images are (:func:`vggnet.inference.rescale`)."""
        from torchvision.transforms.v2.functional import center_crop, resize

        images = self.originals.to(device, non_blocking=True)
        labels = self.labels.to(device, non_blocking=True)
        index = torch.as_tensor(list(indices), dtype=torch.long, device=device)
        m, s = self._mean_std(device)
        (lo, hi), crop = self.scale, self.crop
        if self.augment:  # drawn for the whole epoch: an image's augmentation depends on its position only
            g = torch.Generator(device=device).manual_seed(derive_seed(self.seed, epoch))
            side = torch.randint(lo, hi + 1, (len(index),), generator=g, device=device)
            room = (side - crop + 1).float()
            dy = (torch.rand(len(index), generator=g, device=device) * room).long()
            dx = (torch.rand(len(index), generator=g, device=device) * room).long()
            mirror = torch.rand(len(index), generator=g, device=device) < (0.5 if self.flip else 0.0)
        for lo_i in range(start * batch_size, len(index), batch_size):
            take, part = index[lo_i : lo_i + batch_size], slice(lo_i, lo_i + batch_size)
            if self.augment:
                x = rescale_crop(images[take], side[part], dy[part], dx[part], crop, mirror[part])
            else:
                x = center_crop(resize(images[take], [(lo + hi) // 2], antialias=True), [crop])
            yield normalize(x, m, s), labels[take], []


def synthetic(
    count: int = 512, num_classes: int = 4, size: int = 32, channels: int = 3, seed: int = 0
) -> InMemoryImages:
    """Noise images whose class sets the colour of a bright square: learnable, made in milliseconds."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(count) % num_classes
    images = torch.randint(0, 128, (count, channels, size, size), generator=g, dtype=torch.uint8)
    tones = torch.randint(128, 256, (num_classes, channels), generator=g, dtype=torch.uint8)
    q = size // 4
    images[:, :, q : 3 * q, q : 3 * q] = tones[labels][:, :, None, None]
    return InMemoryImages(images, labels, [f"class{i}" for i in range(num_classes)], pad=2, flip=True, name="synthetic")


# -- ImageNet-style folders -------------------------------------------------------------------------------------------
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


# -- opening what a run trains on -------------------------------------------------------------------------------------
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
    open as (:class:`vggnet.device_data.DeviceImageFolder` decodes and augments on the GPU)."""
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
    """The data's test split, as on disk: Fashion-MNIST's test set, a folder's val/ (the paper's test data)."""
    kind, data = dataset_kind(settings), settings.data
    if kind == "fashion-mnist":
        return load_fashion_mnist(data, "test")
    if kind == "fashion-mnist-scaled":
        return load_scaled_fashion_mnist(data, "test")
    if kind == "synthetic":
        return synthetic(128, seed=settings.seed + 1)
    if not (Path(data) / "val").is_dir():
        raise ValueError(f"{data} has no val/ folder (expected {data}/train/<class>/* and {data}/val/<class>/*)")
    return folder(Path(data) / "val", classes=classes)


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


# -- test-time images -------------------------------------------------------------------------------------------------
@dataclass
class Source:
    """Labelled uint8 images for evaluation, a batch of equal-sized images at a time, plus what was skipped."""

    name: str
    classes: list[str]
    batches: Callable[[], Iterator[tuple[torch.Tensor, torch.Tensor]]]
    size: int
    skipped: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


def open_source(
    data: str | None,
    batch_size: int = 64,
    strict: bool = False,
    limit: int | None = None,
    split: str | None = None,
    channels: int | None = None,
    decode_device: torch.device | str | None = None,
) -> Source:
    """Test-time images: ``fashion-mnist`` (its ``split``, test by default), or an image folder: ``DIR/split`` where
    given, else ``DIR/val`` if it exists, else ``DIR``. ``channels`` converts images (gray to RGB or back);
    ``decode_device`` decodes a folder's JPEGs there (a GPU)."""
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be positive, got {limit}")
    if data in (None, "fashion-mnist"):
        return memory_source(load_fashion_mnist(None, split or "test"), batch_size, limit, channels)
    if data == "fashion-mnist-scaled":
        return memory_source(load_scaled_fashion_mnist(None, split or "test"), batch_size, limit, channels)
    root = Path(data)
    if split is not None and not (root / split).is_dir():
        raise ValueError(f"{root} has no {split}/ folder")
    folder = root / split if split else (root / "val" if (root / "val").is_dir() else root)
    classes, samples = list_images(folder)
    return files_source(str(folder), classes, samples[: limit or len(samples)], strict, channels, decode_device)


def any_images(root: str | os.PathLike) -> tuple[list[str], list[tuple[Path, int]]]:
    """Every image under ``root``, however it is laid out: labelled by their first-level folder when all of them sit
    in one (``root/<class>/...``), else unlabelled (label -1, no classes)."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"image folder {root} does not exist")
    files = sorted(
        p
        for p in root.rglob("*")
        if p.is_file()
        and p.suffix.lower() in IMAGE_SUFFIXES
        and not any(q.startswith(".") for q in p.relative_to(root).parts)
    )
    if not files:
        raise ValueError(f"{root} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    tops = [p.relative_to(root).parts for p in files]
    if all(len(t) > 1 for t in tops):
        classes = sorted({t[0] for t in tops})
        return classes, [(p, classes.index(t[0])) for p, t in zip(files, tops)]
    return [], [(p, -1) for p in files]


def files_source(
    name: str,
    classes: list[str],
    samples: Sequence[tuple[Path, int]],
    strict: bool = False,
    channels: int | None = None,
    decode_device: torch.device | str | None = None,
) -> Source:
    """Test-time images from a list of (file, label), one at a time; unreadable files skipped with a warning (or an
    error with ``strict``)."""
    source = Source(name, classes, None, len(samples))

    def folder_batches() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for path, label in samples:
            try:
                img = (
                    decode_on(*read_checked(path), torch.device(decode_device)) if decode_device else decode_image(path)
                )
            except (BadImage, OSError) as err:
                if strict:
                    raise ValueError(f"unreadable image {path}: {err}") from None
                print(f"warning: skipped unreadable image {path}: {err}", file=sys.stderr)
                source.skipped.append(str(path))
                continue
            source.files.append(str(path))
            yield _channels(img[None], channels), torch.tensor([label])

    source.batches = folder_batches
    return source


def memory_source(
    images: InMemoryImages, batch_size: int = 64, limit: int | None = None, channels: int | None = None
) -> Source:
    """Test-time images from an in-memory set: its original images (Fashion-MNIST's 28 x 28, without the stored
    border), as a user's image files would hold them."""
    n = min(len(images), limit or len(images))
    files = [f"{images.name}/{i}" for i in range(n)]

    def memory_batches() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        originals = images.originals
        for lo in range(0, n, batch_size):
            hi = min(n, lo + batch_size)
            yield _channels(originals[lo:hi], channels), images.labels[lo:hi]

    return Source(images.name, images.classes, memory_batches, n, files=files)


def _channels(images: torch.Tensor, channels: int | None) -> torch.Tensor:
    """uint8 N x C x H x W with ``channels`` channels (gray from RGB by luminance, RGB from gray by copying)."""
    if channels is None or images.shape[1] == channels:
        return images
    if channels == 1:
        return to_gray(images)
    return images.expand(-1, channels, -1, -1).contiguous()
