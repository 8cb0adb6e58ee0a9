"""``vggnet bench``: images/s and memory against torchvision's VGG, in one process (:mod:`vggnet.bench`)."""

from __future__ import annotations

import argparse

from ..bench.run import BenchSettings
from .command import Command, parsed


def cmd_bench(args: argparse.Namespace) -> int:
    from ..base.devices import pick_device
    from ..bench.run import run_bench

    s = parsed(BenchSettings, args)
    s.check()
    pick_device(s.device)
    run_bench(s)
    return 0


COMMAND = Command("bench", "images/s and memory against torchvision's VGG, in one process", cmd_bench, (BenchSettings,))
