"""The README's Python examples run as written (those that need no download or data of the reader's own)."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_block(containing: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    found = [b for b in blocks if containing in b]
    assert len(found) == 1, f"one README example with {containing!r}, found {len(found)}"
    return found[0]


def test_the_model_example_builds_what_its_comments_say():
    block = python_block("vggnet.vgg16_bn(")
    scope: dict = {}
    exec(block, scope)
    shapes = re.findall(r"^(\S.*?)\s+# (torch\.Size\(\[.*?\]\))", block, flags=re.M)
    assert shapes, "the example shows an output shape"
    for expression, shown in shapes:
        assert str(eval(expression, scope)) == shown, expression
    assert scope["vggnet"].CONFIGS["C"][:3] == [64, 64, "M"]


@pytest.mark.slow
def test_the_training_example_trains_and_writes_its_weights(tmp_path, monkeypatch):
    block = python_block("from vggnet.training import")
    monkeypatch.chdir(tmp_path)  # the example writes runs/try where it is run
    scope: dict = {}
    exec(block, scope)
    result = scope["result"]
    assert result.status == "finished" and 0.1 < result.best_val_acc <= 1  # better than chance after one epoch
    assert Path(result.weights) == Path("runs/try/model.safetensors") and Path(result.weights).is_file()


def section(title: str) -> str:
    return README.read_text().split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_the_readme_starts_with_what_a_user_needs():
    import tomllib

    text = README.read_text()
    top = text.split("\n## The model\n", 1)[0]
    assert "pip install -e ." in top and "bash scripts/main.sh" in top and "bash scripts/test.sh" in top
    intro = top.split("\n## ", 1)[0].split("\n\n")[1]
    assert len(intro.splitlines()) <= 2, "what vggnet is, in two lines"
    extras = tomllib.loads((README.parent / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    rows = [line for line in section("Install").splitlines() if line.startswith("| `")]
    named = [re.match(r"\| `([\w-]+)` \|", line).group(1) for line in rows]
    assert named == list(extras), "the install table names every extra of pyproject.toml, in its order"
    assert "| (none) |" in section("Install")
    assert "EPYC" not in top and "Xeon" not in top, "per-CPU timings live in BENCHMARKS.md"
    benchmarks = (README.parent / "BENCHMARKS.md").read_text().split("## The main job on each CPU kind", 1)[1]
    assert all(f in benchmarks.split("\n## ", 1)[0] for f in ("52 s", "92.17 %", "3 min 14 s", "97 s", "125 s"))


def test_the_table_of_contents_points_at_headings_that_exist():
    text = README.read_text()
    contents = text.split("\n## ", 1)[0]
    anchors = re.findall(r"\]\(#([\w-]+)\)", contents)
    headings = re.findall(r"^#{2,3} (.+)$", text, flags=re.M)
    slugs = {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}
    assert len(anchors) >= 10 and not [a for a in anchors if a not in slugs]
    for title in ("Install", "The two commands", "The model", "Layout"):
        assert re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-") in anchors
