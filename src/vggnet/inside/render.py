"""A view as the page receives it (JSON, every map a PNG data URL, never a tensor), a channel's kernels likewise,
and the same view as a folder that opens without a server: one PNG per block and an ``index.html``."""

from __future__ import annotations

import base64
import html
import os
from pathlib import Path

import torch

from ..inference import Loaded, rescale
from ..model import VGG
from .look import View, conv_of, kernels, to_png


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


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
        picture = to_png(row, colour=False, scale=24)
    return {"layer": name, "channel": channel, "rgb": rgb, "inputs": inputs, "png": data_url(picture)}


def write_offline(found: dict, out: str | os.PathLike) -> list[Path]:
    """``found`` (:func:`as_json`, one per model) as ``out/index.html`` with ``image.png``, ``cam.png`` and one
    ``block<N>.png`` per block (the block's strongest channels side by side), written aside and moved into place
    together, the folder locked meanwhile."""
    from ..base.files import Staging, folder_lock

    out = Path(out)
    written: list[str] = []
    with folder_lock(out, "inside folder"), Staging(out) as stage:
        sections = []
        for m, view in enumerate(found):
            prefix = f"model{m + 1}_" if len(found) > 1 else ""
            for key in ("image", "cam"):
                written.append(_save(stage, f"{prefix}{key}.png", view[key]))
            blocks = []
            for b in view["blocks"]:
                name = _save_block(stage, f"{prefix}block{b['block']}.png", b)
                written.append(name)
                blocks.append(_block_html(b, name))
            sections.append(_model_html(view, prefix, blocks))
        stage.path("index.html").write_text(PAGE.format(body="\n".join(sections)))
        written.append("index.html")
        stage.commit(written)
    return [out / name for name in written]


def _save(stage, name: str, url: str) -> str:
    stage.path(name).write_bytes(base64.b64decode(url.split(",", 1)[1]))
    return name


def _save_block(stage, name: str, block: dict) -> str:
    """The block's channels' maps side by side, each labelled, as one PNG (matplotlib)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    channels = block["channels"]
    figure, axes = plt.subplots(1, len(channels), figsize=(1.6 * len(channels), 1.9), squeeze=False)
    for ax, c in zip(axes[0], channels):
        ax.imshow(Image.open(io.BytesIO(base64.b64decode(c["png"].split(",", 1)[1]))), interpolation="nearest")
        ax.set_title(f"ch {c['channel']}\nmean {c['mean']:.3g}", fontsize=7)
        ax.axis("off")
    figure.suptitle(f"block {block['block']} ({block['layer']}): {' x '.join(map(str, block['shape']))}", fontsize=8)
    figure.tight_layout()
    figure.savefig(stage.path(name), dpi=110)
    plt.close(figure)
    return name


def _block_html(b: dict, picture: str) -> str:
    pooled = (
        f"; pool{b['block']}: {' x '.join(map(str, b['pooled'][0]))} to {' x '.join(map(str, b['pooled'][1]))}"
        if b["pooled"]
        else ""
    )
    text = (f"Block {b['block']} ({b['layer']}): {' x '.join(map(str, b['shape']))}, receptive field {b['field']} px, "
            f"jump {b['jump']}{pooled}")  # fmt: skip
    alt = f"The {len(b['channels'])} strongest channels of block {b['block']}: " + ", ".join(
        f"channel {c['channel']} (mean {c['mean']:.3g})" for c in b["channels"]
    )
    return f'<section><h3>{html.escape(text)}</h3><img src="{picture}" alt="{html.escape(alt)}"></section>'


def _model_html(view: dict, prefix: str, blocks: list[str]) -> str:
    top = "".join(f"<li>{html.escape(t['class'])}: {100 * t['probability']:.2f}%</li>" for t in view["top"])
    return (
        f"<article><h2>{html.escape(view['model'])}</h2><p>The image as the net sees it, "
        f"{view['size'][0]} x {view['size'][1]}, and Grad-CAM at {html.escape(view['cam_layer'])}:</p>"
        f'<img src="{prefix}image.png" alt="the input image"> <img src="{prefix}cam.png" alt="Grad-CAM of the top '
        f'class">{"".join(blocks)}<h3>Top 5</h3><ol>{top}</ol></article>'
    )


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Inside the network</title>
<style>body{{font:15px system-ui,sans-serif;margin:1.5em;max-width:72em}}img{{image-rendering:pixelated;
max-width:100%}}article{{border-top:1px solid #ccc;margin-top:1em}}</style></head>
<body><h1>Inside the network</h1>
{body}
</body></html>
"""
