"""What every VGG loss and metric shares (:class:`TapMetric`): the trunk and its taps, the input made into what the
trunk takes (:mod:`.inputs`), the target branch without autograd, float32 arithmetic after the trunk, values per
image and per layer, and :meth:`TapMetric.describe`."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..base.normalization import Normalization
from ..inference.loading import Loaded
from ..network.model import VGG
from ..version import __version__
from .describe import Description, base_description
from .inputs import (
    CHANNEL_MODES,
    SPATIAL_AXES,
    Batch,
    RangeCheck,
    as_mask,
    channel_normalization,
    group_mean,
    mask_at,
    sample_patches,
    split_channels,
    volume_slices,
    wide,
)
from .taps import POOLINGS, FeatureTaps, layer_weights, load_trunk

REDUCTIONS = ("mean", "sum", "none")
PRECISION = "the trunk in autocast's precision where autocast is on; norms, Grams and distances in float32"
Features = dict[str, Any]


class TapMetric(nn.Module):
    """A loss or metric on a VGG's activations at Caffe-named taps.

    ``model`` (a VGG, or one from :func:`vggnet.load_model`, which brings its weights' normalisation) overrides
    ``arch`` and ``weights`` (``"torchvision"``, or any file or URL vggnet reads: Caffe, Keras, MatConvNet ...).
    Images come in ``input_range``; the weights' normalisation is applied inside. Options (keywords):

    - ``pooling``: ``"max"``, ``"avg"`` (Gatys et al.) or ``"l2"`` (DISTS);
    - ``channels``: ``"repeat"`` or ``"average"`` for grey and multichannel images (:data:`CHANNEL_MODES`);
    - ``reduction``: ``"mean"`` over the batch, ``"sum"``, or ``"none"`` (one value per image);
    - ``checkpoint``: recompute the trunk in the backward pass instead of keeping its activations;
    - ``patch_size`` (int or (h, w)) and ``patches``: score ``patches`` random windows of each larger image,
      drawn from a generator seeded with ``seed`` (None: torch's global one);
    - ``fake_3d_ratio``: volumes N x C x D x H x W are scored as 2.5-D, a share of their slices per axis;
    - ``check_range``: refuse inputs clearly outside ``input_range`` and warn on a likely mismatch (default).

    ``forward(x, y=None, mask=None, per_layer=False)``: gradients reach ``x`` only; ``y`` runs without autograd,
    or :meth:`set_target` fixes one. ``mask`` (N x 1 x H x W weights in [0, 1]) restricts the comparison.
    """

    metric_name = "tap metric"
    metric_version = f"as vggnet {__version__} defines it"
    definition = ""
    reference = ""
    default_layers: dict[str, float] = {}
    default_range = (0.0, 1.0)
    default_reduction = "mean"
    default_pooling = "max"
    needs_image = False  # the image itself as a tap named "image" (DISTS)
    spatial = False  # forward gives N x 1 x H x W maps (set by LPIPS and PerceptualLoss's spatial=True)
    size_free = False  # representations that do not depend on the image's size (Grams): a target of any size

    def __init__(
        self,
        model: VGG | Loaded | None = None,
        arch: str = "vgg16",
        weights: str | None = "torchvision",
        layers: Mapping[str, float] | Sequence[str] | None = None,
        input_range: tuple[float, float] | None = None,
        normalization: Normalization | None = None,
        *,
        pooling: str | None = None,
        channels: str = "repeat",
        reduction: str | None = None,
        checkpoint: bool = False,
        patch_size: int | tuple[int, int] | None = None,
        patches: int = 4,
        fake_3d_ratio: float = 0.5,
        seed: int | None = 0,
        check_range: bool = True,
    ) -> None:
        super().__init__()
        self.layer_weights = layer_weights(layers or self.default_layers)
        self.range_check = RangeCheck(self.metric_name, input_range or self.default_range, check_range)
        self.input_range = (self.range_check.low, self.range_check.high)
        self.reduction = reduction or self.default_reduction
        _check_options(self.reduction, channels, patch_size, patches, fake_3d_ratio)
        model, self.normalization, self.weights_source = load_trunk(
            model, arch, weights, list(self.layer_weights), normalization, type(self).__name__
        )
        self.taps = FeatureTaps(model, list(self.layer_weights), pooling or self.default_pooling, checkpoint)
        self.trunk_name = model.describe() if hasattr(model, "describe") else type(model).__name__
        self.channels, self.channel_mode = model.in_channels, channels
        self.min_size = model.min_size
        self.patch_size = (patch_size, patch_size) if isinstance(patch_size, int) else patch_size
        self.patches, self.fake_3d_ratio, self.seed = patches, float(fake_3d_ratio), seed
        self.generator = None if seed is None else torch.Generator().manual_seed(seed)
        self._target: torch.Tensor | None = None
        self._target_reps: Features | None = None

    # -- what subclasses define ------------------------------------------------------------------------------------
    def represent(self, name: str, activation: torch.Tensor, mask: torch.Tensor | None) -> Any:
        """What is compared at tap ``name`` (float32 activation; ``mask`` at its resolution, None for a fixed
        target): the activation itself by default."""
        return activation

    def distance(self, name: str, mine: Any, target: Any, mask: torch.Tensor | None) -> torch.Tensor:
        """One value per sample at tap ``name``."""
        raise NotImplementedError

    def combine(self, values: dict[str, torch.Tensor]) -> torch.Tensor:
        """The metric from its per-layer values: their weighted sum by default."""
        return sum(self.layer_weights[name] * v for name, v in values.items())

    def finish_layer(self, name: str, value: torch.Tensor) -> torch.Tensor:
        """A layer's value from what its samples' values reduced to (per image, or over the batch)."""
        return value

    def batch_value(self, values: torch.Tensor) -> torch.Tensor:
        """One layer's value over a batch of samples: their mean (the sum for a norm over the batch)."""
        return values.mean(0)

    def shape_output(self, value: torch.Tensor) -> torch.Tensor:
        return value

    # -- the input -------------------------------------------------------------------------------------------------
    def _check_shape(self, x: torch.Tensor, what: str = "images") -> None:
        if not isinstance(x, torch.Tensor) or x.dim() not in (4, 5) or not x.is_floating_point():
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(
                f"{self.metric_name} takes float {what} N x C x H x W (or volumes N x C x D x H x W), got {shape}"
            )

    def _unit(self, x: torch.Tensor) -> torch.Tensor:
        lo, hi = self.input_range
        return x if (lo, hi) == (0.0, 1.0) else (x - lo) / (hi - lo)

    def _trunk_input(self, unit: torch.Tensor) -> torch.Tensor:
        norm = self.normalization
        if unit.shape[1] != self.channels:  # the averaged first layer
            norm = channel_normalization(norm, unit.shape[1])
        return norm(unit).contiguous(memory_format=torch.channels_last)

    def _samples(self, x: torch.Tensor, y: torch.Tensor | None, mask: torch.Tensor | None) -> list[Batch]:
        """The batches the trunk runs: one for images, one per spatial axis for volumes."""
        whole = Batch.of(x, y, None if mask is None else as_mask(mask, x))
        parts = (
            [whole]
            if x.dim() == 4
            else [volume_slices(whole, a, self.fake_3d_ratio, self.generator) for a in SPATIAL_AXES]
        )
        out = []
        for part in parts:
            if self.patch_size is not None:
                part = sample_patches(part, self.patch_size, self.patches, self.generator)
            part = split_channels(part, self.channels, self.channel_mode)
            if min(part.x.shape[-2:]) < self.min_size:
                raise ValueError(
                    f"images must be at least {self.min_size}x{self.min_size} for this trunk, got slices or images "
                    f"of {part.x.shape[-2]}x{part.x.shape[-1]}"
                )
            out.append(part)
        return out

    # -- features --------------------------------------------------------------------------------------------------
    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The taps' activations of samples ``x`` (in ``input_range``, already of the trunk's making)."""
        return dict(self._activations(x))

    def _activations(self, x: torch.Tensor) -> Iterator[tuple[str, torch.Tensor]]:
        unit = self._unit(x)
        if self.needs_image:
            yield "image", unit
        yield from self.taps.stream(self._trunk_input(unit))

    def _stream(self, x: torch.Tensor, mask: torch.Tensor | None) -> Iterator[tuple[str, Any, Any]]:
        """(tap, what is compared there, the mask at its resolution), one tap at a time (autocast off only
        around each representation: a generator must not leave a mode switched across its yields)."""
        for name, a in self._activations(x):
            if name in self.layer_weights or name == "image":
                m = mask_at(mask, a.shape[-2:])
                with torch.autocast(x.device.type, enabled=False):
                    rep = self.represent(name, wide(a), m)
                yield name, rep, m
                del rep  # before the next segment runs

    def _represent_all(self, x: torch.Tensor, mask: torch.Tensor | None) -> tuple[Features, Features]:
        """What is compared at each tap, and the mask at each tap's resolution."""
        found = list(self._stream(x, mask))
        return {name: rep for name, rep, _ in found}, {name: m for name, _, m in found}

    def _fixed_reps(self, count: int) -> Features:
        """The fixed target's representations for ``count`` samples (its batch of 1 broadcast, or its own)."""
        reps = self._target_reps
        assert reps is not None

        def fit(t: Any) -> Any:
            if isinstance(t, tuple):
                return tuple(fit(v) for v in t)
            if not isinstance(t, torch.Tensor) or len(t) == count:
                return t
            if len(t) == 1:
                return t.expand(count, *t.shape[1:])
            return t.unsqueeze(0).expand(count // len(t), *t.shape).reshape(count, *t.shape[1:])

        return {name: fit(rep) for name, rep in reps.items()}

    def _layer_values(self, part: Batch) -> dict[str, torch.Tensor]:
        """Per layer, one value per sample of ``part``. The target's taps and the image's are computed side by side,
        the target's segment first, and each layer compared as soon as both stand: neither's representations are
        all held at once, and the target's largest activations come and go before the image's are kept."""
        fixed = self._fixed_reps(len(part.x)) if part.y is None else None
        theirs = None if part.y is None else self._stream(part.y, part.mask)
        mine = self._stream(part.x, part.mask)
        values, target_item = {}, None
        while True:
            if theirs is not None:
                with torch.no_grad():
                    target_item = next(theirs, None)
            found = next(mine, None)
            if found is None:
                return values
            name, rep, mask = found
            target = fixed[name] if theirs is None else target_item[1]
            with torch.autocast(part.x.device.type, enabled=False):
                values[name] = self.distance(name, rep, target, mask)
            found = rep = target = target_item = None  # let them go before the next segment runs

    # -- the target ------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def set_target(self, y: torch.Tensor | None) -> None:
        """Fix the target once (a style image, say): later calls of ``metric(x)`` compare with it. A batch of one
        serves any batch. Its representations are computed here, once, where nothing random is drawn per call (no
        patches, no volume slices; a Gram of the whole target serves any patches); else it is kept and run without
        autograd at each call. A Gram target may have any size (a style image need not be the picture's)."""
        self._target, self._target_reps = None, None
        if y is None:
            return
        self._check_shape(y, "targets")
        self.range_check(y)
        self._target = y.detach()
        if y.dim() == 4 and (self.patch_size is None or (self.size_free and len(y) == 1)):
            part = split_channels(Batch.of(self._target, None, None), self.channels, self.channel_mode)
            self._target_reps = self._represent_all(part.x, None)[0]

    def _target_for(self, x: torch.Tensor) -> torch.Tensor | None:
        if self._target is None:
            raise ValueError("give a target y, or fix one with set_target(y)")
        t, cached = self._target, self._target_reps is not None
        if (
            len(t) not in (1, len(x))
            or t.shape[1] != x.shape[1]
            or not (t.shape[1:] == x.shape[1:] or (cached and self.size_free))
        ):
            size = "channels" if self.size_free and cached else "size and channels"
            raise ValueError(
                f"the fixed target is {tuple(t.shape)}, the images {tuple(x.shape)}: set a target of the images' "
                f"{size}, of one image or as many as the batch"
            )
        return None if cached else t.expand(len(x), *t.shape[1:])

    # -- the metric ------------------------------------------------------------------------------------------------
    def forward(
        self, x: torch.Tensor, y: torch.Tensor | None = None, mask: torch.Tensor | None = None, per_layer: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The metric of images ``x`` against ``y`` (or the fixed target); with ``per_layer`` also each layer's
        value (before the layer weights), shaped as the metric. Metrics made with ``spatial=True`` give maps."""
        if self.spatial:
            total, maps = self.spatial_maps(x, y, mask)
            return (total, maps) if per_layer else total
        y = self._inputs(x, y)
        totals: list[torch.Tensor] = []
        layers: dict[str, torch.Tensor] = {}
        for part in self._samples(x, y, mask):
            values = self._layer_values(part)
            if self.reduction == "mean":
                reduced = {name: self.finish_layer(name, self.batch_value(v)) for name, v in values.items()}
            else:
                reduced = {
                    name: self.finish_layer(name, group_mean(v, part.owner, part.count)) for name, v in values.items()
                }
            totals.append(self.combine(reduced))
            for name, v in reduced.items():
                layers[name] = layers[name] + v if name in layers else v
        total = sum(totals)
        if self.reduction == "sum":
            total, layers = total.sum(), {name: v.sum() for name, v in layers.items()}
        out = self.shape_output(total)
        return (out, {name: self.shape_output(v) for name, v in layers.items()}) if per_layer else out

    def _inputs(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor | None:
        """``y`` checked against ``x`` (or the fixed target, None where its features stand ready), both in range."""
        self._check_shape(x)
        if y is None:
            y = self._target_for(x)
            self.range_check(x)
        elif not isinstance(y, torch.Tensor) or y.shape != x.shape:
            raise ValueError(f"x and y must have one shape, got {tuple(x.shape)} and {tuple(getattr(y, 'shape', ()))}")
        else:
            self.range_check(x, y)
        return y

    def spatial_maps(
        self, x: torch.Tensor, y: torch.Tensor | None, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """N x 1 x H x W: each layer's per-position map (``position_map``) upsampled bilinearly to the images' size,
        weighted and summed, as lpips's ``spatial=True`` (4-D images, no patches); and each layer's map."""
        y = self._inputs(x, y)
        if x.dim() != 4 or self.patch_size is not None:
            raise ValueError("spatial maps are for images N x C x H x W scored whole (no patches, no volumes)")
        (part,) = self._samples(x, y, mask)
        if part.y is None:
            target = self._fixed_reps(len(part.x))
        else:
            with torch.no_grad():
                target = self._represent_all(part.y, None)[0]
        mine = self._represent_all(part.x, None)[0]
        layers = {}
        with torch.autocast(x.device.type, enabled=False):
            for name, weight in self.layer_weights.items():
                m = F.interpolate(
                    self.position_map(name, mine[name], target[name]),
                    size=x.shape[-2:],
                    mode="bilinear",
                    align_corners=False,
                )
                m = group_mean(weight * m, part.owner, part.count)
                layers[name] = m if part.mask is None else m * part.mask
        return sum(layers.values()), layers

    def position_map(self, name: str, mine: Any, target: Any) -> torch.Tensor:
        raise ValueError(f"{self.metric_name} compares statistics of whole maps: it has no spatial map")

    # -- how it computes -------------------------------------------------------------------------------------------
    def describe(self) -> Description:
        """How this metric computes: name, version, trunk and the sha256 of its weights, taps, range, normalisation,
        channel handling ... (``str()`` of the answer prints it)."""
        d = base_description(self.metric_name, self.metric_version, self.definition, self.reference)
        d.update(
            trunk=self.trunk_name,
            weights=self.weights_source,
            weights_sha256=self.taps.digest(),
            taps={name: self.layer_weights[name] for name in self.layer_weights},
            tap_points={name: _tap_point(name) for name in self.layer_weights},
            pooling=POOLINGS[self.taps.pooling],
            input_range=self.range_check.describe(),
            normalization=str(self.normalization),
            channels=CHANNEL_MODES[self.channel_mode],
            volumes=f"2.5-D: slices across D, H and W, a share {self.fake_3d_ratio:g} of each axis's drawn, the "
            "axes' values summed (MONAI's is_fake_3d)",
            patches=self._patches_text(),
            reduction=self.reduction,
            checkpoint=self.taps.checkpoint,
            precision=PRECISION,
        )
        return d

    def _patches_text(self) -> str | None:
        if self.patch_size is None:
            return None
        h, w = self.patch_size
        return f"{self.patches} random {h}x{w} windows per larger image, seed {self.seed}"

    def extra_repr(self) -> str:
        return f"layers={self.layer_weights}, input_range={self.input_range}, normalization=({self.normalization})"


def _tap_point(name: str) -> str:
    if name.startswith("conv"):
        return "before activation (the convolution's output)"
    if name.startswith("relu"):
        return "after activation"
    return "after pooling" if name.startswith("pool") else "after normalisation"


def _check_options(reduction: str, channels: str, patch_size: Any, patches: int, fake_3d_ratio: float) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"unknown reduction {reduction!r}; expected one of {', '.join(REDUCTIONS)}")
    if channels not in CHANNEL_MODES:
        raise ValueError(f"unknown channels {channels!r}; expected one of {', '.join(CHANNEL_MODES)}")
    sizes = (patch_size,) if isinstance(patch_size, int) else tuple(patch_size or ())
    if patch_size is not None and (len(sizes) not in (1, 2) or not all(isinstance(s, int) and s > 0 for s in sizes)):
        raise ValueError(f"patch_size must be a positive int or (height, width), got {patch_size!r}")
    if not isinstance(patches, int) or isinstance(patches, bool) or patches < 1:
        raise ValueError(f"patches must be a positive integer, got {patches!r}")
    if not 0 < fake_3d_ratio <= 1:
        raise ValueError(f"fake_3d_ratio must be in (0, 1], got {fake_3d_ratio!r}")
