"""The service's settings, each with its flag's help and range (imported without the serve extra, so that ``vggnet serve
--help`` and the command line's checks work everywhere), on the limits both servers share
(:class:`~vggnet.web.settings.Limits`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..base.settings import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, RUNTIME, Range, setting
from ..engines.fixed import MARGIN, MODES
from ..web.settings import MAX_HEADER, TIMEOUT, Limits


@dataclass
class ServeSettings(Limits):
    """How ``vggnet serve`` serves one model: where, under which name, and within which limits."""

    cli_text: ClassVar[str] = (
        "An inference service for one model: requests are batched dynamically, images of any size are brought to the "
        "model's test geometry, /metrics speaks Prometheus, SIGTERM finishes the requests in flight and exits. Every "
        "error is JSON with one sentence."
    )

    name: str = setting("vggnet", "the model's name in the protocol")
    max_batch: int = setting(16, "images per forward pass", AT_LEAST_ONE)
    max_wait_ms: float = setting(
        5.0,
        "how long a batch waits at most for requests on their way (being read or decoded) to share its forward pass; "
        "a lone request does not wait",
        NON_NEGATIVE,
    )
    max_queue: int = setting(256, "images allowed to wait; past it requests get 503 with Retry-After", AT_LEAST_ONE)
    max_header: int = setting(
        MAX_HEADER, "largest request line and headers in bytes, together; more is refused with 431", Range(1024)
    )
    timeout: float = setting(TIMEOUT, "seconds a request may wait for the model before 504", POSITIVE)
    threads: int | None = setting(
        None,
        "threads of the model (default: the cores but one for a small model, so that the HTTP side keeps a core; all "
        "of them for one of more than a GMAC an image, e.g. VGG-16)",
        AT_LEAST_ONE,
        role=RUNTIME,
    )
    mirror: bool = setting(True, "classify the image and its mirror, posteriors averaged (--no-mirror: twice as fast)")
    grpc_port: int | None = setting(
        None,
        "also speak the protocol over gRPC on this port, as Triton does on 8001 (0: any free port); off unless given, "
        "so that the service opens one port unless asked for a second",
        Range(0, 65535),
        role=RUNTIME,
    )
    warmup: bool = setting(
        True,
        "run a batch of 1 and one of --max-batch before saying ready, as Triton's model_warmup does (--no-warmup: "
        "ready at once, and the first requests pay the engine's first-call cost)",
        role=RUNTIME,
    )

    fixed_batches: str = setting(
        "auto",
        "OpenVINO: compile copies of the model for batches of 1, the powers of two below --max-batch and --max-batch "
        f"images, each for its shape; auto keeps a copy where it measured at least {MARGIN}x faster than the dynamic "
        "model "
        "during the warm-up (once per machine and model, then remembered; with --no-warmup only what is remembered), "
        "on keeps all, off none; each copy holds its own weights (VGG-16: 0.55 GB more)",
        choices=MODES,
        role=RUNTIME,
    )

    def check(self) -> None:
        if self.max_queue < self.max_batch:
            raise ValueError(f"--max-queue {self.max_queue} must be at least --max-batch {self.max_batch}")
