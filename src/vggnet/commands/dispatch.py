"""The ``vggnet`` commands, in the order ``vggnet --help`` lists them. Each is a module of this package holding its
flags (settings dataclasses), its function and its ``COMMAND`` (:class:`~vggnet.commands.command.Command`); a new
command is one module and one entry here. :mod:`vggnet.cli` makes the parser from :data:`COMMANDS` and turns every
outcome into an exit status."""

from __future__ import annotations

from . import bench, convert, eval, export, features, info, inside, predict, probe, reproduce, serve, stylize, train
from .command import Command

COMMANDS: tuple[Command, ...] = (
    info.COMMAND,
    convert.COMMAND,
    train.COMMAND,
    eval.COMMAND,
    predict.COMMAND,
    export.COMMAND,
    features.COMMAND,
    probe.COMMAND,
    reproduce.COMMAND,
    serve.COMMAND,
    inside.COMMAND,
    stylize.COMMAND,
    bench.COMMAND,
)
