"""What the routes work with: the :class:`Service` an app holds in ``app.state``, and the error a route raises for a
request it refuses itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import Request

from .batcher import Batcher
from .engine import Engine
from .metrics import Metrics
from .settings import ServeSettings
from .stats import ModelStats


@dataclass
class Service:
    """The model, its batcher, the metrics and the settings of one app, built once."""

    engine: Engine
    batcher: Batcher
    metrics: Metrics
    settings: ServeSettings
    page: str  # the HTML page, with the model's name in it: read once, not per visit
    config: dict[str, Any]  # Triton's model configuration (vggnet.export.triton.model_config)
    stats: ModelStats = field(default_factory=ModelStats)
    ready: bool = False  # after the warm-up batches have run
    grpc: Any = None  # the gRPC server, where there is one
    grpc_port: int | None = None  # the port it listens on
    fixed: list[Any] = field(default_factory=list)  # OpenVINO's fixed-batch copies (vggnet.engines.fixed.FixedBatch)


class HttpError(Exception):
    """A request refused by a route's own check (an unknown model, a bad query parameter), with its status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def service(request: Request) -> Service:
    """The app's service: a dependency of every route."""
    return request.app.state.service
