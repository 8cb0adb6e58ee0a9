"""``vggnet inside``'s settings, each with its flag's help and range (imported without the serve extra), on the
limits it shares with ``vggnet serve`` (:class:`~vggnet.web.settings.Limits`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..base.settings import RUNTIME, Range, setting
from ..web.settings import Limits


@dataclass
class InsideSettings(Limits):
    """``vggnet inside``: the learner's page for one model or two side by side, or one image's view written to a
    folder."""

    cli_text: ClassVar[str] = (
        "See an image travel through a VGG block by block: the strongest channels' maps, the receptive field at "
        "each depth, what pooling does, Grad-CAM, the dense score map and the top 5; click a map for its kernels "
        "and the image regions that drive it. Serves that page on a free port (two --weights: side by side), or "
        "with IMAGE and --out writes it as a folder that opens without a server."
    )

    image: str | None = setting(None, "an image to write the view of (with --out)", positional=True)
    out: str | None = setting(None, "folder for IMAGE's view: one PNG per block and an index.html", role=RUNTIME)
    port: int = setting(0, "port (0: any free one, the default here)", Range(0, 65535), role=RUNTIME)
    channels: int = setting(8, "strongest channels shown per block", Range(1, 64))
