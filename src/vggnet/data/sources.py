"""Test-time images (evaluation, features, calibration): a :class:`Source` yields them one image, or one batch of
equal-sized images, at a time, from a folder, a list of files, Fashion-MNIST's test split or memory."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .fashion_mnist import load_fashion_mnist, load_scaled_fashion_mnist
from .folders import list_images
from .images import IMAGE_SUFFIXES, BadImage, decode_image, decode_on, read_checked, to_gray
from .memory import InMemoryImages

REASONS = 3  # the unreadable images a run's end names, with their reasons


@dataclass
class Source:
    """Labelled uint8 images for evaluation, a batch of equal-sized images at a time, plus what was skipped."""

    name: str
    classes: list[str]
    batches: Callable[[], Iterator[tuple[torch.Tensor, torch.Tensor]]]
    size: int
    skipped: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)  # "path: reason" of the first skipped images

    def skipped_sentence(self) -> str:
        """How many images did not read, and the first reasons; empty where every one read."""
        return failures_sentence(len(self.skipped), self.size, self.reasons) if self.skipped else ""


def failures_sentence(failed: int, total: int, reasons: Sequence[str]) -> str:
    """``failed`` of ``total`` images did not read, with the first reasons (the local commands and Ray alike)."""
    first = "; ".join(reasons[:REASONS])
    said = f"none of the {total:,} images read" if failed == total else f"{failed:,} of {total:,} images did not read"
    return said + (f" (first: {first})" if first else "")


def open_source(
    data: str | None,
    batch_size: int = 64,
    strict: bool = False,
    limit: int | None = None,
    split: str | None = None,
    channels: int | None = None,
    decode_device: torch.device | str | None = None,
) -> Source:
    """Test-time images: ``fashion-mnist`` (its ``split``, test by default), or an image folder: ``DIR/split`` where
    given, else ``DIR/val`` if it exists, else ``DIR``. ``channels`` converts images (gray to RGB or back);
    ``decode_device`` decodes a folder's JPEGs there (a GPU)."""
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be positive, got {limit}")
    if data in (None, "fashion-mnist"):
        return memory_source(load_fashion_mnist(None, split or "test"), batch_size, limit, channels)
    if data == "fashion-mnist-scaled":
        return memory_source(load_scaled_fashion_mnist(None, split or "test"), batch_size, limit, channels)
    root = Path(data)
    if split is not None and not (root / split).is_dir():
        raise ValueError(f"{root} has no {split}/ folder")
    folder = root / split if split else (root / "val" if (root / "val").is_dir() else root)
    classes, samples = list_images(folder)
    return files_source(str(folder), classes, samples[: limit or len(samples)], strict, channels, decode_device)


def any_images(root: str | os.PathLike) -> tuple[list[str], list[tuple[Path, int]]]:
    """Every image under ``root``, however it is laid out: labelled by their first-level folder when all of them sit
    in one (``root/<class>/...``), else unlabelled (label -1, no classes)."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"image folder {root} does not exist")
    files = sorted(
        p
        for p in root.rglob("*")
        if p.is_file()
        and p.suffix.lower() in IMAGE_SUFFIXES
        and not any(q.startswith(".") for q in p.relative_to(root).parts)
    )
    if not files:
        raise ValueError(f"{root} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    tops = [p.relative_to(root).parts for p in files]
    if all(len(t) > 1 for t in tops):
        classes = sorted({t[0] for t in tops})
        return classes, [(p, classes.index(t[0])) for p, t in zip(files, tops)]
    return [], [(p, -1) for p in files]


def files_source(
    name: str,
    classes: list[str],
    samples: Sequence[tuple[Path, int]],
    strict: bool = False,
    channels: int | None = None,
    decode_device: torch.device | str | None = None,
) -> Source:
    """Test-time images from a list of (file, label), one at a time; unreadable files skipped with a warning (or an
    error with ``strict``)."""
    source = Source(name, classes, None, len(samples))

    def folder_batches() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for path, label in samples:
            try:
                img = (
                    decode_on(*read_checked(path), torch.device(decode_device)) if decode_device else decode_image(path)
                )
            except (BadImage, OSError) as err:
                if strict:
                    raise ValueError(f"unreadable image {path}: {err}") from None
                print(f"warning: skipped unreadable image {path}: {err}", file=sys.stderr)
                source.skipped.append(str(path))
                if len(source.reasons) < REASONS:
                    source.reasons.append(f"{path}: {err}")
                continue
            source.files.append(str(path))
            yield to_channels(img[None], channels), torch.tensor([label])

    source.batches = folder_batches
    return source


def memory_source(
    images: InMemoryImages, batch_size: int = 64, limit: int | None = None, channels: int | None = None
) -> Source:
    """Test-time images from an in-memory set: its original images (Fashion-MNIST's 28 x 28, without the stored
    border), as a user's image files would hold them."""
    n = min(len(images), limit or len(images))
    files = [f"{images.name}/{i}" for i in range(n)]

    def memory_batches() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        originals = images.originals
        for lo in range(0, n, batch_size):
            hi = min(n, lo + batch_size)
            yield to_channels(originals[lo:hi], channels), images.labels[lo:hi]

    return Source(images.name, images.classes, memory_batches, n, files=files)


def to_channels(images: torch.Tensor, channels: int | None) -> torch.Tensor:
    """uint8 N x C x H x W with ``channels`` channels (gray from RGB by luminance, RGB from gray by copying)."""
    if channels is None or images.shape[1] == channels:
        return images
    if channels == 1:
        return to_gray(images)
    return images.expand(-1, channels, -1, -1).contiguous()
