"""What a metric is given, made into what its trunk takes, and the values brought back to the images given.

Range checks (an input clearly outside the declared range refused in one sentence, a likely [0, 1]-for-[-1, 1]
mismatch warned once), images of any channel count (:data:`CHANNEL_MODES`), 3-D volumes N x C x D x H x W as 2.5-D
(slices along each spatial axis, as MONAI's ``PerceptualLoss(is_fake_3d=True)``: a share ``fake_3d_ratio`` of the
batch's slices drawn per axis, the axes' losses summed), masks, and random patches of large images. Each step keeps
``owner``: which given image every sample the trunk runs belongs to, so values come back per image.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from ..base.normalization import Normalization

CHANNEL_MODES = {
    "repeat": "grey images repeated to the trunk's channels; other channel counts: each channel a grey image so "
    "repeated, the values averaged over channels",
    "average": "images whose channel count differs from the trunk's through an averaged first layer (conv1_1 summed "
    "over its input channels and divided evenly among the image's) and the channel-averaged mean and std",
}
SPATIAL_AXES = {2: "D", 3: "H", 4: "W"}


def wide(t: torch.Tensor) -> torch.Tensor:
    """``t`` in float32 at least: half precision widened, float64 kept."""
    return t if t.dtype == torch.float64 else t.float()


class RangeCheck:
    """The range a metric declares, checked on every batch: values beyond it by more than its own width (0-255
    pixels given to a [0, 1] or [-1, 1] metric) are refused; a [-1, 1] metric given a batch without one negative
    value ([0, 1] images, most likely) warns, once per metric."""

    def __init__(self, metric: str, input_range: tuple[float, float], enabled: bool = True) -> None:
        lo, hi = (float(v) for v in input_range)
        if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
            raise ValueError(f"input_range must be (low, high) with low < high, got {input_range}")
        self.metric, self.low, self.high, self.enabled, self.warned = metric, lo, hi, enabled, False

    def __call__(self, *images: torch.Tensor | None) -> None:
        given = [t.detach() for t in images if t is not None]
        if not self.enabled or not given:
            return
        lows, highs = zip(*(torch.aminmax(t.float()) for t in given))
        low, high = torch.stack(lows).min().item(), torch.stack(highs).max().item()
        lo, hi, span = self.low, self.high, self.high - self.low
        if not (math.isfinite(low) and math.isfinite(high)):
            raise ValueError(f"{self.metric} was given images holding NaN or infinite values")
        if high > hi + span or low < lo - span:
            raise ValueError(
                f"{self.metric} takes images in [{lo:g}, {hi:g}] but these range over [{low:.4g}, {high:.4g}]: "
                f"scale them to [{lo:g}, {hi:g}] (0-255 pixels: {self._advice()}), or declare their range with "
                f"input_range=({math.floor(low):g}, {math.ceil(high):g})"
            )
        if lo < 0 <= low:
            self._warn(
                "holds no negative value: if these are [0, 1] images, give input_range=(0, 1) (lpips's normalize=True)"
            )
        elif lo >= 0 and low < lo - span / 2:
            self._warn(f"goes down to {low:.3g}: if these are [-1, 1] images, give input_range=(-1, 1)")

    def _warn(self, what: str) -> None:
        if not self.warned:  # once per metric: a training loop would repeat it every step
            self.warned = True
            lo, hi = self.low, self.high
            warnings.warn(f"{self.metric} takes images in [{lo:g}, {hi:g}] and this batch {what}", UserWarning, 5)

    def _advice(self) -> str:
        if (self.low, self.high) == (0.0, 1.0):
            return "divide by 255"
        scale = 255 / (self.high - self.low)
        return f"divide by {scale:g} and add {self.low:g}"

    def describe(self) -> list[float]:
        return [self.low, self.high]


@dataclass
class Batch:
    """Samples for the trunk (``x``, the target ``y`` or None where the fixed target's features stand in, a mask
    N x 1 x H x W or None) and ``owner``: the index of the given image each sample came from, among ``count``."""

    x: torch.Tensor
    y: torch.Tensor | None
    mask: torch.Tensor | None
    owner: torch.Tensor
    count: int

    @classmethod
    def of(cls, x: torch.Tensor, y: torch.Tensor | None, mask: torch.Tensor | None) -> Batch:
        return cls(x, y, mask, torch.arange(len(x), device=x.device), len(x))

    def spread(self, times: int) -> Batch:
        """Each sample becomes ``times`` consecutive ones (its patches, its channels)."""
        mask = self.mask.repeat_interleave(times, 0) if self.mask is not None and len(self.mask) > 1 else self.mask
        return replace(self, mask=mask, owner=self.owner.repeat_interleave(times))


def as_mask(mask: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """A mask for ``images`` (N x C x *spatial) as float (N or 1) x 1 x *spatial; ``ValueError`` for other shapes."""
    spatial = tuple(images.shape[2:])
    m = mask
    if m.dim() == len(spatial):
        m = m[None, None]
    elif m.dim() == len(spatial) + 1:
        m = m[:, None]
    if m.dim() != images.dim() or tuple(m.shape[2:]) != spatial or m.shape[1] != 1 or len(m) not in (1, len(images)):
        raise ValueError(
            f"a mask for images {tuple(images.shape)} is N x 1 x {' x '.join(map(str, spatial))} (or 1 x 1 x ..., "
            f"or without the channel axis), got {tuple(mask.shape)}"
        )
    m = m.detach().to(device=images.device, dtype=torch.float32)
    if m.numel() and (m.min() < 0 or m.max() > 1):
        raise ValueError(f"mask values are weights in [0, 1], got [{m.min().item():g}, {m.max().item():g}]")
    return m


def mask_at(mask: torch.Tensor | None, size: tuple[int, int]) -> torch.Tensor | None:
    """The mask at a tap's resolution: each position's share of the mask over the area it covers."""
    if mask is None or tuple(mask.shape[-2:]) == tuple(size):
        return mask
    return F.interpolate(mask, size=size, mode="area")


def masked_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Per sample: the mean of ``values`` B x K x h x w over positions (weighted by ``mask``) and K."""
    if mask is None:
        return values.mean((1, 2, 3))
    weights = mask.expand(len(values), 1, *values.shape[2:])
    return (values * weights).mean(1).sum((1, 2)) / weights.sum((1, 2, 3)).clamp_min(1e-12)


