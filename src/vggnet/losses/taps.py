"""The trunk a loss runs: the first layers of any VGG vggnet loads, tapped by Caffe name, frozen and folded.

``conv5_4`` is the convolution's output (before its ReLU: ESRGAN's taps), ``relu5_4`` the same after it (SRGAN's).
Parameters become buffers (no optimizer sees them), batch norm is folded into the convolution before it (except
where that convolution itself is tapped: its output stays the convolution's), max pooling may be replaced by average
pooling (Gatys et al.) or L2 pooling (DISTS), and the trunk stops at the deepest tap. Segments between taps can be
recomputed in the backward pass (``checkpoint``) instead of kept.
"""

from __future__ import annotations

import copy
import hashlib
import math
from collections.abc import Iterator, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint as recompute

from ..base.normalization import IMAGENET_MEAN, IMAGENET_STD, Normalization
from ..inference.folding import fold_batch_norm_
from ..inference.loading import Loaded
from ..network.model import VGG, build
from .inputs import wide

POOLINGS = {
    "max": "max pooling (the network's own)",
    "avg": "average pooling in place of max (Gatys et al. 2016)",
    "l2": "L2 pooling in place of max: a 3x3 Hann window, stride 2 (Henaff & Simoncelli; DISTS)",
}


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


class _L2Pooling(torch.autograd.Function):
    """sqrt(conv(x^2, k) + 1e-12), whose backward keeps only x (which the trunk keeps anyway) and the pooled
    output, not the full-size x^2 that autograd would."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        weight = kernel.expand(c, 1, 3, 3)
        out = (F.conv2d(x * x, weight, stride=2, padding=1, groups=c) + 1e-12).sqrt()
        ctx.save_for_backward(x, out, weight)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        x, out, weight = ctx.saved_tensors
        # the input's gradient of the depthwise convolution, in x's own memory format (channels_last here: a
        # gradient in another layout would make every later addition a strided one)
        spread = torch.ops.aten.convolution_backward(
            grad / out, x, weight, None, [2, 2], [1, 1], [1, 1], False, [0, 0], x.shape[1], [True, False, False]
        )[0]
        return x * spread, None


class L2Pool(nn.Module):
    """L2 pooling: the square root of a Hann-weighted (0.5, 1, 0.5)^2 / 4 average of squares, stride 2, padding 1.
    Computed in float32 (the 1e-12 under the root vanishes in float16)."""

    def __init__(self) -> None:
        super().__init__()
        window = torch.hann_window(5, periodic=False, dtype=torch.float64)[1:-1]
        kernel = window[:, None] * window[None, :]
        self.register_buffer("kernel", (kernel / kernel.sum()).float().view(1, 1, 3, 3), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            f = wide(x)
            return _L2Pooling.apply(f, self.kernel.to(f.dtype)).to(x.dtype)


def _pool(module: nn.MaxPool2d, pooling: str) -> nn.Module:
    if pooling == "avg":
        return nn.AvgPool2d(module.kernel_size, module.stride, module.padding, ceil_mode=module.ceil_mode)
    return L2Pool()


class FeatureTaps(nn.Module):
    """The first layers of a VGG's trunk, frozen and folded for inference, returning the activations named.

    ``pooling``: ``"max"`` (as trained), ``"avg"`` or ``"l2"`` (see :data:`POOLINGS`). ``checkpoint``: recompute
    each segment between taps in the backward pass rather than keep its activations (less memory, one more forward).
    Images whose channel count differs from the trunk's go through an averaged first layer (conv1_1's weights summed
    over its input channels, spread evenly over the image's): see :meth:`first_layer_for`.
    """

    @staticmethod
    def check_names(model: VGG, names: list[str]) -> None:
        """``ValueError`` for a name the model lacks or one in its classifier head."""
        for name in names:
            if model.layer_index(name) >= len(model.features):
                raise ValueError(f"{name} is in the classifier head; feature losses tap the convolutional trunk")

    def __init__(self, model: VGG, names: list[str], pooling: str = "max", checkpoint: bool = False) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; expected one of {', '.join(POOLINGS)}")
        self.check_names(model, names)
        deepest = max(model.layer_index(n) for n in names)
        self.names = list(model.layer_names[: deepest + 1])
        self.wanted = set(names)
        self.layers = self._fold(copy.deepcopy(model.features[: deepest + 1]).eval())
        if pooling != "max":
            for i, module in enumerate(self.layers):
                if isinstance(module, nn.MaxPool2d):
                    self.layers[i] = _pool(module, pooling)
        self.pooling, self.checkpoint = pooling, checkpoint
        self.in_channels = model.in_channels
        for module in self.layers.modules():  # parameters become buffers: nothing here can be trained
            for key, param in list(module._parameters.items()):
                if param is not None:
                    del module._parameters[key]
                    module.register_buffer(key, param.detach(), persistent=False)
        stops = [i + 1 for i, name in enumerate(self.names) if name in self.wanted]
        self.segments = list(zip([0, *stops[:-1]], stops))
        self.eval()

    def _fold(self, layers: nn.Sequential) -> nn.Sequential:
        """Batch norm folded into the convolution before it, except after a tapped convolution (whose output is
        then the convolution's own, before the batch norm, as in BasicSR's VGG-BN taps)."""
        for i in range(1, len(layers)):
            if isinstance(layers[i], nn.BatchNorm2d) and self.names[i - 1] not in self.wanted:
                fold_batch_norm_(nn.Sequential(layers[i - 1], layers[i]))
                layers[i] = nn.Identity()
        return layers

    def first_layer_for(self, channels: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """conv1_1's weight and bias for images of ``channels`` channels: the trunk's own where they match, else its
        weights summed over the trunk's input channels and divided evenly among the image's (timm's way to adapt a
        first layer: a grey image then gives what the same grey repeated to RGB gives, before normalisation)."""
        conv = self.layers[0]
        if channels == self.in_channels:
            return conv.weight, conv.bias
        summed = conv.weight.sum(1, keepdim=True) / channels
        return summed.expand(-1, channels, -1, -1).contiguous(memory_format=torch.channels_last), conv.bias

    def _run(self, start: int, stop: int, x: torch.Tensor) -> torch.Tensor:
        first = x
        for i in range(start, stop):
            module = self.layers[i]
            if isinstance(module, nn.ReLU):  # in place, unless on the segment's input: a tap that must survive
                x = F.relu(x) if x is first else torch.relu_(x)
            elif i == 0 and x.shape[1] != self.in_channels:
                weight, bias = self.first_layer_for(x.shape[1])
                x = F.conv2d(x, weight, bias, module.stride, module.padding)
            else:
                x = module(x)
        return x

    def stream(self, x: torch.Tensor) -> Iterator[tuple[str, torch.Tensor]]:
        """The taps' activations one at a time, in the trunk's order, each computed when asked for: a loss can
        compare a tap and let it go before the next is computed."""
        for start, stop in self.segments:
            if self.checkpoint and torch.is_grad_enabled() and x.requires_grad:
                x = recompute(self._run, start, stop, x, use_reentrant=False)
            else:
                x = self._run(start, stop, x)
            yield self.names[stop - 1], x

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return dict(self.stream(x))

    def train(self, mode: bool = True) -> FeatureTaps:
        return super().train(False)  # always inference mode

    def pools(self) -> int:
        """How many poolings the tapped layers pass."""
        return sum(isinstance(m, (nn.MaxPool2d, nn.AvgPool2d, L2Pool)) for m in self.layers)

    def channels_at(self, name: str) -> int:
        """The channel count of the activation a tap returns."""
        before = self.layers[: self.names.index(name) + 1]
        return [m.out_channels for m in before if isinstance(m, nn.Conv2d)][-1]

    def digest(self) -> str:
        """The first 12 hex digits of the sha256 of the tapped layers' weights as run (float32, in layer order):
        two trunks with one digest compute the same features."""
        h = hashlib.sha256()
        for name, tensor in self.layers.named_buffers():
            if tensor.is_floating_point() and not name.endswith("kernel"):
                h.update(name.encode())
                h.update(tensor.detach().float().contiguous().cpu().numpy().tobytes())
        return h.hexdigest()[:12]


def load_trunk(
    model: VGG | Loaded | None,
    arch: str,
    weights: str | None,
    names: list[str],
    normalization: Normalization | None,
    caller: str = "the loss",
) -> tuple[VGG, Normalization, str]:
    """The VGG a loss taps, the normalisation its weights expect and where they came from: ``model`` (a VGG, or
    one from :func:`vggnet.load_model`, which brings its weights' normalisation and origin), else ``weights`` (a
    name such as ``"torchvision"``, a file of any format vggnet reads, or a URL) for ``arch``, names checked
    before any download."""
    from ..base.download import supplied_as
    from ..inference.loading import load_model
    from ..network.weights import is_official_name

    source = None
    if model is None:
        given = weights or "torchvision"
        if is_official_name(given):  # check the names against the architecture before a download
            with torch.device("meta"):
                FeatureTaps.check_names(build(arch), names)
        with supplied_as(f'{caller}(weights="path/to/{{name}}")'):  # the Python argument, not a flag
            model = load_model(given, arch, arch_if_unknown=True)
    if isinstance(model, Loaded):  # a loaded model brings the normalisation of its weights
        if normalization is None:
            normalization = Normalization(model.mean, model.std, source=model.source)
        source, model = model.source, model.model
    if not isinstance(model, VGG):
        raise ValueError(f"the loss network must be a vggnet VGG (or a loaded one), got {type(model).__name__}")
    if normalization is None:  # what the weights said when they were loaded (load_weights), else ImageNet's
        normalization = model.normalization or Normalization(IMAGENET_MEAN, IMAGENET_STD).for_channels(
            model.in_channels
        )
    return model, normalization, source or "a VGG given as model= (the origin of its weights not recorded)"
