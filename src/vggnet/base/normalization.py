"""The input a network's weights expect (:class:`Normalization`), and the named ones of the weights people hold:
ImageNet's mean and std (torchvision, timm), the authors' Caffe mean pixel, VGG-Face's, and Keras's ``tf`` mode."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

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
