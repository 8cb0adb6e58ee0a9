"""Inside the network, for learners: one image through any VGG block by block (``look``: the strongest channels'
maps, their receptive fields and the regions that drive them, Grad-CAM, the dense score map, the top 5; a channel's
kernels), drawn as PNGs for the browser page (``page.html``, served by ``vggnet serve`` at /inside and by ``vggnet
inside``) and for an offline folder (``render``).

It imports the network (``model``, ``fields``), the inference layer (the test geometry, Grad-CAM) and what every
vggnet server shares (``web``: bodies, errors, the engine, the server), nothing of the service: ``vggnet serve``
mounts the page on the service's app (:mod:`vggnet.commands.serve`).
"""

from __future__ import annotations

from .look import BlockView, ChannelView, View, block_taps, kernels, look
from .offline import write_offline
from .render import as_json, kernels_json, prepare_image

__all__ = [
    "BlockView", "ChannelView", "View", "block_taps", "kernels", "look",
    "as_json", "kernels_json", "prepare_image", "write_offline",
]  # fmt: skip
