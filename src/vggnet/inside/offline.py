"""One image's view as a folder that opens without a server (``vggnet inside IMAGE --out DIR``): one PNG per
block (its strongest channels in a grid) and an ``index.html`` that shows them beside the image, Grad-CAM, the dense
map and the top 5."""

from __future__ import annotations

import base64
import html
import os
from pathlib import Path

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Inside the network</title>
<style>body{{font:15px system-ui,sans-serif;margin:1.5em;max-width:72em}}img{{image-rendering:pixelated;
max-width:100%}}article{{border-top:1px solid #ccc;margin-top:1em}}</style></head>
<body><h1>Inside the network</h1>
{body}
</body></html>
"""


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
