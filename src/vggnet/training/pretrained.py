"""Fine-tuning's start: every layer of pretrained weights that fits the model is loaded and the rest said: fc8 keeps
the rows of the data's classes where the file has them by name (reordered, or a subset's), is new for other classes,
conv1_1 is adapted to another number of input channels, and any other mismatch is an error naming the keys."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import torch
from torch import nn

from ..base.classes import ClassMatching, name_key
from ..formats import WeightsFile
from ..network.weights import check_compatible, read_weights


@dataclass
class LoadReport:
    """What :func:`load_pretrained` did, by Caffe layer name."""

    source: str
    loaded: list[str]
    new: list[str] = field(default_factory=list)
    adapted: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"from {self.source}: {_span(self.loaded)} ({len(self.loaded)} layers)"]
        if self.new:
            lines.append("newly initialised: " + "; ".join(self.new))
        if self.adapted:
            lines.append("adapted: " + "; ".join(self.adapted))
        return "\n".join(lines)


def _span(names: list[str]) -> str:
    return ", ".join(names) if len(names) <= 4 else f"{names[0]}, {names[1]} ... {names[-2]}, {names[-1]}"


def adapt_input_conv(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """conv1_1's kernel for another number of input channels, as timm's ``adapt_input_conv``: summed over the
    channels for one channel (a gray image then gives what its RGB copy gave), otherwise the channels repeated and
    scaled by old / new count so that the response to a uniform input is kept."""
    old = weight.shape[1]
    w = weight.float()
    if in_channels == 1:
        w = w.sum(1, keepdim=True)
    else:
        w = w.repeat(1, math.ceil(in_channels / old), 1, 1)[:, :in_channels] * (old / in_channels)
    return w.to(weight.dtype)


def load_pretrained(
    model: nn.Module,
    source: str | os.PathLike | WeightsFile,
    classes: list[str] | None = None,
    matching: ClassMatching | None = None,
) -> LoadReport:
    """Load every layer of ``source`` that fits ``model``, for fine-tuning: fc8's rows for ``classes`` where the file
    has them (reordered, or those of a subset), a new fc8 for other classes (another count, or other names), and
    conv1_1 adapted to another number of input channels. Any other mismatch is an error naming the keys.
    ``classes`` meet the file's by name (``matching``: through a class map, or by position,
    where asked; :mod:`vggnet.base.classes`). Returns what was loaded, what is new and what was adapted."""
    found = source if isinstance(source, WeightsFile) else read_weights(source, getattr(model, "arch", None))
    state, own = dict(found.state), model.state_dict()
    report = LoadReport(found.source, [])
    if found.trunk_only:  # Keras's include_top=False: the whole head is new
        state.update({k: v for k, v in own.items() if k.startswith("classifier.")})
        report.new.append("fc6, fc7, fc8 (the file holds the convolutional trunk only)")
    _fit_fc8(state, own, found, classes, report, matching)
    conv = state.get("features.0.weight")
    mine = own["features.0.weight"]
    if conv is not None and conv.shape[1] != mine.shape[1] and conv.shape[0] == mine.shape[0]:
        state["features.0.weight"] = adapt_input_conv(conv, mine.shape[1])
        report.adapted.append(f"conv1_1 ({conv.shape[1]} -> {mine.shape[1]} input channels)")
    check_compatible(model, state, f"weights from {found.source}")
    model.load_state_dict(state, strict=True)
    new = ({"fc6", "fc7", "fc8"} if found.trunk_only else {"fc8"}) if report.new else set()
    report.loaded = [n for n in _layers_with_parameters(model) if n not in new]
    return report


def _fit_fc8(
    state: dict[str, torch.Tensor],
    own: dict[str, torch.Tensor],
    found: WeightsFile,
    classes: list[str] | None,
    report: LoadReport,
    matching: ClassMatching | None,
) -> None:
    """fc8's rows for the data's classes, matched to the file's by name (:mod:`vggnet.base.classes`): reordered or
    picked where they match, new where they do not (a map or position that does not fit is an error)."""
    weight, mine = state.get("classifier.6.weight"), own["classifier.6.weight"]
    if weight is None or weight.shape[1:] != mine.shape[1:]:
        return  # another fc7 width: the key check names it
    theirs = found.classes if found.classes and len(found.classes) == weight.shape[0] else None
    names = theirs or [f"class {i}" for i in range(weight.shape[0])]
    if classes is None or len(classes) != mine.shape[0]:  # nothing to match: kept where it fits
        if weight.shape[0] != mine.shape[0]:
            _new_fc8(state, own, report, f"{found.source} has {weight.shape[0]}")
        return
    matching = matching or ClassMatching()
    try:
        match = matching.match(classes, names, "the data", found.source)
    except ValueError:
        if matching.class_map or matching.classes_by_position:
            raise
        other = len(classes) == len(names) or set(map(name_key, classes)) & set(map(name_key, names))
        hint = "; if these are its classes by other names, --class-map FILE or --classes-by-position" if other else ""
        why = f"{found.source} has {weight.shape[0]}" if weight.shape[0] != mine.shape[0] else f"not {found.source}'s"
        _new_fc8(state, own, report, f"{why} {', '.join(names[:3])}...{hint}" if theirs else why)
        return
    if match.index != list(range(weight.shape[0])):
        order = torch.tensor(match.index)
        state["classifier.6.weight"], state["classifier.6.bias"] = weight[order], state["classifier.6.bias"][order]
        report.adapted.append(
            "fc8 (its rows put in the data's class order)"
            if len(order) == weight.shape[0]
            else f"fc8 (the rows of the data's {len(order)} classes, of its {weight.shape[0]})"
        )
    if match.note:
        report.adapted.append(f"fc8 ({match.note})")


def _new_fc8(state: dict[str, torch.Tensor], own: dict[str, torch.Tensor], report: LoadReport, why: str) -> None:
    state["classifier.6.weight"], state["classifier.6.bias"] = own["classifier.6.weight"], own["classifier.6.bias"]
    report.new.append(f"fc8 ({own['classifier.6.weight'].shape[0]} classes; {why})")


def _layers_with_parameters(model: nn.Module) -> list[str]:
    return [name for name in model.layer_names if any(True for _ in model.layer(name).parameters(recurse=False))]
