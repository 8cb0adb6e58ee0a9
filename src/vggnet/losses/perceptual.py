"""Perceptual (content) losses: Johnson et al.'s, and those of super-resolution and style transfer by name.

:class:`PerceptualLoss` compares activations at Caffe-named taps with a criterion (:data:`CRITERIA`), optionally
plus BasicSR's style term on their Grams. Presets: ``srgan("VGG22" | "VGG54")`` (Ledig et al. 2017: VGG-19 after
the ReLU, features / 12.75, MSE), ``esrgan()`` (Wang et al. 2018, BasicSR's config: ``conv5_4`` before the ReLU,
L1), ``real_esrgan()`` (five pre-activation taps, 0.1/0.1/1/1/1, L1) and ``gatys()`` (the content term of neural
style: relu4_2, half the sum of squares, average pooling).
"""

from __future__ import annotations

from typing import Any

import torch

from .inputs import masked_mean
from .metric import TapMetric
from .style import gram, gram_distance, safe_sqrt, unit_length

CRITERIA = {
    "mse": "mean squared difference",
    "l2": "mean squared difference (BasicSR's 'l2')",
    "l1": "mean absolute difference",
    "sse": "sum of squared differences",
    "fro": "Frobenius norm of the difference (over the batch, as BasicSR; per image with reduction='none')",
}
SRGAN_LAYERS = {"VGG22": "relu2_2", "VGG54": "relu5_4"}
REAL_ESRGAN_LAYERS = {"conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1.0, "conv4_4": 1.0, "conv5_4": 1.0}


class PerceptualLoss(TapMetric):
    """Content loss (Johnson et al. 2016): the sum over ``layers`` of weight x criterion(phi(x), phi(y)), phi the
    activation at that Caffe name (``relu2_2`` after the ReLU, ``conv5_4`` before it).

    ``criterion``: :data:`CRITERIA` (``"mse"`` by default). ``feature_scale`` multiplies the activations (SRGAN's
    1/12.75); ``normalize_features`` scales them to unit length over channels first (piq's option, finite
    gradients at zero vectors); ``channel_reduction="sum"`` sums over channels where ``"mean"`` averages (piq's
    ContentLoss sums). ``perceptual_weight`` and ``style_weight``: BasicSR's two terms, the style term the same
    criterion on Grams F F^T / (C H W). ``spatial=True``: forward returns N x 1 x H x W maps of the per-position
    distance, upsampled and summed over layers (mse and l1). A mask weights the positions compared.

    piq's ``ContentLoss(layers, weights, replace_pooling, distance, normalize_features)`` is ``PerceptualLoss(
    layers={...}, pooling="avg" if replace_pooling, criterion=distance ("l1" for "mae"), normalize_features=...,
    channel_reduction="sum")``; BasicSR's ``PerceptualLoss(layer_weights, vgg_type, criterion, perceptual_weight,
    style_weight)`` is ``PerceptualLoss(arch=vgg_type, layers=layer_weights, criterion=..., perceptual_weight=...,
    style_weight=...)``. Other arguments as :class:`vggnet.losses.TapMetric`.
    """

    metric_name = "perceptual loss"
    definition = "sum_l w_l criterion(phi_l(x), phi_l(y)) (Johnson et al. 2016)"
    reference = "Johnson et al. 2016; piq's ContentLoss and BasicSR's PerceptualLoss by their options"
    default_layers = {"relu2_2": 1.0}

    def __init__(
        self,
        *args: Any,
        criterion: str = "mse",
        feature_scale: float = 1.0,
        normalize_features: bool = False,
        channel_reduction: str = "mean",
        perceptual_weight: float = 1.0,
        style_weight: float = 0.0,
        spatial: bool = False,
        **kwargs: Any,
    ) -> None:
        if criterion not in CRITERIA:
            raise ValueError(f"unknown criterion {criterion!r}; expected one of {', '.join(CRITERIA)}")
        if channel_reduction not in ("mean", "sum"):
            raise ValueError(f"channel_reduction must be 'mean' or 'sum', got {channel_reduction!r}")
        if spatial and criterion not in ("mse", "l2", "l1"):
            raise ValueError(f"spatial maps are of the mse or l1 criterion, not {criterion!r}")
        super().__init__(*args, **kwargs)
        self.criterion, self.feature_scale, self.spatial = criterion, float(feature_scale), spatial
        self.normalize_features, self.channel_reduction = normalize_features, channel_reduction
        self.perceptual_weight, self.style_weight = float(perceptual_weight), float(style_weight)

    # -- the published ones ----------------------------------------------------------------------------------------
    @classmethod
    def srgan(cls, variant: str = "VGG54", **kwargs: Any) -> PerceptualLoss:
        """SRGAN's VGG loss (Ledig et al. 2017): VGG-19's activations after the ReLU before the 2nd (``VGG22``:
        relu2_2) or 5th pooling (``VGG54``: relu5_4), rescaled by 1/12.75, mean squared difference (the paper's
        "equivalent to multiplying Eq. 5 with a rescaling factor of about 0.006", 1/12.75^2)."""
        if variant not in SRGAN_LAYERS:
            raise ValueError(f"unknown SRGAN loss {variant!r}; expected VGG22 or VGG54")
        options = {"arch": "vgg19", "layers": {SRGAN_LAYERS[variant]: 1.0}, "criterion": "mse"}
        loss = cls(**{**options, "feature_scale": 1 / 12.75, **kwargs})
        loss.metric_name = f"SRGAN {variant} loss"
        loss.definition = "mean((phi(x) / 12.75 - phi(y) / 12.75)^2) (Ledig et al. 2017, Eq. 5 rescaled)"
        return loss

    @classmethod
    def esrgan(cls, **kwargs: Any) -> PerceptualLoss:
        """ESRGAN's perceptual loss (Wang et al. 2018) as BasicSR's configuration trains it: VGG-19's conv5_4
        before its ReLU, L1."""
        loss = cls(**{"arch": "vgg19", "layers": {"conv5_4": 1.0}, "criterion": "l1", **kwargs})
        loss.metric_name, loss.definition = "ESRGAN perceptual loss", "mean |conv5_4(x) - conv5_4(y)| (Wang et al.)"
        return loss

    @classmethod
    def real_esrgan(cls, **kwargs: Any) -> PerceptualLoss:
        """Real-ESRGAN's (Wang et al. 2021): conv1_2, conv2_2, conv3_4, conv4_4, conv5_4 before activation, weighted
        0.1, 0.1, 1, 1, 1, L1."""
        loss = cls(**{"arch": "vgg19", "layers": REAL_ESRGAN_LAYERS, "criterion": "l1", **kwargs})
        loss.metric_name = "Real-ESRGAN perceptual loss"
        return loss

    @classmethod
    def gatys(cls, **kwargs: Any) -> PerceptualLoss:
        """Gatys et al. (2016)'s content loss: 1/2 sum (F - P)^2 at relu4_2 of VGG-19 with average pooling."""
        options = {"arch": "vgg19", "layers": {"relu4_2": 0.5}, "criterion": "sse", "pooling": "avg"}
        loss = cls(**{**options, **kwargs})
        loss.metric_name, loss.definition = "Gatys content loss", "1/2 sum_ij (F_ij - P_ij)^2 at relu4_2"
        return loss

    # -- the computation -------------------------------------------------------------------------------------------
    def represent(self, name: str, activation: torch.Tensor, mask: torch.Tensor | None) -> Any:
        a = activation * self.feature_scale if self.feature_scale != 1 else activation
        if self.normalize_features:
            a = unit_length(a)
        return (a, gram(a, "chw", mask) if self.style_weight else None)

    def position_map(self, name: str, mine: Any, target: Any) -> torch.Tensor:
        d = mine[0] - target[0]
        d = d.abs() if self.criterion == "l1" else d.square()
        summed = self.channel_reduction == "sum" or self.criterion in ("sse", "fro")
        return d.sum(1, keepdim=True) if summed else d.mean(1, keepdim=True)

    def _content(self, name: str, mine: Any, target: Any, mask: torch.Tensor | None) -> torch.Tensor:
        per_position = self.position_map(name, mine, target)
        value = masked_mean(per_position, mask)
        if self.criterion in ("sse", "fro"):  # sums over positions, not means
            area = mask.expand(len(value), *mask.shape[1:]).sum((1, 2, 3)) if mask is not None else None
            value = value * (per_position.shape[-2] * per_position.shape[-1] if area is None else area)
        return value

    def distance(self, name: str, mine: Any, target: Any, mask: torch.Tensor | None) -> torch.Tensor:
        """Per sample, the perceptual and style terms (squared sums for ``fro``, whose roots come after reduction),
        weighted and summed for the other criteria."""
        terms = [self._content(name, mine, target, mask)]
        if self.style_weight:
            terms.append(gram_distance("sse" if self.criterion == "fro" else self.criterion, mine[1], target[1]))
        values = torch.stack(terms, 1)
        return values if self.criterion == "fro" else values @ self._term_weights(values)

    def _term_weights(self, values: torch.Tensor) -> torch.Tensor:
        weights = [self.perceptual_weight, self.style_weight][: values.shape[-1]]
        return torch.tensor(weights, dtype=values.dtype, device=values.device)

    def batch_value(self, values: torch.Tensor) -> torch.Tensor:
        return values.sum(0) if self.criterion == "fro" else values.mean(0)

    def finish_layer(self, name: str, value: torch.Tensor) -> torch.Tensor:
        if self.criterion != "fro":
            return value
        norms = safe_sqrt(value)  # the perceptual and (where asked) the style term, each a norm
        return norms @ self._term_weights(norms)

    def describe(self) -> dict:
        d = super().describe()
        d.update(criterion=CRITERIA[self.criterion], feature_scale=self.feature_scale)
        d.update(normalize_features=self.normalize_features, channel_reduction=self.channel_reduction)
        if self.style_weight:
            d.update(perceptual_weight=self.perceptual_weight, style_weight=self.style_weight)
        return d
