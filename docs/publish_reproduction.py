"""Publish two finished reproductions: copy their reports into docs/ and put the generated tables into
REPRODUCTION.md below its marker, so that every table there is the code's own output.

    vggnet reproduce --subset 10000 --epochs 24 --patience 2 --seeds 8 --scale-seeds 2 --out runs/reproduce
    vggnet reproduce --subset 10000 --seeds 10 --scale-seeds 2 --batch-norm --out runs/reproduce_bn
    python docs/publish_reproduction.py runs/reproduce runs/reproduce_bn

The prose above the marker is written by hand; tests/test_reproduction_docs.py checks that every number it quotes
is one of docs/reproduce*.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARKER = "<!-- the generated reports follow: python docs/publish_reproduction.py -->"


def demoted(markdown: str, figure: str) -> str:
    """A report's Markdown one heading level down, its figure pointing into docs/."""
    lines = []
    for line in markdown.replace("](reproduce.png)", f"]({figure})").splitlines():
        lines.append("#" + line if line.startswith("#") else line)
    return "\n".join(lines)


def publish(plain: Path, bn: Path, root: Path = ROOT) -> list[Path]:
    sys.path.insert(0, str(root / "src"))
    from vggnet.base.files import atomic_copy, atomic_write_text

    written, sections = [], []
    for name, folder in (("reproduce", plain), ("reproduce_bn", bn)):
        for ext in ("json", "png"):
            written.append(atomic_copy(folder / f"reproduce.{ext}", root / "docs" / f"{name}.{ext}"))
        sections.append(demoted((folder / "reproduce.md").read_text(), f"docs/{name}.png"))
    doc = root / "REPRODUCTION.md"
    head = doc.read_text().split(MARKER, 1)[0].rstrip()
    written.append(atomic_write_text(doc, "\n\n".join([head, MARKER, *sections]) + "\n"))
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("plain", type=Path, help="the folder of `vggnet reproduce` (no BN)")
    parser.add_argument("bn", type=Path, help="the folder of `vggnet reproduce --batch-norm`")
    args = parser.parse_args()
    for path in publish(args.plain, args.bn):
        print("wrote", path)


if __name__ == "__main__":
    main()
