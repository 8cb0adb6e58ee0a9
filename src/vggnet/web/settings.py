"""What a vggnet server listens on and accepts, defined once for ``vggnet serve`` and ``vggnet inside``
(:class:`Limits`, each field with its flag's help and range; imported without the serve extra), and the bounds every
server keeps."""

from __future__ import annotations

from dataclasses import dataclass

from ..base.settings import AT_LEAST_ONE, RUNTIME, Range, setting

MAX_HEADER = 32 * 2**10  # the largest request line and headers, together, in bytes
TIMEOUT = 30.0  # seconds a request may wait for its answer; a server's graceful stop waits a little longer
MAX_IMAGE_PIXELS = 40_000_000  # the largest image a server decodes (read from its header first)


@dataclass
class Limits:
    """Where a server listens and what it accepts: ``vggnet serve``'s and ``vggnet inside``'s, defined once."""

    host: str = setting("127.0.0.1", "address to bind", role=RUNTIME)
    port: int = setting(8000, "port (0: any free one)", Range(0, 65535), role=RUNTIME)
    max_body: int = setting(
        10 * 2**20, "largest request body (an upload) in bytes; more is refused with 413", AT_LEAST_ONE
    )
    max_pixels: int = setting(
        MAX_IMAGE_PIXELS, "largest image in pixels, read from its header before decoding", AT_LEAST_ONE
    )
