"""Datasets held in memory as one uint8 tensor (Fashion-MNIST, its scaled variant, the synthetic set of the tests):
augmented in batches on the training device, each batch a function of (seed, epoch, position)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch

from .dataset import Batch, DataSettings, balanced_indices, derive_seed, scale_range
from .transforms import (
    crop_flip,
    normalize,
    random_shifts,
    rescale_crop,
    translate_flip,
)


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
        rescaled to Q and centre-cropped, as test images are (:func:`vggnet.inference.geometry.rescale`)."""
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
