"""Fashion-MNIST: its idx files (Debian's package, a folder, or downloaded), and the scaled variant whose garments
come at many sizes and places on 64 x 64 canvases (the reproduction's data with scale)."""

from __future__ import annotations

import gzip
import math
import os
import struct
from pathlib import Path

import torch

from ..base.files import cache_dir
from .memory import InMemoryImages

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
