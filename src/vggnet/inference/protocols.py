"""The paper's test protocols (Sect. 3.2): single- and multi-scale, centre crop, dense, multi-crop, and ensembles.

Every protocol turns an image into soft-max posteriors (:func:`vggnet.inference.geometry.posteriors`); protocols,
scales and models combine by averaging them. Images are rescaled isotropically so that their smallest side is Q, one
image (or one batch of equal-sized images) at a time, so memory stays bounded at any Q.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..base.classes import ClassMatching
from ..base.progress import say, track
from ..data.sources import Source
from .folding import prepare
from .geometry import PROTOCOLS, posteriors
from .loading import Loaded

LABELS = {"center": "centre crop", "dense": "dense", "multicrop": "multi-crop", "dense+multicrop": "multi-crop & dense"}

Key = tuple[int, str, int]  # (model, method, Q)


def label_map(loaded: Loaded, source: Source, matching: ClassMatching | None = None) -> tuple[torch.Tensor, str | None]:
    """The index among ``loaded``'s classes of each of ``source``'s, matched by name as ``matching`` says
    (:mod:`vggnet.base.classes`; never by position unless asked), and what to say of how they matched."""
    found = (matching or ClassMatching()).match(source.classes, loaded.classes, source.name, loaded.source)
    return torch.tensor(found.index, dtype=torch.long), found.note


def check_request(models: Sequence[Loaded], scale_sets: Sequence[Sequence[int]], protocols: Sequence[str]) -> int:
    """The crop all ``models`` share; ``ValueError`` for unknown protocols or scales below the crop."""
    for p in protocols:
        if p not in PROTOCOLS:
            raise ValueError(f"unknown protocol {p!r}; expected one of {', '.join(PROTOCOLS)}")
    crops = {m.crop for m in models}
    if len(crops) > 1:
        raise ValueError(f"an ensemble needs one crop size; these models were trained at {sorted(crops)}")
    crop = crops.pop()
    pad = min(m.pad for m in models)
    for q in (q for scales in scale_sets for q in scales):
        if q + 2 * pad < crop:
            raise ValueError(f"test scale Q={q} is smaller than the crop {crop}")
    return crop


def collect(
    models: Sequence[Loaded],
    source: Source,
    scales: Sequence[int],
    methods: Sequence[str],
    crop: int,
    device,
    matching: ClassMatching | None = None,
) -> tuple[dict[Key, torch.Tensor], dict[Key, float], torch.Tensor]:
    """One pass over the data: posteriors and seconds of every (model, method, Q), and the labels (each model's
    posteriors in the data's class order, matched as ``matching`` says)."""
    matched = [label_map(m, source, matching) for m in models]
    for note in dict.fromkeys(note for _, note in matched if note):
        print(f"note: {note}", file=sys.stderr)
    maps = [index.to(device) for index, _ in matched]
    nets = [prepare(m.model, device) for m in models]
    probs: dict[Key, list[torch.Tensor]] = {}
    seconds: dict[Key, float] = {}
    labels: list[torch.Tensor] = []
    for images, y in track(source.batches(), source.size, "eval", size=lambda b: len(b[1]), estimate=True):
        images = images.to(device)
        labels.append(y)
        for i, (loaded, net) in enumerate(zip(models, nets)):
            for q in scales:
                x = loaded.inputs(images, q).contiguous(memory_format=torch.channels_last)
                for method in methods:
                    t0 = time.perf_counter()
                    p = posteriors(net, x, method, crop)
                    if device.type == "cuda":
                        torch.cuda.synchronize(device)
                    seconds[i, method, q] = seconds.get((i, method, q), 0.0) + time.perf_counter() - t0
                    probs.setdefault((i, method, q), []).append(p[:, maps[i]].cpu())
    if not labels:
        raise ValueError(f"no readable image in {source.name}")
    return {k: torch.cat(v) for k, v in probs.items()}, seconds, torch.cat(labels)


def evaluate(
    models: Sequence[Loaded],
    source: Source,
    scale_sets: Sequence[Sequence[int]],
    protocols: Sequence[str] = PROTOCOLS,
    device: str | torch.device = "cpu",
    names: Sequence[str] | None = None,
    matching: ClassMatching | None = None,
) -> dict[str, Any]:
    """Top-1/top-5 error and images/s of every model (and, for several, their ensemble) under every protocol and
    set of test scales; one pass over the data. The data's classes meet each model's by name (``matching``:
    through a class map, or by position, where asked: :mod:`vggnet.base.classes`)."""
    crop = check_request(models, scale_sets, protocols)
    device = torch.device(device)
    names = list(names or [display_name(m.source) for m in models])
    methods = sorted({part for p in protocols for part in p.split("+")})
    scales = sorted({q for s in scale_sets for q in s})
    for model in models:  # classes that do not meet are a sentence of their own, before the work is announced
        label_map(model, source, matching)
    say(
        f"eval: {len(models)} model{'s' * (len(models) > 1)}, {', '.join(LABELS[p] for p in protocols)} at Q = "
        f"{'; '.join(' '.join(map(str, qs)) for qs in scale_sets)}, on {source.size:,} images of {source.name}"
    )
    table, seconds, target = collect(models, source, scales, methods, crop, device, matching)
    columns, rows = [], [{"model": n, "cells": {}} for n in names]
    if len(models) > 1:
        rows.append({"model": " + ".join(names) + " (ensemble)", "cells": {}})
    for qs in scale_sets:
        for protocol in protocols:
            column = f"{LABELS[protocol]}, Q={'{' + ','.join(map(str, qs)) + '}' if len(qs) > 1 else qs[0]}"
            columns.append(column)
            parts = [(m, q) for m in protocol.split("+") for q in qs]
            per_model = [
                (sum(table[i, m, q] for m, q in parts) / len(parts), sum(seconds[i, m, q] for m, q in parts))
                for i in range(len(models))
            ]
            for row, (p, t) in zip(rows, per_model):
                row["cells"][column] = _score(p, target, t)
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
