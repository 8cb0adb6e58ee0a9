"""What the documents say about the reproduction comes from the files its code wrote. REPRODUCTION.md holds the
generated reports below its marker (docs/publish_reproduction.py puts them there): every number they print is a number
of docs/reproduce*.json. Its hand-written prose above the marker, and the README's summary, may quote only numbers
those reports print (or the JSON's summary: settings, rule, decisions, LRN, timing), never one from elsewhere."""

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARKER = "<!-- the generated reports follow"
DECIMAL = re.compile(r"(?<![\w.])[+-]?\d+\.\d+(?![\w.])")
PERCENT = re.compile(r"(?<![\w.])(\d+) ?%")
SECTION = re.compile(r"(Sect\.|Sects\.|Section|Table|Tables|Python|torch|OpenVINO|v)\s*[\d.,\- ]+$")
SUMMARY = ("settings", "rule", "decisions", "lrn", "plateau", "stuck", "timing", "paper")  # not per-run histories


def prose(text: str) -> str:
    """The text without code blocks, inline code and link targets (commands and paths are not claims)."""
    text = re.sub(r"```.*?```", " ", text, flags=re.S)
    text = re.sub(r"`[^`]*`", " ", text)
    return re.sub(r"\]\([^)]*\)", "]", text)


def numbers_in(value, found: list[float] | None = None) -> list[float]:
    """Every number in a JSON value, and every number written inside its strings."""
    found = [] if found is None else found
    if isinstance(value, bool):
        return found
    if isinstance(value, (int, float)):
        found.append(float(value))
    elif isinstance(value, str):
        found.extend(float(x) for x in re.findall(r"[+-]?\d+(?:\.\d+)?", value))
    elif isinstance(value, dict):
        for k, v in value.items():
            numbers_in(k, found)
            numbers_in(v, found)
    elif isinstance(value, list):
        for v in value:
            numbers_in(v, found)
    return found


def reports() -> list[dict]:
    paths = sorted((ROOT / "docs").glob("reproduce*.json"))
    assert paths, "docs/reproduce.json is missing"
    return [json.loads(p.read_text()) for p in paths]


def quoted(text: str) -> list[tuple[str, int]]:
    """(number, decimals) of each decimal number and percentage in the prose, leaving out section numbers."""
    tokens = []
    for m in DECIMAL.finditer(text):
        if SECTION.search(text[max(0, m.start() - 12) : m.end()]):
            continue
        tokens.append((m.group(0), len(m.group(0).split(".")[1])))
    tokens += [(m.group(1), 0) for m in PERCENT.finditer(text)]
    return tokens


def unsupported(text: str, numbers: list[float]) -> list[str]:
    """The numbers ``text`` quotes that are none of ``numbers`` at the precision quoted (as fractions or percent)."""
    bad = []
    for token, decimals in quoted(prose(text)):
        value = float(token)
        candidates = {round(x, decimals) for x in numbers} | {round(100 * x, decimals) for x in numbers}
        if value not in candidates and -value not in candidates:
            bad.append(token)
    return bad


def split_document() -> tuple[str, str]:
    text = (ROOT / "REPRODUCTION.md").read_text()
    assert MARKER in text, "REPRODUCTION.md lacks the generated reports (python docs/publish_reproduction.py)"
    written, generated = text.split(MARKER, 1)
    return written, generated


def citable() -> list[float]:
    """What prose may quote: the numbers the generated reports print, and the JSON's summary sections."""
    _, generated = split_document()
    printed = [float(token) for token, _ in quoted(prose(generated))]
    return printed + [x for r in reports() for key in SUMMARY for x in numbers_in(r.get(key))]


def test_every_number_the_generated_reports_print_is_in_the_json():
    _, generated = split_document()
    assert len(quoted(prose(generated))) > 200  # the tables are there
    assert unsupported(generated, [x for r in reports() for x in numbers_in(r)]) == []


def test_the_prose_quotes_only_what_the_reports_print():
    written, _ = split_document()
    assert len(quoted(prose(written))) > 30  # the document does quote its results
    assert unsupported(written, citable()) == []


def test_the_readmes_summary_says_nothing_the_report_does_not():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Reproducing the paper", 1)[1].split("\n## ", 1)[0]
    assert "REPRODUCTION.md" in section
    assert unsupported(section, citable()) == []


def test_the_checker_catches_a_number_that_is_not_there():
    numbers = [12.345, 0.0312]
    assert unsupported("an error of 12.35 % and a rate of 3.1 %", numbers) == []  # 3.12 % printed as 3.1
    assert unsupported("an error of 12.36 %", numbers) == ["12.36"]
    assert unsupported("see Sect. 4.3 and `--lr 0.05`", numbers) == []


INTERVAL = re.compile(r"([+-]?\d+\.\d+) \[([+-]?\d+\.\d+), ([+-]?\d+\.\d+)\]")


def intervals(text: str) -> list[tuple[float, float, float]]:
    """Every "effect [low, high]" the text quotes."""
    return [tuple(float(x) for x in m.groups()) for m in INTERVAL.finditer(prose(text))]


def findings_intervals() -> set[tuple[float, float, float]]:
    return {
        tuple(round(f["effect"][k], 2) for k in ("effect", "low", "high"))
        for r in reports()
        for f in r["findings"]
        if f.get("effect")
    }


def test_every_effect_and_interval_the_prose_quotes_is_one_finding_of_the_json():
    """Effects are checked as whole findings, sign and both ends of the interval together: a number that happens to
    be printed elsewhere in the tables does not pass for an effect."""
    written, _ = split_document()
    readme = (ROOT / "README.md").read_text().split("## Reproducing the paper", 1)[1].split("\n## ", 1)[0]
    known = findings_intervals()
    quoted_here = intervals(written) + intervals(readme)
    assert len(intervals(written)) >= 10
    assert [q for q in quoted_here if q not in known] == []
    nudged = [(e, lo + 0.01, hi) for e, lo, hi in quoted_here] + [(-e, lo, hi) for e, lo, hi in quoted_here if e]
    assert not set(nudged) & known
