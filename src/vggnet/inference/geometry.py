"""The paper's test-time geometry (Sect. 3.2): images rescaled isotropically to Q (:func:`rescale`), the centre
window, a grid of crops, and the protocols that turn a batch into soft-max posteriors (:func:`posteriors`: centre
crop, dense, multi-crop)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms.v2.functional import resize

from ..data.transforms import normalize

PROTOCOLS = ("center", "dense", "multicrop", "dense+multicrop")
PREDICT_PROTOCOLS = ("center", "dense", "multicrop")  # what a prediction of one image may use


def grid_boxes(height: int, width: int, crop: int, grid: int = 5) -> list[tuple[int, int]]:
    """Top-left corners of a ``grid`` x ``grid`` regular grid of ``crop`` x ``crop`` crops covering the image."""
    if height < crop or width < crop:
        raise ValueError(f"a {height}x{width} image is smaller than the {crop} crop")

    def steps(size: int) -> list[int]:
        return [round(i * (size - crop) / (grid - 1)) for i in range(grid)] if grid > 1 else [(size - crop) // 2]

    return [(top, left) for top in steps(height) for left in steps(width)]


def rescale(images: torch.Tensor, q: int, mean: Sequence[float], std: Sequence[float], pad: int = 0) -> torch.Tensor:
    """uint8 N x C x H x W to float, smallest side ``q`` (isotropic), ``pad`` zero pixels added on every side,
    normalised."""
    if min(images.shape[-2:]) != q:
        images = resize(images, [q], antialias=True)
    if pad:
        images = F.pad(images, (pad, pad, pad, pad))
    return normalize(images, mean, std)


def centre_window(x: torch.Tensor, crop: int) -> torch.Tensor:
    """The centre ``crop`` x ``crop`` window of images ``... x H x W`` (a view)."""
    top, left = (x.shape[-2] - crop) // 2, (x.shape[-1] - crop) // 2
    return x[..., top : top + crop, left : left + crop]


@torch.inference_mode()
def posteriors(net: nn.Module, x: torch.Tensor, method: str, crop: int, chunk: int = 10) -> torch.Tensor:
    """Soft-max posteriors N x K of one protocol for a batch ``x`` already rescaled to Q.

    ``center``: the centre crop. ``dense``: the class score map of the whole image, averaged spatially, and of its
    mirror image; posteriors of the two averaged. ``multicrop``: 5 x 5 crops x 2 flips, posteriors averaged.
    """
    h, w = x.shape[-2:]
    if method == "center":
        return F.softmax(net(centre_window(x, crop)).float(), 1)
    if method == "dense":
        scores = [net.score_map(v).float().mean((2, 3)) for v in (x, x.flip(3))]
        return (F.softmax(scores[0], 1) + F.softmax(scores[1], 1)) / 2
    if method == "multicrop":
        boxes = grid_boxes(h, w, crop)
        total = torch.zeros((), device=x.device)
        for i in range(0, len(boxes), chunk):
            crops = torch.stack([x[..., t : t + crop, left : left + crop] for t, left in boxes[i : i + chunk]], 1)
            crops = crops.flatten(0, 1)  # N*k x C x crop x crop
            crops = torch.cat([crops, crops.flip(3)])
            total = total + F.softmax(net(crops).float(), 1).view(2, x.shape[0], -1, net.num_classes).sum((0, 2))
        return total / (2 * len(boxes))
    raise ValueError(f"unknown protocol {method!r}; expected one of {', '.join(PROTOCOLS)}")


def image_posteriors(net: torch.nn.Module, x: torch.Tensor, crop: int, protocol: str = "center") -> torch.Tensor:
    """Posteriors N x K of images already at a model's test scale (its crop ``crop``). ``center``: the model's own
    validation, the centre crop and its mirror, posteriors averaged (what its training report measured); ``dense``:
    the paper's fully convolutional net over the whole image and its mirror; ``multicrop``: 5 x 5 crops x 2 flips."""
    if protocol not in PREDICT_PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {', '.join(PREDICT_PROTOCOLS)}")
    if protocol != "center":
        return posteriors(net, x, protocol, crop)
    return (posteriors(net, x, "center", crop) + posteriors(net, x.flip(3), "center", crop)) / 2
