"""The paper's data augmentation (Sect. 3.1) and its test-time rescaling, on torchvision's transforms v2.

Per-image pipelines (ImageNet-style folders) work on uint8 C x H x W tensors; small in-memory datasets
(Fashion-MNIST) use a batched equivalent that runs on the training device.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torchvision.transforms import v2

# AlexNet's eigen-decomposition of ImageNet's RGB covariance, RGB in [0, 1]; columns are the eigenvectors.
IMAGENET_EIGVAL = (0.2175, 0.0188, 0.0045)
IMAGENET_EIGVEC = ((-0.5675, 0.7192, 0.4009), (-0.5808, -0.0045, -0.8140), (-0.5836, -0.6948, 0.4203))
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Normalization:
    """The input a network's weights expect, from RGB images in [0, 1]: the channels put in ``channel_order``, scaled
    by ``pixel_range``, minus ``mean``, over ``std`` (both in those units and that order).

    torchvision's weights: RGB, range 1, ImageNet's mean and std. Ports of the authors' Caffe models: BGR, range 255,
    mean pixel (103.939, 116.779, 123.68), std 1.
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    channel_order: str = "RGB"
    pixel_range: float = 1.0
    source: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        if len(self.mean) != len(self.std) or not self.mean:
            raise ValueError(f"normalisation needs one mean and one std per channel, got {self.mean} and {self.std}")
        if any(v <= 0 for v in self.std):
            raise ValueError(f"normalisation std must be positive, got {self.std}")
        if self.channel_order not in ("RGB", "BGR"):
            raise ValueError(f"channel order must be RGB or BGR, got {self.channel_order!r}")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Float images N x C x H x W, RGB in [0, 1], as the network takes them."""
        if self.channel_order == "BGR":
            x = x.flip(1)
        if self.pixel_range != 1:
            x = x * self.pixel_range
        m = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        s = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        return (x - m) / s

    def for_channels(self, channels: int) -> Normalization:
        """The same normalisation for images of another channel count (gray from RGB: the channels' average)."""
        if channels == len(self.mean):
            return self
        if channels == 1:
            mean, std = [sum(self.mean) / len(self.mean)], [sum(self.std) / len(self.std)]
        else:
            mean, std = [self.mean[0]] * channels, [self.std[0]] * channels
        return Normalization(mean, std, "RGB", self.pixel_range, self.source)

    def rgb_unit(self) -> tuple[list[float], list[float]]:
        """Mean and std in RGB order on [0, 1] pixels, the units of the training pipeline."""
        order = slice(None, None, -1) if self.channel_order == "BGR" else slice(None)
        return [m / self.pixel_range for m in self.mean[order]], [s / self.pixel_range for s in self.std[order]]

    def metadata(self) -> dict[str, str]:
        return {
            "mean": json.dumps(list(self.mean)),
            "std": json.dumps(list(self.std)),
            "channel_order": self.channel_order,
            "pixel_range": json.dumps(self.pixel_range),
        }

    @classmethod
    def from_metadata(cls, meta: Mapping[str, Any]) -> Normalization | None:
        """The normalisation a weights file records (``mean``, ``std``, optionally ``channel_order`` and
        ``pixel_range``), or None where it records none."""
        if not meta.get("mean") or not meta.get("std"):
            return None
        order = str(meta.get("channel_order") or "RGB").upper()
        return cls(meta["mean"], meta["std"], order, float(meta.get("pixel_range") or 1.0), "the weights file")

    def __str__(self) -> str:
        values = f"mean {[round(v, 4) for v in self.mean]}, std {[round(v, 4) for v in self.std]}"
        scale = (
            f", {self.channel_order} 0-{self.pixel_range:g}"
            if (self.channel_order, self.pixel_range)
            != (
                "RGB",
                1.0,
            )
            else ""
        )
        return f"{values}{scale}" + (f" (from {self.source})" if self.source else "")


CAFFE_MEAN_PIXEL = (103.939, 116.779, 123.68)  # BGR, 0-255: the authors' (their release's gist)
VGGFACE_MEAN_PIXEL = (93.5940, 104.7624, 129.1863)  # BGR, 0-255: the VGG-Face release's
# The inputs the weights people hold expect, by the names of Keras's preprocess_input modes where it has one.
NAMED_NORMALIZATIONS: dict[str, Normalization] = {
    "caffe": Normalization(
        CAFFE_MEAN_PIXEL, (1.0, 1.0, 1.0), "BGR", 255.0, "ImageNet's mean pixel, as the authors' Caffe models"
    ),
    "vggface": Normalization(
        VGGFACE_MEAN_PIXEL, (1.0, 1.0, 1.0), "BGR", 255.0, "VGG-Face's mean pixel, as its Oxford release"
    ),
    "imagenet": Normalization(IMAGENET_MEAN, IMAGENET_STD, source="ImageNet's mean and std, as torchvision's weights"),
    "tf": Normalization((0.5, 0.5, 0.5), (0.5, 0.5, 0.5), source="Keras's 'tf': RGB scaled to [-1, 1]"),
}


class Lighting(nn.Module):
    """AlexNet's colour shift: add ``eigvec @ (alpha * eigval)`` to every pixel, alpha ~ N(0, std), per image.

    Works on float images C x H x W or batches N x C x H x W with 3 channels, RGB in [0, 1].
    """

    def __init__(
        self,
        std: float = 0.1,
        eigval: Sequence[float] = IMAGENET_EIGVAL,
        eigvec: Sequence[Sequence[float]] = IMAGENET_EIGVEC,
    ) -> None:
        super().__init__()
        if std < 0:
            raise ValueError(f"colour shift std must be >= 0, got {std}")
        self.std = std
        self.register_buffer("eigval", torch.tensor(eigval, dtype=torch.float32))
        self.register_buffer("eigvec", torch.tensor(eigvec, dtype=torch.float32))

    def forward(self, img: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.std == 0:
            return img
        batched = img.dim() == 4
        x = img if batched else img[None]
        if x.shape[1] != 3:
            raise ValueError(f"colour shift needs RGB images, got {x.shape[1]} channels")
        alpha = torch.randn(x.shape[0], 3, generator=generator, device=generator.device if generator else None)
        alpha = alpha.to(x.device) * self.std
        shift = (alpha * self.eigval.to(x.device)) @ self.eigvec.to(x.device).T  # N x 3
        x = x + shift[:, :, None, None].to(x.dtype)
        return x if batched else x[0]


def rgb_eigen(pixels: torch.Tensor) -> tuple[tuple[float, ...], tuple[tuple[float, ...], ...]]:
    """Eigenvalues and eigenvectors (columns) of the RGB covariance of ``pixels`` (M x 3, RGB in [0, 1])."""
    cov = torch.cov(pixels.double().T)
    values, vectors = torch.linalg.eigh(cov)
    order = values.argsort(descending=True)
    values, vectors = values[order], vectors[:, order]
    return tuple(values.tolist()), tuple(tuple(row) for row in vectors.tolist())


def paper_train_transform(
    scale: int | tuple[int, int] = 256,
    crop: int = 224,
    colour_shift: float = 0.1,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = (1.0, 1.0, 1.0),
    eigval: Sequence[float] = IMAGENET_EIGVAL,
    eigvec: Sequence[Sequence[float]] = IMAGENET_EIGVEC,
) -> v2.Compose:
    """Isotropic rescale to S (fixed, or jittered uniformly in [Smin, Smax]), random crop, flip, colour shift,
    mean subtraction (and division by ``std``, 1 by default as in the paper)."""
    lo, hi = (scale, scale) if isinstance(scale, int) else scale
    if lo < crop:
        raise ValueError(f"training scale S must be at least the crop size {crop}, got S={lo}")
    if hi < lo:
        raise ValueError(f"scale range must be (Smin, Smax) with Smin <= Smax, got {scale}")
    resize = v2.Resize(lo, antialias=True) if lo == hi else v2.RandomResize(lo, hi + 1, antialias=True)
    return v2.Compose(
        [
            resize,
            v2.RandomCrop(crop),
            v2.RandomHorizontalFlip(),
            v2.ToDtype(torch.float32, scale=True),
            Lighting(colour_shift, eigval, eigvec),
            v2.Normalize(list(mean), list(std)),
        ]
    )


def eval_transform(
    size: int = 256,
    crop: int | None = 224,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = (1.0, 1.0, 1.0),
) -> v2.Compose:
    """Rescale the smallest side to Q=``size``; optionally the centre ``crop`` (torchvision's protocol)."""
    if crop is not None and size < crop:
        raise ValueError(f"test scale Q={size} is smaller than the crop {crop}")
    steps: list[nn.Module] = [v2.Resize(size, antialias=True)]
    if crop is not None:
        steps.append(v2.CenterCrop(crop))
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
    return v2.Compose(steps)


def normalize(
    images: torch.Tensor, mean: Sequence[float] | torch.Tensor, std: Sequence[float] | torch.Tensor
) -> torch.Tensor:
    """uint8 N x C x H x W to float in [0, 1], minus ``mean``, over ``std`` (per channel)."""
    m = torch.as_tensor(mean, dtype=torch.float32, device=images.device).view(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=torch.float32, device=images.device).view(1, -1, 1, 1)
    return (images.float().div_(255) - m) / s


def random_shifts(n: int, room: int, flip: bool, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    """Per-image offsets in [0, room] (of :func:`translate_flip`, room = 2 pad, or of :func:`crop_flip`) and mirror
    flags, drawn together for a whole epoch so that they depend on an image's position, not on how the epoch is
    cut into batches."""
    dy = torch.randint(0, room + 1, (n,), generator=generator, device=generator.device)
    dx = torch.randint(0, room + 1, (n,), generator=generator, device=generator.device)
    mirror = torch.rand(n, generator=generator, device=generator.device) < (0.5 if flip else 0.0)
    return dy, dx, mirror


def translate_flip(
    images: torch.Tensor, pad: int, dy: torch.Tensor, dx: torch.Tensor, mirror: torch.Tensor
) -> torch.Tensor:
    """Batched small-image augmentation: the crop at (dy, dx) of the image zero-padded by ``pad`` (a shift of up to
    ``pad`` pixels each way), mirrored where ``mirror``; N x C x H x W on any device."""
    n, c, h, w = images.shape
    dev = images.device
    if pad > 0:
        padded = nn.functional.pad(images, (pad, pad, pad, pad))
        rows = (dy.to(dev)[:, None] + torch.arange(h, device=dev))[:, None, :, None]
        cols = (dx.to(dev)[:, None] + torch.arange(w, device=dev))[:, None, None, :]
        batch = torch.arange(n, device=dev)[:, None, None, None]
        images = padded[batch, torch.arange(c, device=dev)[None, :, None, None], rows, cols]
    return torch.where(mirror.to(dev)[:, None, None, None], images.flip(3), images)


def crop_flip(
    images: torch.Tensor, size: int, dy: torch.Tensor, dx: torch.Tensor, mirror: torch.Tensor | None = None
) -> torch.Tensor:
    """The ``size`` x ``size`` window at (dy, dx) of each image of a batch N x C x H x W, mirrored where ``mirror``."""
    n, c = images.shape[:2]
    dev = images.device
    rows = (dy.to(dev)[:, None] + torch.arange(size, device=dev))[:, None, :, None]
    cols = (dx.to(dev)[:, None] + torch.arange(size, device=dev))[:, None, None, :]
    batch = torch.arange(n, device=dev)[:, None, None, None]
    out = images[batch, torch.arange(c, device=dev)[None, :, None, None], rows, cols]
    return out if mirror is None else torch.where(mirror.to(dev)[:, None, None, None], out.flip(3), out)


def rescale_crop(
    images: torch.Tensor,
    side: torch.Tensor,
    dy: torch.Tensor,
    dx: torch.Tensor,
    size: int,
    mirror: torch.Tensor | None = None,
) -> torch.Tensor:
    """Batched isotropic rescaling and cropping of square images N x C x H x H: each image rescaled to its own
    ``side`` S (bilinear), then the ``size`` x ``size`` window at (dy, dx) of it, mirrored where ``mirror``. One
    ``grid_sample`` computes only the window's pixels, so jittered S costs no more than a fixed one. Returns float
    images on the 0-255 scale of the input."""
    n, dev = len(images), images.device
    steps = torch.arange(size, device=dev, dtype=torch.float32) + 0.5
    s = side.to(dev, torch.float32)[:, None]
    # pixel centres of the window in the rescaled image, as coordinates in [-1, 1] of the original (align_corners
    # False: the same mapping as torchvision's resize)
    ys = 2 * (dy.to(dev)[:, None] + steps) / s - 1
    xs = 2 * (dx.to(dev)[:, None] + steps) / s - 1
    if mirror is not None:
        xs = torch.where(mirror.to(dev)[:, None], xs.flip(1), xs)
    grid = torch.stack(torch.broadcast_tensors(xs[:, None, :], ys[:, :, None]), -1)  # N x size x size x (x, y)
    return nn.functional.grid_sample(
        images.float(), grid.view(n, size, size, 2), mode="bilinear", padding_mode="border", align_corners=False
    )
