"""DISTS (Ding et al. 2020), equal to the ``dists-pytorch`` package's ``DISTS_pytorch.DISTS`` given the same trunk:
VGG-16 with L2 pooling in place of max pooling, structure and texture similarities of the image and of relu1_2 ...
relu5_3, weighted by the authors' alpha and beta (read from the installed package's ``weights.pt`` or a path)."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

import torch

from ..base.normalization import Normalization
from ..inference.loading import Loaded
from ..network.model import VGG
from .describe import tensor_digest
from .metric import TapMetric

DISTS_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
DISTS_CHANNELS = (3, 64, 128, 256, 512, 512)  # the image itself, then the five taps
C1 = C2 = 1e-6


def installed_dists_file() -> Path | None:
    """The ``weights.pt`` the ``dists-pytorch`` wheel ships (beside ``DISTS_pytorch``, or in the environment's
    prefix where the package itself reads it), or None."""
    spec = importlib.util.find_spec("DISTS_pytorch")
    places = [Path(spec.origin).parent / "weights.pt"] if spec and spec.origin else []
    places.append(Path(sys.prefix) / "weights.pt")
    return next((p for p in places if p.is_file()), None)


def dists_weights(source: str | os.PathLike | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """DISTS's alpha and beta (1,475 weights each: the image's 3 channels, then relu1_2 ... relu5_3's) from
    ``source`` or the installed ``dists-pytorch`` package; never downloaded."""
    from ..network.weights import read_file

    if source is None:
        source = installed_dists_file()
        if source is None:
            raise ValueError(
                "DISTS's alpha and beta ship in the dists-pytorch wheel: pip install dists-pytorch, or pass the "
                "file as DISTS(alpha_beta=PATH) (its weights.pt, or any file with tensors 'alpha' and 'beta')"
            )
    state = read_file(source)
    total = sum(DISTS_CHANNELS)
    if "alpha" not in state or "beta" not in state or state["alpha"].numel() != total != state["beta"].numel():
        raise ValueError(
            f"{source} holds no DISTS weights ('alpha' and 'beta' of {total} values); it has "
            f"{', '.join(f'{k} {tuple(v.shape)}' for k, v in list(state.items())[:6])}"
        )
    return state["alpha"].reshape(-1).float(), state["beta"].reshape(-1).float()


def _weighted_stats(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
    """Per sample and channel: the means, variances and covariance of two maps over positions (weighted)."""
    if mask is None:
        mean_a, mean_b = a.mean((2, 3)), b.mean((2, 3))
        var_a = ((a - mean_a[..., None, None]) ** 2).mean((2, 3))
        var_b = ((b - mean_b[..., None, None]) ** 2).mean((2, 3))
        cov = (a * b).mean((2, 3)) - mean_a * mean_b
        return mean_a, mean_b, var_a, var_b, cov
    w = mask.expand(len(a), 1, *a.shape[2:])
    w = w / w.sum((2, 3), keepdim=True).clamp_min(1e-12)

    def avg(t: torch.Tensor) -> torch.Tensor:
        return (t * w).sum((2, 3))

    mean_a, mean_b = avg(a), avg(b)
    var_a, var_b = avg((a - mean_a[..., None, None]) ** 2), avg((b - mean_b[..., None, None]) ** 2)
    return mean_a, mean_b, var_a, var_b, avg(a * b) - mean_a * mean_b


def _similarities(stats: tuple[torch.Tensor, ...], alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    mean_x, mean_y, var_x, var_y, cov = stats
    structure = (2 * mean_x * mean_y + C1) / (mean_x**2 + mean_y**2 + C1)
    texture = (2 * cov + C2) / (var_x + var_y + C2)
    return (alpha * structure + beta * texture).sum(1)


class _Similarity(torch.autograd.Function):
    """A layer's alpha-and-beta-weighted structure and texture similarities per sample, for an image ``a`` against
    a target ``b`` without gradient. The backward is one pass over the map from a, b and the per-channel
    statistics, where autograd would keep the centred map and add four gradients of different layouts."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        stats = _weighted_stats(a, b, None)
        ctx.save_for_backward(a, b, alpha, beta, *stats)
        return _similarities(stats, alpha, beta)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        a, b, alpha, beta, mean_x, mean_y, var_x, var_y, cov = ctx.saved_tensors
        if ctx.needs_input_grad[1]:
            raise RuntimeError("DISTS's target takes no gradient")
        d1, n1 = mean_x**2 + mean_y**2 + C1, 2 * mean_x * mean_y + C1
        d2, n2 = var_x + var_y + C2, 2 * cov + C2
        scale = grad.view(-1, 1) / (a.shape[2] * a.shape[3])
        d_mean = alpha * (2 * mean_y * d1 - 2 * n1 * mean_x) / d1**2  # d structure / d mean_x
        c_b = scale * 2 * beta / d2  # d texture / d a_i = 2 (b_i - mean_y - r (a_i - mean_x)) / (M d2)
        c_a = -c_b * n2 / d2
        c_0 = scale * d_mean - c_b * mean_y - c_a * mean_x
        out = b * c_b[..., None, None]
        out.addcmul_(a, c_a[..., None, None]).add_(c_0[..., None, None])
        return out, None, None, None


