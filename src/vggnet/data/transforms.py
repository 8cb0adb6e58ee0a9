"""The paper's data augmentation (Sect. 3.1) and its test-time rescaling, on torchvision's transforms v2.

Per-image pipelines (ImageNet-style folders) work on uint8 C x H x W tensors; small in-memory datasets
(Fashion-MNIST) use a batched equivalent that runs on the training device.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torchvision.transforms import v2

from ..base.normalization import IMAGENET_MEAN

# AlexNet's eigen-decomposition of ImageNet's RGB covariance, RGB in [0, 1]; columns are the eigenvectors.
IMAGENET_EIGVAL = (0.2175, 0.0188, 0.0045)
IMAGENET_EIGVEC = ((-0.5675, 0.7192, 0.4009), (-0.5808, -0.0045, -0.8140), (-0.5836, -0.6948, 0.4203))


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
