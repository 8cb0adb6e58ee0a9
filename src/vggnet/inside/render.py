"""A view as the page receives it (JSON, every map a PNG data URL, never a tensor), and a channel's kernels
likewise; the image brought to the model's test geometry first."""

from __future__ import annotations

import torch

from ..base.pictures import data_url, to_png
from ..inference.geometry import rescale
from ..inference.loading import Loaded
from ..network.model import VGG
from .look import View, conv_of, kernels


def prepare_image(loaded: Loaded, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A decoded image (uint8 C x H x W) as the net sees it at its test scale (rescaled to Q, padded as in its
    validation): the normalised input (1 x C x H' x W') and the same pixels on [0, 1] to draw on. A 4,096 x 4,096
    photo is rescaled before anything else is done with it."""
    model: VGG = loaded.model
    q = loaded.default_scale
    x = loaded.inputs(img[None], q)
    if min(x.shape[-2:]) < model.min_size:
        raise ValueError(
            f"at the model's test scale ({q}) the image is {x.shape[-2]} x {x.shape[-1]}, smaller than the "
            f"{model.min_size} x {model.min_size} its five pools need"
        )
    shown = rescale(img[None], q, [0.0] * img.shape[0], [1.0] * img.shape[0], loaded.pad)
    return x, shown[0].clamp(0, 1)


def as_json(view: View, shown: torch.Tensor, model: VGG) -> dict:
    """The view for the page: shapes and fields per block, each strongest channel's map as a PNG with its peaks and
    the regions behind them, the image as the net saw it, Grad-CAM, the dense map and the top 5."""
    image = shown if shown.shape[0] == 3 else shown.expand(3, -1, -1)
    blocks = []
    for b in view.blocks:
        f = b.field
        blocks.append({
            "block": b.block, "layer": b.layer, "shape": list(f.shape), "field": f.field, "jump": f.jump,
            "padding": f.padding, "pooled": b.pooled,
            "channels": [{"channel": c.channel, "mean": round(c.mean, 5), "png": data_url(to_png(c.values)),
                          "peaks": c.peaks, "regions": c.regions} for c in b.channels],
        })  # fmt: skip
    return {
        "model": model.describe(),
        "size": list(view.size),
        "image": data_url(to_png(image, image=True)),
        "top": [{"class": name, "index": i, "probability": p} for name, i, p in view.top],
        "cam_layer": view.cam_layer,
        "cam": data_url(to_png(view.cam)),
        "dense": None if view.dense is None else data_url(to_png(view.dense, scale=8)),
        "lrn": view.lrn,
        "blocks": blocks,
    }


def kernels_json(model: VGG, layer: str, channel: int) -> dict:
    """A channel's kernels for the page: the first layer's as one RGB patch, deeper ones as a row of grey 3x3
    squares, its strongest input channels."""
    weight, inputs = kernels(model, layer, channel)
    name = conv_of(layer)
    rgb = name == "conv1_1" and model.in_channels == 3
    if rgb:
        picture = to_png(weight, scale=32)
    else:
        k = weight.shape[-1]
        gap = torch.full((len(inputs), k, 1), float(weight.min()))
        row = torch.cat([weight, gap], 2).permute(1, 0, 2).reshape(k, -1)  # the kernels side by side
        picture = to_png(row, colour=None, scale=24)
    return {"layer": name, "channel": channel, "rgb": rgb, "inputs": inputs, "png": data_url(picture)}
