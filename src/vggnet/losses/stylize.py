"""Neural style transfer (Gatys et al. 2016, "Image Style Transfer Using Convolutional Neural Networks"): a picture
that keeps one image's content and takes another's style, found by optimising its pixels against a VGG's features.

:class:`NeuralStyle` is the objective alpha L_content + beta L_style + tv L_TV, its terms those of
:class:`~vggnet.losses.PerceptualLoss` and :class:`~vggnet.losses.StyleLoss` in one of two forms (:data:`LOSS_FORMS`:
the paper's sums, or the means of PyTorch's neural-style tutorial), computed on one pass through a trunk both share;
:func:`stylize` optimises a picture with L-BFGS or Adam; :func:`read_picture` and :func:`save_picture` (atomic, any
format Pillow writes) serve the command, and :func:`normalized_on_folder` makes Gatys's normalised network from a
folder of images.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..base.files import atomic_write
from ..base.normalization import Normalization
from ..data.images import BadImage, read_image, to_gray
from ..data.sources import any_images
from ..inference.loading import Loaded
from ..network.model import VGG
from .gatys import normalize_filters
from .inputs import wide
from .perceptual import PerceptualLoss
from .style import GATYS_STYLE, StyleLoss, total_variation
from .taps import FeatureTaps, layer_weights, load_trunk

LOSS_FORMS = {
    "gatys": "the paper's sums: content 1/2 sum (F - P)^2 (Eq. 1), style sum (G - A)^2 / (4 N^2 M^2) with G = F F^T "
    "(Eq. 4)",
    "means": "means, as PyTorch's neural-style tutorial: content mean (F - P)^2, style mean (G - A)^2 with "
    "G = F F^T / (C H W)",
}
GATYS_CONTENT = {"relu4_2": 1.0}
INITS = {
    "content": "the content image (fewer steps to a good picture than from noise)",
    "noise": "white noise, uniform on [0, 1], drawn with --seed (the paper's start)",
    "style": "the style image, resized to the content image's size",
}
OPTIMIZERS = {"lbfgs": 1.0, "adam": 0.02}  # each one's default learning rate (pixels on [0, 1])


class NeuralStyle(nn.Module):
    """Gatys et al.'s objective on any VGG vggnet loads: ``content_weight`` (alpha) x the content term at
    ``content_layers`` + ``style_weight`` (beta) x the style term at ``style_layers`` + ``tv_weight`` x the total
    variation (the sum of squared differences of neighbouring pixels, on [0, 1]). Layers by Caffe name (``relu4_2``
    after the ReLU, ``conv4_2`` before it), as a mapping to weights or a list (content: weight 1 each; style: 1/n each,
    the paper's w_l). ``losses``: :data:`LOSS_FORMS`. ``pooling``: ``"avg"`` (the paper's) or ``"max"``.

    ``model``, ``arch``, ``weights`` and ``normalization`` as :class:`~vggnet.losses.TapMetric`. Fix the images with
    :meth:`set_images`; ``objective(picture)`` is the total, :attr:`terms` its parts (unweighted) from that call.
    """

    def __init__(
        self,
        model: VGG | Loaded | None = None,
        content_layers: Mapping[str, float] | Sequence[str] | None = None,
        style_layers: Mapping[str, float] | Sequence[str] | None = None,
        content_weight: float = 1.0,
        style_weight: float = 1e3,
        tv_weight: float = 0.0,
        *,
        arch: str = "vgg19",
        weights: str | None = "torchvision",
        pooling: str = "avg",
        losses: str = "gatys",
        normalization: Normalization | None = None,
    ) -> None:
        super().__init__()
        if losses not in LOSS_FORMS:
            raise ValueError(f"unknown losses {losses!r}; expected one of {', '.join(LOSS_FORMS)}")
        for name, value in (
            ("content_weight", content_weight),
            ("style_weight", style_weight),
            ("tv_weight", tv_weight),
        ):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        content = layer_weights(content_layers or GATYS_CONTENT)
        style = _style_weights(style_layers)
        model, normalization, source = load_trunk(model, arch, weights, [*content, *style], normalization)
        half, gram = (0.5, "gatys") if losses == "gatys" else (1.0, "chw")
        shared = {"normalization": normalization, "pooling": pooling}
        criterion = "sse" if losses == "gatys" else "mse"
        self.content_loss = PerceptualLoss(
            model, layers={n: half * w for n, w in content.items()}, criterion=criterion, **shared
        )
        self.style_loss = StyleLoss(model, layers=style, gram=gram, criterion="mse", **shared)
        self.taps = FeatureTaps(model, list(dict.fromkeys([*content, *style])), pooling)
        self.content_loss.taps = self.style_loss.taps = self.taps  # one trunk, one pass for both terms
        self.normalization, self.weights_source, self.losses = normalization, source, losses
        self.channels, self.min_size = (
            model.in_channels,
            2 ** self.taps.pools(),
        )  # a map of one position at the deepest tap
        self.content_weight, self.style_weight, self.tv_weight = (
            float(content_weight),
            float(style_weight),
            float(tv_weight),
        )
        self.terms: dict[str, float] = {}

    @torch.no_grad()
    def set_images(self, content: torch.Tensor, style: torch.Tensor) -> None:
        """The content image (the picture will have its size) and the style image (any size): 1 x C x H x W (or
        C x H x W) in [0, 1], grey or RGB whatever the trunk takes. Their features are computed here, once."""
        content, style = (self.as_input(t, what) for t, what in ((content, "content"), (style, "style")))
        device = self.taps.layers[0].weight.device
        self.content_loss.set_target(content.to(device))
        self.style_loss.set_target(style.to(device))
        self.content_shape = tuple(content.shape)

    def as_input(self, image: torch.Tensor, what: str = "image") -> torch.Tensor:
        """``image`` as 1 x C x H x W float with the trunk's channels (RGB made grey, grey repeated), checked."""
        if not isinstance(image, torch.Tensor) or image.dim() not in (3, 4) or not image.is_floating_point():
            raise ValueError(f"the {what} image must be a float tensor C x H x W or 1 x C x H x W in [0, 1]")
        image = image[None] if image.dim() == 3 else image
        c = image.shape[1]
        if len(image) != 1 or c not in (1, 3):
            raise ValueError(f"the {what} image must be one grey or RGB image, got {tuple(image.shape)}")
        if c != self.channels:
            image = image.expand(-1, 3, -1, -1) if c == 1 else to_gray(image)
        if min(image.shape[-2:]) < self.min_size:
            raise ValueError(
                f"the {what} image is {image.shape[-1]}x{image.shape[-2]}: these taps need at least "
                f"{self.min_size} px a side"
            )
        return image

    def forward(self, picture: torch.Tensor) -> torch.Tensor:
        """alpha L_content + beta L_style + tv L_TV of ``picture`` (1 x C x H x W, the content image's size, [0, 1])."""
        if self.content_loss._target_reps is None:
            raise ValueError("set the content and style images first: objective.set_images(content, style)")
        if tuple(picture.shape) != self.content_shape:
            raise ValueError(
                f"the picture must have the content image's shape {self.content_shape}, got {tuple(picture.shape)}"
            )
        terms = {"content": 0.0, "style": 0.0}
        losses = {"content": self.content_loss, "style": self.style_loss}
        fixed = {key: loss._fixed_reps(1) for key, loss in losses.items()}
        for name, activation in self.taps.stream(
            self.normalization(picture).contiguous(memory_format=torch.channels_last)
        ):
            with torch.autocast(picture.device.type, enabled=False):
                a = wide(activation)
                for key, loss in losses.items():
                    if name in loss.layer_weights:
                        value = loss.distance(name, loss.represent(name, a, None), fixed[key][name], None)
                        terms[key] = terms[key] + loss.layer_weights[name] * loss.finish_layer(
                            name, loss.batch_value(value)
                        )
        terms["tv"] = total_variation(picture, "l2_squared", "sum") if self.tv_weight else torch.zeros(())
        self.terms = {key: float(v.detach()) if torch.is_tensor(v) else v for key, v in terms.items()}
        return (
            self.content_weight * terms["content"] + self.style_weight * terms["style"] + self.tv_weight * terms["tv"]
        )

    def describe(self) -> dict[str, Any]:
        """How the objective computes: its two terms' descriptions, the weights, the loss form."""
        return {
            "objective": "alpha L_content + beta L_style + tv L_TV (Gatys et al. 2016, Eq. 7; TV: sum of squared "
            "differences of neighbouring pixels)",
            "losses": LOSS_FORMS[self.losses],
            "alpha": self.content_weight,
            "beta": self.style_weight,
            "tv": self.tv_weight,
            "content": self.content_loss.describe(),
            "style": self.style_loss.describe(),
        }


