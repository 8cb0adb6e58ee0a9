"""Publish two finished reproductions: copy their reports into docs/ and put the generated tables into
REPRODUCTION.md below its marker, so that every table there is the code's own output.

    vggnet reproduce --subset 10000 --epochs 24 --patience 2 --seeds 8 --scale-seeds 2 --out runs/reproduce
    vggnet reproduce --subset 10000 --seeds 10 --scale-seeds 2 --batch-norm --out runs/reproduce_bn
    python docs/publish_reproduction.py runs/reproduce runs/reproduce_bn

Where the run folders are gone (they stay on the machine that ran them), the reports are written again from the
JSON they published, which holds every run's record, every cell and each finding's per-seed effects: after a change
of the rule or of the report,

    python docs/publish_reproduction.py --from-json            # add --figures to draw the figures again
    python docs/publish_reproduction.py --prose                # only the prose, after its templates changed

The prose above the marker, and the README's summary, are written from templates (docs/reproduction_prose.md,
docs/readme_reproduction.md) whose every number is a key of docs/reproduce*.json (docs/prose.py);
tests/test_reproduction_docs.py checks that the documents are those templates filled in.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # prose.py, beside this script
MARKER = "<!-- the generated reports follow: python docs/publish_reproduction.py -->"
README_START = "<!-- the reproduction's summary: docs/readme_reproduction.md, filled in by publish_reproduction.py -->"
README_END = "<!-- end of the reproduction's summary -->"


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
    """REPRODUCTION.md (its prose from docs/reproduction_prose.md, then the generated reports below the marker) and
    the README's summary of the reproduction (from docs/readme_reproduction.md), every number filled in from
    docs/reproduce*.json by key."""
    from prose import render, reports

    from vggnet.base.files import atomic_write_text

    found = reports(root)
    head = render((root / "docs" / "reproduction_prose.md").read_text(), found).rstrip()
    doc = atomic_write_text(root / "REPRODUCTION.md", "\n\n".join([head, MARKER, *sections]) + "\n")
    readme = (root / "README.md").read_text()
    before, rest = readme.split(README_START, 1)
    after = rest.split(README_END, 1)[1]
    summary = render((root / "docs" / "readme_reproduction.md").read_text(), found).strip()
    text = f"{before}{README_START}\n{summary}\n{README_END}{after}"
    return [doc, atomic_write_text(root / "README.md", text)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("plain", type=Path, nargs="?", help="the folder of `vggnet reproduce` (no BN)")
    parser.add_argument("bn", type=Path, nargs="?", help="the folder of `vggnet reproduce --batch-norm`")
    parser.add_argument("--from-json", action="store_true", help="write the reports again from docs/reproduce*.json")
    parser.add_argument("--figures", action="store_true", help="with --from-json: draw the figures again too")
    parser.add_argument("--prose", action="store_true", help="only fill the prose in again (its templates changed)")
    args = parser.parse_args()
    if args.prose:
        written = write_document([ROOT.joinpath("REPRODUCTION.md").read_text().split(MARKER, 1)[1].strip()], ROOT)
    elif args.from_json == bool(args.plain and args.bn):
        parser.error("give the two run folders (no BN, BN), or --from-json, or --prose")
    else:
        written = republish(figures=args.figures) if args.from_json else publish(args.plain, args.bn)
    for path in written:
        print("wrote", path)


if __name__ == "__main__":
    main()
