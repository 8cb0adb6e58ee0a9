"""The ``vggnet`` command: a thin layer over the Python API.

Every sub-command's flags come from settings dataclasses (each field says its help, range and role,
:mod:`vggnet.base.settings`); a command builds them from what was typed, calls the API and turns the outcome into an
exit status. Every failure a user can cause ends as one line on stderr and a non-zero exit status, never as a traceback.
"""

from __future__ import annotations

import argparse
import difflib
import os
import platform
import re
import select
import signal
import sys
from typing import Any, NoReturn

from .base.download import supplied_as
from .base.extras import missing_package
from .base.progress import showing
from .base.settings import add_flags
from .commands.dispatch import COMMANDS
from .version import __version__


class Parser(argparse.ArgumentParser):
    """argparse, with errors as people expect them: one short usage line and the sentence (not the whole usage
    block), and the nearest flag or command where one is misspelt ("did you mean --epochs?"; Python 3.14's
    ``suggest_on_error``, here on every version). Exit status 2."""

    def error(self, message: str) -> NoReturn:
        what = "COMMAND [options]" if self._subparsers is not None else "[options]"
        usage = f"usage: {self.prog} {what} (see {self.prog} --help)"
        self.exit(2, f"{usage}\n{self.prog}: error: {self._suggest(message)}\n")

    def _suggest(self, message: str) -> str:
        if message.endswith("required: COMMAND"):
            return f"give a command: {', '.join(c.name for c in COMMANDS)}"
        choice = re.match(r"argument (\S+): invalid choice: '?(.*?)'? \(choose from (.*)\)$", message)
        if choice:
            word, listed = choice.group(2), choice.group(3)
            options = re.findall(r"'([^']*)'", listed) or [c.strip() for c in listed.split(",")]
            return message + _did_you_mean(word, options)
        if message.startswith("unrecognized arguments: "):
            flags = [o for action in self._actions for o in action.option_strings if o.startswith("--")]
            typed = [w.split("=", 1)[0] for w in message.split(": ", 1)[1].split() if w.startswith("--")]
            return message + "".join(_did_you_mean(w, flags) for w in typed[:1])
        return message


def _known(parser: argparse.ArgumentParser, flag: str) -> bool:
    """Whether ``flag`` is one of the parser's, or the start of one (argparse takes abbreviations)."""
    return flag == "--" or any(o.startswith(flag) for a in parser._actions for o in a.option_strings)


def _did_you_mean(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.7)
    return f"; did you mean {close[0]}?" if close else ""


def version() -> str:
    import torch

    return f"vggnet {__version__} (PyTorch {torch.__version__}, Python {platform.python_version()})"


def make_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="vggnet", description="VGG (Simonyan & Zisserman 2014) in PyTorch")
    parser.add_argument("--version", action="version", version=version())
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    parser.commands = {}
    for command in COMMANDS:
        described = next((c.cli_text for c in command.classes() if hasattr(c, "cli_text")), None)
        p = sub.add_parser(
            command.name,
            help=command.help,
            description=command.description or described or command.help,
            formatter_class=KeepLists,
        )
        for cls in command.classes():
            add_flags(p, cls, suppress=cls in command.only_typed)
        p.set_defaults(func=command.run)
        parser.commands[command.name] = p
    return parser


class KeepLists(argparse.HelpFormatter):
    """Help whose paragraphs are wrapped, except lines that start with two spaces (a list, one item a line)."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return "\n".join(
            indent + line if line.startswith("  ") else super(KeepLists, self)._fill_text(line, width, indent)
            for line in text.split("\n")
        )


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The command's settings; a flag the command does not know is its error (its usage, the nearest flag), before
    any other: a misspelt flag is the mistake, not the flags it leaves missing."""
    parser = make_parser()
    words = sys.argv[1:] if argv is None else list(argv)
    current = parser
    for word in words:
        if current is parser and not word.startswith("-"):
            if word not in parser.commands:
                break  # not a command: argparse says so, and the nearest command
            current = parser.commands[word]
        elif word.startswith("--") and not _known(current, word.split("=", 1)[0]):
            current.error(f"unrecognized arguments: {word}")
    args, unknown = parser.parse_known_args(words)
    if unknown:
        parser.commands[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def _terminate(signum: int, frame: Any) -> None:
    # SIGTERM as an exception: every `finally` and `with` runs, so temporary files and staged outputs are removed
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        # --no-progress and --log-every reach every loop; a failed download names the flag that gives the file
        with showing(getattr(args, "progress", True), getattr(args, "log_every", None)), supplied_as("--weights FILE"):
            status = args.func(args)
            sys.stdout.flush()  # within reach of the handlers below: a reader gone is said here, not at exit
            return status
    except BrokenPipeError as err:
        if not _reader_left():
            print(f"vggnet {args.command}: error: {_sentence(err)}", file=sys.stderr)
            return 2
        return 128 + signal.SIGPIPE  # `vggnet info vgg16 | head`: the reader had enough, as for any Unix tool
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


def _reader_left() -> bool:
    """Whether standard output is a pipe whose reader has gone (the pipe reports an error to poll); if so, it
    becomes /dev/null, so that Python's last flush at exit does not fail again with a traceback of its own."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        gone = any(events & select.POLLERR for _, events in poller.poll(0))
    except (OSError, ValueError, AttributeError):  # no poll (Windows), or stdout is no file
        return False
    if gone:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return gone


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