def _style_weights(layers: Mapping[str, float] | Sequence[str] | None) -> dict[str, float]:
    """Style layers with their weights: the paper's by default, a list weighted 1/n each."""
    if layers is None:
        return dict(GATYS_STYLE)
    found = layer_weights(layers)
    return found if isinstance(layers, Mapping) else {name: 1 / len(found) for name in found}


@dataclass
class Step:
    """What :func:`stylize`'s callback is told after each step: the step (1 ..), how many there are, the objective's
    value and its terms at the picture before the step, and the picture after it (1 x C x H x W on [0, 1])."""

    step: int
    steps: int
    loss: float
    terms: dict[str, float]
    picture: torch.Tensor


def stylize(
    content: torch.Tensor,
    style: torch.Tensor,
    objective: NeuralStyle | None = None,
    *,
    optimizer: str = "lbfgs",
    steps: int = 500,
    lr: float | None = None,
    init: str = "content",
    seed: int = 0,
    clamp: bool = False,
    device: str | torch.device | None = None,
    callback: Callable[[Step], None] | None = None,
    **options: Any,
) -> torch.Tensor:
    """A picture with ``content``'s layout in ``style``'s style (both C x H x W or 1 x C x H x W on [0, 1]; the
    style image any size): ``steps`` steps of ``optimizer`` (``"lbfgs"``: one L-BFGS iteration each, lr 1, as the
    paper; ``"adam"``: lr 0.02 by default) on the pixels of a picture started from ``init`` (:data:`INITS`), free to
    leave [0, 1] on the way (as in the authors' Caffe code) or, with ``clamp``, put back on it before each evaluation
    (as PyTorch's tutorial). ``objective``: a :class:`NeuralStyle`, else one made
    from ``options`` (its arguments: ``weights``, ``content_layers``, ``style_weight`` ...). Returns the picture,
    1 x C x H x W on [0, 1], on the CPU; ``callback(step)`` is called after every step (:class:`Step`)."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; expected one of {', '.join(OPTIMIZERS)}")
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; expected one of {', '.join(INITS)}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    lr = OPTIMIZERS[optimizer] if lr is None else lr
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    device = torch.device(device or "cpu")
    objective = (objective or NeuralStyle(**options)).to(device)
    objective.set_images(content, style)
    start = start_picture(objective, content, style, init, seed)
    picture = start.to(device).contiguous().requires_grad_(True)  # L-BFGS views its gradient flat
    step_once = _optimizer(picture, objective, optimizer, lr, clamp)
    for step in range(1, steps + 1):
        loss = step_once()
        if callback is not None:
            callback(Step(step, steps, loss, dict(objective.terms), picture.detach().clamp(0, 1)))
    result = picture.detach().clamp(0, 1)
    with torch.no_grad():
        objective(result)  # its terms now those of the picture returned
    return result.cpu()


def start_picture(
    objective: NeuralStyle, content: torch.Tensor, style: torch.Tensor, init: str, seed: int
) -> torch.Tensor:
    """The picture the optimisation starts from (:data:`INITS`), the content image's shape."""
    content = objective.as_input(content, "content")
    if init == "content":
        return content.detach().clone().float()
    if init == "style":
        from torchvision.transforms.v2.functional import resize

        return resize(objective.as_input(style, "style").float(), list(content.shape[-2:]), antialias=True).clamp(0, 1)
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(content.shape, generator=generator)


