"""Receptive fields, computed from the layers themselves, and the paper's argument for stacks of 3x3 layers.

A unit of a layer sees a square of the input, its receptive field ``r``; neighbouring units are ``jump`` input
pixels apart; and the first unit's field starts ``padding`` pixels before the image (the effective padding, every
layer's zero padding in input pixels). Through a layer of kernel ``k``, stride ``s`` and padding ``p``::

    r' = r + (k - 1) j      j' = j s      P' = P + p j

so two 3x3 convolutions see 5 x 5 pixels and three see 7 x 7, as one 5x5 or 7x7 layer would (Sect. 2.3), with
fewer weights: ``k`` 3x3 layers of C channels have 9 k C^2 weights against (2k + 1)^2 C^2 (27 C^2 against 49 C^2
for three). The head is taken in its dense form (fc6 a ``pool_size`` x ``pool_size`` convolution over pool5, fc7
and fc8 1 x 1), where its units have fields of the same kind.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn


@dataclass
class Field:
    """One layer: its output (channels, height, width), and the receptive field of one of its units."""

    name: str
    shape: tuple[int, int, int]
    field: int  # side of the square of input pixels one unit sees
    jump: int  # input pixels between neighbouring units
    padding: int  # input pixels the first unit's field starts before the image (the effective padding)

    def origin(self, row: int, col: int) -> tuple[int, int]:
        """Top-left input pixel of the field of the unit at (``row``, ``col``) (may be outside the image)."""
        return row * self.jump - self.padding, col * self.jump - self.padding


def _geometry(module: nn.Module) -> tuple[int, int, int] | None:
    """(kernel, stride, padding) of a layer that moves across the image; None for one that does not."""
    if isinstance(module, (nn.Conv2d, nn.MaxPool2d)):
        pick = lambda v: v[0] if isinstance(v, tuple) else v  # noqa: E731  (square kernels only, as in a VGG)
        return pick(module.kernel_size), pick(module.stride), pick(module.padding)
    return None


def trunk_fields(layers: list[tuple[str, nn.Module]], in_channels: int, size: tuple[int, int]) -> list[Field]:
    """The fields of a trunk's named layers for an input of ``size`` (height, width)."""
    (h, w), channels = size, in_channels
    field, jump, padding = 1, 1, 0
    out = []
    for name, module in layers:
        geometry = _geometry(module)
        if geometry is not None:
            k, s, p = geometry
            field, padding, jump = field + (k - 1) * jump, padding + p * jump, jump * s
            ceil = getattr(module, "ceil_mode", False)
            h, w = (_out(h, k, s, p, ceil), _out(w, k, s, p, ceil))
        if isinstance(module, nn.Conv2d):
            channels = module.out_channels
        out.append(Field(name, (channels, h, w), field, jump, padding))
    return out


def head_fields(last: Field, head: list[tuple[str, int, int]]) -> list[Field]:
    """The dense head's fields after the trunk's ``last`` layer: ``head`` lists (name, outputs, kernel)."""
    out, (h, w), (field, jump, padding) = [], last.shape[1:], (last.field, last.jump, last.padding)
    for name, outputs, k in head:
        field, h, w = field + (k - 1) * jump, max(0, h - k + 1), max(0, w - k + 1)
        out.append(Field(name, (outputs, h, w), field, jump, padding))
    return out


def _out(n: int, k: int, s: int, p: int, ceil: bool) -> int:
    span = n + 2 * p - k
    return (-(-span // s) if ceil else span // s) + 1 if span >= 0 else 0


@dataclass
class Stack:
    """A block's stack of ``depth`` 3x3 convolutions of ``width`` channels, against the one layer it replaces."""

    block: int
    depth: int
    width: int
    field: int  # the stack's receptive field: that of one (2 depth + 1) x (2 depth + 1) layer
    stack_weights: int  # depth x 9 x width^2
    single_weights: int  # (2 depth + 1)^2 x width^2

    @property
    def saving(self) -> float:
        return 1 - self.stack_weights / self.single_weights


def stacks(config: list) -> list[Stack]:
    """Per block, its run of 3x3 convolutions (at the block's width, as the paper counts them: C channels in and
    out) against the single layer with the same receptive field (Sect. 2.3)."""
    found, block, depth, width = [], 1, 0, 0
    for item in [*config, "M"]:
        if item == "M":
            if depth:
                size = 2 * depth + 1
                found.append(Stack(block, depth, width, size, depth * 9 * width**2, size * size * width**2))
            block, depth = block + 1, 0
        elif isinstance(item, int):
            depth, width = depth + 1, item
    return found
