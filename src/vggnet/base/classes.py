"""Where a folder's classes meet a model's (evaluation, the probe, fine-tuning, features' labels): one matching, by
name, never by position unless asked.

A folder class matches the model class of the same name; where none has it, the one whose name differs only by
what a folder name cannot hold or what people put in its place (:func:`name_key`: case, and every character that is
not a letter or a digit, so ``T-shirt_top``, ``t-shirt top`` and ``TshirtTop`` all match ``T-shirt/top``), and the
command says once that it matched so. A subset of the model's classes matches; anything else is a sentence listing
both sides and how to map them: ``--class-map FILE`` (folder name to model name) or ``--classes-by-position``.
"""

from __future__ import annotations

import json
import os
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .settings import setting

SHOWN = 8  # class names listed in a sentence before "..."


def class_map_setting() -> Any:
    """The ``--class-map`` field of a command's settings (defined here once; each settings class declares it)."""
    return setting(
        None,
        "where the folder's class names differ from the model's: a file mapping them, JSON {\"folder name\": "
        '"model\'s name"} or lines FOLDER = MODEL; classes it leaves out match by name',
        metavar="FILE",
    )


def by_position_setting() -> Any:
    """The ``--classes-by-position`` field of a command's settings."""
    return setting(
        False,
        "match the folder's classes (in sorted order) to the model's by position, the i-th to the i-th, whatever "
        "their names (only when asked: classes match by name otherwise)",
    )


@dataclass
class ClassMatching:
    """How a folder's classes are matched to a model's: by name (the default), through a map, or by position.
    ``remedy``: what the sentence of a failed match offers (default: the two flags)."""

    class_map: str | None = class_map_setting()
    classes_by_position: bool = by_position_setting()
    remedy: str | None = setting(None, "what a failed match's sentence offers", flag=False)

    @classmethod
    def of(cls, settings: object) -> ClassMatching:
        """The matching a command's settings ask for (any object with the two fields)."""
        return cls(getattr(settings, "class_map", None), getattr(settings, "classes_by_position", False))

    def match(self, data: Sequence[str], model: Sequence[str], data_name: str, model_name: str) -> ClassMatch:
        """:func:`match_classes` with these settings."""
        mapping = read_class_map(self.class_map) if self.class_map else None
        return match_classes(data, model, data_name, model_name, mapping, self.classes_by_position, self.remedy)


@dataclass
class ClassMatch:
    """The model's index of each folder class, and what to say once about how they matched (None: all by name)."""

    index: list[int]
    note: str | None = None


def name_key(name: str) -> str:
    """What two class names must share to match when they differ: the name in Unicode NFKC form (macOS writes file
    names decomposed), case folded, with every character that is not a letter or a digit dropped, since '/' and
    NUL cannot be in a folder name, Windows refuses '\\ : * ? " < > |' and trailing dots, and people write '_', '-'
    or a space in their place."""
    return "".join(c for c in unicodedata.normalize("NFKC", name).casefold() if c.isalnum())


def read_class_map(path: str | os.PathLike) -> dict[str, str]:
    """A class map: a JSON object of folder name to model name, or text lines ``FOLDER = MODEL`` (blank lines and
    lines starting with # left out)."""
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"no such class map: {file}")
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"cannot read the class map {file}: {err}") from None
    if text.lstrip().startswith("{"):
        try:
            found = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"the class map {file} is not valid JSON: {err}") from None
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in found.items()):
            raise ValueError(f'the class map {file} must map names to names, as {{"folder name": "model\'s name"}}')
        return found
    found = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        folder, sign, model = line.partition("=")
        if not sign or not folder.strip() or not model.strip():
            raise ValueError(f"{file}, line {number}: expected FOLDER = MODEL, got {line.strip()!r}")
        found[folder.strip()] = model.strip()
    return found


def unnamed(classes: Sequence[str]) -> bool:
    """Whether a model's classes are the placeholders given to a file that names none (``class 0`` ...)."""
    return list(classes) == [f"class {i}" for i in range(len(classes))]