def _optimizer(picture: torch.Tensor, objective: NeuralStyle, kind: str, lr: float, clamp: bool) -> Callable[[], float]:
    """One step of the optimisation, returning the objective's value before it. The optimiser sees the objective
    divided by its starting value: PyTorch's L-BFGS falls back to a unit Hessian where a step's curvature is not
    positive (as at the start from noise), and a unit step on the paper's sums over Caffe-scale activations
    (gradients of 1e9 per pixel) overflows; Adam is indifferent to the scale."""
    scale: list[float] = []

    def closure() -> torch.Tensor:
        if clamp:
            with torch.no_grad():
                picture.clamp_(0, 1)
        optimizer.zero_grad()
        loss = objective(picture)
        if not scale:
            scale.append(max(float(loss.detach()), 1e-30))
        (loss / scale[0]).backward()
        return loss.detach() / scale[0]

    if kind == "lbfgs":  # one iteration a call: the same iterates as max_iter=N in one call, with a callback between
        optimizer: torch.optim.Optimizer = torch.optim.LBFGS([picture], lr=lr, max_iter=1)
    else:
        optimizer = torch.optim.Adam([picture], lr=lr)

    def step() -> float:
        value = float(optimizer.step(closure)) * scale[0]
        if not math.isfinite(value):
            raise ValueError("the objective became NaN or infinite: lower --lr or the loss weights")
        return value

    return step


