"""A VGG looked at rather than run: what it is in words, the receptive field of every layer, the smallest input it
takes and the sides of its maps. The :class:`~vggnet.network.model.VGG` methods of the same names (``describe``,
``receptive_fields``, ``min_input``, ``map_size``) call these; each reads the model's configuration and layers and
computes nothing on images."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import Any

from torch import nn

from ..base.configs import Layer, letter_of
from .fields import Field, head_fields, trunk_fields


def min_input(config: Sequence[Layer], ceil_mode: bool, side: int) -> int:
    """The smallest input side that leaves a map of at least ``side`` x ``side`` after the pools of ``config``."""
    reduction = 2 ** list(config).count("M")
    return (side - 1) * reduction + 1 if ceil_mode else side * reduction


def map_size(config: Sequence[Layer], ceil_mode: bool, size: int) -> int:
    """The side of pool5's map for an input of side ``size``."""
    for _ in range(list(config).count("M")):
        size = -(-size // 2) if ceil_mode else size // 2
    return size


def describe(model: Any) -> str:
    """What a VGG is, in words: ``VGG-13 (net B) with BN at 1/4 width``, or the layers of a custom one."""
    bn = " with BN" if model.batch_norm else ""
    convs = sum(not isinstance(i, str) for i in model.config)
    letter = letter_of(model.config)
    if letter is None:
        layers = ", ".join(str(i if isinstance(i, (int, str)) else tuple(i)) for i in model.effective_config())
        return f"VGG [{layers}]{bn} ({convs} convolutions + 3 FC layers){lrn_note(model)}"
    first = next(m.out_channels for m in model.features if isinstance(m, nn.Conv2d))
    width = Fraction(first, 64).limit_denominator(64)
    scale = "" if width == 1 else f" at {width} width"
    return f"VGG-{convs + 3} (net {letter}){bn}{scale}{lrn_note(model)}"


def lrn_note(model: Any) -> str:
    """The units a net's LRN computes in, where it has one."""
    if not model.has_lrn:
        return ""
    return f", its LRN in Caffe's pixel units (1 input unit = {model.input_scale:.4g} pixel levels)"


def receptive_fields(model: Any, size: int | tuple[int, int] = 224) -> list[Field]:
    """Every named layer's output shape and the receptive field, jump and effective padding of its units, for an
    input of ``size``, computed from the layers (:mod:`vggnet.network.fields`); the head in its dense form."""
    h, w = (size, size) if isinstance(size, int) else size
    trunk = trunk_fields(list(zip(model.layer_names, model.features)), model.in_channels, (h, w))
    head = [("fc6", model.fc_width, model.pool_size), ("fc7", model.fc_width, 1), ("fc8", model.num_classes, 1)]
    return trunk + head_fields(trunk[-1], head)
