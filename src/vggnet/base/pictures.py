"""Pictures for the browser: a map, an image or a kernel as a PNG (through a colour map, or as RGB), and a PNG as a
data URL for an ``<img>``. The service's Grad-CAM overlays and the inside view both draw through here."""

from __future__ import annotations

import base64
import functools
import io

import numpy as np
import torch


@functools.cache
def _colour_map(name: str) -> np.ndarray:
    from matplotlib import colormaps

    return (colormaps[name](np.linspace(0, 1, 256))[:, :3] * 255).round().astype(np.uint8)


def to_png(
    values: torch.Tensor, colour: str | None = "viridis", scale: int = 1, image: bool = False, stretch: bool = True
) -> bytes:
    """A map as a PNG: through a colour map (``colour``: a matplotlib name; None for grey), stretched to its own
    range (``stretch``; else taken as it is on [0, 1]); or as RGB for a 3 x h x w tensor (a first-layer kernel:
    zero is grey; ``image``: pixels on [0, 1] as they are). ``scale`` repeats each pixel."""
    from PIL import Image

    v = values.detach().float().cpu()
    if image:
        rgb = (v.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    elif v.dim() == 3:  # an RGB patch: symmetric around zero
        top = v.abs().max().clamp_min(1e-12)
        rgb = ((v / top + 1) / 2 * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    else:
        lo, hi = (v.min(), v.max()) if stretch else (torch.tensor(0.0), torch.tensor(1.0))
        unit = ((v - lo) / (hi - lo)).clamp(0, 1) if hi > lo else torch.zeros_like(v)
        level = (unit * 255).round().to(torch.uint8).numpy()
        rgb = _colour_map(colour)[level] if colour else level[..., None].repeat(3, -1)
    picture = Image.fromarray(np.ascontiguousarray(rgb))
    if scale > 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, "PNG", compress_level=1)  # fast: the maps are small and sent once
    return buffer.getvalue()


def data_url(png: bytes) -> str:
    """A PNG as a ``data:`` URL."""
    return "data:image/png;base64," + base64.b64encode(png).decode()
