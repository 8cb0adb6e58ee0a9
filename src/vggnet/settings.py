"""Numeric settings checked in one place: the range each may take, for the command line (as it parses) and for the
Python API and recipes (:meth:`vggnet.recipe.TrainConfig.check`) alike. NaN and infinities never pass."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass


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


POSITIVE = Range(0, low_open=True)
AT_LEAST_ONE = Range(1)
NON_NEGATIVE = Range(0)
FRACTION = Range(0, 1, high_open=True)  # a probability or momentum: [0, 1)


def arg(kind: type, allowed: Range = Range()) -> Callable[[str], float]:
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
