"""Progress on the screen, one way for every command: a tqdm bar where stderr is a terminal; where it is a log (a
file, a pipe), a plain line every ``every`` seconds instead of thousands of carriage-return frames; nothing at all
when switched off (``--no-progress``).

A command switches progress for everything it calls (:func:`showing`: the command line does it from
``--progress``/``--no-progress`` and ``--log-every``); a loop wraps its iterable (:func:`track`) or keeps a
:class:`Progress` by hand (training, which counts its own steps). Heavy work says what it is about to do and, once
its first items are timed, how long it will take here (``estimate``).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sized
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TextIO, TypeVar

T = TypeVar("T")
LOG_EVERY = 30.0  # seconds between the plain lines of a log
HEAVY = 10.0  # seconds of work ahead worth an estimate

# (shown, seconds between a log's lines): what the command line chose for this call; Python callers get the defaults
_CHOICE: ContextVar[tuple[bool, float]] = ContextVar("vggnet_progress", default=(True, LOG_EVERY))


@contextmanager
def showing(enabled: bool = True, every: float | None = None) -> Iterator[None]:
    """Progress shown (or not) by everything called inside, a log's line every ``every`` seconds."""
    token = _CHOICE.set((bool(enabled), float(every or LOG_EVERY)))
    try:
        yield
    finally:
        _CHOICE.reset(token)


def enabled() -> bool:
    return _CHOICE.get()[0]


def say(text: str) -> None:
    """A line on stderr about the work ahead, where progress is shown."""
    if enabled():
        print(text, file=sys.stderr, flush=True)


def duration(seconds: float) -> str:
    """``42 s``, ``3 min 10 s``, ``25 min``, ``2.4 h``, ``6.1 days``: a time as a person reads it (never ``0.0 h``)."""
    if seconds < 0.1:
        return "under 0.1 s"
    if seconds < 59.5:
        return f"{seconds:.1f} s" if seconds < 9.95 else f"{seconds:.0f} s"
    minutes = seconds / 60
    if minutes < 10:
        whole, rest = divmod(round(seconds), 60)
        return f"{whole} min {rest} s" if rest else f"{whole} min"
    if minutes < 59.5:
        return f"{minutes:.0f} min"
    if minutes < 48 * 60:
        return f"{minutes / 60:.1f} h"
    return f"{minutes / 60 / 24:.1f} days"


class Progress:
    """Progress through ``total`` items: a tqdm bar on a terminal, a plain line every ``every`` seconds in a log,
    nothing unless ``enabled`` (and progress is shown, :func:`showing`). ``estimate``: once the first items are timed
    (the first one, which warms up, left out), a line saying what the whole will take here, made from the projected
    seconds (``True``: "about 5 min for the 10,000 images here"); ``least``: fewer items than this get no bar (one
    image needs none)."""

    def __init__(
        self,
        total: int,
        initial: int = 0,
        desc: str = "",
        every: float | None = None,
        stream: TextIO | None = None,
        enabled: bool = True,
        unit: str = "step",
        estimate: Callable[[float], str] | bool = False,
        least: int = 1,
    ) -> None:
        shown, default_every = _CHOICE.get()
        self.stream = stream or sys.stderr
        self.total, self.n, self.desc, self.unit = total, initial, desc, unit
        self.every = every if every is not None else default_every
        self.enabled = enabled and shown and total >= least
        self.last = self.started = time.monotonic()
        if estimate is True:
            estimate = self._whole
        self.estimate, self.first = estimate or None, None  # first: (clock, n) after the first item, timing's start
        self.bar = None
        if self.enabled and self.stream.isatty():
            from tqdm import tqdm

            # a terminal that does not say its size (a bare pseudo-terminal) gets 80 x 24, not an empty bar
            width = {"dynamic_ncols": True} if min(_size(self.stream)) > 0 else {"ncols": 80, "nrows": 24}
            shape = dict(total=total, initial=initial, desc=desc, unit=unit, leave=False, mininterval=0.5)
            self.bar = tqdm(file=self.stream, **shape, **width)

    def update(self, n: int, status: str = "") -> None:
        """Now at item ``n`` of ``total``; ``status`` is a short summary (rate, loss ...)."""
        self.n = n
        if not self.enabled:
            return
        self._estimate_once()
        if self.bar is not None:
            self.bar.set_postfix_str(status, refresh=False)
            self.bar.update(n - self.bar.n)
        elif time.monotonic() - self.last >= self.every:
            self.last = time.monotonic()
            share = f" ({100 * n / max(self.total, 1):.0f}%)"
            self.note(f"{self.desc}: {self.unit} {n}/{self.total}{share}" + (f", {status}" if status else ""))

    def advance(self, k: int = 1) -> None:
        """``k`` more items done; a log's line says the rate and the time left (a bar shows its own)."""
        self.n += k
        self.update(self.n, "" if self.bar is not None else self._rate_and_left())

    def note(self, text: str) -> None:
        """A line that leaves the bar whole (nothing when progress is off)."""
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _whole(self, seconds: float) -> str:
        total = f"{self.total:,} {self.unit}s"
        return f"{self.desc}: about {duration(seconds)} for the {total} here (timed on the first ones)"

    def _rate_and_left(self) -> str:
        if self.first is None:
            return ""
        clock, n = self.first
        rate = (self.n - n) / max(time.monotonic() - clock, 1e-9)
        if rate <= 0:
            return ""
        speed = f"{rate:.3g} {self.unit}s/s" if rate >= 1 else f"{duration(1 / rate)} per {self.unit}"
        return f"{speed}, about {duration((self.total - self.n) / rate)} left" if self.n < self.total else speed

    def _estimate_once(self) -> None:
        """After the first item (which warms up), time the next ones (5 of them, 2 over 2 s, or one of 10 s): say the
        projected total where it is heavy."""
        now = time.monotonic()
        if self.first is None:
            self.first = (now, self.n)
            return
        if self.estimate is None:
            return
        clock, n = self.first
        done = self.n - n
        timed = now - clock
        if (done >= 5 or (done >= 2 and timed >= 2.0) or (done >= 1 and timed >= 10.0)) and self.n < self.total:
            seconds = (now - self.started) + (self.total - self.n) * timed / done
            if seconds >= HEAVY:
                self.note(self.estimate(seconds))
            self.estimate = None


def _size(stream: TextIO) -> tuple[int, int]:
    """The terminal's columns and lines (0 where it does not say: tqdm would then draw nothing)."""
    try:
        return tuple(os.get_terminal_size(stream.fileno()))
    except (OSError, ValueError, AttributeError):
        return 0, 0


def track(
    items: Iterable[T],
    total: int | None = None,
    desc: str = "",
    unit: str = "image",
    size: Callable[[T], int] | None = None,
    estimate: Callable[[float], str] | bool = False,
    least: int = 2,
    enabled: bool = True,
) -> Iterator[T]:
    """``items`` with progress: each counts ``size(item)`` (default 1) once the loop's body is done with it."""
    total = total if total is not None else (len(items) if isinstance(items, Sized) else 0)
    with Progress(total, desc=desc, unit=unit, estimate=estimate, least=least, enabled=enabled) as progress:
        for item in items:
            yield item
            progress.advance(size(item) if size else 1)
