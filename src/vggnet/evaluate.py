"""The paper's test protocols (Sect. 3.2): single- and multi-scale, centre crop, dense, multi-crop, and ensembles.

Every protocol turns an image into soft-max posteriors; protocols, scales and models combine by averaging them.
Images are rescaled isotropically so that their smallest side is Q, one image (or one batch of equal-sized images)
at a time, so memory stays bounded at any Q.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torchvision.transforms.v2.functional import resize

from .data import BadImage, ImageFolder, InMemoryImages, decode_image, load_fashion_mnist
from .files import atomic_write_text
from .inference import Loaded, prepare
from .transforms import normalize

PROTOCOLS = ("center", "dense", "multicrop", "dense+multicrop")
LABELS = {"center": "centre crop", "dense": "dense", "multicrop": "multi-crop", "dense+multicrop": "multi-crop & dense"}


def grid_boxes(height: int, width: int, crop: int, grid: int = 5) -> list[tuple[int, int]]:
    """Top-left corners of a ``grid`` x ``grid`` regular grid of ``crop`` x ``crop`` crops covering the image."""
    if height < crop or width < crop:
        raise ValueError(f"a {height}x{width} image is smaller than the {crop} crop")

    def steps(size: int) -> list[int]:
        return [round(i * (size - crop) / (grid - 1)) for i in range(grid)] if grid > 1 else [(size - crop) // 2]

    return [(top, left) for top in steps(height) for left in steps(width)]


def rescale(images: torch.Tensor, q: int, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 N x C x H x W to float, smallest side ``q`` (isotropic), normalised."""
    if min(images.shape[-2:]) != q:
        images = resize(images, [q], antialias=True)
    return normalize(images, mean, std)


@torch.inference_mode()
def posteriors(net: torch.nn.Module, x: torch.Tensor, method: str, crop: int, chunk: int = 10) -> torch.Tensor:
    """Soft-max posteriors N x K of one protocol for a batch ``x`` already rescaled to Q.

    ``center``: the centre crop. ``dense``: the class score map of the whole image, averaged spatially, and of its
    mirror image; posteriors of the two averaged. ``multicrop``: 5 x 5 crops x 2 flips, posteriors averaged.
    """
    h, w = x.shape[-2:]
    if method == "center":
        top, left = (h - crop) // 2, (w - crop) // 2
        return F.softmax(net(x[..., top : top + crop, left : left + crop]).float(), 1)
    if method == "dense":
        scores = [net.score_map(v).float().mean((2, 3)) for v in (x, x.flip(3))]
        return (F.softmax(scores[0], 1) + F.softmax(scores[1], 1)) / 2
    if method == "multicrop":
        boxes = grid_boxes(h, w, crop)
        total = torch.zeros((), device=x.device)
        for i in range(0, len(boxes), chunk):
            crops = torch.stack([x[..., t : t + crop, left : left + crop] for t, left in boxes[i : i + chunk]], 1)
            crops = crops.flatten(0, 1)  # N*k x C x crop x crop
            crops = torch.cat([crops, crops.flip(3)])
            total = total + F.softmax(net(crops).float(), 1).view(2, x.shape[0], -1, net.num_classes).sum((0, 2))
        return total / (2 * len(boxes))
    raise ValueError(f"unknown protocol {method!r}; expected one of {', '.join(PROTOCOLS)}")


@dataclass
class Source:
    """Labelled uint8 images, a batch at a time, plus what was skipped."""

    name: str
    classes: list[str]
    batches: Any
    size: int
    skipped: list[str] = field(default_factory=list)


def open_source(data: str | None, batch_size: int = 64, strict: bool = False, limit: int | None = None) -> Source:
    """``fashion-mnist`` (its test set), or an image folder (``DIR/val`` if it exists, else ``DIR``)."""
    if data in (None, "fashion-mnist"):
        test: InMemoryImages = load_fashion_mnist(None, "test")
        n = min(len(test), limit or len(test))

        def memory_batches() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
            for lo in range(0, n, batch_size):
                yield test.images[lo : min(n, lo + batch_size)], test.labels[lo : min(n, lo + batch_size)]

        return Source(test.name, test.classes, memory_batches, n)
    root = Path(data)
    folder = ImageFolder(root / "val" if (root / "val").is_dir() else root)
    n = min(len(folder), limit or len(folder))
    source = Source(str(folder.root), folder.classes, None, n)

    def folder_batches() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for path, label in folder.samples[:n]:
            try:
                img = decode_image(path)
            except (BadImage, OSError) as err:
                if strict:
                    raise ValueError(f"unreadable image {path}: {err}") from None
                print(f"warning: skipped unreadable image {path}: {err}", file=sys.stderr)
                source.skipped.append(str(path))
                continue
            yield img[None], torch.tensor([label])

    source.batches = folder_batches
    return source


def label_map(model_classes: list[str], data_classes: list[str], source: str) -> torch.Tensor:
    """Index of each data class among the model's classes: by name where the names agree, else by position."""
    if set(data_classes) <= set(model_classes):
        return torch.tensor([model_classes.index(c) for c in data_classes])
    if len(data_classes) == len(model_classes):
        return torch.arange(len(data_classes))
    raise ValueError(
        f"{source} has {len(data_classes)} classes ({', '.join(data_classes[:5])}...) that the model's "
        f"{len(model_classes)} classes do not cover"
    )


