"""VGG as a fixed loss network: perceptual (content) loss and Gram-matrix style loss.

The mistakes these avoid, by construction: the normalisation that belongs to the weights is applied inside (a user
passes RGB images in ``input_range``; Caffe-style BGR 0-255 ports are handled from their metadata); taps are the
Caffe names (``relu2_2`` is after the ReLU); the network is always in inference mode with batch-norm folded away;
its parameters are buffers, so no optimizer ever sees them; the target branch runs without autograd; and the trunk
stops at the deepest layer asked for.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .data.transforms import IMAGENET_MEAN, IMAGENET_STD, Normalization
from .inference import Loaded
from .model import VGG, build

CRITERIA = ("mse", "l1")


def layer_weights(layers: Mapping[str, float] | Sequence[str] | str) -> dict[str, float]:
    """``{"relu2_2": 1.0, ...}`` from a mapping of layer weights, or a list of names (equal weights)."""
    if isinstance(layers, str):
        layers = [layers]
    if isinstance(layers, Mapping):
        found = dict(layers)
    elif isinstance(layers, (list, tuple)) and all(isinstance(n, str) for n in layers):
        found = dict.fromkeys(layers, 1.0)
    else:
        raise ValueError(f"layers must map Caffe names to weights, or list names, got {layers!r}")
    if not found:
        raise ValueError("give at least one layer, e.g. {'relu2_2': 1.0} or ['relu2_2']")
    for name, weight in found.items():
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
            raise ValueError(f"the weight of layer {name} must be a finite number, got {weight!r}")
    return {name: float(w) for name, w in found.items()}


class FeatureTaps(nn.Module):
    """The first layers of a VGG's trunk, frozen and folded for inference, returning the activations named."""

    @staticmethod
    def check_names(model: VGG, names: list[str]) -> None:
        """``ValueError`` for a name the model lacks or one in its classifier head."""
        for name in names:
            if model.layer_index(name) >= len(model.features):
                raise ValueError(f"{name} is in the classifier head; feature losses tap the convolutional trunk")

    def __init__(self, model: VGG, names: list[str]) -> None:
        super().__init__()
        from .inference import fold_batch_norm_

        self.check_names(model, names)
        deepest = max(model.layer_index(n) for n in names)
        self.layers = fold_batch_norm_(copy.deepcopy(model.features[: deepest + 1]).eval())
        self.names = list(model.layer_names[: deepest + 1])
        self.wanted = set(names)
        for module in self.layers.modules():  # parameters become buffers: nothing here can be trained
            for key, param in list(module._parameters.items()):
                if param is not None:
                    del module._parameters[key]
                    module.register_buffer(key, param.detach(), persistent=False)
        self.eval()

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for name, module in zip(self.names, self.layers):
            if isinstance(module, nn.ReLU):
                # in place, unless the input is itself a tap that must survive
                x = F.relu(x) if any(x is tap for tap in out.values()) else torch.relu_(x)
            else:
                x = module(x)
            if name in self.wanted:
                out[name] = x
        return out

    def train(self, mode: bool = True) -> FeatureTaps:
        return super().train(False)  # always inference mode


