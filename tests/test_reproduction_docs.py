"""What the documents say about the reproduction comes from the files its code wrote. REPRODUCTION.md holds the
generated reports below its marker (docs/publish_reproduction.py puts them there): every number they print is a number
of docs/reproduce*.json. Its prose above the marker, and the README's summary, are templates filled in from those
files by key (docs/prose.py): the documents must be exactly the templates filled in, the templates may write no
number of their own, and each paragraph may quote only the findings it declares it is about. The published findings
are reviewed by script too: each one's interval, p-value, power and calibration recomputed from its per-seed effects,
its verdict against its case."""

import json
import math
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs"))

import prose  # noqa: E402  (docs/prose.py)
import publish_reproduction as publish  # noqa: E402

from vggnet.reproduce import stats as st  # noqa: E402

DECIMAL = re.compile(r"(?<![\w.])[+-]?\d+\.\d+(?![\w.])")
PERCENT = re.compile(r"(?<![\w.])(\d+) ?%")
SECTION = re.compile(r"(Sect\.|Sects\.|Section|Table|Tables|Python|torch|OpenVINO|v)\s*[\d.,\- ]+$")
# What a template may write in digits: the paper's section, table and block numbers, the kernels' names, the paper's
# initialisation, the data set's and the number type's names, and the rule's own zero and degrees of freedom.
LITERAL = re.compile(
    r"Tables? \d+(-\d+)?|Sects?\. [\d.]+|blocks \d-\d|\b[13]x[13]\b|N\(0, 0\.01\)|ILSVRC-2012|float32|"
    r"excludes 0|n - 1|top-[15]|sqrt\(2 / fan-in\)"
)
TEMPLATES = {"REPRODUCTION.md": "reproduction_prose.md", "README.md": "readme_reproduction.md"}


def reports() -> list[dict]:
    paths = sorted((ROOT / "docs").glob("reproduce*.json"))
    assert paths, "docs/reproduce.json is missing"
    return [json.loads(p.read_text()) for p in paths]


def template(name: str) -> str:
    return (ROOT / "docs" / TEMPLATES[name]).read_text()


def written_part(name: str) -> str:
    """The part of a document that its template writes."""
    text = (ROOT / name).read_text()
    if name == "REPRODUCTION.md":
        assert publish.MARKER in text, "REPRODUCTION.md lacks the generated reports (docs/publish_reproduction.py)"
        return text.split(publish.MARKER, 1)[0].rstrip()
    return text.split(publish.README_START, 1)[1].split(publish.README_END, 1)[0].strip()


def paragraphs(text: str) -> list[str]:
    """A template's paragraphs and bullets, each with the ``about`` comment before it."""
    chunks = re.split(r"\n\s*\n|\n(?=<!-- about:)|(?<!-->)\n(?=- )", text)
    return [c for c in chunks if c.strip()]


@pytest.mark.parametrize("name", TEMPLATES)
def test_the_document_is_its_template_filled_in_from_the_json(name):
    """Every number of the prose is the key the template wrote: a number typed by hand, or left behind by an old
    report, is a difference here (republish: python docs/publish_reproduction.py --from-json)."""
    assert written_part(name) == prose.render(template(name), prose.reports()).strip()


@pytest.mark.parametrize("name", TEMPLATES)
def test_the_template_writes_no_number_of_its_own(name):
    literal = prose.PLACEHOLDER.sub(" ", prose.BLOCK.sub(lambda m: m.group(5), template(name)))
    literal = prose.ABOUT.sub(" ", literal)
    stray = [m.group(0) for m in re.finditer(r"\d[\d.,]*", LITERAL.sub(" ", literal))]
    assert stray == [], f"{TEMPLATES[name]} writes numbers of its own: {stray}"


@pytest.mark.parametrize("name", TEMPLATES)
def test_each_paragraph_quotes_only_the_findings_it_is_about(name):
    """A number quoted for one finding cannot come from another: a paragraph's findings.ID and power.ID keys must
    be among those its ``about`` comment declares, and every effect-with-interval it prints must be one of theirs."""
    found = prose.reports()
    for paragraph in paragraphs(template(name)):  # every block, kept or not
        ids = prose.references(paragraph)
        assert ids <= prose.declared(paragraph), f"quotes {ids - prose.declared(paragraph)}: {paragraph[:120]}"
    quoted = 0
    for paragraph in paragraphs(prose.decided(template(name), found)):
        ids = prose.declared(paragraph)
        theirs = {
            tuple(round(f["effect"][k], 2) for k in ("effect", "low", "high"))
            for r in found.values()
            for f in r["findings"]
            if f.get("effect") and f["id"] in ids and f["effect"]["low"] is not None
        }
        for effect in intervals(prose.fill(paragraph, found)):
            assert effect in theirs, (effect, paragraph[:120])
            quoted += 1
    assert quoted >= (8 if name == "REPRODUCTION.md" else 4)


INTERVAL = re.compile(r"([+-]?\d+\.\d+) \[([+-]?\d+\.\d+), ([+-]?\d+\.\d+)\]")


def intervals(text: str) -> list[tuple[float, float, float]]:
    return [tuple(float(x) for x in m.groups()) for m in INTERVAL.finditer(text)]


