"""What the routes work with: the :class:`Service` an app holds in ``app.state`` (a route refuses a request itself
with :class:`~vggnet.web.errors.HttpError`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import Request

from ..web.engine import Engine
from .batcher import Batcher
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


def service(request: Request) -> Service:
    """The app's service: a dependency of every route."""
    return request.app.state.service
