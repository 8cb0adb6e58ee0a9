"""Image folders decoded and augmented on the training device.

At several thousand images a second a GPU out-runs CPU workers that decode JPEGs and resize them. Here the workers
only read files and check them (size, format, truncation); JPEGs are decoded on the device in batches
(``torchvision.io.decode_jpeg(..., device="cuda")``), other formats on the CPU, and the paper's augmentation runs on
the device: isotropic rescaling to S (jittered per image), a random crop, a flip, AlexNet's colour shift, and
mean subtraction. Every image's parameters come from (seed, epoch, index), so runs resume exactly, as on the CPU.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset
from torchvision.transforms.v2.functional import resize

from .dataset import Batch, DataSettings, derive_seed, scale_range
from .folders import ImageFolder
from .images import BadImage, decode_on, quiet_decoder_warnings, read_checked

DECODERS = ("auto", "cpu", "gpu")


def decodes_on_device(choice: str, device: torch.device) -> bool:
    """Whether ``--decode`` (``auto``: where there is a GPU) puts decoding and augmentation on ``device``."""
    if choice not in DECODERS:
        raise ValueError(f"unknown --decode {choice!r}; expected one of {', '.join(DECODERS)}")
    if choice == "gpu" and device.type != "cuda":
        raise ValueError("--decode gpu needs a CUDA device (--device cuda)")
    return choice == "gpu" or (choice == "auto" and device.type == "cuda")


@dataclass(frozen=True)
class Augmentation:
    """The paper's per-image augmentation as numbers: rescale to S in [lo, hi], ``crop``, flip, colour shift ``sigma``
    along ``eigvec`` scaled by ``eigval``, then (x - mean) / std. ``train=False``: Q = (lo + hi) // 2, centre crop."""

    scale: tuple[int, int]
    crop: int
    colour_shift: float
    eigval: tuple[float, ...]
    eigvec: tuple[tuple[float, ...], ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    train: bool

    def draw(self, seed: int, epoch: int, index: int) -> tuple[int, float, float, bool, torch.Tensor]:
        """Image ``index``'s side S, crop position (fractions of the free room), mirror flag and colour shift."""
        lo, hi = self.scale
        if not self.train:
            return (lo + hi) // 2, 0.5, 0.5, False, torch.zeros(3)
        g = torch.Generator().manual_seed(derive_seed(seed, epoch, index))
        side = int(torch.randint(lo, hi + 1, (1,), generator=g))
        top, left, flip = torch.rand(3, generator=g).tolist()
        alpha = torch.randn(3, generator=g) * self.colour_shift
        return side, top, left, flip < 0.5, alpha

    def apply(self, images: list[torch.Tensor], params: list[tuple]) -> torch.Tensor:
        """uint8 images (C x H x W, any sizes, on one device) to the float batch N x C x crop x crop."""
        out = []
        for img, (side, top, left, flip, _) in zip(images, params):
            img = resize(img, [side], antialias=True)
            h, w = img.shape[-2:]
            if min(h, w) < self.crop:
                raise ValueError(f"S={side} leaves a {h}x{w} image smaller than the {self.crop} crop")
            t, u = round(top * (h - self.crop)), round(left * (w - self.crop))
            img = img[:, t : t + self.crop, u : u + self.crop]
            out.append(img.flip(-1) if flip else img)
        x = torch.stack(out).float().div_(255)
        if self.train and self.colour_shift > 0 and x.shape[1] == 3:
            alpha = torch.stack([p[4] for p in params]).to(x.device)
            shift = (alpha * torch.tensor(self.eigval, device=x.device)) @ torch.tensor(self.eigvec, device=x.device).T
            x += shift[:, :, None, None]
        m = torch.tensor(self.mean, device=x.device).view(1, -1, 1, 1)
        s = torch.tensor(self.std, device=x.device).view(1, -1, 1, 1)
        return (x - m) / s


class DeviceImageFolder(ImageFolder):
    """An :class:`~vggnet.data.ImageFolder` whose images are decoded and augmented on the training device."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.augmentation: Augmentation | None = None

    def prepared(self, settings: DataSettings, stats: dict[str, Any], train: bool) -> DeviceImageFolder:
        bound = super().prepared(settings, stats, train)  # checks S against the crop, as on the CPU
        lo, hi = scale_range(settings)
        bound.augmentation = Augmentation(
            (lo, hi),
            settings.crop,
            settings.colour_shift,
            tuple(stats["eigval"]),
            tuple(tuple(v) for v in stats["eigvec"]),
            tuple(stats["mean"]),
            tuple(stats["std"]),
            train,
        )
        return bound

    def batches(
        self, indices: Sequence[int], batch_size: int, *, epoch: int, device: torch.device | str = "cpu", start: int = 0
    ) -> Iterator[Batch]:
        if self.augmentation is None:
            raise ValueError(f"{self.name} has no augmentation bound; open it with open_datasets")
        device = torch.device(device)
        order = list(indices)[start * batch_size :]
        loader = DataLoader(
            _Files(self),
            batch_size=batch_size,
            sampler=order,
            num_workers=self.workers,
            collate_fn=list,
            prefetch_factor=4 if self.workers else None,
        )
        for items in loader:
            images, labels, params, bad = [], [], [], []
            for (index, _, _, label, error), img in zip(items, decode_batch(items, device)):
                if error is None and isinstance(img, str):
                    error = img
                if error is not None:
                    bad.append(f"{self.samples[index][0]}: {error}")
                    continue
                images.append(img)
                labels.append(label)
                params.append(self.augmentation.draw(self.seed, epoch, index))
            if not images:
                yield torch.empty(0, device=device), torch.empty(0, dtype=torch.long, device=device), bad
                continue
            yield self.augmentation.apply(images, params), torch.tensor(labels, device=device), bad


class _Files(TorchDataset):
    """Raw bytes of image i with its format, checked but not decoded (in a DataLoader worker)."""

    def __init__(self, folder: ImageFolder) -> None:
        self.folder = folder

    def __len__(self) -> int:
        return len(self.folder)

    def __getitem__(self, i: int):
        path, label = self.folder.samples[i]
        try:
            data, fmt = read_checked(path, self.folder.max_pixels)
        except (BadImage, OSError) as err:
            return i, None, None, label, str(err)
        return i, data, fmt, label, None


def decode_batch(items: list[tuple], device: torch.device) -> list[torch.Tensor | str | None]:
    """Decode the good items' bytes: JPEGs on ``device`` in one batched call (each alone if the batch fails, to name
    the bad one), other formats on the CPU, moved to ``device``. An error message in place of a tensor for bad ones."""
    from torchvision.io import ImageReadMode, decode_jpeg

    out: list[torch.Tensor | str | None] = [None] * len(items)
    jpegs = [k for k, (_, _, fmt, _, error) in enumerate(items) if error is None and fmt == "JPEG"]
    try:
        raw = [torch.frombuffer(bytearray(items[k][1]), dtype=torch.uint8) for k in jpegs]
        with quiet_decoder_warnings():
            for k, img in zip(jpegs, decode_jpeg(raw, mode=ImageReadMode.RGB, device=device) if raw else []):
                out[k] = img
        singles = [k for k, (_, _, fmt, _, error) in enumerate(items) if error is None and fmt != "JPEG"]
    except (RuntimeError, Warning, ValueError):
        singles = [k for k, (_, _, _, _, error) in enumerate(items) if error is None]
    for k in singles:
        _, data, fmt, _, _ = items[k]
        try:
            out[k] = decode_on(data, fmt, device)
        except BadImage as err:
            out[k] = str(err)
    return out