def test_a_placeholder_without_its_key_is_an_error_and_blocks_follow_the_report():
    found = {"nobn": {"findings": [{"id": "B-A", "effect": {"effect": 2.4, "low": 1.1, "high": 3.7}, "seeds": 8}]}}
    assert prose.render("B: {{nobn:findings.B-A.effect|interval}}, {{nobn:findings.B-A.seeds}}", found) == (
        "B: +2.40 [+1.10, +3.70], 8"
    )
    with pytest.raises(ValueError, match="no such value"):
        prose.render("{{nobn:findings.C-B.effect|interval}}", found)
    text = "{{if nobn:findings.C-B}}C{{end}}{{if nobn:findings.B-A.seeds == 8}}eight{{end}}"
    assert prose.render(text + "{{if nobn:findings.B-A.seeds != 8}}other{{end}}", found) == "eight"
    assert prose.references("<!-- about: B-A -->\n{{nobn:power.lrn/literal.seeds_for_power}}") == {"lrn"}


# -- the generated reports ------------------------------------------------------------------------------------------
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


def quoted(text: str) -> list[tuple[str, int]]:
    """(number, decimals) of each decimal number and percentage in the text, leaving out section numbers."""
    text = re.sub(r"`[^`]*`", " ", re.sub(r"\]\([^)]*\)", "]", text))
    tokens = []
    for m in DECIMAL.finditer(text):
        if SECTION.search(text[max(0, m.start() - 12) : m.end()]):
            continue
        tokens.append((m.group(0), len(m.group(0).split(".")[1])))
    return tokens + [(m.group(1), 0) for m in PERCENT.finditer(text)]


def unsupported(text: str, numbers: list[float]) -> list[str]:
    """The numbers ``text`` quotes that are none of ``numbers`` at the precision quoted (as fractions or percent)."""
    bad = []
    for token, decimals in quoted(text):
        value = float(token)
        candidates = {round(x, decimals) for x in numbers} | {round(100 * x, decimals) for x in numbers}
        if value not in candidates and -value not in candidates:
            bad.append(token)
    return bad


def test_every_number_the_generated_reports_print_is_in_the_json():
    generated = (ROOT / "REPRODUCTION.md").read_text().split(publish.MARKER, 1)[1]
    assert len(quoted(generated)) > 200  # the tables are there
    assert unsupported(generated, [x for r in reports() for x in numbers_in(r)]) == []
    assert unsupported("an error of 12.36 %", [12.345]) == ["12.36"] and unsupported("12.35 %", [12.345]) == []


# -- a second review of the published findings, by script ------------------------------------------------------------
def findings():
    return [(r["settings"]["batch_norm"], f) for r in reports() for f in r["findings"]]


def test_each_findings_interval_and_p_value_follow_from_its_per_seed_effects():
    checked = 0
    for _, f in findings():
        e = f["effect"]
        if not e or f["kind"] == "failures":
            continue
        n, per_seed = len(e["per_seed"]), e["per_seed"]
        mean = sum(per_seed) / n
        sd = math.sqrt(sum((x - mean) ** 2 for x in per_seed) / (n - 1))
        half = st._t(0.975, n - 1) * sd / math.sqrt(n)  # Student's t, n - 1 degrees of freedom: the seeds alone
        assert e["seeds"] == n == f["seeds"] and e["df"] == n - 1
        assert (e["effect"], e["low"], e["high"]) == pytest.approx((mean, mean - half, mean + half), abs=1e-9)
        if f["p"] is not None:
            assert f["p"] == pytest.approx(st.p_value(st.from_per_seed(per_seed, e["images"], ""), f["no_better"]))
        checked += 1
    assert checked >= 10


def test_each_verdict_is_the_word_for_its_case():
    for bn, f in findings():
        e, verdict = f["effect"], f["verdict"]
        if verdict == st.NOT_TESTABLE:
            assert "crop" in f["reason"] or "stride" in f["reason"]
        elif verdict == "not tested by design":
            assert bn and f["kind"] == "failures"
        elif verdict == "not measured":
            assert f["stalled"][0] > 0 and f["seeds"] < st.MIN_SEEDS and f["line"].startswith("not measured: ")
        elif verdict == st.TOO_FEW:
            assert f["seeds"] < st.MIN_SEEDS and f["p"] is None and f["power_at_paper"] is None
        elif f["kind"] != "failures":
            assert f["seeds"] >= st.MIN_SEEDS
            expected = st.verdict(st.from_per_seed(e["per_seed"], e["images"], ""), f["no_better"])
            assert verdict == expected
        if f["adjusted_verdict"] != verdict:
            assert verdict in (st.HOLDS, st.CONTRADICTED) and f["adjusted_p"] >= 0.05


def test_each_finding_prints_its_rules_calibration_at_its_own_seeds_and_its_power_at_both_effects():
    for _, f in findings():
        if f["calibration"] is not None:
            assert f["calibration"]["seeds"] == f["seeds"] and f["calibration"]["images"] == f["effect"]["images"]
            rate = f["calibration"]["decisive_without_effect"]
            assert f["calibration"]["kind"] == f["kind"] and abs(rate - 0.05) < 0.03
        if f["power_at_paper"] is not None:
            e = f["effect"]
            assert f["scaled"] == pytest.approx(f["paper"] * f["error_here"] / f["paper_error"])
            assert f["power_at_paper"] == pytest.approx(st.power_at(f["paper"], e["se"], e["df"], f["no_better"]))
            assert f["power_at_scaled"] == pytest.approx(st.power_at(f["scaled"], e["se"], e["df"], f["no_better"]))
