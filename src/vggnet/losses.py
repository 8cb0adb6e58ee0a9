"""VGG as a fixed loss network: perceptual (content) loss and Gram-matrix style loss.

The mistakes these avoid, by construction: the normalisation that belongs to the weights is applied inside (a user
passes RGB images in ``input_range``; Caffe-style BGR 0-255 ports are handled from their metadata); taps are the
Caffe names (``relu2_2`` is after the ReLU); the network is always in inference mode with batch-norm folded away;
its parameters are buffers, so no optimizer ever sees them; the target branch runs without autograd; and the trunk
stops at the deepest layer asked for.
"""

from __future__ import annotations

import copy
import importlib.util
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .base.download import supplied_as
from .base.normalization import IMAGENET_MEAN, IMAGENET_STD, Normalization
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
            with supplied_as(f'{type(self).__name__}(weights="path/to/{{name}}")'):  # the argument, not a flag
                model = load_model(source, arch, arch_if_unknown=True)
        if isinstance(model, Loaded):  # a loaded model brings the normalisation of its weights
            if normalization is None:
                normalization = Normalization(model.mean, model.std, source=model.source)
            model = model.model
        if not isinstance(model, VGG):
            raise ValueError(f"the loss network must be a vggnet VGG (or a loaded one), got {type(model).__name__}")
        if normalization is None:  # what the weights said when they were loaded (load_weights), else ImageNet's
            c = model.in_channels
            normalization = model.normalization or Normalization(IMAGENET_MEAN, IMAGENET_STD).for_channels(c)
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

    def distance(self, a: torch.Tensor, b: torch.Tensor, name: str) -> torch.Tensor:
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
            total = total + weight * self.distance(mine[name], target[name].expand_as(mine[name]), name)
        return total

    def extra_repr(self) -> str:
        return f"layers={self.layer_weights}, input_range={self.input_range}, normalization=({self.normalization})"


class PerceptualLoss(_TapLoss):
    """Content loss (Johnson et al. 2016): the sum over ``layers`` of weight x mean((phi(x) - phi(y))^2)
    (``criterion="l1"``: mean absolute difference), phi the activation at that Caffe name.

    ``model`` (a VGG, or one from :func:`vggnet.load_model`, which brings its weights' normalisation) overrides
    ``arch`` and ``weights`` (a name, file or URL; a vggnet file says its own architecture, as do Caffe and Keras
    files). A bare VGG's ``normalization`` is the one its weights were loaded with (:func:`vggnet.load_weights`),
    else ImageNet's.
    """

    default_layers = {"relu2_2": 1.0}

    def __init__(self, *args: Any, criterion: str = "mse", **kwargs: Any) -> None:
        if criterion not in CRITERIA:
            raise ValueError(f"unknown criterion {criterion!r}; expected one of {', '.join(CRITERIA)}")
        super().__init__(*args, **kwargs)
        self.criterion = criterion

    def distance(self, a: torch.Tensor, b: torch.Tensor, name: str) -> torch.Tensor:
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

    def distance(self, a: torch.Tensor, b: torch.Tensor, name: str) -> torch.Tensor:
        return F.mse_loss(a, b)


LPIPS_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
# The authors' calibrated layers for VGG-16, version 0.1, where no lpips package is installed to read them from.
LPIPS_URL = "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/vgg.pth"


def lpips_layers(source: str | os.PathLike | None = None) -> dict[str, torch.Tensor]:
    """LPIPS v0.1's calibrated linear layers for VGG-16, one weight per channel of relu1_2 ... relu5_3, by Caffe
    name: from ``source`` (a ``.pth``/``.safetensors`` file or a URL), else from the installed ``lpips`` package's
    own ``weights/v0.1/vgg.pth`` (read, not imported), else downloaded once from the authors' repository into
    torch's hub cache."""
    from .weights import download, read_file

    if source is None:
        spec = importlib.util.find_spec("lpips")
        installed = Path(spec.origin).parent / "weights" / "v0.1" / "vgg.pth" if spec and spec.origin else None
        source = installed if installed is not None and installed.is_file() else LPIPS_URL
    with supplied_as('LPIPS(lin="path/to/{name}")'):
        state = read_file(download(str(source)) if "://" in str(source) else source)
    found: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        match = re.fullmatch(r"lin(\d)\.model\.\d\.weight", key)
        if match and int(match.group(1)) < len(LPIPS_LAYERS):
            found[LPIPS_LAYERS[int(match.group(1))]] = value.reshape(-1).float()
    if len(found) != len(LPIPS_LAYERS):
        raise ValueError(
            f"{source} holds no LPIPS layers for VGG (lin0.model.1.weight ... lin4.model.1.weight); it has "
            f"{', '.join(list(state)[:6])}"
        )
    return found


class LPIPS(_TapLoss):
    """LPIPS (Zhang et al. 2018, version 0.1, VGG-16): the learned perceptual distance between images, as the
    ``lpips`` package's ``LPIPS(net="vgg")`` computes it: at relu1_2 ... relu5_3 each activation is scaled to unit
    length over its channels, the squared differences weighted per channel by the calibrated linear layers
    (:func:`lpips_layers`; ``lin``: their file), summed over channels, averaged over the map, and summed over the
    layers. Returns N x 1 x 1 x 1, as lpips does.

    Images come in ``input_range``, by default lpips's [-1, 1] (``(0, 1)`` for lpips's ``normalize=True``). The
    trunk is ``model`` or ``weights`` (torchvision's VGG-16, as lpips loads) with its weights' normalisation:
    ImageNet's for torchvision's, which is lpips's scaling layer written for [0, 1] images. Faster than
    lpips's own where vggnet's trunk is: it stops at
    relu5_3, runs channels_last with in-place ReLUs, and a fixed reference (:meth:`set_target`) or any second image
    is computed without autograd (gradients flow to the first image only).
    """

    default_layers = dict.fromkeys(LPIPS_LAYERS, 1.0)

    def __init__(
        self,
        model: VGG | Loaded | None = None,
        weights: str | None = "torchvision",
        lin: str | os.PathLike | None = None,
        input_range: tuple[float, float] = (-1.0, 1.0),
        normalization: Normalization | None = None,
    ) -> None:
        super().__init__(model, "vgg16", weights, list(LPIPS_LAYERS), input_range, normalization)
        for name, weight in lpips_layers(lin).items():
            before = self.taps.layers[: self.taps.names.index(name)]
            channels = [m.out_channels for m in before if isinstance(m, nn.Conv2d)][-1]
            if weight.numel() != channels:
                raise ValueError(
                    f"LPIPS's layer for {name} has {weight.numel()} weights; the trunk has {channels} channels"
                )
            self.register_buffer(f"lin_{name}", weight.view(1, -1, 1, 1))

    def represent(self, name: str, activation: torch.Tensor) -> torch.Tensor:
        return activation / (activation.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)

    def distance(self, a: torch.Tensor, b: torch.Tensor, name: str) -> torch.Tensor:
        weighted = ((a - b) ** 2 * getattr(self, f"lin_{name}")).sum(1, keepdim=True)
        return weighted.mean((2, 3), keepdim=True)