def match_classes(
    data: Sequence[str],
    model: Sequence[str],
    data_name: str = "the folder",
    model_name: str = "the model",
    class_map: dict[str, str] | None = None,
    by_position: bool = False,
    remedy: str | None = None,
) -> ClassMatch:
    """The index among ``model``'s classes of each of ``data``'s: ``by_position`` the i-th to the i-th (equal
    counts only); else through ``class_map`` (folder name to model name) where it names a class, by the same name,
    or by :func:`name_key` where exactly one model class shares it. A model whose file names no classes
    (:func:`unnamed`) takes a folder of as many classes by position, saying so. Otherwise ``ValueError``: one
    sentence listing both sides and how to map them (``remedy``, default: the two flags)."""
    data, model = list(data), list(model)
    if by_position:
        if class_map:
            raise ValueError("give either --class-map or --classes-by-position, not both")
        if len(data) != len(model):
            raise ValueError(
                f"--classes-by-position needs as many classes on both sides: {data_name} has {len(data)} "
                f"({_listed(data)}), {model_name} {len(model)} ({_listed(model)})"
            )
        return ClassMatch(
            list(range(len(data))), f"the classes of {data_name} matched those of {model_name} by position"
        )
    found, by_rule, left = _by_name(data, model, class_map or {}, model_name, not unnamed(model))
    if not left:
        note = None
        if by_rule:
            pairs = ", ".join(f"{d} -> {m}" for d, m in by_rule[:SHOWN]) + (" ..." if len(by_rule) > SHOWN else "")
            note = (
                f"the classes of {data_name} matched those of {model_name} by name, ignoring case and the characters "
                f"that are not letters or digits (a folder name cannot hold them all): {pairs}"
            )
        return ClassMatch([found[d] for d in data], note)
    if unnamed(model) and len(data) == len(model) and not class_map:
        return ClassMatch(
            list(range(len(data))),
            f"{model_name} names no classes: its {len(model)} outputs are taken as the classes of {data_name} in "
            f"sorted order ({_listed(data)}); --class-map FILE says otherwise",
        )
    raise ValueError(_unmatched(data, model, left, data_name, model_name, remedy))


def _by_name(
    data: list[str], model: list[str], class_map: dict[str, str], model_name: str, named: bool
) -> tuple[dict[str, int], list[tuple[str, str]], list[str]]:
    """(index of each folder class matched, the pairs matched by the rule, the folder classes left unmatched); a
    model that is not ``named`` matches only through the map (its placeholders are no names)."""
    exact: dict[str, list[int]] = {}
    keyed: dict[str, list[int]] = {}
    for i, name in enumerate(model):
        exact.setdefault(name, []).append(i)
        keyed.setdefault(name_key(name), []).append(i)

    def lookup(name: str) -> tuple[int | None, bool]:
        if len(exact.get(name, [])) == 1:
            return exact[name][0], False
        near = keyed.get(name_key(name), [])
        return (near[0], True) if len(near) == 1 and name not in exact else (None, False)

    found, by_rule, left = {}, [], []
    for name in data:
        if not named and name not in class_map:
            left.append(name)
            continue
        target = class_map.get(name, name)
        index, near = lookup(target)
        if index is None and name in class_map:
            raise ValueError(
                f"the class map sends {name} to {target}, which is not among the classes of {model_name} "
                f"({_listed(model)})"
            )
        if index is None:
            left.append(name)
            continue
        found[name] = index
        if near:
            by_rule.append((name, model[index]))
    return found, by_rule, left


def _unmatched(
    data: list[str], model: list[str], left: list[str], data_name: str, model_name: str, remedy: str | None
) -> str:
    """The sentence for folder classes that match none of the model's."""
    if remedy is None:
        remedy = (
            f'map them with --class-map FILE (e.g. JSON {{"{left[0]}": "{model[0]}"}}, or lines {left[0]} = {model[0]})'
            + (
                f", or --classes-by-position to take the i-th of its classes (sorted) as the i-th of {model_name}"
                if len(data) == len(model)
                else ""
            )
        )
    theirs = (
        f"the classes of {model_name}, which names none (its {len(model)} outputs)"
        if unnamed(model)
        else f"the {len(model)} classes of {model_name} ({_listed(model)})"
    )
    return (
        f"{len(left)} of the {len(data)} classes of {data_name} ({_listed(left)}) {'is' if len(left) == 1 else 'are'} "
        f"not among {theirs} by name: {remedy}"
    )


def _listed(names: Sequence[str]) -> str:
    return ", ".join(names[:SHOWN]) + (f" ... ({len(names)} in all)" if len(names) > SHOWN else "")
