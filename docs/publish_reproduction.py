"""Publish two finished reproductions: copy their reports into docs/ and put the generated tables into
REPRODUCTION.md below its marker, so that every table there is the code's own output.

    vggnet reproduce --subset 10000 --epochs 24 --patience 2 --seeds 8 --scale-seeds 2 --out runs/reproduce
    vggnet reproduce --subset 10000 --seeds 10 --scale-seeds 2 --batch-norm --out runs/reproduce_bn
    python docs/publish_reproduction.py runs/reproduce runs/reproduce_bn

Where the run folders are gone (they stay on the machine that ran them), the reports are written again from the
JSON they published, which holds every run's record, every cell and each finding's per-seed effects: after a change
of the rule or of the report,

    python docs/publish_reproduction.py --from-json            # add --figures to draw the figures again

The prose above the marker is written by hand; tests/test_reproduction_docs.py checks that every number it quotes
is one of docs/reproduce*.json.
"""

from __future__ import annotations

import argparse
import json
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


NAMES = ("reproduce", "reproduce_bn")  # the no-BN report, the BN one


def publish(plain: Path, bn: Path, root: Path = ROOT) -> list[Path]:
    """Copy two finished reproductions' reports into docs/, and their Markdown into REPRODUCTION.md."""
    sys.path.insert(0, str(root / "src"))
    from vggnet.base.files import atomic_copy

    written, sections = [], []
    for name, folder in zip(NAMES, (plain, bn)):
        for ext in ("json", "png"):
            written.append(atomic_copy(folder / f"reproduce.{ext}", root / "docs" / f"{name}.{ext}"))
        sections.append(demoted((folder / "reproduce.md").read_text(), f"docs/{name}.png"))
    return written + write_document(sections, root)


def republish(root: Path = ROOT, figures: bool = False) -> list[Path]:
    """Write both reports again from docs/reproduce*.json with today's code (the rule, the report), the figures too
    with ``figures``; REPRODUCTION.md follows."""
    sys.path.insert(0, str(root / "src"))
    from vggnet.base.files import atomic_write, atomic_write_text
    from vggnet.reproduce.figure import plot
    from vggnet.reproduce.published import rebuild
    from vggnet.reproduce.record import json_safe

    written, sections = [], []
    for name in NAMES:
        md, data, results = rebuild(root / "docs" / f"{name}.json")
        text = json.dumps(json_safe(data), indent=1, allow_nan=False)
        written.append(atomic_write_text(root / "docs" / f"{name}.json", text))
        if figures:
            written.append(atomic_write(root / "docs" / f"{name}.png", lambda tmp, r=results: plot(r, tmp)))
        sections.append(demoted(md, f"docs/{name}.png"))
    return written + write_document(sections, root)


def write_document(sections: list[str], root: Path) -> list[Path]:
    """REPRODUCTION.md: its prose, then the generated reports below the marker."""
    from vggnet.base.files import atomic_write_text

    doc = root / "REPRODUCTION.md"
    head = doc.read_text().split(MARKER, 1)[0].rstrip()
    return [atomic_write_text(doc, "\n\n".join([head, MARKER, *sections]) + "\n")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("plain", type=Path, nargs="?", help="the folder of `vggnet reproduce` (no BN)")
    parser.add_argument("bn", type=Path, nargs="?", help="the folder of `vggnet reproduce --batch-norm`")
    parser.add_argument("--from-json", action="store_true", help="write the reports again from docs/reproduce*.json")
    parser.add_argument("--figures", action="store_true", help="with --from-json: draw the figures again too")
    args = parser.parse_args()
    if args.from_json == bool(args.plain and args.bn):
        parser.error("give the two run folders (no BN, BN), or --from-json")
    for path in republish(figures=args.figures) if args.from_json else publish(args.plain, args.bn):
        print("wrote", path)


if __name__ == "__main__":
    main()
