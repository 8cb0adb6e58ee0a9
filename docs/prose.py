"""The prose about the reproduction (REPRODUCTION.md above its generated reports, the README's summary), written from
templates whose every number is a key of the published reports: ``{{nobn:findings.B-A.effect|interval}}`` is the
no-BN report's (docs/reproduce.json) finding ``B-A``, its effect with its interval; ``{{bn:settings.seeds}}`` the BN
report's seeds. So a number cannot drift from the report it quotes, and each stands for the key it was written as.

A placeholder is ``{{REPORT:PATH|FILTER|...}}``: REPORT ``nobn`` or ``bn``; PATH dotted keys, where a list of
entries with ids (findings, power) is indexed by id (``findings.lrn``, ``power.lrn/near-equality``) and any other
list by position; each FILTER is one of :data:`FILTERS` or a Python format spec (``+.2f``). A block
``{{if REPORT:PATH}} ... {{end}}`` is kept where the key exists and is true (or, written ``{{if REPORT:PATH ==
VALUE}}``, equals VALUE; ``!=`` the other way), so that one template serves a report before and after its plan
gains a finding. ``<!-- about: ID, ... -->`` before a paragraph declares the findings it quotes (the test checks
that it quotes no other); the comments are left out of the output.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
REPORTS = {"nobn": "reproduce.json", "bn": "reproduce_bn.json"}
PLACEHOLDER = re.compile(r"\{\{(?!if |end\}\})([a-z]+):([^|}]+)((?:\|[^|}]+)*)\}\}")
BLOCK = re.compile(r"\{\{if ([a-z]+):([^ }]+)(?: (==|!=) ([^}]+))?\}\}(.*?)\{\{end\}\}", re.S)
ABOUT = re.compile(r"<!-- about: ([^>]*?) -->\n?")
MISSING = object()


def interval(effect: dict[str, Any]) -> str:
    return f"{effect['effect']:+.2f} [{effect['low']:+.2f}, {effect['high']:+.2f}]"


FILTERS = {
    "interval": interval,  # an effect with its 95 % interval: +2.40 [+1.11, +3.70]
    "pct": lambda x: f"{100 * x:.0f}",  # a share as a whole percentage
    "pct1": lambda x: f"{100 * x:.1f}",
    "abs": abs,
    "len": len,
    "positive": lambda xs: sum(x > 0 for x in xs),  # how many of the values are positive
    "negative": lambda xs: sum(x < 0 for x in xs),
    "min": min,
    "max": max,
    "first": lambda xs: xs[0],
    "last": lambda xs: xs[-1],
    "keys": lambda d: ", ".join(d),
    "join": lambda xs: ", ".join(map(str, xs)),
    "round": round,
}


def reports(root: Path = ROOT) -> dict[str, dict[str, Any]]:
    return {name: json.loads((root / "docs" / file).read_text()) for name, file in REPORTS.items()}


def lookup(data: Any, path: str) -> Any:
    """The value at a dotted path; :data:`MISSING` where there is none."""
    for key in path.split("."):
        if isinstance(data, list):
            ids = [x.get("id") for x in data if isinstance(x, dict)]
            if key in ids:
                data = data[ids.index(key)]
            elif key.isdigit() and int(key) < len(data):
                data = data[int(key)]
            else:
                return MISSING
        elif isinstance(data, dict) and key in data:
            data = data[key]
        else:
            return MISSING
    return data


def value(found: dict[str, dict[str, Any]], report: str, path: str, filters: str) -> str:
    """One placeholder's text; a ValueError naming it where its key is missing."""
    got = lookup(found[report], path)
    if got is MISSING or got is None:
        raise ValueError(f"{{{{{report}:{path}{filters}}}}}: the report has no such value")
    for f in filters.split("|")[1:]:
        got = FILTERS[f](got) if f in FILTERS else format(got, f)
    return str(got)


def kept(found: dict[str, dict[str, Any]], match: re.Match) -> str:
    report, path, op, expected, body = match.groups()
    got = lookup(found[report], path)
    if op is None:
        return body if got is not MISSING and got else ""
    same = got is not MISSING and str(got) == expected.strip()
    return body if same == (op == "==") else ""


def decided(template: str, found: dict[str, dict[str, Any]]) -> str:
    """The template with its ``{{if}}`` blocks kept or left out as the reports say."""
    return BLOCK.sub(lambda m: kept(found, m), template)


def fill(text: str, found: dict[str, dict[str, Any]]) -> str:
    """Text with its placeholders filled and its ``about`` comments left out."""
    return PLACEHOLDER.sub(lambda m: value(found, *m.groups()), ABOUT.sub("", text))


def render(template: str, found: dict[str, dict[str, Any]]) -> str:
    """The template with its blocks decided, its placeholders filled and its ``about`` comments left out."""
    return fill(decided(template, found), found)


def references(paragraph: str) -> set[str]:
    """The findings (by id) a paragraph of a template quotes: its findings.ID and power.ID placeholders."""
    ids = set()
    for _, path, _ in PLACEHOLDER.findall(paragraph):
        parts = path.split(".")
        if parts[0] in ("findings", "power") and len(parts) > 1:
            ids.add(parts[1].split("/")[0])
    return ids


def declared(paragraph: str) -> set[str]:
    return {x.strip() for m in ABOUT.findall(paragraph) for x in m.split(",")}
