"""What a ``vggnet`` command is (:class:`Command`: its name, help line, function and the dataclasses whose fields are
its flags) and what several commands share: settings built from what was typed (:func:`parsed`), an output folder
checked, the serve extra asked for in a sentence. Each command's module holds its flags, its function and its
``COMMAND``; :mod:`vggnet.commands.dispatch` lists them."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..base.settings import typed


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    run: Callable[[argparse.Namespace], int]
    flags: tuple[type, ...]  # the settings dataclasses whose fields are its flags
    description: str | None = None
    only_typed: tuple[type, ...] = ()  # flags that count only where typed (a recipe or a checkpoint gives the rest)

    def classes(self) -> list[type]:
        return list(self.flags)


def parsed(cls: type, args: argparse.Namespace) -> Any:
    """The settings dataclass ``cls`` from the parsed command line."""
    return cls(**typed(args, cls))


def check_out_folder(out: str) -> None:
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"--out {out} is a file; give a folder")


def require_serve_extra(what: str) -> None:
    """A sentence, not an ImportError, where the serve extra's packages are missing."""
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as err:
        raise ValueError(f"{what} needs vggnet's serve extra (pip install 'vggnet[serve]'): {err}") from None