def evaluate(
    models: Sequence[Loaded],
    source: Source,
    scale_sets: Sequence[Sequence[int]],
    protocols: Sequence[str] = PROTOCOLS,
    device: str | torch.device = "cpu",
    names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Top-1/top-5 error and images/s of every model (and, for several, their ensemble) under every protocol and
    set of test scales; one pass over the data."""
    for p in protocols:
        if p not in PROTOCOLS:
            raise ValueError(f"unknown protocol {p!r}; expected one of {', '.join(PROTOCOLS)}")
    crops = {m.crop for m in models}
    if len(crops) > 1:
        raise ValueError(f"an ensemble needs one crop size; these models were trained at {sorted(crops)}")
    crop = crops.pop()
    for scales in scale_sets:
        for q in scales:
            if q < crop:
                raise ValueError(f"test scale Q={q} is smaller than the crop {crop}")
    device = torch.device(device)
    names = list(names or [display_name(m.source) for m in models])
    nets = [prepare(m.model, device) for m in models]
    maps = [label_map(m.classes, source.classes, source.name).to(device) for m in models]
    methods = sorted({part for p in protocols for part in p.split("+")})
    scales = sorted({q for s in scale_sets for q in s})
    probs: dict[tuple[int, str, int], list[torch.Tensor]] = {}
    seconds: dict[tuple[int, str, int], float] = {}
    labels: list[torch.Tensor] = []
    for images, y in source.batches():
        images = images.to(device)
        labels.append(y)
        for i, (loaded, net) in enumerate(zip(models, nets)):
            for q in scales:
                x = rescale(images, q, loaded.mean, loaded.std).contiguous(memory_format=torch.channels_last)
                for method in methods:
                    t0 = time.perf_counter()
                    p = posteriors(net, x, method, crop)
                    if device.type == "cuda":
                        torch.cuda.synchronize(device)
                    seconds[i, method, q] = seconds.get((i, method, q), 0.0) + time.perf_counter() - t0
                    probs.setdefault((i, method, q), []).append(p[:, maps[i]].cpu())
    if not labels:
        raise ValueError(f"no readable image in {source.name}")
    target = torch.cat(labels)
    table: dict[tuple[int, str, int], torch.Tensor] = {k: torch.cat(v) for k, v in probs.items()}

    columns, rows = [], [{"model": n, "cells": {}} for n in names]
    if len(models) > 1:
        rows.append({"model": " + ".join(names) + " (ensemble)", "cells": {}})
    for qs in scale_sets:
        for protocol in protocols:
            column = f"{LABELS[protocol]}, Q={'{' + ','.join(map(str, qs)) + '}' if len(qs) > 1 else qs[0]}"
            columns.append(column)
            per_model = []
            for i in range(len(models)):
                parts = protocol.split("+")
                p = sum(table[i, m, q] for m in parts for q in qs) / (len(parts) * len(qs))
                t = sum(seconds[i, m, q] for m in parts for q in qs)
                per_model.append((p, t))
                rows[i]["cells"][column] = _score(p, target, t)
            if len(models) > 1:
                p = sum(p for p, _ in per_model) / len(models)
                rows[-1]["cells"][column] = _score(p, target, sum(t for _, t in per_model))
    return {
        "data": source.name,
        "images": len(target),
        "skipped": source.skipped,
        "crop": crop,
        "device": str(device),
        "columns": columns,
        "rows": rows,
    }


def display_name(source: str) -> str:
    """``runs/fm/model.safetensors`` -> ``fm/model``; URLs and short names as they are."""
    path = Path(source)
    if "://" in source or not path.suffix:
        return source
    return f"{path.parent.name}/{path.stem}" if path.parent.name else path.stem


def _score(p: torch.Tensor, target: torch.Tensor, seconds: float) -> dict[str, float]:
    top = p.topk(min(5, p.shape[1]), 1).indices
    hit = top == target[:, None]
    return {
        "top1_err": 100 * (1 - hit[:, 0].float().mean().item()),
        "top5_err": 100 * (1 - hit.any(1).float().mean().item()),
        "images_per_s": len(target) / max(seconds, 1e-9),
    }


def markdown(report: dict[str, Any]) -> str:
    """The report in the layout of the paper's Tables 3-6: a row per model, top-1 / top-5 error per protocol."""
    head = "| model | " + " | ".join(f"{c}: top-1 / top-5 err (%) | img/s" for c in report["columns"]) + " |"
    rule = "|---|" + "---|---|" * len(report["columns"])
    lines = [
        f"Evaluation on {report['data']}: {report['images']} images, crop {report['crop']}, {report['device']}"
        + (f"; {len(report['skipped'])} unreadable images skipped" if report["skipped"] else ""),
        "",
        head,
        rule,
    ]
    for row in report["rows"]:
        cells = [
            f"{c['top1_err']:.2f} / {c['top5_err']:.2f} | {c['images_per_s']:.1f}"
            for c in (row["cells"][col] for col in report["columns"])
        ]
        lines.append(f"| {row['model']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_report(report: dict[str, Any], out: str | Path) -> tuple[Path, Path]:
    out = Path(out)
    md = atomic_write_text(out / "eval.md", markdown(report))
    js = atomic_write_text(out / "eval.json", json.dumps(report, indent=1))
    return md, js
