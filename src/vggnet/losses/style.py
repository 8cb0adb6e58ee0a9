"""Gram-matrix style losses (Gatys et al. 2016 and the conventions of those who followed), and total variation.

:func:`gram` with each normalisation in use (:data:`GRAMS`), :class:`StyleLoss` (Johnson et al.'s by default;
``StyleLoss.gatys()`` the paper's own; piq's ``StyleLoss`` with ``gram="none"``), and :func:`total_variation`
(piq's three norms, with a gradient at flat images).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .inputs import wide
from .metric import TapMetric

GRAMS = {
    "chw": "G = F F^T / (C H W) (Johnson et al. 2016; BasicSR)",
    "hw": "G = F F^T / (H W)",
    "gatys": "G = F F^T / (2 H W): with the mse criterion, sum_ij (G - A)^2 / (4 N^2 M^2), Gatys et al. 2016 Eq. 4",
    "none": "G = F F^T (piq)",
}
STYLE_CRITERIA = {
    "mse": "mean squared difference of the Grams' entries",
    "l1": "mean absolute difference of the Grams' entries",
    "sse": "sum of squared differences of the Grams' entries",
    "fro": "Frobenius norm of the Grams' difference (over the batch, as BasicSR; per image with reduction='none')",
}
GATYS_STYLE = {"relu1_1": 0.2, "relu2_1": 0.2, "relu3_1": 0.2, "relu4_1": 0.2, "relu5_1": 0.2}
TV_NORMS = ("l1", "l2", "l2_squared")


def gram(activation: torch.Tensor, normalize: str = "chw", mask: torch.Tensor | None = None) -> torch.Tensor:
    """Gram matrices N x C x C of activations N x C x H x W, in float32 whatever autocast says, normalised as
    :data:`GRAMS` (``"chw"``: F F^T / (C H W)). With ``mask`` (N or 1 x 1 x H x W weights), the positions weighted
    and H W replaced by the mask's sum."""
    if normalize not in GRAMS:
        raise ValueError(f"unknown Gram normalisation {normalize!r}; expected one of {', '.join(GRAMS)}")
    n, c, h, w = activation.shape
    with torch.autocast(activation.device.type, enabled=False):
        f = wide(activation.reshape(n, c, h * w))
        area = torch.full((n,), float(h * w), device=f.device, dtype=f.dtype)
        if mask is not None:
            m = mask.to(f.dtype).reshape(-1, 1, h * w)
            f, area = f * m.sqrt(), m.sum((1, 2)).expand(n).clamp_min(1e-12)
        g = torch.bmm(f, f.transpose(1, 2))
        scale = {"chw": c * area, "hw": area, "gatys": 2 * area, "none": torch.ones_like(area)}[normalize]
        return g / scale.view(n, 1, 1)