class DISTS(TapMetric):
    """DISTS (Ding et al. 2020): 1 - sum over the image and relu1_2 ... relu5_3 (VGG-16 with L2 pooling) and their
    channels of alpha x (2 mu_x mu_y + c) / (mu_x^2 + mu_y^2 + c) + beta x (2 s_xy + c) / (s_x^2 + s_y^2 + c), the
    means, variances and covariance over each map, c = 1e-6, alpha and beta the authors' (``alpha_beta``: their
    file; by default the installed ``dists-pytorch`` package's) divided by their sum. One value per image
    (``reduction="mean"``: their mean), as ``DISTS_pytorch.DISTS()(x, y)``; images in [0, 1] by default. Masks
    weight the statistics; ``per_layer=True`` gives each tap's similarity term (the image's under ``"image"``).
    Other options as :class:`vggnet.losses.TapMetric` (``channels="repeat"`` only: alpha and beta cover three)."""

    metric_name = "DISTS"
    definition = "1 - sum_l sum_c alpha_lc S1(mu) + beta_lc S2(sigma) (Ding et al. 2020)"
    reference = "DISTS_pytorch.DISTS()"
    default_layers = dict.fromkeys(DISTS_LAYERS, 1.0)
    default_pooling = "l2"
    default_reduction = "none"
    needs_image = True

    def __init__(
        self,
        model: VGG | Loaded | None = None,
        weights: str | None = "torchvision",
        alpha_beta: str | os.PathLike | None = None,
        input_range: tuple[float, float] = (0.0, 1.0),
        normalization: Normalization | None = None,
        **options: Any,
    ) -> None:
        if options.get("channels", "repeat") != "repeat":
            raise ValueError("DISTS's alpha and beta weigh the image's three channels: use channels='repeat'")
        super().__init__(model, "vgg16", weights, list(DISTS_LAYERS), input_range, normalization, **options)
        if self.channels != 3:
            raise ValueError(f"DISTS needs a trunk for RGB images, got one for {self.channels} channels")
        alpha, beta = dists_weights(alpha_beta)
        for name, c in zip(DISTS_LAYERS, DISTS_CHANNELS[1:]):
            if self.taps.channels_at(name) != c:
                raise ValueError(f"DISTS weighs {c} channels at {name}; the trunk has {self.taps.channels_at(name)}")
        self.source_of_weights = str(alpha_beta or installed_dists_file())
        scale = alpha.sum() + beta.sum()
        bounds = torch.tensor((0, *DISTS_CHANNELS)).cumsum(0).tolist()
        for name, lo, hi in zip(("image", *DISTS_LAYERS), bounds, bounds[1:]):
            self.register_buffer(f"alpha_{name}", (alpha[lo:hi] / scale).view(1, -1))
            self.register_buffer(f"beta_{name}", (beta[lo:hi] / scale).view(1, -1))
        self.metric_version = "Ding et al. 2020, as DISTS_pytorch 0.1 computes it"

    def distance(self, name: str, mine: Any, target: Any, mask: torch.Tensor | None) -> torch.Tensor:
        alpha, beta = getattr(self, f"alpha_{name}").to(mine.dtype), getattr(self, f"beta_{name}").to(mine.dtype)
        if mask is None and not target.requires_grad:
            return _Similarity.apply(mine, target, alpha, beta)
        return _similarities(_weighted_stats(mine, target, mask), alpha, beta)

    def combine(self, values: dict[str, torch.Tensor]) -> torch.Tensor:
        return 1 - sum(values.values())

    def describe(self) -> dict:
        d = super().describe()
        names = ("image", *DISTS_LAYERS)
        digest = tensor_digest(*(getattr(self, f"{w}_{n}") for w in ("alpha", "beta") for n in names))
        d.update(taps={"image": "the image itself, in [0, 1]", **{n: "after activation" for n in DISTS_LAYERS}})
        d.update(calibration=self.source_of_weights, calibration_sha256=digest, constants={"c1": C1, "c2": C2})
        return d
