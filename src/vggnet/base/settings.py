"""Settings that carry their own flags: each field of a settings dataclass says, once, its help, its range or choices
and its role, and the command line, recipe validation and a resumed run's check all read it from there.

A field is declared with :func:`setting` (``lr: float = setting(0.01, "initial learning rate", POSITIVE)``);
:func:`add_flags` turns a dataclass into argparse flags (typed from the annotations, checked as they are parsed) and
:func:`validate` checks any instance, from the command line or from Python, with the same messages. The role says
whether a setting changes what a run computes (``"result"``) or only how it runs (``"runtime"``): a resumed run, or
a reproduction folder continued, may change only the latter. NaN and infinities never pass a range.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .progress import LOG_EVERY

RESULT, RUNTIME = "result", "runtime"


@dataclass(frozen=True)
class Range:
    """``low`` .. ``high`` (either may be open or absent)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def describe(self) -> str:
        if (self.low, self.high, self.low_open) == (0, None, True):
            return "must be positive"
        if (self.low, self.high, self.low_open) == (0, None, False):
            return "must not be negative"
        if self.high is None:
            return f"must be {'more than' if self.low_open else 'at least'} {self.low:g}"
        if self.low is None:
            return f"must be {'less than' if self.high_open else 'at most'} {self.high:g}"
        left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
        return f"must be in {left}{self.low:g}, {self.high:g}{right}"

    def holds(self, value: float) -> bool:
        if isinstance(value, float) and not math.isfinite(value):
            return False
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above and below

    def check(self, name: str, value: float | None) -> None:
        """``ValueError`` naming ``name`` unless ``value`` (None passes) is a finite number in range."""
        if value is None:
            return
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value}")
        if not self.holds(value):
            raise ValueError(f"{name} {self.describe()}, got {value:g}")


ANY = Range()
POSITIVE = Range(0, low_open=True)
AT_LEAST_ONE = Range(1)
NON_NEGATIVE = Range(0)
FRACTION = Range(0, 1, high_open=True)  # a probability or momentum: [0, 1)