def gram_distance(criterion: str, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per sample, the distance between Grams (squared sums for ``fro``: its root is taken after reduction)."""
    d = a - b
    if criterion in ("mse", "l2"):
        return d.square().mean((1, 2))
    if criterion == "l1":
        return d.abs().mean((1, 2))
    return d.square().sum((1, 2))


def safe_sqrt(value: torch.Tensor) -> torch.Tensor:
    """The root of a sum of squares, with a zero gradient (not NaN) where it is 0."""
    positive = value > 0
    return torch.where(positive, value, torch.ones_like(value)).sqrt() * positive


def unit_length(a: torch.Tensor) -> torch.Tensor:
    """Activations scaled to unit length over channels, as LPIPS and piq do (a + 1e-10 under the division), with
    a finite gradient where a vector is zero (the norm's own backward, not the root of a sum of squares)."""
    return a / (torch.linalg.vector_norm(a, dim=1, keepdim=True) + 1e-10)


class StyleLoss(TapMetric):
    """Style loss (Gatys et al. 2016): the sum over ``layers`` of weight x criterion(G(x), G(y)), G the Gram matrix
    of the activations. ``gram``: its normalisation (:data:`GRAMS`; ``"chw"`` by default, as Johnson et al.);
    ``criterion``: ``"mse"``, ``"l1"``, ``"sse"`` or ``"fro"`` (:data:`STYLE_CRITERIA`); ``normalize_features``:
    activations scaled to unit length over channels first (piq's option). Grams are taken in float32 under autocast.
    A mask weights the positions of both Grams (of x, and of y where given; a fixed target's Gram is of the whole
    target). Other arguments as :class:`vggnet.losses.TapMetric`.

    piq's ``StyleLoss(layers, weights, distance)`` is ``StyleLoss(layers={...}, gram="none", criterion="mse")``
    (``"l1"`` for its ``"mae"``); ``StyleLoss.gatys()`` is the paper's.
    """

    metric_name = "style loss"
    reference = "Gatys et al. 2016; Johnson et al. 2016; piq's StyleLoss with gram='none'"
    definition = "sum_l w_l criterion(G_l(x), G_l(y)), G the Gram matrix of the tap's activations (Gatys et al. 2016)"
    default_layers = {"relu1_2": 1.0, "relu2_2": 1.0, "relu3_3": 1.0, "relu4_3": 1.0}
    size_free = True

    def __init__(
        self,
        *args: Any,
        gram: str = "chw",
        criterion: str = "mse",
        normalize_features: bool = False,
        **kwargs: Any,
    ) -> None:
        if gram not in GRAMS:
            raise ValueError(f"unknown Gram normalisation {gram!r}; expected one of {', '.join(GRAMS)}")
        if criterion not in (*STYLE_CRITERIA, "l2"):
            raise ValueError(f"unknown criterion {criterion!r}; expected one of {', '.join(STYLE_CRITERIA)}")
        super().__init__(*args, **kwargs)
        self.gram, self.criterion, self.normalize_features = gram, criterion, normalize_features

    @classmethod
    def gatys(cls, **kwargs: Any) -> StyleLoss:
        """Gatys et al. (2016)'s style loss: VGG-19 with average pooling, relu1_1 ... relu5_1 weighted 1/5 each,
        E_l = sum_ij (G_l - A_l)^2 / (4 N_l^2 M_l^2) (for their normalised network: :func:`normalize_filters`)."""
        options = {"arch": "vgg19", "layers": GATYS_STYLE, "pooling": "avg", "gram": "gatys", "criterion": "mse"}
        loss = cls(**{**options, **kwargs})
        loss.metric_name, loss.definition = "Gatys style loss", "sum_l w_l sum_ij (G_l - A_l)^2 / (4 N_l^2 M_l^2)"
        return loss

    def represent(self, name: str, activation: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        a = unit_length(activation) if self.normalize_features else activation
        return gram(a, self.gram, mask)

    def distance(self, name: str, mine: Any, target: Any, mask: torch.Tensor | None) -> torch.Tensor:
        return gram_distance(self.criterion, mine, target)

    def batch_value(self, values: torch.Tensor) -> torch.Tensor:
        return values.sum(0) if self.criterion == "fro" else values.mean(0)

    def finish_layer(self, name: str, value: torch.Tensor) -> torch.Tensor:
        return safe_sqrt(value) if self.criterion == "fro" else value

    def describe(self) -> dict:
        d = super().describe()
        d.update(gram=GRAMS[self.gram], criterion=STYLE_CRITERIA.get(self.criterion, "mean squared difference"))
        d.update(normalize_features=self.normalize_features)
        return d


def total_variation(x: torch.Tensor, norm: str = "l2", reduction: str = "mean") -> torch.Tensor:
    """Total variation of images N x C x H x W (or volumes N x C x D x H x W): per image, the differences between
    neighbours along each spatial axis, summed as ``"l1"`` (sum of absolute values), ``"l2_squared"`` (sum of
    squares) or ``"l2"`` (its root, whose gradient stays finite on a flat image); as piq's
    ``total_variation(x, reduction, norm_type)``. ``reduction``: ``"mean"``, ``"sum"`` or ``"none"``."""
    if norm not in TV_NORMS:
        raise ValueError(f"unknown total variation norm {norm!r}; expected one of {', '.join(TV_NORMS)}")
    if x.dim() not in (4, 5):
        raise ValueError(f"total variation takes images N x C x H x W or volumes N x C x D x H x W, got {x.shape}")
    with torch.autocast(x.device.type, enabled=False):
        diffs = [torch.diff(wide(x), dim=axis).flatten(1) for axis in range(2, x.dim())]
        if norm == "l1":
            score = sum(d.abs().sum(1) for d in diffs)
        elif norm == "l2_squared":
            score = sum(d.square().sum(1) for d in diffs)
        else:
            score = torch.linalg.vector_norm(torch.cat(diffs, 1), dim=1)
    if reduction == "none":
        return score
    if reduction not in ("mean", "sum"):
        raise ValueError(f"unknown reduction {reduction!r}; expected mean, sum or none")
    return score.mean() if reduction == "mean" else score.sum()


class TotalVariation(nn.Module):
    """:func:`total_variation` as a module (piq's ``TVLoss``): a smoothness prior, e.g. for style transfer."""

    def __init__(self, norm: str = "l2", reduction: str = "mean") -> None:
        super().__init__()
        total_variation(torch.zeros(1, 1, 2, 2), norm, reduction)  # the arguments, checked now
        self.norm, self.reduction = norm, reduction

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return total_variation(x, self.norm, self.reduction)

    def extra_repr(self) -> str:
        return f"norm={self.norm!r}, reduction={self.reduction!r}"
