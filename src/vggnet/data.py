"""Datasets: Fashion-MNIST from its idx files, ImageNet-style folders, and a synthetic set for smoke tests.

Every dataset hands out batches through ``batches(...)``: a deterministic function of (seed, epoch, position), so
that a resumed run sees exactly the images, order and augmentation an uninterrupted one would.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from .transforms import normalize, random_shifts, translate_flip

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
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff", ".ppm", ".pgm"}
MAX_PIXELS = 89_478_485  # Pillow's decompression-bomb limit


Batch = tuple[torch.Tensor, torch.Tensor, list[str]]  # images, labels, "path: reason" of each skipped file


def derive_seed(*parts: int) -> int:
    """A 63-bit seed from several integers (seed, epoch, index ...), stable across processes and runs."""
    digest = hashlib.blake2b(struct.pack(f"<{len(parts)}q", *parts), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


# -- Fashion-MNIST ----------------------------------------------------------------------------------------------------
def read_idx(path: str | os.PathLike) -> torch.Tensor:
    """Read an idx file (gzipped or not) of unsigned bytes into a tensor of its dimensions."""
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] != 0x08:
        raise ValueError(f"{path} is not an idx file of unsigned bytes")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    expected = 4 + 4 * ndim + int(torch.tensor(dims).prod())
    if len(raw) != expected:
        raise ValueError(f"{path} is truncated or corrupt: {len(raw)} bytes, expected {expected}")
    return torch.frombuffer(bytearray(raw[4 + 4 * ndim :]), dtype=torch.uint8).reshape(dims)


def find_fashion_mnist(
    root: str | os.PathLike | None = None, download: bool = True, base_url: str = FASHION_MNIST_URL
) -> Path:
    """The folder holding Fashion-MNIST's four idx files: ``root``, else Debian's, else downloaded into a cache."""
    names = [n for pair in FASHION_MNIST_FILES.values() for n in pair]

    def has_all(folder: Path) -> bool:
        return all((folder / n).is_file() or (folder / n[:-3]).is_file() for n in names)

    candidates = [Path(root)] if root else [FASHION_MNIST_DEBIAN, cache_dir() / "fashion-mnist"]
    for folder in candidates:
        if has_all(folder):
            return folder
    if not download:
        raise ValueError(f"Fashion-MNIST idx files not found in {', '.join(map(str, candidates))}")
    target = candidates[0] if root else candidates[-1]
    download_files(base_url, names, target)
    return target


def cache_dir() -> Path:
    return Path(os.environ.get("VGGNET_CACHE", Path.home() / ".cache" / "vggnet"))


def download_files(base_url: str, names: Sequence[str], folder: Path) -> None:
    from torch.hub import download_url_to_file

    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        if not (folder / name).is_file():
            print(f"downloading {base_url}{name}")
            try:
                download_url_to_file(base_url.rstrip("/") + "/" + name, str(folder / name), progress=False)
            except OSError as err:
                raise ValueError(
                    f"could not download {base_url}{name} ({err}); give --data DIR with the idx "
                    "files, or on Debian: apt-get install dataset-fashion-mnist"
                ) from None


def load_fashion_mnist(root: str | os.PathLike | None = None, split: str = "train") -> InMemoryImages:
    """Fashion-MNIST as 1 x 32 x 32 images (the 28 x 28 originals zero-padded by 2, VGG's smallest input)."""
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
    return InMemoryImages(images, labels, FASHION_MNIST_CLASSES, pad=2, flip=True, name=f"fashion-mnist/{split}")


# -- In-memory datasets -----------------------------------------------------------------------------------------------
@dataclass
class InMemoryImages:
    """Images held as one uint8 tensor N x C x H x W, augmented a batch at a time (shift by ``pad``, flip)."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    pad: int = 0
    flip: bool = True
    name: str = "in-memory"

    def __post_init__(self) -> None:
        if len(self.images) == 0:
            raise ValueError(f"dataset {self.name} is empty")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    def subset(self, count: int) -> InMemoryImages:
        """The first ``count`` images of every class in turn (a balanced, deterministic subset)."""
        order = torch.argsort(self.labels, stable=True)
        per_class = torch.bincount(self.labels[order], minlength=len(self.classes))
        starts = torch.cumsum(per_class, 0) - per_class
        rank = torch.arange(len(order)) - starts[self.labels[order]]
        keep = order[torch.argsort(rank, stable=True)[:count]]
        return InMemoryImages(self.images[keep], self.labels[keep], self.classes, self.pad, self.flip, self.name)

    def statistics(self) -> tuple[list[float], list[float]]:
        """Per-channel mean and standard deviation of the pixels, in [0, 1]."""
        x = self.images.float().div_(255).transpose(0, 1).reshape(self.channels, -1)
        return x.mean(1).tolist(), x.std(1).tolist()

    def batches(
        self,
        indices: Sequence[int],
        batch_size: int,
        *,
        train: bool,
        seed: int,
        epoch: int,
        mean: Sequence[float],
        std: Sequence[float],
        device: torch.device | str = "cpu",
        start: int = 0,
        **_: object,
    ) -> Iterator[Batch]:
        device = torch.device(device)
        images = self.images.to(device, non_blocking=True)
        labels = self.labels.to(device, non_blocking=True)
        index = torch.as_tensor(list(indices), dtype=torch.long, device=device)
        m = torch.tensor(mean, device=device)
        s = torch.tensor(std, device=device)
        if train:
            g = torch.Generator(device=device).manual_seed(derive_seed(seed, epoch))
            dy, dx, mirror = random_shifts(len(index), self.pad, self.flip, g)
        for lo in range(start * batch_size, len(index), batch_size):
            take = index[lo : lo + batch_size]
            x = images[take]
            if train:
                x = translate_flip(
                    x, self.pad, dy[lo : lo + batch_size], dx[lo : lo + batch_size], mirror[lo : lo + batch_size]
                )
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
class BadImage(ValueError):
    pass


def decode_image(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> torch.Tensor:
    """Decode any image file to a uint8 RGB tensor 3 x H x W with torchvision (Pillow for formats it lacks).

    Grayscale, palette, RGBA, CMYK and 16-bit images all become 8-bit RGB. Raises ``BadImage`` for empty,
    truncated, corrupt or oversized files; the size is read from the header before anything is decoded.
    """
    from PIL import Image, UnidentifiedImageError
    from torchvision.io import ImageReadMode
    from torchvision.io import decode_image as tv_decode

    path = Path(path)
    data = path.read_bytes()
    if not data:
        raise BadImage("empty file")
    try:
        with Image.open(path) as im:
            width, height = im.size
            fmt = im.format
    except (UnidentifiedImageError, OSError) as err:
        raise BadImage(f"not an image ({err.__class__.__name__})") from None
    except Image.DecompressionBombError:
        raise BadImage("too large to decode safely") from None
    if width * height > max_pixels:
        raise BadImage(f"{width}x{height} pixels is more than the {max_pixels:,} allowed")
    if fmt == "JPEG" and not data.rstrip(b"\0").endswith(b"\xff\xd9"):
        raise BadImage("truncated JPEG (no end-of-image marker)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # libjpeg's "premature end" and similar become errors,
            # but not torchvision 0.29's notice that its decoders will move to TorchCodec: they still work.
            warnings.simplefilter("ignore", DeprecationWarning)
            img = tv_decode(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)
    except (RuntimeError, Warning, ValueError):
        img = _decode_with_pillow(path)
    if img.dtype == torch.uint16:
        img = (img.to(torch.int32) >> 8).to(torch.uint8)
    elif img.dtype != torch.uint8:
        img = img.to(torch.uint8)
    return img


def _decode_with_pillow(path: Path) -> torch.Tensor:
    from PIL import Image
    from torchvision.transforms.v2.functional import pil_to_tensor

    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("I;16", "I;16B", "I"):
                im = im.point(lambda v: v / 256).convert("L")
            return pil_to_tensor(im.convert("RGB"))
    except (OSError, ValueError, SyntaxError) as err:
        raise BadImage(f"corrupt ({err})") from None


class ImageFolder:
    """``root/<class>/<image>`` with classes in sorted order, like torchvision's ImageFolder, decoded safely."""

    def __init__(
        self, root: str | os.PathLike, classes: Sequence[str] | None = None, max_pixels: int = MAX_PIXELS
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise ValueError(f"image folder {self.root} does not exist")
        found = sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
        self.classes = list(classes) if classes is not None else found
        if not self.classes:
            raise ValueError(f"{self.root} has no class folders (expected {self.root}/<class>/<image>)")
        self.samples: list[tuple[Path, int]] = []
        for label, name in enumerate(self.classes):
            folder = self.root / name
            files = (
                sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
                if folder.is_dir()
                else []
            )
            if not files:
                raise ValueError(f"class folder {folder} holds no images")
            self.samples += [(p, label) for p in files]
        self.labels = torch.tensor([label for _, label in self.samples])
        self.max_pixels = max_pixels
        self.name = str(self.root)
        self.channels = 3

    def __len__(self) -> int:
        return len(self.samples)

    def batches(
        self,
        indices: Sequence[int],
        batch_size: int,
        *,
        train: bool,
        seed: int,
        epoch: int,
        transform,
        device: torch.device | str = "cpu",
        start: int = 0,
        workers: int = 0,
        **_: object,
    ) -> Iterator[Batch]:
        view = _TransformedFolder(self, transform, seed, epoch)
        order = list(indices)[start * batch_size :]
        loader = DataLoader(
            view,
            batch_size=batch_size,
            sampler=order,
            num_workers=workers,
            collate_fn=_collate,
            pin_memory=torch.device(device).type == "cuda",
            persistent_workers=False,
            prefetch_factor=4 if workers else None,
        )
        for x, y, bad in loader:
            yield x.to(device, non_blocking=True), y.to(device, non_blocking=True), bad

    def sample_pixels(self, count: int = 500, side: int = 64, seed: int = 0) -> torch.Tensor:
        """RGB pixels (M x 3, [0, 1]) of up to ``count`` images shrunk to ``side``: for the mean and colour PCA."""
        from torchvision.transforms.v2.functional import resize

        g = torch.Generator().manual_seed(seed)
        pick = torch.randperm(len(self), generator=g)[:count].tolist()
        pixels = []
        for i in pick:
            try:
                img = decode_image(self.samples[i][0], self.max_pixels)
            except BadImage:
                continue
            small = resize(img, [side], antialias=True).float().div(255)
            pixels.append(small.reshape(3, -1).T)
        if not pixels:
            raise ValueError(f"no readable image in {self.root}")
        return torch.cat(pixels)


class _TransformedFolder(Dataset):
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
