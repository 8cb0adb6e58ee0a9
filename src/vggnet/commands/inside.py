"""``vggnet inside``: the learner's view of an image going through a VGG, block by block, as a page or a folder
(:mod:`vggnet.inside`)."""

from __future__ import annotations

import argparse

from ..inference.loading import ModelChoice
from ..inside.settings import InsideSettings
from .command import Command, parsed, require_serve_extra


def cmd_inside(args: argparse.Namespace) -> int:
    require_serve_extra("the inside view")
    from ..inside.app import run_inside

    run_inside(parsed(ModelChoice, args), parsed(InsideSettings, args))
    return 0


COMMAND = Command(
    "inside",
    "a learner's view of an image going through a VGG, block by block (a page, or a folder)",
    cmd_inside,
    (ModelChoice, InsideSettings),
)
