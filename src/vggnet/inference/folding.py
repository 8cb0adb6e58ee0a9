"""A model's fast inference form: every batch norm folded into the convolution before it, channels_last, optionally
compiled (:func:`prepare`)."""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..network.model import VGG


@torch.no_grad()
def fuse_batch_norm(model: VGG) -> VGG:
    """A copy of ``model`` (in eval mode) with every BatchNorm folded into the convolution before it.

    Layer names and indices stay; the BN modules become ``nn.Identity``. Outputs equal the original's to float
    tolerance, with one pass over each activation fewer.
    """
    fused = copy.deepcopy(model).eval()
    fold_batch_norm_(fused.features)
    return fused


@torch.no_grad()
def fold_batch_norm_(layers: nn.Sequential) -> nn.Sequential:
    """Fold each BatchNorm of ``layers`` (in inference mode) into the convolution before it, in place."""
    for i in range(1, len(layers)):
        conv, bn = layers[i - 1], layers[i]
        if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            conv.weight.mul_(scale.view(-1, 1, 1, 1))
            bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
            conv.bias = nn.Parameter((bias - bn.running_mean) * scale + bn.bias)
            layers[i] = nn.Identity()
    return layers


def prepare(
    model: VGG, device: torch.device | str = "cpu", channels_last: bool = True, fuse: bool = True, compile: bool = False
) -> nn.Module:
    """The fast inference form: eval mode, BN folded, channels_last, optionally compiled. Use it under
    ``torch.inference_mode()``."""
    model = fuse_batch_norm(model) if fuse and model.batch_norm else model.eval()
    model = model.to(device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    if not compile:
        return model
    # Inference only: weights become constants, so oneDNN/cuDNN can pre-pack them and fuse the ReLUs. Given as this
    # compilation's option, not set in inductor's global config: other torch.compile calls are left as they were.
    return torch.compile(model, options={"freezing": True})
