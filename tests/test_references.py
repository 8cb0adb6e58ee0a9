"""Every dotted ``vggnet.x.y`` a reader meets (docstrings and comments of the package, the README, BENCHMARKS.md, the
docs, the benchmarks and the tests) names something that exists: imported, then looked up attribute by attribute."""

import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# a dotted name, not part of a file's name (.vggnet.lock) or a path (src/vggnet/...)
REFERENCE = re.compile(r"(?<![\w./-])vggnet(?:\.[A-Za-z_]\w*)+")


def exists(dotted: str) -> bool:
    parts = dotted.split(".")
    for n in range(len(parts), 0, -1):
        try:
            found = importlib.import_module(".".join(parts[:n]))
        except ModuleNotFoundError:
            continue
        for name in parts[n:]:
            if not hasattr(found, name):
                return False
            found = getattr(found, name)
        return True
    return False


def texts() -> list[Path]:
    return [
        *sorted((ROOT / "src" / "vggnet").rglob("*.py")),
        ROOT / "README.md",
        ROOT / "BENCHMARKS.md",
        *sorted((ROOT / "docs").rglob("*.md")),
        *sorted((ROOT / "docs").rglob("*.py")),
        *sorted((ROOT / "benchmarks").rglob("*.py")),
        *sorted(p for p in (ROOT / "tests").rglob("*.py") if p.name != Path(__file__).name),  # not its own examples
    ]


def test_every_dotted_reference_resolves():
    stale, seen = {}, 0
    for path in texts():
        for found in REFERENCE.finditer(path.read_text()):
            seen += 1
            if not exists(found.group(0)):
                stale.setdefault(found.group(0), []).append(path.relative_to(ROOT).as_posix())
    assert seen > 100  # the walk found the references
    assert not stale, stale


def test_a_stale_reference_is_caught():
    assert exists("vggnet.network.model.VGG") and exists("vggnet.inference.load_model")
    assert not exists("vggnet.model.VGG") and not exists("vggnet.network.model.NoSuchThing")
    assert REFERENCE.findall("see vggnet.inference.loading.Loaded; .vggnet.lock, src/vggnet/model.py") == [
        "vggnet.inference.loading.Loaded"
    ]