def arg(kind: type, allowed: Range = ANY) -> Callable[[str], float]:
    """An argparse ``type``: parses ``kind`` (int or float) and refuses NaN, infinities and values out of range, so
    every command reports a bad number the same way ("argument --lr: must be positive, got -1")."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {kind.__name__} value: {text!r}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        if not allowed.holds(value):
            raise argparse.ArgumentTypeError(f"{allowed.describe()}, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its own messages
    return parse


# -- declaring settings -----------------------------------------------------------------------------------------------
def setting(
    default: Any,
    help: str,
    allowed: Range = ANY,
    *,
    choices: Sequence[Any] | None = None,
    role: str = RESULT,
    metavar: str | None = None,
    flag: bool = True,
    repeat: bool = False,
    positional: bool = False,
    required: bool = False,
) -> Any:
    """A dataclass field with its help, its range (numbers) or ``choices``, and its ``role`` (:data:`RESULT` or
    :data:`RUNTIME`). ``flag=False``: a setting of the Python API that has no flag of its own; ``repeat``: a list
    given by repeating its flag (``--weights A --weights B``); ``positional``: an argument without a flag."""
    if role not in (RESULT, RUNTIME):
        raise ValueError(f"role must be {RESULT!r} or {RUNTIME!r}, got {role!r}")
    meta = {"help": help, "range": allowed, "choices": tuple(choices) if choices else None, "role": role}
    meta.update(metavar=metavar, flag=flag, repeat=repeat, positional=positional, required=required)
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def names(cls: type, role: str | None = None) -> list[str]:
    """The settings of a dataclass, or those of one role."""
    return [f.name for f in dataclasses.fields(cls) if role is None or f.metadata.get("role", RESULT) == role]


def flag_of(name: str) -> str:
    return "--" + name.replace("_", "-")


def _kind(annotation: Any) -> tuple[Any, bool]:
    """(the value's type, whether it may be None) of an annotation such as ``int | None`` or ``list[int] | None``."""
    options = [a for a in typing.get_args(annotation) if a is not type(None)]
    optional = type(None) in typing.get_args(annotation)
    if typing.get_origin(annotation) is not list and options and len(options) == 1:
        return options[0], optional
    return annotation, optional


# -- flags ---------------------------------------------------------------------------------------------------------
def add_flags(parser: argparse.ArgumentParser, cls: type, *, suppress: bool = False, skip: Iterable[str] = ()) -> None:
    """One flag per field of ``cls`` (``--batch-size`` for ``batch_size``), typed from its annotation, checked as
    parsed (ranges, choices), its help from the field. ``suppress``: an unset flag leaves no value, so that what was
    typed can be told from the defaults (and layered over a recipe); otherwise an unset flag gives the field's
    default. A field whose annotation is a union of several types takes its flag as text."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip or not f.metadata.get("flag", True):
            continue
        meta = f.metadata
        kind, _ = _kind(hints[f.name])
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        shown = "" if default in (None, False) or default == [] else f" (default {_show(default)})"
        common: dict[str, Any] = {"help": meta["help"] + shown, "default": argparse.SUPPRESS if suppress else default}
        if meta.get("metavar"):
            common["metavar"] = meta["metavar"]
        positional = meta.get("positional")
        if meta.get("required") and not positional:
            common["required"] = True
        name = [f.name] if positional else [flag_of(f.name)]
        if kind is bool:
            parser.add_argument(*name, action=argparse.BooleanOptionalAction, **common)
            continue
        parser.add_argument(*name, **_how(kind, meta, positional and default in (None, [])), **common)


def _how(kind: Any, meta: Any, optional: bool) -> dict[str, Any]:
    """argparse's type, number of values and action for a field's annotation."""
    allowed, choices = meta.get("range", ANY), meta.get("choices")
    if typing.get_origin(kind) is list:
        item = typing.get_args(kind)[0]
        if typing.get_origin(item) is list:  # several lists of values: a repeated flag of one or more values
            item = typing.get_args(item)[0]
            return {"type": arg(item, allowed), "nargs": "+", "action": "append", "choices": choices}
        parse = arg(item, allowed) if item in (int, float) else item
        many = {"action": "append"} if meta.get("repeat") else {"nargs": "*" if optional else "+"}
        return {"type": parse, "choices": choices, **many}
    extra = {"nargs": "?"} if optional else {}
    if kind in (int, float):
        return {"type": arg(kind, allowed), "choices": choices, **extra}
    return {"choices": choices, **extra}


def _show(value: Any) -> str:
    if isinstance(value, list):
        return " ".join(map(str, value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def typed(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The settings of ``cls`` that ``args`` holds: with ``add_flags(suppress=True)``, exactly those typed."""
    return {k: v for k, v in vars(args).items() if k in {f.name for f in dataclasses.fields(cls)}}


# -- validation ----------------------------------------------------------------------------------------------------
def validate(settings: Any) -> None:
    """Raise ``ValueError`` naming the first setting of the wrong type, not among its choices or out of range: the
    same checks and messages from the command line, a recipe or Python."""
    hints = typing.get_type_hints(type(settings))
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if not _is_instance(value, hints[f.name]):
            raise ValueError(f"setting {f.name} = {value!r} is not {_type_name(hints[f.name])}")
        choices, allowed = f.metadata.get("choices"), f.metadata.get("range", ANY)
        for v in value if isinstance(value, list) else [value]:
            if choices and v is not None and v not in choices:
                shown = ", ".join(str(c) for c in choices)
                raise ValueError(f"unknown {f.name.replace('_', '-')} {v!r}; expected one of {shown}")
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                allowed.check(f.name.replace("_", "-"), v)


def check_types(cls: type, values: dict[str, Any], where: str) -> None:
    """Refuse unknown settings and values of the wrong type in ``values`` (a recipe's), naming ``where``."""
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(values) - set(hints))
    if unknown:
        raise ValueError(f"{where} has unknown settings: {', '.join(unknown)}")
    for name, value in values.items():
        if not _is_instance(value, hints[name]):
            raise ValueError(f"{where}: setting {name} = {value!r} is not {_type_name(hints[name])}")


def _is_instance(value: Any, kind: Any) -> bool:
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is list:
        return isinstance(value, list) and all(_is_instance(v, args[0]) for v in value)
    if args:  # a union: X | None, or several kinds
        return any(_is_instance(value, a) for a in args)
    if kind is type(None):
        return value is None
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def _type_name(kind: Any) -> str:
    words = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    if args and typing.get_origin(args[0]) is list:
        kind, args = args[0], list(typing.get_args(args[0]))
    if typing.get_origin(kind) is list:
        return f"a list of {words[args[0]].split(' ', 1)[1]}s"
    return words.get(args[0] if args else kind, str(kind)) + (
        " (or absent)" if type(None) in typing.get_args(kind) else ""
    )


# -- settings many commands share ----------------------------------------------------------------------------------
def progress_setting(default: bool = True) -> Any:
    """``--progress``/``--no-progress``, the same flag in every command that shows progress."""
    return setting(
        default,
        "progress: a bar on a terminal, a line every --log-every seconds in a log; --no-progress shows none",
        role=RUNTIME,
    )


def log_every_setting(default: float = LOG_EVERY) -> Any:
    return setting(default, "seconds between progress lines when the output is not a terminal", POSITIVE, role=RUNTIME)


@dataclass
class ProgressSettings:
    """The progress flags of a command that has no settings of its own for them (training's are its own fields)."""

    progress: bool = progress_setting()
    log_every: float = log_every_setting()
