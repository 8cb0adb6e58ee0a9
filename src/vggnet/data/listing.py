"""The images a user names on the command line: image files, folders of them and lists of paths, as the images to
read, in a fixed order, with what was left out and why.

A folder is every image under it, at any depth, in sorted order (hidden files and folders left out); its other
files are left out with their reason. A list (``.txt``, ``.lst``, ``.list``) names one image a line (blank lines and
``#`` comments skipped); a relative entry is relative to the current folder, as a shell reads it (``find photos >
list.txt``), or, where nothing is there, to the list's own folder (a list kept beside its images).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from .images import IMAGE_SUFFIXES

LIST_SUFFIXES = (".txt", ".lst", ".list")
SHOWN = 3  # the files left out that a note names


def is_list(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in LIST_SUFFIXES


def list_entries(path: str | os.PathLike) -> list[str]:
    """The images a list file names (see the module's note on relative entries); URIs as they are written."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not a list of paths (one a line, UTF-8 text)") from None
    return [_entry(line.strip(), path.parent) for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _entry(line: str, beside: Path) -> str:
    if "://" in line or Path(line).is_absolute() or os.path.lexists(line) or not (beside / line).exists():
        return line
    return str(beside / line)


def folder_images(folder: Path) -> tuple[list[str], list[str]]:
    """(every image under ``folder``, sorted; the other files, each with why it was left out)."""
    images, left_out = [], []
    for p in sorted(folder.rglob("*")):
        if any(part.startswith(".") for part in p.relative_to(folder).parts) or p.is_dir():
            continue
        if not p.is_file():
            left_out.append(f"{p} (not a regular file)")
        elif p.suffix.lower() in IMAGE_SUFFIXES:
            images.append(str(p))
        else:
            left_out.append(f"{p} (not an image: {p.suffix or 'no suffix'})")
    if not images:
        raise ValueError(f"{folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return images, left_out


def images_named(items: Sequence[str]) -> tuple[list[str], list[str]]:
    """(the images that ``items`` name, in order: an image file as itself, a folder as every image under it, a list
    file as the images it names; the files of folders left out, with their reasons). ``ValueError`` for a name that
    does not exist."""
    images, left_out = [], []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found, skipped = folder_images(path)
            images += found
            left_out += skipped
        elif not path.exists():
            raise ValueError(f"no such image: {item} (nor a folder or a list of images)")
        elif is_list(path):
            images += list_entries(path)
        else:
            images.append(item)  # any other file is read as an image: its bytes say whether it is one
    return images, left_out


def left_out_sentence(left_out: Sequence[str]) -> str:
    """``2 files that are not images left out: a/notes.txt (not an image: .txt), ...``"""
    shown = ", ".join(left_out[:SHOWN]) + (", ..." if len(left_out) > SHOWN else "")
    many = len(left_out) != 1
    return f"{len(left_out)} file{'s' * many} that {'are' if many else 'is'} not an image{'s' * many} left out: {shown}"