class _TapLoss(nn.Module):
    """What the perceptual and style losses share: the network, its normalisation, the layer weights, the input
    range, and a target branch without autograd (optionally fixed once with :meth:`set_target`)."""

    default_layers: dict[str, float] = {}

    def __init__(
        self,
        model: VGG | Loaded | None = None,
        arch: str = "vgg16",
        weights: str | None = "torchvision",
        layers: Mapping[str, float] | Sequence[str] | None = None,
        input_range: tuple[float, float] = (0.0, 1.0),
        normalization: Normalization | None = None,
    ) -> None:
        super().__init__()
        layers = layer_weights(layers or self.default_layers)
        lo, hi = input_range
        if not hi > lo:
            raise ValueError(f"input_range must be (low, high) with low < high, got {input_range}")
        from .inference import load_model
        from .weights import is_official_name

        if model is None:
            source = weights or "torchvision"
            if is_official_name(source):  # check the names against the architecture before a download
                with torch.device("meta"):
                    FeatureTaps.check_names(build(arch), list(layers))
            model = load_model(source, arch, arch_if_unknown=True)
        if isinstance(model, Loaded):  # a loaded model brings the normalisation of its weights
            if normalization is None:
                normalization = Normalization(model.mean, model.std, source=model.source)
            model = model.model
        if not isinstance(model, VGG):
            raise ValueError(f"the loss network must be a vggnet VGG (or a loaded one), got {type(model).__name__}")
        if normalization is None:
            c = model.in_channels
            normalization = Normalization(IMAGENET_MEAN, IMAGENET_STD).for_channels(c)
        self.layer_weights = layers
        self.taps = FeatureTaps(model, list(self.layer_weights))
        self.normalization = normalization
        self.input_range = (float(lo), float(hi))
        self.channels = model.in_channels
        self.min_size = model.min_size
        self._target: dict[str, torch.Tensor] | None = None

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(f"expected images N x {self.channels} x H x W, got {tuple(x.shape)}")
        if min(x.shape[-2:]) < self.min_size:
            raise ValueError(
                f"images must be at least {self.min_size}x{self.min_size}, got {x.shape[-2]}x{x.shape[-1]}"
            )
        lo, hi = self.input_range
        unit = x if (lo, hi) == (0.0, 1.0) else (x - lo) / (hi - lo)
        return self.taps(self.normalization(unit).contiguous(memory_format=torch.channels_last))

    def represent(self, name: str, activation: torch.Tensor) -> torch.Tensor:
        return activation

    def distance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def set_target(self, y: torch.Tensor | None) -> None:
        """Fix the target once (a style image, say): later calls of ``loss(x)`` compare with it."""
        self._target = None if y is None else self._represent_all(y)

    def _represent_all(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: self.represent(name, a) for name, a in self.features(x).items()}

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The loss of images ``x`` against targets ``y`` (or the fixed target); gradients flow to ``x`` only."""
        if y is None:
            if self._target is None:
                raise ValueError("give a target y, or fix one with set_target(y)")
            target = self._target
        else:
            if y.shape != x.shape:
                raise ValueError(f"x and y must have one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
            with torch.no_grad():
                target = self._represent_all(y)
        mine = self._represent_all(x)
        total = x.new_zeros((), dtype=torch.float32)
        for name, weight in self.layer_weights.items():
            if target[name].shape[1:] != mine[name].shape[1:] or len(target[name]) not in (1, len(mine[name])):
                raise ValueError(
                    f"the fixed target's {name} is {tuple(target[name].shape)}, the images' "
                    f"{tuple(mine[name].shape)}: set a target of the images' size"
                )
            total = total + weight * self.distance(mine[name], target[name].expand_as(mine[name]))
        return total

    def extra_repr(self) -> str:
        return f"layers={self.layer_weights}, input_range={self.input_range}, normalization=({self.normalization})"


class PerceptualLoss(_TapLoss):
    """Content loss (Johnson et al. 2016): the sum over ``layers`` of weight x mean((phi(x) - phi(y))^2)
    (``criterion="l1"``: mean absolute difference), phi the activation at that Caffe name.

    ``model`` (a VGG, or one from :func:`vggnet.load_model`, which brings its weights' normalisation) overrides
    ``arch`` and ``weights`` (a name, file or URL; a vggnet file says its own architecture). A bare VGG's
    ``normalization`` defaults to ImageNet's.
    """

    default_layers = {"relu2_2": 1.0}

    def __init__(self, *args: Any, criterion: str = "mse", **kwargs: Any) -> None:
        if criterion not in CRITERIA:
            raise ValueError(f"unknown criterion {criterion!r}; expected one of {', '.join(CRITERIA)}")
        super().__init__(*args, **kwargs)
        self.criterion = criterion

    def distance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(a, b) if self.criterion == "mse" else F.l1_loss(a, b)


def gram(activation: torch.Tensor) -> torch.Tensor:
    """Gram matrices N x C x C of activations N x C x H x W: F F^T / (C H W), F the C x (H W) matrix."""
    n, c, h, w = activation.shape
    f = activation.reshape(n, c, h * w).float()
    return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


class StyleLoss(_TapLoss):
    """Style loss (Gatys et al. 2016): the sum over ``layers`` of weight x mean((G(x) - G(y))^2), G the Gram matrix
    of the activations (see :func:`gram`). Arguments as :class:`PerceptualLoss`."""

    default_layers = {"relu1_2": 1.0, "relu2_2": 1.0, "relu3_3": 1.0, "relu4_3": 1.0}

    def represent(self, name: str, activation: torch.Tensor) -> torch.Tensor:
        return gram(activation)

    def distance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(a, b)
