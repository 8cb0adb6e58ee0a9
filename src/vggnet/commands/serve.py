"""``vggnet serve``: one model behind HTTP (and gRPC): the Open Inference Protocol, /predict, a page
(:mod:`vggnet.serving`)."""

from __future__ import annotations

import argparse

from ..inference.loading import ModelChoice
from ..serving.settings import ServeSettings
from .command import Command, parsed, require_serve_extra


def cmd_serve(args: argparse.Namespace) -> int:
    model, s = parsed(ModelChoice, args), parsed(ServeSettings, args)
    s.check()
    require_serve_extra("serving")
    from ..serving.server import serve_model

    serve_model(model, s)
    return 0


COMMAND = Command(
    "serve",
    "serve a model over HTTP: the Open Inference Protocol (Triton/KServe v2), /predict, a page",
    cmd_serve,
    (ModelChoice, ServeSettings),
)