# -- pictures and the normalised network ------------------------------------------------------------------------------
def read_picture(path: str | os.PathLike, size: int | None = None, channels: int = 3) -> torch.Tensor:
    """An image file as 1 x C x H x W on [0, 1] (``channels`` 1: grey, 3: RGB), resized (antialiased) so that its
    longer side is ``size``; ``ValueError`` naming the file where it is missing or not an image."""
    image = read_image(path, channels).float().div(255)[None]
    if size is not None:
        from torchvision.transforms.v2.functional import resize

        h, w = image.shape[-2:]
        scale = size / max(h, w)
        shape = [max(1, round(h * scale)), max(1, round(w * scale))]
        if shape != [h, w]:
            image = resize(image, shape, antialias=True).clamp(0, 1)
    return image


def picture_format(path: str | os.PathLike) -> str:
    """The format Pillow writes for ``path``'s suffix (``PNG`` for .png ...); ``ValueError`` for one it does not."""
    from PIL import Image

    suffix = Path(path).suffix.lower()
    formats = Image.registered_extensions()
    if suffix not in formats or formats[suffix] not in Image.SAVE:
        raise ValueError(f"cannot write a picture as {path}: give a name ending in .png, .jpg, .webp, .bmp or .tif")
    return formats[suffix]


def save_picture(picture: torch.Tensor, path: str | os.PathLike) -> Path:
    """Write ``picture`` (C x H x W or 1 x C x H x W on [0, 1], grey or RGB) atomically, as ``path``'s suffix says."""
    import numpy as np
    from PIL import Image

    fmt = picture_format(path)
    image = picture.detach().float().cpu().reshape(-1, *picture.shape[-2:]).clamp(0, 1)
    pixels = (image * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    picture_image = Image.fromarray(np.ascontiguousarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels))
    return atomic_write(path, lambda tmp: picture_image.save(tmp, format=fmt))


def normalized_on_folder(
    model: VGG | Loaded, folder: str | os.PathLike, size: int = 512, pooling: str = "avg"
) -> tuple[VGG, int, list[str]]:
    """Gatys et al.'s normalised network (:func:`~vggnet.losses.normalize_filters`) from the images under
    ``folder`` (each resized so its longer side is ``size``, one at a time): the network, how many images it was
    made from, and a line for each file that did not read (skipped)."""
    _, files = any_images(folder)
    channels = (model.model if isinstance(model, Loaded) else model).in_channels
    skipped: list[str] = []
    counted = [0]

    def images():
        for path, _ in files:
            try:
                image = read_picture(path, size, channels)
            except (ValueError, BadImage, OSError) as err:
                skipped.append(str(err))
                continue
            counted[0] += 1
            yield image

    try:
        net = normalize_filters(model, images(), pooling=pooling)
    except ValueError as err:
        if counted[0]:
            raise
        raise ValueError(f"none of the {len(files)} images under {folder} could be read ({skipped[0]})") from err
    return net, counted[0], skipped
