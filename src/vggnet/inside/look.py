"""Inside the network: one image through a VGG block by block, for learners (``vggnet inside``, the service's
``/inside`` page).

:func:`look` runs the image once: at the end of every block (its last ReLU, before the pool) it keeps the block's
strongest channels (by mean activation) with their maps as the block computed them, where each map peaks, and the
input region behind each peak (the unit's receptive field, :mod:`vggnet.network.fields`); from the Grad-CAM layer on the
pass keeps gradients, so that the top class's Grad-CAM costs a backward pass through the rest of the net only, and
the dense score map comes from pool5's map. :func:`kernels` shows what a channel looks for: its 3x3 kernels (the
first layer's as RGB patches). :func:`vggnet.base.pictures.to_png` turns any map into a PNG; nothing here sends a
tensor dump.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..inference.gradcam import cam_of
from ..network.fields import Field
from ..network.layers import CaffeLRN
from ..network.model import VGG


@dataclass
class ChannelView:
    channel: int
    mean: float
    values: torch.Tensor  # h x w, the channel's map as the block computed it
    peaks: list[tuple[int, int, float]]  # (row, column, value) of its strongest units
    regions: list[tuple[int, int, int]]  # (top, left, side) of the input region behind each peak


@dataclass
class BlockView:
    block: int
    layer: str  # the tap: the block's last ReLU
    field: Field
    pooled: tuple[list[int], list[int]] | None  # the map's size before and after the block's pool
    channels: list[ChannelView]


@dataclass
class View:
    size: tuple[int, int]
    blocks: list[BlockView]
    top: list[tuple[str, int, float]]  # (class, index, probability)
    cam_layer: str
    cam: torch.Tensor  # H x W in [0, 1]: Grad-CAM of the top class at cam_layer
    dense: torch.Tensor | None  # the top class's dense score map (None where the image is too small for it)
    lrn: bool = True  # A-LRN's LRN was applied


def block_taps(model: VGG) -> list[tuple[int, str]]:
    """(block, the block's last ReLU) for every block of convolutions."""
    found: dict[int, str] = {}
    for name in model.layer_names[: len(model.features)]:
        if name.startswith("relu"):
            found[int(name[4:].split("_")[0])] = name
    return sorted(found.items())


def look(
    model: VGG,
    x: torch.Tensor,
    classes: list[str],
    channels: int = 8,
    cam_layer: str | None = None,
    lrn: bool = True,
    peaks: int = 3,
) -> View:
    """``x`` (1 x C x H x W, normalised as the model takes it) through ``model`` (in eval mode) in one pass; see
    the module's docstring. ``lrn=False`` runs A-LRN without its LRN layer, to see what it does."""
    model.check_input(x)
    taps = {name: block for block, name in block_taps(model)}
    cam_layer = cam_layer or next(reversed(taps))
    if model.layer_index(cam_layer) >= len(model.features):
        raise ValueError(f"Grad-CAM needs a convolutional layer's map; {cam_layer} is in the classifier head")
    fields = {f.name: f for f in model.receptive_fields(tuple(x.shape[-2:]))}
    kept, h, acts = {}, x, None
    model.eval()
    with torch.enable_grad():
        for name, module in zip(model.layer_names, model.features):
            skipped = isinstance(module, CaffeLRN) and not lrn
            with torch.set_grad_enabled(acts is not None):
                if not skipped:
                    # in place: what a ReLU overwrites is a convolution's output, which nothing keeps
                    h = torch.relu_(h) if isinstance(module, torch.nn.ReLU) else module(h)
            if name == cam_layer:
                h = acts = h.detach().requires_grad_(True)
            if name in taps:
                kept[name] = h.detach()[0]
        *_, (_, scores) = model._flat_head(h)
        probs = F.softmax(scores.float(), 1)[0]
        best = int(probs.argmax())
        (grads,) = torch.autograd.grad(scores[0, best], acts)
    cam = cam_of(acts.detach(), grads, x.shape[-2:])[0]
    with torch.no_grad():
        dense = _dense(model, h.detach(), best, scores.detach()[0, best])
    blocks = [_block(model, taps[name], name, maps, fields, channels, peaks) for name, maps in kept.items()]
    k = min(5, len(classes))
    values, indices = probs.topk(k)
    top = [(classes[i], i, round(v, 6)) for v, i in zip(values.tolist(), indices.tolist())]
    return View(tuple(x.shape[-2:]), blocks, top, cam_layer, cam, dense, lrn)


def _dense(model: VGG, pool5: torch.Tensor, best: int, score: torch.Tensor) -> torch.Tensor | None:
    if min(pool5.shape[-2:]) < model.pool_size:
        return None
    if tuple(pool5.shape[-2:]) == (model.pool_size, model.pool_size):  # one position: the flat head's own score
        return score.view(1, 1)
    *_, (_, scores) = model._dense_head(pool5)
    return scores[0, best]


def _block(model: VGG, block: int, name: str, maps: torch.Tensor, fields, k: int, peaks: int) -> BlockView:
    means = maps.mean((1, 2))
    strongest = means.topk(min(k, len(means))).indices.tolist()
    where = fields[name]
    chosen = [_channel(maps[c], c, float(means[c]), where, peaks) for c in strongest]
    pool = f"pool{block}"
    pooled = (list(where.shape[1:]), list(fields[pool].shape[1:])) if pool in fields else None
    return BlockView(block, name, where, pooled, chosen)


def _channel(values: torch.Tensor, channel: int, mean: float, where: Field, peaks: int) -> ChannelView:
    flat = values.flatten()
    count = min(peaks, flat.numel())
    top = flat.topk(count)
    width = values.shape[1]
    found = [(int(i) // width, int(i) % width, float(v)) for v, i in zip(top.values, top.indices)]
    regions = [(*where.origin(r, c), where.field) for r, c, _ in found]
    return ChannelView(channel, mean, values, found, regions)


def conv_of(layer: str) -> str:
    """The convolution a layer belongs to: ``relu3_2`` and ``bn3_2`` are ``conv3_2``'s."""
    for prefix in ("relu", "bn"):
        if layer.startswith(prefix):
            return "conv" + layer[len(prefix) :]
    return layer


def kernels(model: VGG, layer: str, channel: int, limit: int = 16) -> tuple[torch.Tensor, list[int]]:
    """The 3x3 (or 1x1) kernels of output ``channel`` of convolution ``layer`` (a ReLU or BN names its
    convolution): for the first layer all input channels (an RGB patch), else the ``limit`` strongest ones by norm.
    Returns (inputs x k x k, their input channels)."""
    layer = conv_of(layer)
    conv = model.layer(layer)
    if not 0 <= channel < conv.out_channels:
        raise ValueError(f"{layer} has channels 0 to {conv.out_channels - 1}, not {channel}")
    weight = conv.weight.detach()[channel].float()
    if weight.shape[0] <= 3:
        return weight, list(range(weight.shape[0]))
    order = weight.flatten(1).norm(dim=1).topk(min(limit, weight.shape[0])).indices.tolist()
    return weight[order], order
