"""The VGG network: a plain ``nn.Module`` built from a configuration list.

Parameter names follow torchvision (``features.N``, ``classifier.0/3/6``) so that weights move freely between the two.
The same parameters also serve the paper's dense form (``score_map``) and named-layer access (``extract``).
Convolution weights are kept channels_last: oneDNN and cuDNN then run every convolution in NHWC whatever the input's
layout (about 2x faster than NCHW on CPUs), while shapes, keys and values stay torchvision's.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..base import shape
from ..base.configs import CONFIGS, HEAD_NAMES, PIXEL_SCALE, Layer, canonical_name, resolve, validate
from ..base.normalization import IMAGENET_MEAN, IMAGENET_STD, Normalization
from ..base.settings import FRACTION, POSITIVE
from . import anatomy
from .fields import Field
from .layers import CaffeLRN, exporting, fx_tracing, init_weights, input_scale_of, is_paper_head, make_features


class VGG(nn.Module):
    """VGG (Simonyan & Zisserman 2014) with torchvision's layout, a dense form and named taps.

    Args:
        config: a list in the notation of ``vggnet.base.configs`` (e.g. ``CONFIGS["D"]``).
        num_classes: width of fc8.
        in_channels: channels of the input images (3 for RGB, 1 for grayscale).
        batch_norm: batch normalisation after every convolution.
        dropout: dropout probability after fc6 and fc7.
        width: multiplier on every convolution's width (for small experiments).
        pool_size: side of the adaptive average pool before fc6 (7 in the paper). With ``pool_size=1`` and a small
            ``fc_width`` the head suits 32x32 images: ``build("vgg16_bn", pool_size=1, fc_width=512, ...)``.
        fc_width: width of fc6 and fc7 (4096 in the paper).
        init: ``"kaiming"`` (torchvision's), ``"normal"`` (the paper's, std 0.01) or ``"xavier"`` (Glorot); a head
            other than the paper's is scaled for its width (:func:`vggnet.network.layers.init_weights`).
        arch: the name this model is known by (used to find official weights).
        ceil_mode: round pooled sizes up, as the authors' Caffe did (any input of at least one pixel then passes the
            five pools: a 28 x 28 image ends as a 1 x 1 map), instead of down as torchvision does. Weights are the
            same either way; only the maps' sizes (and so dense evaluation) differ.
        input_scale: Caffe pixel levels per unit of the net's input (255 for [0, 1] images minus the mean; 255 * std
            for images divided by std, :func:`input_scale_of`): the LRN of A-LRN computes the paper's normalisation
            in those units (:class:`CaffeLRN`). Training and loading set it from the model's normalisation.
    """

    def __init__(
        self,
        config: Sequence[Layer],
        num_classes: int = 1000,
        in_channels: int = 3,
        batch_norm: bool = False,
        dropout: float = 0.5,
        width: float = 1.0,
        pool_size: int = 7,
        fc_width: int = 4096,
        init: str = "kaiming",
        arch: str | None = None,
        ceil_mode: bool = False,
        input_scale: float = PIXEL_SCALE,
    ) -> None:
        super().__init__()
        validate(list(config))
        for label, value in (
            ("num_classes", num_classes),
            ("in_channels", in_channels),
            ("pool_size", pool_size),
            ("fc_width", fc_width),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{label} must be a positive integer, got {value!r}")
        FRACTION.check("dropout", dropout)  # the same ranges, and messages, as the command line's
        POSITIVE.check("width", width)
        self.config = list(config)
        self.arch = arch
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.batch_norm = batch_norm
        self.pool_size = pool_size
        self.fc_width = fc_width
        self.dropout = dropout
        self.ceil_mode = bool(ceil_mode)
        self.min_size = self.min_input(1)
        self.features, feature_names, channels = make_features(
            self.config, in_channels, batch_norm, width, ceil_mode, input_scale
        )
        self.input_scale = float(input_scale)
        self.num_features = channels
        self.avgpool = nn.AdaptiveAvgPool2d((pool_size, pool_size))
        self.classifier = nn.Sequential(
            nn.Linear(channels * pool_size * pool_size, fc_width),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(fc_width, fc_width),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(fc_width, num_classes),
        )
        self.layer_names: list[str] = feature_names + list(HEAD_NAMES)
        self._index = {name: i for i, name in enumerate(self.layer_names)}
        self.frozen: list[str] = []
        self.normalization: Normalization | None = None  # the input its weights expect, where they say
        init_weights(self, init)
        self.to(memory_format=torch.channels_last)

    # -- rebuilding ------------------------------------------------------------------------------------------------
    def to_config(self) -> dict[str, Any]:
        """What :meth:`from_config` needs to build this module again (widths as built, JSON-friendly values)."""
        return {**{k: getattr(self, k) for k in shape.KEYS}, "config": self.effective_config()}

    @classmethod
    def from_config(cls, config: Mapping[str, Any], **overrides: Any) -> VGG:
        """A freshly initialised VGG of the shape ``config`` describes (see :meth:`to_config`); ``overrides``
        replace entries (e.g. ``num_classes``) or add options (``init``)."""
        settings = {k: config[k] for k in shape.KEYS if k in config and config[k] is not None}
        settings.update(overrides)
        if "config" not in settings:
            raise ValueError("a model configuration needs its layer list under 'config'")
        layers = [tuple(i) if isinstance(i, list) else i for i in settings.pop("config")]
        return cls(layers, **settings)

    def effective_config(self) -> list[Layer]:
        """The configuration with the widths actually built (after the width multiplier)."""
        widths = iter(m.out_channels for m in self.features if isinstance(m, nn.Conv2d))
        config: list[Layer] = []
        for item in self.config:
            if isinstance(item, str):
                config.append(item)
            elif isinstance(item, int):
                config.append(next(widths))
            else:
                config.append((next(widths), item[1]))
        return config

    def set_input_scale(self, input_scale: float) -> VGG:
        """Say in what units this net's input comes (Caffe pixel levels per input unit, :func:`input_scale_of`), so
        that its LRN, if it has one, computes the paper's normalisation in them."""
        for module in self.features:
            if isinstance(module, CaffeLRN):
                module.set_input_scale(input_scale)
        self.input_scale = float(input_scale)
        return self

    def set_normalization(self, normalization: Normalization) -> VGG:
        """Say what input this net's weights expect, from RGB (or gray) images on [0, 1] (a loaded file says it);
        its LRN, if it has one, then computes the paper's normalisation in those units."""
        if len(normalization.mean) != self.in_channels or normalization.channel_order != "RGB":
            raise ValueError(
                f"a {self.in_channels}-channel VGG takes RGB images; got a normalisation for {normalization}"
            )
        mean, std = normalization.rgb_unit()
        self.normalization = Normalization(mean, std, source=normalization.source)
        return self.set_input_scale(input_scale_of(std))

    @property
    def pretrained_cfg(self) -> dict[str, Any]:
        """timm's description of the input (``timm.data.resolve_model_data_config(model)`` reads it)."""
        norm = self.normalization or Normalization(IMAGENET_MEAN, IMAGENET_STD).for_channels(self.in_channels)
        mean, std = norm.rgb_unit()
        return {
            "mean": tuple(mean),
            "std": tuple(std),
            "input_size": (self.in_channels, 224, 224),
            "num_classes": self.num_classes,
            "interpolation": "bilinear",
            "crop_pct": 224 / 256,
        }

    @property
    def has_lrn(self) -> bool:
        return "LRN" in self.config

    def min_input(self, side: int) -> int:
        """The smallest input side that leaves a map of at least ``side`` x ``side`` after the pools."""
        return anatomy.min_input(self.config, self.ceil_mode, side)

    def map_size(self, size: int) -> int:
        """The side of pool5's map for an input of side ``size``."""
        return anatomy.map_size(self.config, self.ceil_mode, size)

    def describe(self) -> str:
        """What this network is, in words: ``VGG-13 (net B) with BN at 1/4 width``, or the layers of a custom one."""
        return anatomy.describe(self)

    def receptive_fields(self, size: int | tuple[int, int] = 224) -> list[Field]:
        """Every named layer's output shape and the receptive field, jump and effective padding of its units, for an
        input of ``size`` (:func:`vggnet.network.anatomy.receptive_fields`); the head in its dense form."""
        return anatomy.receptive_fields(self, size)

    # -- the uniform interface of timm -------------------------------------------------------------------------
    @property
    def feature_info(self) -> list[dict[str, Any]]:
        """One entry per max-pool: channels, reduction and the Caffe name of the tap before it (a ReLU)."""
        info, reduction, channels = [], 1, self.in_channels
        for i, module in enumerate(self.features):
            if isinstance(module, nn.Conv2d):
                channels = module.out_channels
            if isinstance(module, nn.MaxPool2d):
                tap = {"module": f"features.{i - 1}", "name": self.layer_names[i - 1]}
                info.append({"num_chs": channels, "reduction": reduction, **tap})
                reduction *= 2
        return info

    def get_classifier(self) -> nn.Linear:
        return self.classifier[6]

    def reset_classifier(self, num_classes: int) -> None:
        """Replace fc8 with a new layer of ``num_classes`` outputs, initialised as :func:`init_weights` says."""
        fc7 = self.classifier[3]
        self.classifier[6] = nn.Linear(fc7.out_features, num_classes, device=fc7.weight.device)
        init_weights(self.classifier[6], paper_head=is_paper_head(self.pool_size, self.fc_width))
        self.num_classes = num_classes

    def check_input(self, x: torch.Tensor) -> None:
        """Raise ``ValueError`` unless ``x`` is an N x C x H x W batch this model can take. Under FX's symbolic
        tracing (torchvision's feature extraction) there are no values to check, and the check is left out of the
        traced graph."""
        if fx_tracing():
            return
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"expected a 4-D N x C x H x W tensor, got {got}")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"expected {self.in_channels} input channels, got {x.shape[1]} (shape {tuple(x.shape)})")
        if x.shape[2] < self.min_size or x.shape[3] < self.min_size:
            raise ValueError(f"input must be at least {self.min_size}x{self.min_size}, got {x.shape[2]}x{x.shape[3]}")

    def _trunk(self, x: torch.Tensor) -> torch.Tensor:
        """The convolutional trunk. Under ``torch.export`` the convolutions take their weights in the standard
        layout: channels_last weights make every activation channels_last, and batch norm's symbolic strides then
        carry guards that no dynamic image size can satisfy. Exporting needs no knowledge of the layout."""
        if not exporting():
            return self.features(x)
        for module in self.features:
            if isinstance(module, nn.Conv2d):
                x = F.conv2d(x, module.weight.contiguous(), module.bias, module.stride, module.padding)
            else:
                x = module(x)
        return x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """pool5's output, in the standard (contiguous) layout."""
        self.check_input(x)
        return self._trunk(x).contiguous()

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)
        for i in range(6):  # the registered modules themselves (a slice would build a new Sequential each call)
            x = self.classifier[i](x)
        return x if pre_logits else self.classifier[6](x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.forward_head(self._trunk(x))

    # -- the paper's dense evaluation ---------------------------------------------------------------------------
    def score_map(self, x: torch.Tensor) -> torch.Tensor:
        """Class score map N x classes x h x w of the fully convolutional net (paper, Sect. 3.2).

        fc6 acts as a ``pool_size`` x ``pool_size`` convolution and fc7, fc8 as 1x1 convolutions, using the same
        parameters (no copies). Its spatial mean is the image's class scores; at 224x224 it equals ``forward``.
        """
        self.check_input(x)
        *_, (_, scores) = self._dense_head(self._trunk(x))
        return scores

    def _dense_head(self, x: torch.Tensor) -> Iterator[tuple[str, torch.Tensor]]:
        """fc6 ... fc8 as convolutions over pool5's map ``x``, yielding (Caffe name, N x C x h x w map) in order.

        Each convolution is one matrix product over the unfolded map: the same arithmetic, but several times faster
        than a 7x7 convolution with 4096 outputs, and no re-laid-out copy of fc6's weights.
        """
        p = self.pool_size
        n, _, h, w = x.shape
        if h < p or w < p:
            side = self.min_input(p)
            raise ValueError(
                f"dense evaluation needs an input of at least {side}x{side} "
                f"(a {p}x{p} feature map), got a {h}x{w} feature map"
            )
        shape = (n, -1, h - p + 1, w - p + 1)
        y = F.unfold(x, p) if p > 1 else x.flatten(2)  # N x (C p p) x L, ordered as fc6's flattened input
        for name, module in zip(HEAD_NAMES, self.classifier):
            if isinstance(module, nn.Linear):
                y = torch.matmul(module.weight, y) + module.bias[:, None]
            else:
                y = F.relu(y) if isinstance(module, nn.ReLU) else module(y)
            yield name, y.view(shape)

    def _flat_head(self, x: torch.Tensor) -> Iterator[tuple[str, torch.Tensor]]:
        y = torch.flatten(self.avgpool(x), 1)
        for name, module in zip(HEAD_NAMES, self.classifier):
            # Not in place: an earlier tap (fc7) must survive the ReLU that follows it.
            y = F.relu(y) if isinstance(module, nn.ReLU) else module(y)
            yield name, y

    # -- named layers -------------------------------------------------------------------------------------------
    def layer(self, name: str) -> nn.Module:
        """The module known by a Caffe name such as ``"conv3_1"`` or ``"fc6"``."""
        return self._module_at(self.layer_index(name))

    def layer_index(self, name: str) -> int:
        """Position of a Caffe name in ``layer_names`` (trunk first, then fc6 ... fc8)."""
        if name not in self._index:
            raise ValueError(f"unknown layer {name!r}; this model has: {', '.join(self.layer_names)}")
        return self._index[name]

    def extract(self, x: torch.Tensor, names: str | Iterable[str], dense: bool = False) -> dict[str, torch.Tensor]:
        """Activations by Caffe name (``relu1_2``, ``pool5``, ``fc7`` ...), computing only as deep as needed.

        With ``dense=True`` the head runs as the paper's fully convolutional net: ``fc6`` ... ``fc8`` are maps
        N x C x h x w (as in ``score_map``) rather than vectors.
        """
        wanted = [names] if isinstance(names, str) else list(names)
        if not wanted:
            raise ValueError("extract needs at least one layer name")
        deepest = max(self.layer_index(name) for name in wanted)
        self.check_input(x)
        out: dict[str, torch.Tensor] = {}
        for name, module in zip(self.layer_names, self.features[: deepest + 1]):
            # Not in place: an earlier tap (conv1_1) must survive the ReLU that follows it.
            x = F.relu(x) if isinstance(module, nn.ReLU) else module(x)
            if name in wanted:
                out[name] = x
        if deepest >= len(self.features):
            for name, y in (self._dense_head if dense else self._flat_head)(x):
                if name in wanted:
                    out[name] = y
                if name == self.layer_names[deepest]:
                    break
        return {name: out[name].contiguous() for name in wanted}

    def forward_from(self, x: torch.Tensor, name: str) -> torch.Tensor:
        """The class scores, given ``x`` as the output of layer ``name``: the rest of the forward pass. With
        :meth:`extract` it splits the network at any layer (Grad-CAM takes gradients at the split)."""
        start, n = self.layer_index(name) + 1, len(self.features)
        rest = self.features[start:] if start <= n else self.classifier[start - n :]
        for module in rest:
            x = F.relu(x) if isinstance(module, nn.ReLU) else module(x)  # never in place on the given tensor
        if start > n:
            return x
        *_, (_, scores) = self._flat_head(x)
        return scores

    # -- fine-tuning --------------------------------------------------------------------------------------------
    def freeze(self, spec: str = "features") -> list[str]:
        """Stop training the first layers: ``"none"``, ``"features"`` (the whole convolutional trunk) or a Caffe
        name (``"conv4_3"``: that layer, its batch norm if it has one, and every layer before it). Frozen parameters
        no longer require gradients and frozen batch-norm layers stay in inference mode (running statistics
        unchanged) even under ``train()``. Returns the names of the frozen layers."""
        if spec == "none":
            last = -1
        elif spec == "features":
            last = len(self.features) - 1
        else:
            last = self.layer_index(spec)
            if last >= self.layer_index("fc8"):
                raise ValueError(f"freezing {spec} would leave nothing to train; freeze at most fc7")
            while last + 1 < len(self.features) and self.layer_names[last + 1].startswith("bn"):
                last += 1  # a frozen convolution's batch norm belongs to it: frozen with it
        for i in range(len(self.layer_names)):
            for p in self._module_at(i).parameters():
                p.requires_grad_(i > last)
        self.frozen = self.layer_names[: last + 1]
        return self.train(self.training).frozen

    def _module_at(self, i: int) -> nn.Module:
        n = len(self.features)
        return self.features[i] if i < n else self.classifier[i - n]

    def train(self, mode: bool = True) -> VGG:
        super().train(mode)
        for name in self.frozen:
            self.layer(name).eval()
        return self


def build(
    arch: str | Sequence[Layer] = "vgg16", *, batch_norm: bool | None = None, weights: str | None = None, **options: Any
) -> VGG:
    """Build a VGG by paper letter (``"D"``), common name (``"vgg16_bn"``) or configuration list.

    ``options`` are those of :class:`VGG`. ``weights`` (a path, URL or ``"torchvision"``) is passed to
    :func:`vggnet.load_weights` after building.
    """
    if isinstance(arch, str):
        letter, bn = resolve(arch)
        bn = bn if batch_norm is None else batch_norm
        model = VGG(CONFIGS[letter], batch_norm=bn, arch=canonical_name(letter, bn), **options)
    else:
        validate(list(arch))
        model = VGG(arch, batch_norm=bool(batch_norm), **options)
    if weights is not None:
        from .weights import load_weights

        load_weights(model, weights)
    return model


def _builder(name: str):
    def fn(*, weights: str | None = None, **options: Any) -> VGG:
        return build(name, weights=weights, **options)

    fn.__name__ = fn.__qualname__ = name
    letter, bn = resolve(name)
    fn.__doc__ = f"VGG configuration {letter}{' with batch normalisation' if bn else ''}; see :func:`build`."
    return fn


vgg11, vgg11_bn = _builder("vgg11"), _builder("vgg11_bn")
vgg11_lrn, vgg11_lrn_bn = _builder("vgg11_lrn"), _builder("vgg11_lrn_bn")
vgg13, vgg13_bn = _builder("vgg13"), _builder("vgg13_bn")
vgg16_conv1, vgg16_conv1_bn = _builder("vgg16_conv1"), _builder("vgg16_conv1_bn")
vgg16, vgg16_bn = _builder("vgg16"), _builder("vgg16_bn")
vgg19, vgg19_bn = _builder("vgg19"), _builder("vgg19_bn")
