"""``vggnet eval``: its flags (:class:`EvalSettings`), and the command: evaluate under the paper's protocols
(:func:`vggnet.inference.protocols.evaluate`), print the table, write eval.md and eval.json."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..base.classes import ClassMatching, by_position_setting, class_map_setting
from ..base.files import atomic_write_text, folder_lock
from ..base.settings import AT_LEAST_ONE, RUNTIME, ProgressSettings, setting
from ..data.device import decodes_on_device
from ..data.sources import open_source
from ..inference.geometry import PROTOCOLS
from ..inference.loading import Loaded, ModelChoice
from ..inference.protocols import evaluate, markdown
from .command import Command, check_out_folder, parsed


@dataclass
class EvalSettings(ModelChoice):
    """``vggnet eval``: one model or an ensemble, the paper's protocols, a table in the layout of Tables 3-6."""

    data: str = setting(
        "fashion-mnist",
        "an image folder (DIR/val/<class>/* or DIR/<class>/*), or fashion-mnist / fashion-mnist-scaled (test sets)",
    )
    class_map: str | None = class_map_setting()
    classes_by_position: bool = by_position_setting()
    scales: list[list[int]] | None = setting(
        None,
        "test scales Q: one for single-scale, several for multi-scale (e.g. 256 384 512); repeat for more columns "
        "(default 256, or the training size for small images)",
        AT_LEAST_ONE,
    )
    protocols: list[str] = setting(
        list(PROTOCOLS),
        "centre crop (torchvision's), dense, multi-crop (5x5 grid x 2 flips), or dense+multicrop",
        choices=PROTOCOLS,
    )
    batch_size: int = setting(64, "images per batch for equal-sized data", AT_LEAST_ONE, role=RUNTIME)
    limit: int | None = setting(None, "evaluate only the first N images", AT_LEAST_ONE)
    strict: bool = setting(False, "stop at an unreadable image instead of skipping it")
    out: str = setting("runs/eval", "folder for eval.md and eval.json", role=RUNTIME)
    decode: str = setting(
        "auto",
        "decode a folder's JPEGs on the GPU (gpu) or the CPU; auto: gpu with --device cuda",
        choices=("auto", "cpu", "gpu"),
        role=RUNTIME,
    )


def write_report(report: dict[str, Any], out: str | Path) -> tuple[Path, Path]:
    out = Path(out)
    md = atomic_write_text(out / "eval.md", markdown(report))
    js = atomic_write_text(out / "eval.json", json.dumps(report, indent=1))
    return md, js


def run_eval(s: EvalSettings, models: Sequence[Loaded]) -> tuple[Path, Path]:
    """``vggnet eval``: evaluate, print the table, write eval.md and eval.json to ``s.out`` (locked meanwhile)."""
    for loaded in models:
        loaded.check_head("an evaluation")
    device = torch.device(s.device)
    decode_device = device if decodes_on_device(s.decode, device) else None
    channels = models[0].model.in_channels
    source = open_source(s.data, s.batch_size, s.strict, s.limit, None, channels, decode_device)
    with folder_lock(s.out, "evaluation folder"):
        scales = s.scales or [[models[0].default_scale]]
        report = evaluate(models, source, scales, s.protocols, s.device, matching=ClassMatching.of(s))
        print(markdown(report), end="")
        md, js = write_report(report, s.out)
    print(f"wrote {md} and {js}")
    return md, js


def cmd_eval(args: argparse.Namespace) -> int:
    s = parsed(EvalSettings, args)
    check_out_folder(s.out)
    run_eval(s, s.load())
    return 0


COMMAND = Command(
    "eval",
    "top-1/top-5 error under the paper's test protocols (layout of Tables 3-6)",
    cmd_eval,
    (EvalSettings, ProgressSettings),
)