def group_mean(values: torch.Tensor, owner: torch.Tensor, count: int) -> torch.Tensor:
    """Per given image: the mean of its samples' values (0 where none of its samples was drawn)."""
    if len(values) == count and bool((owner == torch.arange(count, device=owner.device)).all()):
        return values
    total = values.new_zeros((count, *values.shape[1:])).index_add_(0, owner, values)
    counts = torch.bincount(owner, minlength=count).clamp_min(1).to(values.dtype)
    return total / counts.view(-1, *([1] * (values.dim() - 1)))


def split_channels(batch: Batch, trunk_channels: int, mode: str) -> Batch:
    """Images made into the trunk's channel count: ``repeat`` repeats a grey image and turns every channel of other
    images into a grey image; ``average`` leaves them to the trunk's averaged first layer."""
    c = batch.x.shape[1]
    if c == trunk_channels or mode == "average":
        return batch
    if c == 1:
        grow = [-1, trunk_channels, *([-1] * (batch.x.dim() - 2))]
        return replace(batch, x=batch.x.expand(*grow), y=None if batch.y is None else batch.y.expand(*grow))

    def each(t: torch.Tensor | None) -> torch.Tensor | None:
        if t is None:
            return None
        grey = t.reshape(-1, 1, *t.shape[2:])
        return grey.expand(-1, trunk_channels, *grey.shape[2:])

    return replace(batch.spread(c), x=each(batch.x), y=each(batch.y))


def channel_normalization(normalization: Normalization, channels: int) -> Normalization:
    """The weights' normalisation averaged over their channels, for ``channels`` channels (``average`` mode)."""
    if channels == len(normalization.mean):
        return normalization
    mean, std = sum(normalization.mean) / len(normalization.mean), sum(normalization.std) / len(normalization.std)
    return Normalization([mean] * channels, [std] * channels, "RGB", normalization.pixel_range, normalization.source)


def volume_slices(batch: Batch, axis: int, ratio: float, generator: torch.Generator | None) -> Batch:
    """The slices of volumes N x C x D x H x W across spatial ``axis`` (2, 3 or 4) as images, in MONAI's order
    (volume by volume), a random share ``ratio`` of all of them kept (at least one; all for a ratio of 1)."""

    def slices(v: torch.Tensor | None) -> torch.Tensor | None:
        if v is None:
            return None
        others = [a for a in (2, 3, 4) if a != axis]
        moved = v.permute(0, axis, 1, *others)
        return moved.reshape(-1, *moved.shape[2:])

    depth = batch.x.shape[axis]
    mask = None if batch.mask is None else batch.mask.expand(batch.count, *batch.mask.shape[1:])
    xs, ys, ms = slices(batch.x), slices(batch.y), slices(mask)
    owner = torch.arange(batch.count, device=batch.x.device).repeat_interleave(depth)
    if ratio < 1:
        keep = max(1, int(len(xs) * ratio))
        chosen = torch.randperm(len(xs), generator=generator)[:keep].to(batch.x.device)
        xs, ys, ms = (None if t is None else t.index_select(0, chosen) for t in (xs, ys, ms))
        owner = owner.index_select(0, chosen)
    return Batch(xs, ys, ms, owner, batch.count)


def sample_patches(batch: Batch, size: tuple[int, int], count: int, generator: torch.Generator | None) -> Batch:
    """``count`` random windows of ``size`` from each sample larger than it, at the same places in the image, the
    target and the mask (a sample no larger than ``size`` is taken whole)."""
    n, _, height, width = batch.x.shape
    ph, pw = min(size[0], height), min(size[1], width)
    if (ph, pw) == (height, width):
        return batch
    tops = torch.randint(0, height - ph + 1, (n, count), generator=generator).tolist()
    lefts = torch.randint(0, width - pw + 1, (n, count), generator=generator).tolist()

    def crop(t: torch.Tensor | None, shared: bool = False) -> torch.Tensor | None:
        if t is None:
            return None
        t = t.expand(n, *t.shape[1:]) if shared else t
        windows = [t[i, :, a : a + ph, b : b + pw] for i in range(n) for a, b in zip(tops[i], lefts[i])]
        return torch.stack(windows)

    spread = batch.spread(count)
    mask = crop(batch.mask, shared=True) if batch.mask is not None else None
    return replace(spread, x=crop(batch.x), y=crop(batch.y, shared=True), mask=mask)
