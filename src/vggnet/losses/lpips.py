"""LPIPS (Zhang et al. 2018) on VGG-16, versions 0.1 and 0.0, equal to the ``lpips`` package's ``LPIPS(net="vgg")``
given the same trunk; its calibrated layers read from the installed package, a path, or a URL."""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path
from typing import Any

import torch

from ..base.normalization import Normalization
from ..inference.loading import Loaded
from ..network.model import VGG
from .describe import tensor_digest
from .inputs import masked_mean
from .metric import TapMetric
from .style import unit_length

LPIPS_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
VERSIONS = {
    "0.1": "the trunk takes lpips's scaling of [-1, 1] images (ImageNet's mean and std on [0, 1])",
    "0.0": "the trunk takes [-1, 1] images unscaled (the first release's normalisation bug, kept for its scores)",
}
# The authors' calibrated layers for VGG-16, where no lpips package is installed to read them from.
LPIPS_URL = "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v{version}/vgg.pth"
LPIPS_URL_V01 = LPIPS_URL.format(version="0.1")
V00_INPUT = Normalization((0.5, 0.5, 0.5), (0.5, 0.5, 0.5), source="LPIPS v0.0: [-1, 1] images as they are")


def installed_lpips_file(version: str = "0.1") -> Path | None:
    """The installed ``lpips`` package's own ``weights/v<version>/vgg.pth`` (found, not imported), or None."""
    spec = importlib.util.find_spec("lpips")
    found = Path(spec.origin).parent / "weights" / f"v{version}" / "vgg.pth" if spec and spec.origin else None
    return found if found is not None and found.is_file() else None


def _fetch_default(version: str) -> Path:
    """The authors' file, fetched once into torch's hub cache under a name that says its version."""
    from ..base.download import fetch

    cached = Path(torch.hub.get_dir()) / "checkpoints" / f"lpips_v{version}_vgg.pth"
    if not cached.is_file():
        advice = (
            f"To supply the file by hand, put it at {cached} (torch's hub cache), pass its path as "
            f"LPIPS(lin=PATH), or pip install lpips, whose wheel ships it"
        )
        fetch(LPIPS_URL.format(version=version), cached, advice)
    return cached


def lpips_layers(source: str | os.PathLike | None = None, version: str = "0.1") -> dict[str, torch.Tensor]:
    """LPIPS's calibrated linear layers for VGG-16, one weight per channel of relu1_2 ... relu5_3, by Caffe name:
    from ``source`` (a ``.pth``/``.safetensors`` file or a URL), else from the installed ``lpips`` package's
    ``weights/v<version>/vgg.pth`` (read, not imported), else downloaded once from the authors' repository into
    torch's hub cache."""
    from ..base.download import supplied_as
    from ..network.weights import download, read_file

    if version not in VERSIONS:
        raise ValueError(f"unknown LPIPS version {version!r}; expected one of {', '.join(VERSIONS)}")
    if source is None:
        source = installed_lpips_file(version) or _fetch_default(version)
    with supplied_as('LPIPS(lin="path/to/{name}")'):  # the Python argument, not a flag
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


class _WeightedSquares(torch.autograd.Function):
    """Per position, sum_c w_c (a_c - b_c)^2, keeping only a - b for the backward (autograd would keep its square
    as well: one map more per layer)."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        d = a - b
        ctx.save_for_backward(d, w)
        return (d * d * w).sum(1, keepdim=True)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        d, w = ctx.saved_tensors
        da = 2 * d * w * grad
        return da, (-da if ctx.needs_input_grad[1] else None), None


class LPIPS(TapMetric):
    """LPIPS (Zhang et al. 2018, VGG-16): the learned perceptual distance between images, as the ``lpips``
    package's ``LPIPS(net="vgg", version=...)`` computes it: at relu1_2 ... relu5_3 each activation is scaled to
    unit length over its channels, the squared differences weighted per channel by the calibrated linear layers
    (:func:`lpips_layers`; ``lin``: their file), summed over channels, averaged over the map, and summed over the
    layers. Returns N x 1 x 1 x 1, as lpips does (``reduction="mean"``: a scalar); ``spatial=True`` the N x 1 x H x W
    map (lpips's ``spatial=True``); ``per_layer=True`` (lpips's ``retPerLayer``) also each layer's value.

    Images come in ``input_range``, by default lpips's [-1, 1] (``(0, 1)`` for lpips's ``normalize=True``).
    ``version``: ``"0.1"`` (lpips's default) or ``"0.0"`` (:data:`VERSIONS`). The trunk is ``model`` or
    ``weights`` (torchvision's VGG-16, as lpips loads) with its weights' normalisation. The unit scaling has a
    finite gradient where a feature vector is zero (lpips's square root gives NaN there); everything after the
    trunk is float32 under autocast. Other options as :class:`vggnet.losses.TapMetric`.
    """

    metric_name = "LPIPS"
    definition = "sum_l mean_hw sum_c w_lc (phi_l(x)/|phi_l(x)| - phi_l(y)/|phi_l(y)|)^2 (Zhang et al. 2018)"
    reference = "lpips.LPIPS(net='vgg')"
    default_layers = dict.fromkeys(LPIPS_LAYERS, 1.0)
    default_range = (-1.0, 1.0)
    default_reduction = "none"

    def __init__(
        self,
        model: VGG | Loaded | None = None,
        weights: str | None = "torchvision",
        lin: str | os.PathLike | None = None,
        input_range: tuple[float, float] = (-1.0, 1.0),
        normalization: Normalization | None = None,
        *,
        version: str = "0.1",
        spatial: bool = False,
        **options: Any,
    ) -> None:
        if version not in VERSIONS:
            raise ValueError(f"unknown LPIPS version {version!r}; expected one of {', '.join(VERSIONS)}")
        if version == "0.0" and normalization is None:
            normalization = V00_INPUT
        super().__init__(model, "vgg16", weights, list(LPIPS_LAYERS), input_range, normalization, **options)
        self.metric_version, self.spatial = version, spatial
        self.lin_source = str(lin or installed_lpips_file(version) or f"the authors' v{version} file (hub cache)")
        for name, weight in lpips_layers(lin, version).items():
            channels = self.taps.channels_at(name)
            if weight.numel() != channels:
                raise ValueError(
                    f"LPIPS's layer for {name} has {weight.numel()} weights; the trunk has {channels} channels"
                )
            self.register_buffer(f"lin_{name}", weight.view(1, -1, 1, 1))

    def represent(self, name: str, activation: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return unit_length(activation)

    def position_map(self, name: str, mine: Any, target: Any) -> torch.Tensor:
        return _WeightedSquares.apply(mine, target, getattr(self, f"lin_{name}").to(mine.dtype))

    def distance(self, name: str, mine: Any, target: Any, mask: torch.Tensor | None) -> torch.Tensor:
        return masked_mean(self.position_map(name, mine, target), mask)

    def shape_output(self, value: torch.Tensor) -> torch.Tensor:
        return value.view(-1, 1, 1, 1) if value.dim() == 1 else value

    def describe(self) -> dict:
        d = super().describe()
        digest = tensor_digest(*(getattr(self, f"lin_{name}") for name in LPIPS_LAYERS))
        d.update(version=f"LPIPS v{self.metric_version}: {VERSIONS[self.metric_version]}")
        d.update(calibration=self.lin_source, calibration_sha256=digest, spatial=self.spatial)
        return d
