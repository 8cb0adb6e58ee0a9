"""A VGG's sizes, layer by layer, for one image: each named layer's output shape, parameters and multiply-accumulates
(computed on the meta device: no memory, no time), and the totals (parameters, GMACs, activation memory) that the
paper's Table 1 counts and ``vggnet info``, ``vggnet bench`` and the service report."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .model import VGG


@dataclass
class LayerRow:
    name: str
    shape: tuple[int, ...]
    params: int
    macs: int


def layer_table(model: VGG, size: int | tuple[int, int] = 224) -> list[LayerRow]:
    """One row per named layer for one image of ``size``, computed on the meta device (no memory, no time)."""
    h, w = (size, size) if isinstance(size, int) else size
    with torch.device("meta"):
        shadow = VGG.from_config(model.to_config())  # a parameter-free twin: same layers and shapes
        x = torch.empty(1, model.in_channels, h, w)
    outputs = shadow.extract(x, shadow.layer_names)
    rows = []
    for name, out in outputs.items():
        module = shadow.layer(name)
        params = sum(p.numel() for p in module.parameters())
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1]
            macs = out.numel() * module.in_channels // module.groups * k
        elif isinstance(module, nn.Linear):
            macs = module.in_features * module.out_features
        else:
            macs = 0
        rows.append(LayerRow(name, tuple(out.shape[1:]), params, macs))
    return rows


@dataclass
class Summary:
    name: str
    params: int
    gmacs: float
    activation_mib: float


def summarize(model: VGG, size: int = 224) -> Summary:
    """Parameters, GMACs and forward activation memory for one image.

    Activation memory counts every layer output in float32 except those of ReLU and dropout, which run in place.
    """
    rows = layer_table(model, size)
    activations = sum(numel(r.shape) for r in rows if not r.name.startswith(("relu", "drop"))) * 4 / 2**20
    params = sum(p.numel() for p in model.parameters())
    return Summary(model.arch or "custom", params, sum(r.macs for r in rows) / 1e9, activations)


def numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n
