"""Gatys et al.'s normalised network: every convolution's filters rescaled so that each one's mean activation over
a set of images and positions is 1, the layer after it rescaled the other way so that the network computes the
same function (ReLU and max or average pooling commute with a positive scale), computed from any weights."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from ..base.normalization import Normalization
from ..inference.folding import fuse_batch_norm
from ..inference.loading import Loaded
from ..network.model import VGG
from .taps import load_trunk


def _batches(images: torch.Tensor | Iterable) -> Iterable[torch.Tensor]:
    """Tensors N x C x H x W from a tensor, or from an iterable of tensors or of (tensor, label) pairs."""
    if isinstance(images, torch.Tensor):
        yield images
        return
    for item in images:
        batch = item[0] if isinstance(item, (tuple, list)) else item
        if not isinstance(batch, torch.Tensor) or batch.dim() != 4:
            raise ValueError(f"images come as tensors N x C x H x W in [0, 1], got {type(batch).__name__}")
        yield batch


@torch.no_grad()
def mean_activations(
    model: VGG, images: torch.Tensor | Iterable, normalization: Normalization, pooling: str = "max"
) -> dict[int, torch.Tensor]:
    """Per convolution (by its index in ``model.features``): each filter's mean activation after its ReLU over
    ``images`` (RGB in [0, 1]) and positions, in float64."""
    sums: dict[int, torch.Tensor] = {}
    counts: dict[int, int] = {}
    device = next(model.parameters()).device
    for batch in _batches(images):
        x = normalization(batch.to(device=device, dtype=torch.float32))
        conv = None
        for i, module in enumerate(model.features):
            if isinstance(module, nn.MaxPool2d) and pooling == "avg":
                module = nn.AvgPool2d(module.kernel_size, module.stride, module.padding, ceil_mode=module.ceil_mode)
            if isinstance(module, nn.LocalResponseNorm):
                raise ValueError("a network with LRN (A-LRN) cannot be normalised: LRN does not commute with scaling")
            x = module(x) if not isinstance(module, nn.ReLU) else torch.relu(x)
            if isinstance(module, nn.Conv2d):
                conv = i
            elif isinstance(module, nn.ReLU) and conv is not None:
                sums[conv] = sums.get(conv, 0) + x.sum((0, 2, 3)).double()
                counts[conv] = counts.get(conv, 0) + x.shape[0] * x.shape[2] * x.shape[3]
    if not sums:
        raise ValueError("no images given to normalise the network with")
    return {i: (sums[i] / counts[i]).cpu() for i in sums}


@torch.no_grad()
def normalize_filters(
    model: VGG | Loaded,
    images: torch.Tensor | Iterable,
    normalization: Normalization | None = None,
    pooling: str = "max",
) -> VGG:
    """Gatys et al. (2016)'s normalised network: a copy of ``model`` (batch norm folded) in which every filter of
    every convolution is divided by its mean activation over ``images`` (RGB in [0, 1]; a tensor, or batches from
    any iterable such as a DataLoader) and positions, and the input weights of the next layer (convolution, or
    fc6 after the last) multiplied by it, so the class scores are unchanged while each filter's mean activation
    becomes 1. A filter never active stays as it is. ``pooling``: the pooling the statistics are taken with
    (``"max"``, the network's own, or ``"avg"``). Save it with :func:`vggnet.save_weights`; its losses then use
    ``model=`` it.
    """
    net, normalization, _ = load_trunk(model, "vgg19", None, [], normalization)
    net = fuse_batch_norm(net)
    means = mean_activations(net, images, normalization, pooling)
    convs = sorted(means)
    for k, i in enumerate(convs):
        scale = torch.where(means[i] > 0, means[i], torch.ones_like(means[i]))
        conv = net.features[i]
        conv.weight.div_(scale.to(conv.weight).view(-1, 1, 1, 1))
        conv.bias.div_(scale.to(conv.bias))
        if k + 1 < len(convs):
            following = net.features[convs[k + 1]].weight
            following.mul_(scale.to(following).view(1, -1, 1, 1))
        else:
            fc6 = net.classifier[0].weight
            fc6.copy_((fc6.view(fc6.shape[0], len(scale), -1) * scale.to(fc6).view(1, -1, 1)).view_as(fc6))
    net.normalization = normalization
    return net
