"""The ``vggnet`` command: a thin layer over the Python API.

Every sub-command's flags come from settings dataclasses (each field says its help, range and role,
:mod:`vggnet.base.settings`); a command builds them from what was typed, calls the API and turns the outcome into an
exit status. Every failure a user can cause ends as one line on stderr and a non-zero exit status, never as a traceback.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import Any

from .base.extras import missing_package
from .base.settings import add_flags
from .commands.dispatch import COMMANDS, Recipe, ReproduceActions


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vggnet", description="VGG (Simonyan & Zisserman 2014) in PyTorch")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        described = next((c.cli_text for c in command.classes() if hasattr(c, "cli_text")), None)
        p = sub.add_parser(
            command.name, help=command.help, description=command.description or described or command.help
        )
        for cls in command.classes():
            add_flags(p, cls, suppress=command.name in ("train", "reproduce") and cls not in (Recipe, ReproduceActions))
        p.set_defaults(func=command.run)
    return parser


def _terminate(signum: int, frame: Any) -> None:
    # SIGTERM as an exception: every `finally` and `with` runs, so temporary files and staged outputs are removed
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return args.func(args)
    except (ValueError, OSError) as err:  # bad input: a sentence, not a traceback
        print(f"vggnet {args.command}: error: {_sentence(err)}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as err:  # an optional package not installed: which one, and the extra that brings it
        said = missing_package(err)
        if said is None:
            return _unexpected(args.command, err)
        print(f"vggnet {args.command}: error: {said}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        print(f"vggnet {args.command}: interrupted{': ' + str(err) if str(err) else ''}", file=sys.stderr)
        return 130
    except SystemExit as stop:
        if stop.code == 128 + signal.SIGTERM:
            print(f"vggnet {args.command}: stopped by SIGTERM; nothing half-written was left", file=sys.stderr)
        raise
    except Exception as err:  # a bug: still one line, and the traceback on request
        return _unexpected(args.command, err)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _unexpected(command: str, err: Exception) -> int:
    if os.environ.get("VGGNET_DEBUG"):
        raise err
    print(
        f"vggnet {command}: unexpected error: {type(err).__name__}: {_sentence(err)} "
        "(set VGGNET_DEBUG=1 for the traceback, and please report it)",
        file=sys.stderr,
    )
    return 1


def _sentence(err: BaseException) -> str:
    if isinstance(err, OSError) and err.filename and err.strerror:
        return f"{err.strerror}: {err.filename}"
    return str(err)
